"""Review findings: each test fails without its fix (real git, real processes, real sockets)."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest
from conftest import demo, git, make_repo

from ralphnb.errors import QueueError
from ralphnb.integrate import integrate
from ralphnb.loop import Loop
from ralphnb.queue import Queue, init
from ralphnb.runs import ControlServer, send_control

pytestmark = pytest.mark.usefixtures("fast_demo")




def test_unknown_or_finished_task_id_is_an_error_not_an_empty_run(tmp_path):
    repo = make_repo(tmp_path, [demo("one"), demo("two")])
    q = Queue(repo)
    q.complete("RQ-0002")
    with pytest.raises(QueueError, match=r"queue\.jsonc: cannot run RQ-0099: no such task"):
        Loop(repo, tasks=["RQ-0001", "RQ-0099"])
    with pytest.raises(QueueError, match=r"RQ-0002: it is already done \(in done\.jsonc\)"):
        Loop(repo, tasks=["RQ-0002"])
    Loop(repo, tasks=["RQ-0001"])  # an open task is fine


def test_control_socket_refuses_another_user(monkeypatch):
    calls = []
    server = ControlServer(f"review-{os.getpid()}", lambda req: calls.append(req) or {"ok": 1})
    try:
        assert send_control(server.address, {"op": "status"}) == {"ok": 1}
        monkeypatch.setattr(os, "getuid", lambda: os.geteuid() + 4242)  # we are now "another"
        reply = send_control(server.address, {"op": "kill", "task_id": "RQ-0001"})
        assert "permission denied" in reply["error"]
        assert calls == [{"op": "status"}]
    finally:
        server.close()


def test_integration_ignores_git_dir_and_index_from_the_callers_env(tmp_path, monkeypatch):
    repo = make_repo(tmp_path, [])
    ws = tmp_path / "ws"
    git(repo, "worktree", "add", "-q", "-b", "ralph/RQ-0001", str(ws), "main")
    (ws / "agent.txt").write_text("agent\n")
    head = git(repo, "rev-parse", "HEAD")
    # e.g. a notebook started from a git hook or `git rebase --exec`: GIT_DIR is the user's repo
    monkeypatch.setenv("GIT_DIR", str(repo / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(repo / ".git" / "index"))
    res = integrate(repo, ws, branch="ralph/RQ-0001", target="main", task_id="RQ-0001",
                    title="Add agent file")  # fmt: skip
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_INDEX_FILE")
    assert res.status == "integrated", res.message
    log = git(repo, "log", "--format=%s", "main")
    assert log.splitlines()[:1] == ["RQ-0001: Add agent file"]
    assert git(repo, "show", "main:agent.txt") == "agent\n"
    assert git(repo, "rev-parse", "HEAD~1") == head  # one commit, on the task's branch
    assert git(repo, "status", "--porcelain") == ""  # the user's index was not staged into


@pytest.mark.slow
def test_queue_file_broken_mid_run_does_not_stop_running_workers(tmp_path):
    repo = make_repo(tmp_path, [demo("slow a", duration="60"), demo("slow b", duration="60")])
    started, broken = threading.Event(), threading.Event()
    seen: set[str] = set()

    def on_event(ev):
        if ev.kind == "started":
            seen.add(ev.task_id)
            if len(seen) == 2:
                started.set()
        elif ev.kind == "queue_error":
            broken.set()

    loop = Loop(repo, parallel=3, max_iterations=1)
    loop.subscribe(on_event)
    loop.start()
    qfile = repo / ".ralph" / "queue.jsonc"
    assert started.wait(30)
    good = qfile.read_bytes()
    qfile.write_text('{"version": 1, "tasks": [\n')  # the user's editor, mid-save
    loop.pause()
    loop.resume()  # wakes the scheduler, which re-reads the queue
    assert broken.wait(10), loop.halt_reason
    qfile.write_bytes(good)
    assert loop.wait(60)
    assert loop.halt_reason is None
    last = loop.df.drop_duplicates("task_id", keep="last")
    assert set(last.status) == {"integrated"}, last[["task_id", "status", "error"]]
    assert sorted(t.id for t in Queue(repo).done) == ["RQ-0001", "RQ-0002"]


def test_done_mark_and_promise_with_failing_check_do_not_carry_over(tmp_path):
    """Iteration 1 marks the task done AND prints the promise, but the check fails; iteration 2
    claims nothing. The stale mark must not complete the task (nor survive in the queue)."""
    from ralphnb.runners import Command

    repo = make_repo(tmp_path, [{"title": "both"}])
    script = ("import os, subprocess, sys\n"
              "if os.environ['RALPHNB_ITERATION'] == '1':\n"
              "    subprocess.run([sys.executable, '-m', 'ralphnb', 'task', 'done',"
              " os.environ['RALPHNB_TASK_ID']], check=True)\n"
              "    print('<promise>COMPLETE</promise>')\n")  # fmt: skip
    calls = []
    loop = Loop(repo, runner=Command(["{python}", "-c", script]), max_iterations=2,
                check=lambda ws: calls.append(ws) or len(calls) > 1)  # fmt: skip
    loop.run()
    last = loop.df.iloc[-1]
    assert last.status == "failed", loop.df[["worker_id", "status", "error"]]
    assert "neither marked the task done" in last.error
    assert Queue(repo).get("RQ-0001").status == "todo"
    assert len(calls) == 1


def test_stop_between_attempts_of_a_paused_loop_acts_now_and_closes_the_row(tmp_path):
    repo = make_repo(tmp_path, [demo("never", finish="none", duration="20")])
    started1, queued2, closed2 = threading.Event(), threading.Event(), threading.Event()

    def on_event(ev):
        if ev.kind == "started" and ev.worker_id == "RQ-0001#1":
            started1.set()
        elif ev.kind == "queued" and ev.worker_id == "RQ-0001#2":
            queued2.set()
        elif ev.kind == "status" and ev.worker_id == "RQ-0001#2":
            closed2.set()

    loop = Loop(repo, max_iterations=3)
    loop.subscribe(on_event)
    loop.start()
    assert started1.wait(30)
    loop.pause()  # attempt 1 runs on; attempt 2 waits for resume()
    assert queued2.wait(30)
    loop.stop("RQ-0001")
    # acted on at once, while still paused: back to todo with a note, row no longer "queued"
    assert closed2.wait(10), loop.snapshot()
    assert not loop.wait(0.2)  # still paused: a paused loop ends on resume() or stop_all()
    loop.resume()
    assert loop.wait(10)
    assert Queue(repo).get("RQ-0001").status == "todo"
    assert "stopped by the user" in Queue(repo).get("RQ-0001").notes[-1]
    rows = {r["worker_id"]: r["status"] for r in loop.snapshot()}
    assert rows == {"RQ-0001#1": "succeeded", "RQ-0001#2": "stopped"}


def test_a_start_that_fails_leaves_the_repo_unlocked(tmp_path):
    from ralphnb.runs import runs_root

    repo = make_repo(tmp_path, [demo("one")])
    runs = runs_root(repo)
    runs.parent.mkdir(parents=True, exist_ok=True)
    runs.write_text("not a directory")  # the run directory cannot be made
    failed = Loop(repo)  # still referenced, as a notebook variable would be
    with pytest.raises(OSError):
        failed.start()
    runs.unlink()
    loop = Loop(repo).start()  # same process: not "another loop is running"
    assert loop.wait(60)
    assert loop.df.status.iloc[-1] == "integrated"


def test_bookkeeping_commit_blocked_by_the_users_git_does_not_fail_a_merged_task(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "f.txt").write_text("one\n")
    init(repo).add("one", custom_fields={"demo.file": "one.txt", "demo.content": "x"})
    (repo / ".ralph" / "done.jsonc").unlink(missing_ok=True)  # ralph writes it lazily
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")  # the queue file is tracked
    git(repo, "commit", "-q", "-m", "init")
    git(repo, "branch", "integration")
    lock = repo / ".git" / "index.lock"
    lock.write_text("")  # the user's own `git commit` is in progress in the checkout
    try:
        loop = Loop(repo, target_branch="integration")
        loop.run()
    finally:
        lock.unlink()
    last = loop.df.iloc[-1]
    assert last.status == "integrated", (last.status, last.error)
    assert git(repo, "show", "integration:one.txt").strip() == "x"
    assert [t.id for t in Queue(repo).done] == ["RQ-0001"]
    assert not (tmp_path / ".workspaces" / "repo" / "RQ-0001").exists()


def test_stop_reaches_a_hanging_check(tmp_path):
    """A check that hangs (a stuck test suite) is killed by stop(): the loop does not wait on
    it forever, nothing of it is left running, and the task goes back to todo."""
    import psutil

    repo = make_repo(tmp_path, [demo("one")])
    marker = tmp_path / "check-pid"
    check = [sys.executable, "-c", "import os, sys, time\n"
             f"open({str(marker)!r}, 'w').write(str(os.getpid()))\ntime.sleep(120)"]  # fmt: skip
    loop = Loop(repo, check=check).start()
    for _ in range(600):  # the check writes its pid once it runs
        if marker.exists() and marker.read_text():
            break
        time.sleep(0.05)
    pid = int(marker.read_text())
    loop.stop("RQ-0001")
    assert loop.wait(10), loop.snapshot()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert Queue(repo).get("RQ-0001").status == "todo"
    assert "stopped by the user" in Queue(repo).get("RQ-0001").notes[-1]


def test_a_target_the_user_moved_meanwhile_is_reported_as_such_not_as_dirty_files(tmp_path):
    from ralphnb.integrate import merge_branch, move_branch

    repo = make_repo(tmp_path, [])
    c1 = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "branch", "ralph/RQ-0001")
    ws = tmp_path / "ws"
    git(repo, "worktree", "add", "-q", str(ws), "ralph/RQ-0001")
    (ws / "g.txt").write_text("agent\n")
    git(ws, "add", "g.txt")
    git(ws, "commit", "-qm", "agent")
    c3 = git(ws, "rev-parse", "HEAD").strip()
    (repo / "f.txt").write_text("user\n")
    git(repo, "commit", "-qam", "the user's commit, made while the merge was computed")
    user = git(repo, "rev-parse", "HEAD").strip()
    res = move_branch(repo, "main", c1, c3)
    assert res.status == "blocked" and "moved meanwhile" in res.message, res.message
    assert git(repo, "rev-parse", "HEAD").strip() == user
    res = merge_branch(repo, "ralph/RQ-0001", "main", message="Merge")  # the retry
    assert res.status == "integrated", res.message
    assert git(repo, "rev-parse", "main^1").strip() == user
    assert (repo / "g.txt").read_text() == "agent\n"


def test_a_task_finishing_while_the_queue_file_is_broken_waits_and_integrates(tmp_path):
    """The agent finishes while the user's queue file does not parse: the driver waits for the
    fix instead of failing the task and leaving it `doing`."""
    from ralphnb.runners import Command

    repo = make_repo(tmp_path, [{"title": "one"}])
    qfile = repo / ".ralph" / "queue.jsonc"
    script = ("import os\n"
              "open('agent.txt', 'w').write('done')\n"
              f"open({str(qfile)!r}, 'w').write('{{\"version\": 1, \"tasks\": [\\n')\n"
              "print('<promise>COMPLETE</promise>')\n")  # fmt: skip
    waiting = threading.Event()
    loop = Loop(repo, runner=Command(["{python}", "-c", script]), max_iterations=1)
    loop.subscribe(lambda ev: ev.kind == "status" and "waiting for the file" in
                   (ev.data.get("error") or "") and waiting.set())  # fmt: skip
    loop.start()
    good = None
    for _ in range(200):  # the queue file as the loop wrote it when the task started
        text = qfile.read_text()
        if '"doing"' in text:
            good = text
            break
        time.sleep(0.02)
    assert good is not None
    assert waiting.wait(30), loop.snapshot()
    qfile.write_text(good)  # the user fixes the file
    assert loop.wait(30)
    assert loop.df.status.iloc[-1] == "integrated", loop.df[["status", "error"]]
    assert [t.id for t in Queue(repo).done] == ["RQ-0001"]
    assert git(repo, "show", "main:agent.txt") == "done"


def test_queue_files_moved_by_config_are_the_ones_kept_out_of_merges_and_committed(tmp_path):
    import json

    repo = tmp_path / "repo"
    (repo / ".ralph").mkdir(parents=True)
    (repo / ".ralph" / "config.jsonc").write_text(json.dumps(
        {"version": 2, "queue": {"file": "work/q.jsonc", "done_file": "work/d.jsonc"}}))
    (repo / "f.txt").write_text("one\n")
    q = init(repo)
    for i in range(2):
        q.add(f"t{i}", custom_fields={"demo.file": f"t{i}.txt", "demo.content": "x"})
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")  # the (moved) queue files are tracked
    git(repo, "commit", "-q", "-m", "init")
    loop = Loop(repo, parallel=2)
    loop.run()
    assert set(loop.df.status) == {"integrated"}, loop.df[["task_id", "status", "error"]]
    assert git(repo, "status", "--porcelain", "--", "work") == ""  # bookkeeping committed
    assert sorted(t.id for t in Queue(repo).done) == ["RQ-0001", "RQ-0002"]
    assert Queue(repo).tasks == []


def test_a_task_the_user_rejects_mid_run_gets_no_further_attempt(tmp_path):
    from ralphnb.runners import Command

    repo = make_repo(tmp_path, [{"title": "one"}])
    script = ("import os, subprocess, sys\n"  # the user rejects the task while it runs
              "env = {k: v for k, v in os.environ.items() if k != 'RALPHNB_WORKER'}\n"
              "subprocess.run([sys.executable, '-m', 'ralphnb', 'task', 'reject',"
              " os.environ['RALPHNB_TASK_ID']], env=env, check=True)\n")  # fmt: skip
    loop = Loop(repo, runner=Command(["{python}", "-c", script]), max_iterations=3)
    df = loop.run()
    assert list(df.worker_id) == ["RQ-0001#1"], df[["worker_id", "status", "error"]]
    assert "now rejected" in df.error.iloc[0]
    assert Queue(repo).get("RQ-0001").status == "rejected"


def test_a_missing_agent_cli_counts_towards_consecutive_failures(tmp_path):
    from ralphnb.runners import get_runner

    repo = make_repo(tmp_path, [{"title": f"t{i}"} for i in range(4)])
    runner = get_runner("claude").with_options(executable=str(tmp_path / "no-such-claude"))
    loop = Loop(repo, runner=runner, parallel=1, max_consecutive_failures=2)
    df = loop.run()
    assert "2 consecutive failed attempts" in (loop.halt_reason or ""), df[["task_id", "error"]]
    assert list(df.task_id) == ["RQ-0001", "RQ-0002"]
    assert "no-such-claude' not found" in df.error.iloc[0]


def test_a_repo_without_commits_is_refused_up_front_and_the_queue_left_alone(tmp_path):
    from ralphnb.errors import RalphError

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    q = init(repo)
    q.add("one")
    before = (repo / ".ralph" / "queue.jsonc").read_bytes()
    with pytest.raises(RalphError, match=r"branch 'main' has no commit yet; commit something"):
        Loop(repo).run()
    assert (repo / ".ralph" / "queue.jsonc").read_bytes() == before


def test_target_being_rebased_in_the_checkout_is_not_moved_behind_its_back(tmp_path):
    import subprocess

    from ralphnb.integrate import move_branch

    repo = make_repo(tmp_path, [])
    git(repo, "checkout", "-q", "-b", "other")
    (repo / "f.txt").write_text("other\n")
    git(repo, "commit", "-qam", "other")
    git(repo, "checkout", "-q", "main")
    (repo / "f.txt").write_text("mine\n")
    git(repo, "commit", "-qam", "mine")
    old = git(repo, "rev-parse", "HEAD").strip()
    r = subprocess.run(["git", "rebase", "other"], cwd=repo, capture_output=True, text=True)
    assert r.returncode != 0  # stopped on the conflict: HEAD detached, main mid-rebase
    new = git(repo, "commit-tree", "-p", old, "-m", "agent", f"{old}^{{tree}}").strip()
    res = move_branch(repo, "main", old, new)
    assert res.status == "blocked" and "rebase of main is in progress" in res.message
    assert git(repo, "rev-parse", "refs/heads/main").strip() == old
