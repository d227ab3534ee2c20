"""`ralphnb run/status/stop/kill`, across processes, with the demo agent."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from ralphnb.cli.main import main
from ralphnb.loop.control import live_run
from ralphnb.loop.runs import Run, list_runs
from ralphnb.queue.store import Queue, init
from tests.cli.ralphnb_process import run_cli
from tests.conftest import git


@pytest.fixture
def env(monkeypatch):
    e = dict(os.environ, RALPHNB_DEMO_SPEED="0.05")
    for who in ("AUTHOR", "COMMITTER"):
        for k, v in ((f"GIT_{who}_NAME", "Test"), (f"GIT_{who}_EMAIL", "t@example.invalid")):
            e[k] = v
            monkeypatch.setenv(k, v)
    monkeypatch.setenv("RALPHNB_DEMO_SPEED", "0.05")
    return e


def make_repo(tmp_path: Path, tasks: list[dict]) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    q = init(repo)
    for i, cf in enumerate(tasks, 1):
        q.add(f"Task {i}", custom_fields={"demo.file": f"t{i}.txt", "demo.content": str(i), **cf})
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    return repo


def ralphnb(*args: str, env: dict, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ralphnb", *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=60,
        **kw,
    )


@pytest.mark.slow
def test_run_prints_a_line_per_change_and_exits_0(tmp_path, env):
    repo = make_repo(tmp_path, [{}, {}])
    r = ralphnb(
        "run",
        "--runner",
        "demo",
        "--repo",
        str(repo),
        "--parallel",
        "2",
        "--check",
        f"{sys.executable} -c 'import sys; sys.exit(0)'",
        env=env,
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    rows = [ln.split()[:3] for ln in lines]  # one table row per change: task, attempt, status
    assert ["RQ-0001", "1", "running"] in rows and ["RQ-0002", "1", "integrated"] in rows
    assert "[loop_finished]" in lines[-1]
    assert len(Queue(repo).done) == 2
    # status after the run falls back to the journal
    s = ralphnb("status", "--repo", str(repo), "--json", env=env)
    data = json.loads(s.stdout)
    assert "not running" in data["head"] and len(data["records"]) == 2
    # as text: the run, then the same table as repr(loop): counts, header, one row per attempt
    out = ralphnb("status", "--repo", str(repo), env=env).stdout.splitlines()
    assert "not running" in out[0] and out[1].startswith("integrated 2 | cost $")
    assert out[2].split()[:3] == ["task", "it", "status"]
    assert [ln.split()[:3] for ln in out[3:]] == [
        ["RQ-0001", "1", "integrated"],
        ["RQ-0002", "1", "integrated"],
    ]


def test_run_exit_code_1_when_a_task_fails(tmp_path, env):
    repo = make_repo(tmp_path, [{"demo.finish": "none"}])
    r = ralphnb("run", "--runner", "demo", "--repo", str(repo), "--max-iterations", "1", env=env)
    assert r.returncode == 1
    assert "failed" in r.stdout


@pytest.mark.slow
def test_status_stop_kill_act_on_a_loop_in_another_process(tmp_path, env):
    repo = make_repo(tmp_path, [{"demo.hang": "1"}, {"demo.hang": "1"}, {}])
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ralphnb",
            "run",
            "--runner",
            "demo",
            "--repo",
            str(repo),
            "--parallel",
            "3",
        ],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    recs: dict = {}
    while time.monotonic() < deadline:
        r = ralphnb("status", "--repo", str(repo), "--json", env=env) if live_run(repo) else None
        if r is not None and r.returncode == 0:
            recs = {x["task_id"]: x for x in json.loads(r.stdout)["records"]}
            if all(recs.get(t, {}).get("status") == "running" for t in ("RQ-0001", "RQ-0002")):
                break
        time.sleep(0.2)
    assert "running" in json.loads(r.stdout)["head"]
    pids = [recs["RQ-0001"]["pid"], recs["RQ-0002"]["pid"]]
    bad = ralphnb("kill", "RQ-0009", "--repo", str(repo), env=env)
    assert bad.returncode == 1 and "RQ-0009" in bad.stderr
    s = ralphnb("stop", "RQ-0001", "--repo", str(repo), env=env)
    assert s.returncode == 0, s.stderr
    k = ralphnb("kill", "RQ-0002", "--repo", str(repo), env=env)
    assert k.returncode == 0, k.stderr
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1  # stopped/killed tasks are not done
    st = {r["task_id"]: r["status"] for r in Run.load(list_runs(repo)[-1]).records.values()}
    assert st == {"RQ-0001": "stopped", "RQ-0002": "killed", "RQ-0003": "integrated"}
    assert all(not psutil.pid_exists(p) for p in pids)
    assert Queue(repo).get("RQ-0001").status == "todo"
    none = ralphnb("stop", "RQ-0001", "--repo", str(repo), env=env)
    assert none.returncode == 1 and "no loop is running" in none.stderr


def test_run_in_process_with_main(tmp_path, env, capsys):
    repo = make_repo(tmp_path, [{}])
    assert main(["run", "--runner", "demo", "--repo", str(repo), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[-1]["status"] == "integrated"


def test_run_takes_phases_passes_and_the_publish_mode(tmp_path, env, capsys):
    """`--phases 2` runs plan then implement as their own rows; `--publish off` leaves the work
    on the task branch (nothing merged into main)."""
    repo = make_repo(tmp_path, [{}])
    head = git(repo, "rev-parse", "main")
    argv = ["run", "--runner", "demo", "--repo", str(repo), "--json", "--phases", "2"]
    assert main([*argv, "--publish", "off", "--no-resume", "--parallel", "1"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["phase"] for r in rows] == ["plan", "implement"]
    changed = git(repo, "diff", "--name-only", head.strip(), "main").split()
    assert all(p.startswith(".ralph/") for p in changed)  # publish off: only the queue's notes
    work = git(repo, "diff", "--name-only", "main", "ralph/RQ-0001").split()
    assert any(not p.startswith(".ralph/") for p in work)  # the work stays on its branch


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_cleanly(tmp_path, env):
    repo = make_repo(tmp_path, [{"demo.hang": "1", "demo.children": "2"}])
    proc = subprocess.Popen(
        [sys.executable, "-m", "ralphnb", "run", "--runner", "demo", "--repo", str(repo)],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    pid = None
    while time.monotonic() < deadline and pid is None:
        if live_run(repo):
            r = ralphnb("status", "--repo", str(repo), "--json", env=env)
            recs = json.loads(r.stdout)["records"] if r.returncode == 0 else []
            if recs and recs[0]["status"] == "running":
                pid = recs[0]["pid"]
        time.sleep(0.2)
    assert pid is not None
    tree = [p.pid for p in psutil.Process(pid).children(recursive=True)]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "workers stopped" in err
    assert all(not psutil.pid_exists(p) for p in [pid, *tree])
    t = Queue(repo).get("RQ-0001")
    assert t.status == "todo" and "Ctrl-C" in t.notes[-1]


def test_run_on_a_tty_redraws_the_table_in_place(tmp_path, env):
    repo = make_repo(tmp_path, [{}])
    pid, fd = pty.fork()
    if pid == 0:  # the child: `ralphnb run` with a terminal as stdout
        os.execve(
            sys.executable,
            [sys.executable, "-m", "ralphnb", "run", "--runner", "demo", "--repo", str(repo)],
            env,
        )
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out
    assert out.count(b"\x1b[J") >= 1  # cursor up + clear: the table is rewritten, not appended
    assert b"integrated 1" in out


def test_run_without_runner_says_how_to_choose_and_writes_nothing(tmp_path):
    repo = make_repo(tmp_path, [{}])
    home = tmp_path / "home"
    home.mkdir()
    queue = (repo / ".ralph" / "queue.jsonc").read_bytes()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True).stdout
    r = run_cli(["run"], repo, {"HOME": str(home), "XDG_CONFIG_HOME": ""})
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("ralphnb: error:") and r.stderr.count("\n") == 1, r.stderr
    assert "--runner claude" in r.stderr and "agent.runner" in r.stderr
    assert (repo / ".ralph" / "queue.jsonc").read_bytes() == queue
    assert not (repo / ".ralph" / "cache").exists() and list_runs(repo) == []
    assert (
        subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True).stdout == head
    )


def test_run_on_a_broken_queue_says_why_on_stderr(tmp_path, env):
    repo = make_repo(tmp_path, [{}])
    (repo / ".ralph" / "queue.jsonc").write_text('{"version": 1,\n "tasks": [,]}')
    r = ralphnb("run", "--repo", str(repo), "--runner", "demo", env=env)
    assert r.returncode == 1
    assert r.stderr.startswith("ralphnb: error:") and r.stderr.count("\n") == 1, r.stderr
    assert "queue.jsonc:2:" in r.stderr
    assert "queue.jsonc" not in r.stdout


def test_a_halted_run_says_why_on_stderr(tmp_path, env):
    repo = make_repo(tmp_path, [{"demo.hang": "1"}])
    r = ralphnb("run", "--repo", str(repo), "--runner", "demo", "--max-wall-time", "0.5", env=env)
    assert r.returncode == 1
    assert r.stderr == "ralphnb: halted: max_wall_time reached\n"
