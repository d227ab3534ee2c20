"""One task's life in the loop: queue files that break or move mid-run, done marks that must not
carry over, a user who rejects a task, a missing agent CLI (real git and processes)."""

from __future__ import annotations

import threading
import time

import pytest

from ralphnb.loop.core import Loop
from ralphnb.queue.store import Queue, init
from tests.conftest import demo, git, make_repo

pytestmark = pytest.mark.usefixtures("fast_demo")


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
    script = (
        "import os, subprocess, sys\n"
        "if os.environ['RALPHNB_ITERATION'] == '1':\n"
        "    subprocess.run([sys.executable, '-m', 'ralphnb', 'task', 'done',"
        " os.environ['RALPHNB_TASK_ID']], check=True)\n"
        "    print('<promise>COMPLETE</promise>')\n"
    )
    calls = []
    loop = Loop(
        repo,
        runner=Command(["{python}", "-c", script]),
        max_iterations=2,
        check=lambda ws: calls.append(ws) or len(calls) > 1,
    )
    loop.run()
    last = loop.df.iloc[-1]
    assert last.status == "failed", loop.df[["worker_id", "status", "error"]]
    assert "neither marked the task done" in last.error
    assert Queue(repo).get("RQ-0001").status == "todo"
    assert len(calls) == 1


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


def test_a_task_finishing_while_the_queue_file_is_broken_waits_and_integrates(tmp_path):
    """The agent finishes while the user's queue file does not parse: the driver waits for the
    fix instead of failing the task and leaving it `doing`."""
    from ralphnb.runners import Command

    repo = make_repo(tmp_path, [{"title": "one"}])
    qfile = repo / ".ralph" / "queue.jsonc"
    script = (
        "import os\n"
        "open('agent.txt', 'w').write('done')\n"
        f"open({str(qfile)!r}, 'w').write('{{\"version\": 1, \"tasks\": [\\n')\n"
        "print('<promise>COMPLETE</promise>')\n"
    )
    waiting = threading.Event()
    loop = Loop(repo, runner=Command(["{python}", "-c", script]), max_iterations=1)
    loop.subscribe(
        lambda ev: (
            ev.kind == "status"
            and "waiting for the file" in (ev.data.get("error") or "")
            and waiting.set()
        )
    )
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
    (repo / ".ralph" / "config.jsonc").write_text(
        json.dumps({"version": 2, "queue": {"file": "work/q.jsonc", "done_file": "work/d.jsonc"}})
    )
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
    script = (
        "import os, subprocess, sys\n"  # the user rejects the task while it runs
        "env = {k: v for k, v in os.environ.items() if k != 'RALPHNB_WORKER'}\n"
        "subprocess.run([sys.executable, '-m', 'ralphnb', 'task', 'reject',"
        " os.environ['RALPHNB_TASK_ID']], env=env, check=True)\n"
    )
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
