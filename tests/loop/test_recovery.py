"""SIGKILL of the process running a loop, then a new Loop finishes the work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from ralphnb.loop.control import live_run
from ralphnb.loop.core import Loop
from ralphnb.loop.runs import list_runs
from ralphnb.queue.jsonio import read_jsonc
from ralphnb.queue.store import Queue, init
from ralphnb.workers.registry import find_leftovers
from ralphnb.workspace.workspaces import Workspaces
from tests.conftest import git, make_repo

SCRIPT = """
import sys
from ralphnb.loop.core import Loop
Loop(sys.argv[1], runner="demo", parallel=2).run()
"""


def journal(run_dir: Path) -> list[dict]:
    out = []
    try:
        text = (run_dir / "events.jsonl").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


@pytest.mark.slow
def test_sigkill_of_the_loop_process_then_recovery(tmp_path, monkeypatch):
    env = dict(os.environ, RALPHNB_DEMO_SPEED="0.05")
    for who in ("AUTHOR", "COMMITTER"):
        env[f"GIT_{who}_NAME"] = "Test"
        env[f"GIT_{who}_EMAIL"] = "test@example.invalid"
        monkeypatch.setenv(f"GIT_{who}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "test@example.invalid")
    monkeypatch.setenv("RALPHNB_DEMO_SPEED", "0.05")
    repo = tmp_path / "repo"
    repo.mkdir()
    q = init(repo)
    for i in range(1, 6):
        q.add(
            f"Task {i}",
            custom_fields={
                "demo.file": f"t{i}.txt",
                "demo.content": f"{i}",
                "demo.duration": "10" if i > 1 else "2",
            },
        )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "init")  # queue files tracked in git

    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(repo)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    running: set[str] = set()
    while time.monotonic() < deadline:
        runs = list_runs(repo)
        evs = journal(runs[-1]) if runs else []
        integrated = {e["task_id"] for e in evs if e["kind"] == "integrated"}
        started = {e["worker_id"] for e in evs if e["kind"] == "started"}
        exited = {e["worker_id"] for e in evs if e["kind"] == "exited"}
        running = started - exited
        if integrated and running:
            break
        time.sleep(0.05)
    assert running, proc.stderr.read() if proc.poll() is not None else "no worker seen running"
    assert live_run(repo) is not None
    old_run = list_runs(repo)[-1]
    old_pids = [
        r["pid"] for r in (json.loads(p.read_text()) for p in (old_run / "workers").glob("*.json"))
    ]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert live_run(repo) is None  # its workers stop themselves (tests/loop/test_owner_death.py)

    loop = Loop(repo, runner="demo", parallel=2)
    df = loop.run()
    rec = [e for e in loop.events if e.kind == "recovered"]
    assert rec and (rec[0].data["doing"] or rec[0].data["integrate"])  # the killed loop's tasks
    assert not find_leftovers(old_run / "workers")
    assert all(not psutil.pid_exists(p) or psutil.Process(p).status() == "zombie" for p in old_pids)
    assert set(df.drop_duplicates("task_id", keep="last").status) == {"integrated"}
    # no task lost, none done twice, files valid
    done = read_jsonc(repo / ".ralph" / "done.jsonc")["tasks"]
    assert sorted(t["id"] for t in done) == [f"RQ-000{i}" for i in range(1, 6)]
    assert read_jsonc(repo / ".ralph" / "queue.jsonc")["tasks"] == []
    assert Queue(repo).validate() == 5
    files = git(repo, "ls-tree", "-r", "--name-only", "HEAD").split()
    assert {f"t{i}.txt" for i in range(1, 6)} <= set(files)
    log = git(repo, "log", "--format=%s")
    for i in range(1, 6):
        assert log.count(f"Merge ralph/RQ-000{i}:") <= 1, log
    assert git(repo, "status", "--porcelain") == ""


EXIT_SCRIPT = """
import sys, time
from ralphnb.loop.core import Loop
loop = Loop(sys.argv[1], runner="demo", grace=0.3).start()
while not (len(loop.df) and loop.df.status.iloc[0] == "running"):
    time.sleep(0.05)
print(int(loop.df.pid.iloc[0]), flush=True)
# the script ends here with the loop still running in the background
"""


def test_interpreter_exit_stops_a_background_loop(tmp_path):
    env = dict(os.environ, RALPHNB_DEMO_SPEED="0.05")
    for who in ("AUTHOR", "COMMITTER"):
        env[f"GIT_{who}_NAME"] = "Test"
        env[f"GIT_{who}_EMAIL"] = "test@example.invalid"
    repo = tmp_path / "repo"
    repo.mkdir()
    init(repo).add(
        "Hang",
        custom_fields={
            "demo.hang": "1",
            "demo.children": "2",
            "demo.file": "h.txt",
            "demo.content": "h",
        },
    )
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        git(repo, *args)
    r = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, str(repo)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    pid = int(r.stdout.split()[0])
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    run_dir = list_runs(repo)[-1]
    assert not find_leftovers(run_dir / "workers")
    t = Queue(repo).get("RQ-0001")
    assert t.status == "todo" and "interpreter exit" in t.notes[-1]
    evs = journal(run_dir)
    assert evs[-1]["kind"] == "loop_finished"


def test_recovery_removes_the_workspaces_and_branches_left_for_archived_tasks(tmp_path):
    """The crash between archiving a task and removing its workspace: the next loop removes
    what ralphnb made for archived tasks, and nothing else (seen before: 2 of 5 crash rounds
    left a worktree and its branch forever)."""
    repo = make_repo(tmp_path, [{"title": t} for t in ("done", "rejected", "theirs", "draft")])
    workspaces = Workspaces(repo)
    for tid in ("RQ-0001", "RQ-0002", "RQ-0004"):
        workspaces.create(tid)
    git(repo, "branch", "ralph/RQ-0003")  # the user's own branch of that name: never ralphnb's
    q = Queue(repo)
    q.complete("RQ-0001", archive=True)  # merged and archived, then the crash
    q.reject("RQ-0002")
    q.complete("RQ-0003", archive=True)
    q.update("RQ-0004", status="draft")  # open: its workspace is not the recovery's to remove
    loop = Loop(repo, runner="demo")
    loop.run()
    [rec] = [e for e in loop.events if e.kind == "recovered"]
    assert sorted(rec.data["removed"]) == ["RQ-0001", "RQ-0002"]
    branches = git(repo, "branch", "--list", "--format=%(refname:short)", "ralph/*").split()
    assert branches == ["ralph/RQ-0003", "ralph/RQ-0004"]
    assert [w.task_id for w in workspaces.existing()] == ["RQ-0004"]
    worktrees = git(repo, "worktree", "list", "--porcelain").count("worktree ")
    assert worktrees == 2  # the checkout and RQ-0004's
    assert set(workspaces.created_branches()) == {"RQ-0004"}
