"""Detached loops: a loop in its own background process, reached by any number of attached
clients (real processes, real sockets, real git; the demo agent as the worker)."""

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

import ralphnb.loop.attached as attached_mod
from ralphnb.errors import RalphError
from ralphnb.loop.attached import AttachedLoop, attach
from ralphnb.loop.core import Loop
from ralphnb.loop.launch import DetachedLoop
from ralphnb.loop.runs import Run
from ralphnb.queue.jsonio import read_jsonc
from ralphnb.queue.store import Queue
from tests.conftest import demo, git, make_repo

pytestmark = pytest.mark.usefixtures("fast_demo")

HANG = {"hang": "1", "duration": "2000"}


def hanging(n: int, *, then: int = 0) -> list[dict]:
    """`n` tasks whose agent works until stopped, then `then` that finish quickly."""
    return [demo(f"hang {i}", **HANG) for i in range(n)] + [demo(f"quick {i}") for i in range(then)]


def wait_for(pred, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def running_pids(loop) -> dict[str, int]:
    recs = loop.snapshot(sample=False)
    live = {r["task_id"]: r["pid"] for r in recs if r["status"] == "running" and r["pid"]}
    return live


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@pytest.fixture
def cleanup():
    """Loops a test started: stopped (their process killed at worst) whatever the outcome."""
    loops: list[AttachedLoop] = []
    yield loops.append
    for loop in loops:
        if loop.run_dir is not None and not loop.finished:
            try:
                loop.stop_all(wait=True)
                loop.wait(30)
            except Exception:
                pass
            if loop.pid and alive(loop.pid):
                os.kill(loop.pid, signal.SIGKILL)
        loop.detach()


def test_a_detached_loop_runs_in_its_own_session_and_works_the_queue(tmp_path, cleanup):
    repo = make_repo(tmp_path, [demo("one"), demo("two")])
    loop = Loop(repo, runner="demo", parallel=2, detach=True)
    assert isinstance(loop, DetachedLoop)
    cleanup(loop)
    assert loop.start() is loop
    assert loop.pid != os.getpid()
    assert os.getsid(loop.pid) == loop.pid != os.getsid(0)  # its own session, not ours
    assert loop.wait(90)
    df = loop.df
    assert sorted(df.task_id) == ["RQ-0001", "RQ-0002"]
    assert set(df.status) == {"integrated"}
    done = read_jsonc(repo / ".ralph" / "done.jsonc")["tasks"]
    assert sorted(t["id"] for t in done) == ["RQ-0001", "RQ-0002"]
    assert (repo / "one.txt").read_text() == "one\n"
    assert Run.load(loop.run_dir).df.equals(df)  # the journal rebuilds the same table
    wait_for(lambda: not alive(loop.pid), 10, "the detached process to exit")


def test_attached_clients_see_the_same_workers_and_stop_and_kill_them(tmp_path, cleanup):
    repo = make_repo(tmp_path, hanging(2, then=1))
    first = Loop(repo, runner="demo", parallel=2, grace=0.5, detach=True).start()
    cleanup(first)
    pids = wait_for(lambda: len(p := running_pids(first)) == 2 and p, what="two workers")
    second = attach(repo)  # a second client, as another notebook would be
    assert isinstance(second, AttachedLoop) and second.run_dir == first.run_dir
    assert running_pids(second) == pids
    assert attach(first.run_dir).run_id == first.run_id  # by run directory too
    wait_for(lambda: second.logs("RQ-0001"), 30, "a log line")  # the log tail, over the socket
    with pytest.raises(RalphError, match="no attempt of RQ-0042"):
        second.logs("RQ-0042")
    second.pause()
    assert first.paused and second.paused
    first.resume()
    assert not second.paused
    assert second.halt_reason is None and second.error is None and second.running
    second.stop("RQ-0001")
    first.kill("RQ-0002")
    by_task = {r["task_id"]: r["status"] for r in second.snapshot()}
    assert by_task["RQ-0001"] == "stopped" and by_task["RQ-0002"] == "killed"
    assert not any(alive(p) for p in pids.values())
    assert second.wait(60) and first.wait(10)  # the quick task, then nothing runnable left
    final = first.df.drop_duplicates("task_id", keep="last").set_index("task_id").status
    assert dict(final) == {"RQ-0001": "stopped", "RQ-0002": "killed", "RQ-0003": "integrated"}
    assert {t.id: t.status for t in Queue(repo).tasks} == {"RQ-0001": "todo", "RQ-0002": "todo"}
    with pytest.raises(RalphError, match="finished"):
        second.kill("RQ-0001")


def test_events_reach_attached_clients_live_and_resume_after_a_reconnect(
    tmp_path, cleanup, monkeypatch
):
    real_stream = attached_mod.open_stream
    broken: list[int] = []

    def flaky_stream(address, request, **kw):
        """The first connection breaks after five messages, as a network blip would."""
        for n, msg in enumerate(real_stream(address, request, **kw)):
            if not broken and n == 5:
                broken.append(int(request.get("since") or 0))
                raise OSError("connection reset (test)")
            yield msg

    monkeypatch.setattr(attached_mod, "open_stream", flaky_stream)
    repo = make_repo(tmp_path, [demo("one"), demo("two")])
    loop = DetachedLoop(repo, runner="demo", parallel=1)
    cleanup(loop)
    seen: list[tuple[str, str | None]] = []
    loop.start()
    loop.subscribe(lambda ev: seen.append((ev.kind, ev.worker_id)))
    assert loop.wait(90)
    assert broken, "the stream never broke: the test proved nothing"
    journal = [(ev.kind, ev.worker_id) for ev in loop.events]
    # from the first event after subscribing, every event once, in the journal's order
    assert seen == journal[len(journal) - len(seen) :]
    assert seen[-1][0] == "loop_finished" and loop.gaps == []
    assert loop.seq == len(journal)  # numbered from the run's first event


def test_a_killed_client_changes_nothing_in_the_loop(tmp_path, cleanup):
    repo = make_repo(tmp_path, hanging(1))
    code = (
        "import json, sys\nfrom ralphnb.loop.core import Loop\n"
        f"loop = Loop({str(repo)!r}, runner='demo', parallel=1, detach=True).start()\n"
        "loop.subscribe(lambda ev: None)\n"
        "print(json.dumps({'run_dir': str(loop.run_dir)}), flush=True)\n"
        "import time; time.sleep(600)\n"
    )
    client = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        run_dir = Path(json.loads(client.stdout.readline())["run_dir"])
        loop = AttachedLoop(run_dir)
        cleanup(loop)
        pids = wait_for(lambda: running_pids(loop), what="a worker")
        client.kill()  # the "kernel" that started it dies the hard way
        client.wait(10)
        time.sleep(1.0)
        assert not loop.finished and alive(loop.pid)
        assert running_pids(attach(repo)) == pids and all(alive(p) for p in pids.values())
    finally:
        client.kill()
        client.wait()


def test_the_detached_process_dying_takes_its_workers_with_it(tmp_path, cleanup):
    repo = make_repo(tmp_path, hanging(2))
    loop = Loop(repo, runner="demo", parallel=2, grace=0.5, detach=True).start()
    cleanup(loop)
    pids = wait_for(lambda: len(p := running_pids(loop)) == 2 and p, what="two workers")
    seen = []
    loop.subscribe(seen.append)
    os.kill(loop.pid, signal.SIGKILL)
    assert loop.wait(10) and loop.finished
    wait_for(lambda: not any(alive(p) for p in pids.values()), 5, "the workers to stop")
    wait_for(lambda: seen and seen[-1].kind == "loop_finished", 5, "the client to be told")
    assert len(loop.df) == 2  # the table, from the journal, once the process is gone


def test_sigterm_stops_a_detached_loop_cleanly(tmp_path, cleanup):
    repo = make_repo(tmp_path, hanging(1))
    loop = Loop(repo, runner="demo", parallel=1, grace=0.5, detach=True).start()
    cleanup(loop)
    (pid,) = wait_for(lambda: running_pids(loop), what="a worker").values()
    os.kill(loop.pid, signal.SIGTERM)
    assert loop.wait(30)
    assert list(loop.df.status) == ["stopped"] and not alive(pid)
    assert [t.status for t in Queue(repo).tasks] == ["todo"]


def test_a_loop_that_cannot_start_raises_in_the_caller(tmp_path):
    repo = make_repo(tmp_path, [demo("one")])
    with pytest.raises(RalphError, match="runner") as err:
        Loop(repo, detach=True).start()  # no runner named anywhere: the loop's own error
    assert "did not start" not in str(err.value)
    with pytest.raises(RalphError, match="picklable"):
        Loop(repo, runner="demo", check=lambda ws: True, detach=True).start()
    assert "running" not in git(repo, "status", "--short")


def test_attach_says_when_no_loop_is_running(tmp_path):
    repo = make_repo(tmp_path, [demo("one")])
    with pytest.raises(RalphError, match="no loop is running"):
        attach(repo)


def test_review_actions_reach_a_detached_loop(tmp_path, cleanup):
    """A detached loop with review=True: an attached client lists the waiting work, reads its
    diff (computed in the client from the workspace the loop names), and accepts it."""
    repo = make_repo(tmp_path, [demo("alpha")])
    loop = Loop(repo, runner="demo", review=True, detach=True).start()
    cleanup(loop)
    other = attach(repo)  # a second client, as another notebook would be
    wait_for(lambda: len(other.reviews()) == 1, what="the task to wait for review")
    assert list(other.reviews().task_id) == ["RQ-0001"]
    diff = other.diff("RQ-0001")
    assert list(diff.stat.path) == ["alpha.txt"] and int(diff.stat.added.sum()) >= 1
    assert "alpha.txt" not in git(repo, "ls-tree", "--name-only", "main")  # nothing merged yet
    with pytest.raises(RalphError, match="does not wait for review"):
        other.diff("RQ-0009")
    loop.accept("RQ-0001")
    assert loop.wait(60)
    assert (repo / "alpha.txt").read_text().strip() == "alpha"
    assert Queue(repo).done[-1].id == "RQ-0001"
