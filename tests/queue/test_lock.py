"""The `.ralph/lock/` directory lock: ralph's owner format, staleness, waiting, re-entrancy."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime
from pathlib import Path

import psutil
import pytest

from ralphnb.errors import LockError
from ralphnb.queue.lock import DirLock, is_stale, parse_owner, render_owner

RALPH_OWNER = (
    "pid: 4242\nstarted_at: 2026-04-23T04:55:12Z\ncommand: ralph run loop\nlabel: run loop\n"
)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_reads_ralph_owner_and_writes_a_superset_ralph_parses(tmp_path: Path):
    owner = parse_owner(RALPH_OWNER)
    assert owner == {
        "pid": 4242,
        "started_at": "2026-04-23T04:55:12Z",
        "command": "ralph run loop",
        "label": "run loop",
    }
    with DirLock(tmp_path / ".ralph", label="ralphnb test") as lock:
        text = (lock.path / "owner").read_text()
    lines = text.splitlines()
    # ralph's keys first, one `key: value` per line; extra keys are ignored by ralph's parser.
    assert [ln.split(":", 1)[0] for ln in lines[:4]] == ["pid", "started_at", "command", "label"]
    mine = parse_owner(text)
    assert mine["label"] == "ralphnb test" and isinstance(mine["process_start"], float)
    assert mine["started_at"].endswith("Z")
    assert parse_owner(render_owner(mine)) == mine


def test_is_stale_decisions():
    now = 1_800_000_000.0
    mine = {"pid": 1, "started_at": "2027-01-15T08:00:00Z", "process_start": now - 100}
    assert is_stale(mine, now, None)  # owner pid dead
    assert not is_stale(mine, now, now - 100)  # same process
    assert is_stale(mine, now, now - 5)  # pid reused by a younger process
    ralph = {"pid": 1, "started_at": "2027-01-15T08:00:00Z"}
    t = datetime.fromisoformat("2027-01-15T08:00:00+00:00").timestamp()
    assert not is_stale(ralph, t + 60, t - 30)  # started before taking the lock: the owner
    assert is_stale(ralph, t + 60, t + 30)  # started after the lock was taken: reused pid
    assert not is_stale({"pid": 1, "started_at": "unknown"}, now, now - 5)  # cannot tell
    nano = {"pid": 1, "started_at": "2027-01-15T08:00:00.123456789Z"}  # ralph's precision
    assert is_stale(nano, t + 60, t + 30) and not is_stale(nano, t + 60, t - 30)


def test_lock_of_dead_owner_is_cleared(tmp_path: Path):
    lockdir = tmp_path / ".ralph" / "lock"
    lockdir.mkdir(parents=True)
    (lockdir / "owner").write_text(RALPH_OWNER.replace("4242", str(_dead_pid())))
    with DirLock(tmp_path / ".ralph", timeout=1) as lock:
        assert parse_owner((lock.path / "owner").read_text())["label"] == "ralphnb"
    assert not lockdir.exists()


def test_lock_of_reused_pid_is_cleared(tmp_path: Path):
    """The owner file names a live pid, but that process started after the lock was taken."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lockdir = tmp_path / ".ralph" / "lock"
        lockdir.mkdir(parents=True)
        start = psutil.Process(sleeper.pid).create_time()
        # Recorded start differs from the live process's: a different process with that pid.
        (lockdir / "owner").write_text(
            f"pid: {sleeper.pid}\nstarted_at: 2020-01-01T00:00:00Z\ncommand: x\nlabel: ralphnb\n"
            f"process_start: {start - 3600:.3f}\n"
        )
        t0 = time.monotonic()
        with DirLock(tmp_path / ".ralph", timeout=5):
            pass
        assert time.monotonic() - t0 < 2
        # ralph's own format (no process_start): taken in 2020, the live process is younger.
        lockdir.mkdir()
        (lockdir / "owner").write_text(
            f"pid: {sleeper.pid}\nstarted_at: 2020-01-01T00:00:00Z\ncommand: r\nlabel: run\n"
        )
        with DirLock(tmp_path / ".ralph", timeout=5):
            pass
    finally:
        sleeper.kill()
        sleeper.wait()


def test_live_lock_is_waited_on_then_error_names_owner(tmp_path: Path):
    code = textwrap.dedent(
        f"""
        import sys, time
        from ralphnb.queue.lock import DirLock
        with DirLock({str(tmp_path / ".ralph")!r}, label="holder test"):
            print("held", flush=True)
            time.sleep(float(sys.argv[1]))
        """
    )
    holder = subprocess.Popen([sys.executable, "-c", code, "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        with pytest.raises(LockError) as e:
            DirLock(tmp_path / ".ralph", timeout=0.5).acquire()
        waited = time.monotonic() - t0
        assert 0.5 <= waited < 3
        msg = str(e.value)
        assert f"pid {holder.pid}" in msg and "holder test" in msg and "since 20" in msg
        assert e.value.owner["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()
    # The holder died holding it: now it is stale and taken at once.
    with DirLock(tmp_path / ".ralph", timeout=1):
        pass


def test_lock_released_by_short_holder_is_taken_after_waiting(tmp_path: Path):
    code = (
        "import time\nfrom ralphnb.queue.lock import DirLock\n"
        f"with DirLock({str(tmp_path / '.ralph')!r}):\n"
        "    print('held', flush=True); time.sleep(0.7)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    t0 = time.monotonic()
    with DirLock(tmp_path / ".ralph", timeout=10):
        assert time.monotonic() - t0 > 0.2
    holder.wait(10)


def test_reentrant_within_thread_exclusive_across_threads(tmp_path: Path):
    lock = DirLock(tmp_path / ".ralph", timeout=0.3)
    with lock, DirLock(tmp_path / ".ralph"):
        assert lock.path.is_dir()
        errors: list[BaseException] = []

        def other() -> None:
            try:
                DirLock(tmp_path / ".ralph", timeout=0.2).acquire()
            except LockError as e:
                errors.append(e)

        th = threading.Thread(target=other)
        th.start()
        th.join()
        assert len(errors) == 1
        assert lock.path.is_dir()  # inner exit did not release
    assert not lock.path.exists()


def test_lock_dir_without_owner_is_cleared_after_grace(tmp_path: Path):
    lockdir = tmp_path / ".ralph" / "lock"
    lockdir.mkdir(parents=True)  # a writer killed between mkdir and writing `owner`
    t0 = time.monotonic()
    with DirLock(tmp_path / ".ralph", timeout=5):
        pass
    assert 0.5 < time.monotonic() - t0 < 4


def test_clearing_a_stale_lock_never_removes_a_fresh_one_taken_meanwhile(
    tmp_path: Path, monkeypatch
):
    """Between judging a lock stale and moving it aside, another process may clear it and take
    the lock anew (mkdir done, owner file not yet written). That fresh lock must be put back."""
    import shutil

    from ralphnb.queue import lock as lockmod

    lockdir = tmp_path / ".ralph" / "lock"
    lockdir.mkdir(parents=True)
    (lockdir / "owner").write_text(RALPH_OWNER.replace("4242", str(_dead_pid())))
    os.utime(lockdir, (time.time() - 60, time.time() - 60))  # a stale lock is an old one
    real = lockmod.process_start_time

    def other_process_clears_and_retakes(pid: int) -> float | None:
        shutil.rmtree(lockdir)
        lockdir.mkdir()  # its owner file comes a moment later
        monkeypatch.setattr(lockmod, "process_start_time", real)
        return None  # the owner we judged is dead

    monkeypatch.setattr(lockmod, "process_start_time", other_process_clears_and_retakes)
    lock = DirLock(tmp_path / ".ralph", timeout=1)
    assert lock._clear_if_stale() is not None  # held: do not take it
    assert lockdir.is_dir()  # the fresh lock is back in place
    assert not list(lockdir.parent.glob("lock.stale-*"))


def test_release_leaves_a_lock_that_another_process_took_after_ours_was_removed(tmp_path: Path):
    import shutil

    lock = DirLock(tmp_path / ".ralph", timeout=5)
    with lock:
        shutil.rmtree(lock.path)  # removed by hand ("if that process is gone, remove it")
        lock.path.mkdir()  # another process's fresh lock, owner file not written yet
    assert lock.path.is_dir()
    with lock:  # that one is cleared after its grace period; ours is released normally
        assert lock.path.is_dir()
    assert not lock.path.exists()
