"""One task's life: the `Driver` on its own, built from a small context (a real repo, queue,
workspaces and processes), and through a `Loop`: queue files that break or move mid-run, done
marks that must not carry over, a user who rejects a task, a missing agent CLI."""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import ralphnb.loop.driver as driver_module
from ralphnb.loop.context import DriverContext, DriverSettings, RunFlags
from ralphnb.loop.core import Loop
from ralphnb.loop.driver import Driver
from ralphnb.loop.events import Event
from ralphnb.loop.table import WorkerTable
from ralphnb.queue.store import Queue, init
from ralphnb.runners import Command
from ralphnb.workers.executors import Callbacks, LocalExecutor, LocalHandle, WorkerSpec
from ralphnb.workers.exits import ExitInfo
from ralphnb.workspace.workspaces import COPY_EXCLUDE, Workspaces
from tests.conftest import demo, git, make_repo

pytestmark = pytest.mark.usefixtures("fast_demo")

PROMISE = "<promise>COMPLETE</promise>"


class MarkedHandle:
    """A local worker whose exit carries the queue marks a remote executor would report."""

    def __init__(self, inner: LocalHandle, marks: dict[str, Any] | None) -> None:
        self.inner, self.marks = inner, marks

    @property
    def pid(self) -> int | None:
        return self.inner.pid

    def stop(self, grace: float = 1.5, timeout: float = 10.0) -> ExitInfo:
        return self.inner.stop(grace, timeout)

    def kill(self, timeout: float = 10.0) -> ExitInfo:
        return self.inner.kill(timeout)

    def wait(self, timeout: float | None = None) -> ExitInfo | None:
        info = self.inner.wait(timeout)
        return info if info is None else dataclasses.replace(info, queue_marks=self.marks)

    def tail(self, n: int = 50) -> list[str]:
        return self.inner.tail(n)

    def resources(self) -> dict[str, Any]:
        return self.inner.resources()


class RecordingExecutor:
    """Real local processes; keeps every spec and reports `marks` with each exit."""

    def __init__(self, marks: dict[str, Any] | None = None) -> None:
        self.local, self.marks = LocalExecutor(), marks
        self.specs: list[WorkerSpec] = []

    def spawn(self, spec: WorkerSpec, callbacks: Callbacks) -> MarkedHandle:
        self.specs.append(spec)
        return MarkedHandle(self.local.spawn(spec, callbacks), self.marks)

    def close(self) -> None:
        self.local.close()


def new_driver(
    repo: Path, executor: RecordingExecutor, script: str, *, max_iterations: int = 1
) -> tuple[Driver, list[Event]]:
    """A driver of RQ-0001 with a context of real parts and no Loop around it."""
    queue = Queue(repo)
    table, events = WorkerTable(), []

    def emit(ev: Event) -> None:
        table.apply(ev)
        events.append(ev)

    run_dir = repo / ".ralph" / "cache" / "ralphnb" / "runs" / "test-run"
    (run_dir / "workers").mkdir(parents=True)
    workspaces = Workspaces(repo, copy_exclude=(*COPY_EXCLUDE, ".ralph"))
    settings = DriverSettings(
        repo=queue.repo,
        run_id="test-run",
        run_dir=run_dir,
        runner=Command([sys.executable, "-c", script]),
        max_iterations=max_iterations,
        check=None,
        completion_promise=PROMISE,
        prompt_template=None,
        grace=0.5,
        max_log_bytes=None,
        target_branch=workspaces.target_branch,
        queue_files=(".ralph/queue.jsonc", ".ralph/done.jsonc"),
    )
    ctx = DriverContext(
        settings=settings,
        flags=RunFlags(),
        emit=emit,
        queue=queue,
        workspaces=workspaces,
        executor=executor,
        merge_lock=threading.Lock(),
        attempt_ended=lambda failed: None,
        fail=lambda error: events.append(Event("halted", data={"reason": error})),
        row=table.get,
    )
    return Driver(ctx, queue.get("RQ-0001").to_dict()), events


def test_driver_applies_a_remote_agents_queue_marks_before_judging_the_attempt(tmp_path):
    """The agent claims nothing locally; its stub queue said done. Judged before the marks were
    applied, the attempt would fail (neither marked nor promised)."""
    repo = make_repo(tmp_path, [{"title": "one"}])
    marks = {"status": "done", "notes": ["done remotely"], "added": [{"title": "follow-up"}]}
    executor = RecordingExecutor(marks)
    driver, events = new_driver(repo, executor, "open('agent.txt', 'w').write('x')")
    driver.run()
    end = next(e for e in events if e.kind == "iteration_end")
    assert end.data["marked_done"] is True and end.data["decision"] == "complete"
    assert events[-1].kind == "integrated", [(e.kind, e.data) for e in events]
    q = Queue(repo)
    assert [(t.id, t.notes) for t in q.done] == [("RQ-0001", ["done remotely"])]
    assert [t.title for t in q.tasks] == ["follow-up"]
    assert git(repo, "show", "main:agent.txt") == "x"


def test_driver_integrates_a_complete_task_through_integrate_workspace_once(tmp_path, monkeypatch):
    repo = make_repo(tmp_path, [{"title": "one"}])
    calls = []
    real = driver_module.integrate_workspace

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["task_id"])
        return real(*args, **kwargs)

    monkeypatch.setattr(driver_module, "integrate_workspace", counting)
    script = f"open('agent.txt', 'w').write('y'); print({PROMISE!r})"
    driver, events = new_driver(repo, RecordingExecutor(), script)
    driver.run()
    assert calls == ["RQ-0001"]
    assert [e.kind for e in events if e.kind in ("integrating", "integrated")] == [
        "integrating",
        "integrated",
    ]
    assert git(repo, "show", "main:agent.txt") == "y"


def test_driver_gives_each_spec_the_task_as_the_queue_holds_it_at_spawn(tmp_path):
    repo = make_repo(tmp_path, [{"title": "one", "notes": ["from the user"]}])
    executor = RecordingExecutor()
    driver, _ = new_driver(repo, executor, "pass", max_iterations=2)
    driver.run()
    assert [s.worker_id for s in executor.specs] == ["RQ-0001#1", "RQ-0001#2"]
    for spec in executor.specs:
        assert spec.task is not None
        assert (spec.task["id"], spec.task["status"]) == ("RQ-0001", "doing")
        assert spec.task["notes"] == ["from the user"]


def test_driver_stopped_before_its_first_attempt_spawns_nothing_and_puts_the_task_back(tmp_path):
    repo = make_repo(tmp_path, [{"title": "one"}])
    executor = RecordingExecutor()
    driver, events = new_driver(repo, executor, "pass")
    driver.request("stop", wait=True)  # no worker yet: seen before the first spawn
    driver.run()
    assert executor.specs == []
    t = Queue(repo).get("RQ-0001")
    assert t.status == "todo" and t.notes[-1] == "ralphnb run test-run: stopped by the user"
    assert driver.flags.excluded == {"RQ-0001"}
    assert events[-1].data == {"status": "stopped", "error": "stopped by the user"}


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

    loop = Loop(repo, runner="demo", parallel=3, max_iterations=1)
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
        loop = Loop(repo, runner="demo", target_branch="integration")
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
    loop = Loop(repo, runner="demo", parallel=2)
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


DROPPER = """
import os
os.makedirs(".ralph", exist_ok=True)
with open(".ralph/config.jsonc", "w") as fh:
    fh.write('{"queue": {"file": ".ralph/evil_queue.jsonc"}}\\n')
with open("work.txt", "w") as fh:
    fh.write("kept\\n")
print("<promise>COMPLETE</promise>")
"""


def test_the_row_notes_the_paths_dropped_from_the_merge(tmp_path):
    repo = make_repo(tmp_path, [{"title": "edit the config"}], track_queue=True)
    df = Loop(repo, runner=Command([sys.executable, "-c", DROPPER]), max_iterations=1).run()
    row = df.iloc[-1]
    assert row.status == "integrated", row.error
    assert "dropped from the merge: .ralph/config.jsonc" in row.last_message, row.last_message
    assert git(repo, "show", "main:work.txt") == "kept\n"
    assert not (repo / ".ralph" / "config.jsonc").exists()
