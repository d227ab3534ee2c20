"""The demo agent as a real process: edits, commits, marks done or prints the promise, needs N
iterations, fails, hangs, handles SIGINT, spawns children."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from ralphnb.demo import create_sample_repo
from ralphnb.queue.store import Queue
from ralphnb.runners import Demo, build_prompt
from ralphnb.workers.process import Worker, build_env

PROMISE = "<promise>COMPLETE</promise>"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
    ).stdout


def write_prompt(tmp_path: Path, task: dict, ws: Path) -> Path:
    p = tmp_path / f"prompt-{task['id']}.md"
    p.write_text(build_prompt(task, workspace=ws, completion_promise=PROMISE))
    return p


def agent_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **GIT_ENV, "RALPHNB_DEMO_SPEED": "0", "RALPHNB_ITERATION": "1"}
    env.pop("RALPHNB_REPO", None)
    env.pop("RALPHNB_WORKER", None)
    env.update(extra)
    return env


def run_agent(prompt: Path, cwd: Path, env: dict[str, str], timeout: float = 30):
    p = subprocess.run(
        [sys.executable, "-m", "ralphnb.demo.agent", "--prompt-file", str(prompt)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    parser = Demo().parser()
    events = [e for line in p.stdout.splitlines() for e in parser.feed(line)]
    return p, events


def of(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["type"] == kind]


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return create_sample_repo(tmp_path / "repo", n_tasks=6)


def worktree(repo: Path, tmp_path: Path, tid: str) -> Path:
    ws = tmp_path / "ws" / tid
    git(repo, "worktree", "add", "-q", "-b", f"ralph/{tid}", str(ws))
    return ws


def test_edits_commits_and_marks_done_in_the_users_queue(sample, tmp_path):
    task = Queue(sample).get("RQ-0001").to_dict()
    ws = worktree(sample, tmp_path, "RQ-0001")
    env = agent_env(RALPHNB_REPO=str(sample), RALPHNB_WORKER="w1", RALPHNB_TASK_ID="RQ-0001")
    p, events = run_agent(write_prompt(tmp_path, task, ws), ws, env)
    assert p.returncode == 0, p.stderr
    assert (ws / "src/greeting.py").read_text() == 'GREETING = "Hello from ralphnb"\n'
    assert not (sample / "src/greeting.py").exists()  # the user's checkout is untouched
    assert git(ws, "log", "-1", "--format=%s").strip() == "RQ-0001: Add a greeting module"
    assert git(ws, "status", "--porcelain").strip() == ""
    assert Queue(sample).get("RQ-0001").status == "done"  # RALPHNB_WORKER: left in queue
    assert [e["name"] for e in of(events, "tool")] == ["Write", "Bash", "Bash"]
    (result,) = of(events, "result")
    assert result["turns"] == 5 and result["cost_usd"] > 0 and result["is_error"] is False
    assert result["session_id"] == of(events, "session")[0]["session_id"]
    assert PROMISE not in p.stdout and not of(events, "text") and not of(events, "error")


def test_promise_outside_git_and_deterministic(tmp_path):
    ws = tmp_path / "plain"
    ws.mkdir()
    task = {
        "id": "RQ-0003",
        "title": "Plain",
        "custom_fields": {
            "demo.file": "notes/a.md",
            "demo.content": "first",
            "demo.finish": "promise",
        },
    }
    prompt = write_prompt(tmp_path, task, ws)
    p1, ev1 = run_agent(prompt, ws, agent_env())
    assert p1.returncode == 0, p1.stderr
    assert PROMISE in of(ev1, "result")[0]["text"]
    assert [e["name"] for e in of(ev1, "tool")] == ["Write"]  # no git, no ralphnb command
    p2, ev2 = run_agent(prompt, ws, agent_env())
    assert (ws / "notes/a.md").read_text() == "first\nfirst\n"  # second run appends
    assert of(ev1, "session") == of(ev2, "session")


def test_needs_n_iterations(tmp_path):
    ws = tmp_path / "w"
    ws.mkdir()
    task = {
        "id": "RQ-0004",
        "title": "Slow",
        "custom_fields": {"demo.iterations": "3", "demo.finish": "promise"},
    }
    prompt = write_prompt(tmp_path, task, ws)
    for it in (1, 2):
        p, ev = run_agent(prompt, ws, agent_env(RALPHNB_ITERATION=str(it)))
        assert p.returncode == 0 and PROMISE not in p.stdout
        assert "not finished" in of(ev, "result")[0]["text"]
    assert not (ws / "demo").exists()
    p, ev = run_agent(prompt, ws, agent_env(RALPHNB_ITERATION="3"))
    assert PROMISE in of(ev, "result")[0]["text"]
    assert (ws / "demo/RQ-0004.txt").read_text() == "RQ-0004: Slow\n"


def test_fail_replace_line_and_escape_attempt(tmp_path):
    ws = tmp_path / "w"
    ws.mkdir()
    (ws / "f.txt").write_text("one\ntwo\nthree\n")
    fail = {"id": "RQ-0005", "title": "Fail", "custom_fields": {"demo.fail": "3"}}
    p, ev = run_agent(write_prompt(tmp_path, fail, ws), ws, agent_env())
    assert p.returncode == 3
    assert of(ev, "result")[0]["is_error"] is True and of(ev, "error")
    line = {
        "id": "RQ-0006",
        "title": "Line",
        "custom_fields": {
            "demo.file": "f.txt",
            "demo.line": "2",
            "demo.content": "TWO",
            "demo.finish": "none",
        },
    }
    p, ev = run_agent(write_prompt(tmp_path, line, ws), ws, agent_env())
    assert p.returncode == 0 and (ws / "f.txt").read_text() == "one\nTWO\nthree\n"
    outside = {"id": "RQ-0007", "title": "Out", "custom_fields": {"demo.file": "../evil.txt"}}
    p, ev = run_agent(write_prompt(tmp_path, outside, ws), ws, agent_env())
    assert p.returncode == 2 and not (tmp_path / "evil.txt").exists()
    assert "outside the workspace" in of(ev, "error")[0]["message"]


def test_task_from_queue_when_prompt_has_no_block(sample, tmp_path):
    prompt = tmp_path / "custom.md"
    prompt.write_text("Custom template without the JSON block.\n")
    env = agent_env(RALPHNB_REPO=str(sample), RALPHNB_TASK_ID="RQ-0002", RALPHNB_WORKER="w2")
    ws = worktree(sample, tmp_path, "RQ-0002")
    p, _ = run_agent(prompt, ws, env)
    assert p.returncode == 0, p.stderr
    assert (ws / "CHANGELOG.md").exists()


def test_timing_scales_with_speed(tmp_path):
    ws = tmp_path / "w"
    ws.mkdir()
    task = {
        "id": "RQ-0008",
        "title": "Timed",
        "custom_fields": {"demo.duration": "20", "demo.finish": "promise"},
    }
    prompt = write_prompt(tmp_path, task, ws)
    t0 = time.monotonic()
    p, _ = run_agent(prompt, ws, agent_env(RALPHNB_DEMO_SPEED="0.03"))
    elapsed = time.monotonic() - t0
    assert p.returncode == 0 and 0.55 <= elapsed < 10


def start_hanging(tmp_path: Path, fields: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    ws = tmp_path / "w"
    ws.mkdir(exist_ok=True)
    task = {"id": "RQ-0009", "title": "Hang", "custom_fields": {"demo.hang": "1", **fields}}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ralphnb.demo.agent",
            "--prompt-file",
            str(write_prompt(tmp_path, task, ws)),
        ],
        cwd=ws,
        env=agent_env(RALPHNB_DEMO_SPEED="0.1"),
        stdout=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    return proc, ws


def read_until(proc: subprocess.Popen, pred, limit: int = 50) -> list[dict]:
    seen = []
    for _ in range(limit):
        line = proc.stdout.readline()
        if not line:
            break
        obj = json.loads(line)
        seen.append(obj)
        if pred(obj):
            return seen
    raise AssertionError(f"condition not met; saw {seen}")


def test_sigint_exits_130_and_hang_keeps_printing(tmp_path):
    proc, _ = start_hanging(tmp_path, {})
    try:
        read_until(proc, lambda o: "Still thinking" in json.dumps(o) and "(2)" in json.dumps(o))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130
    finally:
        proc.kill()
        proc.wait()


def test_ignore_sigint_children_and_setsid_escapee(tmp_path):
    proc, _ = start_hanging(
        tmp_path, {"demo.ignore_sigint": "true", "demo.children": "2", "demo.escape": "true"}
    )
    pids: list[int] = []
    try:
        seen = read_until(proc, lambda o: o.get("subtype") == "demo_children")
        info = seen[-1]
        pids = info["pids"] + info["escaped_pids"]
        assert len(info["pids"]) == 2 and len(info["escaped_pids"]) == 1
        for pid in info["pids"]:
            assert psutil.Process(pid).ppid() == proc.pid
        esc = info["escaped_pids"][0]
        deadline = time.monotonic() + 5
        while os.getsid(esc) == os.getsid(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.getsid(esc) != os.getsid(proc.pid)  # left the worker's session
        assert esc not in {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
        os.kill(proc.pid, signal.SIGINT)
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.5)
        assert proc.poll() is None
    finally:
        for pid in [proc.pid, *pids]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()


def test_demo_runner_through_worker_and_stop(sample, tmp_path):
    task = Queue(sample).get("RQ-0001").to_dict()
    ws = worktree(sample, tmp_path, "RQ-0001")
    runner = Demo(speed=0)
    spec = runner.command(
        task, workspace=ws, prompt_file=write_prompt(tmp_path, task, ws), iteration=1
    )
    parser = runner.parser()
    events: list[dict] = []
    extra = {
        **spec.env,
        **GIT_ENV,
        "RALPHNB_REPO": str(sample),
        "RALPHNB_WORKER": "w1",
        "RALPHNB_TASK_ID": "RQ-0001",
        "RALPHNB_ITERATION": "1",
    }
    w = Worker(
        spec.argv,
        cwd=ws,
        env=build_env(extra),
        log_path=tmp_path / "log" / "1.log",
        worker_id="w1",
        task_id="RQ-0001",
        on_line=lambda s: events.extend(parser.feed(s)),
        stdin_path=spec.stdin_path,
    ).start()
    info = w.wait(timeout=30)
    assert info is not None and info.returncode == 0, w.tail(20)
    assert parser.summary()["turns"] == 5 and parser.summary()["cost_usd"] > 0
    assert Queue(sample).get("RQ-0001").status == "done"

    hang = {"id": "RQ-0002", "title": "Hang", "custom_fields": {"demo.hang": "1"}}
    spec = Demo(speed=0.1).command(
        hang, workspace=ws, iteration=1, prompt_file=write_prompt(tmp_path, hang, ws)
    )
    lines: list[str] = []
    w = Worker(
        spec.argv,
        cwd=ws,
        env=build_env(spec.env),
        log_path=tmp_path / "log" / "2.log",
        worker_id="w2",
        on_line=lines.append,
    ).start()
    deadline = time.monotonic() + 10
    while len(lines) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    info = w.stop(grace=5)
    assert info.returncode == 130 and info.signal is None


def test_steady_mode_edits_the_file_a_step_at_a_time_then_finishes(tmp_path):
    ws = tmp_path / "w"
    ws.mkdir()
    fields = {"demo.file": "s.txt", "demo.steady": "3", "demo.step": "0.05"}
    task = {
        "id": "RQ-0005",
        "title": "Steady",
        "custom_fields": {**fields, "demo.finish": "promise"},
    }
    p, events = run_agent(write_prompt(tmp_path, task, ws), ws, agent_env())
    assert p.returncode == 0, p.stderr
    lines = (ws / "s.txt").read_text().splitlines()
    assert lines == ["RQ-0005: step 1", "RQ-0005: step 2", "RQ-0005: step 3", "RQ-0005: Steady"]
    assert [e["name"] for e in of(events, "tool")] == ["Write", "Edit", "Edit", "Edit"]


@pytest.mark.parametrize("mode", ["silent", "repeat"])
def test_silent_and_repeat_modes_run_until_stopped(tmp_path, mode):
    ws = tmp_path / "w"
    ws.mkdir()
    task = {
        "id": "RQ-0006",
        "title": mode,
        "custom_fields": {f"demo.{mode}": "1", "demo.step": "0.05"},
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ralphnb.demo.agent",
            "--prompt-file",
            str(write_prompt(tmp_path, task, ws)),
        ],
        cwd=ws,
        env=agent_env(),
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 30
    while len(lines) < 2 and time.monotonic() < deadline:  # started: init and its first words
        time.sleep(0.05)
    time.sleep(1.0)
    assert proc.poll() is None  # still going
    proc.send_signal(signal.SIGINT)
    proc.wait(10)
    reader.join(10)
    out = "".join(lines)
    parser = Demo().parser()
    calls = [
        e for line in out.splitlines() for e in parser.transcribe(line)[1] if e.kind == "tool_call"
    ]
    if mode == "silent":
        assert calls == [] and list(ws.iterdir()) == []
    else:  # the same call, with the same arguments, over and over
        assert len(calls) >= 3 and len({(c.tool, c.args) for c in calls}) == 1
