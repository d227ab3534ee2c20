"""The `.ralph/lock/` directory lock, shared with the ralph CLI.

Owns: taking the lock (atomic `mkdir`), the `owner` file, deciding whether a held lock is
stale, and waiting a bounded time for a live one.

The owner file is ralph's format, `key: value` lines with `pid`, `started_at` (when the lock was
taken, RFC 3339 UTC), `command` and `label`; ralphnb adds `process_start` (the owner process's
start time, seconds since the epoch) and `host`, keys ralph's parser ignores.

Invariants: a lock is stale only when its owner pid is dead, or alive but a different process
(its start time differs from the recorded one, or it started after the lock was taken); an owner
file that is missing is treated as stale only after a short grace period (a writer killed
between `mkdir` and writing `owner`). Within one process the lock is re-entrant per thread, and
threads of one process queue on an in-process lock before touching the directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from .._time import parse_time
from ..errors import LockError

OWNER_FILE = "owner"
MISSING_OWNER_GRACE = 1.0  # seconds a lock dir may exist without an owner file
START_TOLERANCE = 1.0  # seconds of slack when comparing process start times

_registry_guard = threading.Lock()
_thread_locks: dict[str, threading.RLock] = {}
_depth: dict[tuple[str, int], int] = {}


def parse_owner(text: str) -> dict[str, Any] | None:
    """Parse an owner file (ralph's `key: value` lines). None if it names no valid pid."""
    owner: dict[str, Any] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep:
            owner[key.strip()] = value.strip()
    try:
        owner["pid"] = int(owner["pid"])
    except (KeyError, ValueError):
        return None
    if "process_start" in owner:
        try:
            owner["process_start"] = float(owner["process_start"])
        except ValueError:
            del owner["process_start"]
    return owner


def render_owner(owner: dict[str, Any]) -> str:
    """The owner file text; ralph's four keys first, in ralph's order."""
    keys = ["pid", "started_at", "command", "label"]
    keys += [k for k in owner if k not in keys]
    return "".join(f"{k}: {owner.get(k, 'unknown')}\n" for k in keys)


def _parse_rfc3339(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value).timestamp()  # ralph writes up to 9 fractional digits
    except ValueError:
        return None


def is_stale(owner: dict[str, Any], now: float, proc_info: float | None) -> bool:
    """Decide whether a lock held by `owner` may be cleared.

    `proc_info` is the start time (epoch seconds) of the live process with the owner's pid, or
    None if no such process exists. `now` is the current epoch time.
    """
    if proc_info is None:
        return True  # owner pid is dead
    recorded = owner.get("process_start")
    if isinstance(recorded, int | float):
        return abs(proc_info - recorded) > START_TOLERANCE  # a reused pid
    # A ralph-written owner has no process start: a process that started after the lock was
    # taken cannot be the one that took it.
    taken = _parse_rfc3339(owner.get("started_at"))
    if taken is not None and taken <= now + START_TOLERANCE:
        return proc_info > taken + START_TOLERANCE
    return False


def process_start_time(pid: int) -> float | None:
    """Start time of a live process, or None if it does not exist (zombies count as dead)."""
    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return None
        return p.create_time()
    except (psutil.NoSuchProcess, ProcessLookupError):
        return None
    except psutil.AccessDenied:
        return time.time() - 10**6  # exists, start unknown: treat as the owner (not stale)


def describe_owner(owner: dict[str, Any] | None) -> str:
    if not owner:
        return "an unknown owner (no owner file)"
    return (
        f"pid {owner.get('pid')} ({owner.get('label', 'unknown')}: "
        f"{owner.get('command', 'unknown')}) since {owner.get('started_at', 'unknown')}"
    )


def _utc_now_text() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017


class DirLock:
    """`with DirLock(ralph_dir): ...` holds `.ralph/lock/` for one read-modify-write."""

    def __init__(
        self, ralph_dir: str | Path, *, label: str = "ralphnb", timeout: float = 10.0
    ) -> None:
        self.ralph_dir = Path(ralph_dir)
        self.path = self.ralph_dir / "lock"
        self.label = label
        self.timeout = timeout
        self._key = os.path.realpath(self.path)
        with _registry_guard:
            self._tlock = _thread_locks.setdefault(self._key, threading.RLock())

    # -- reading the current holder ---------------------------------------------------------
    def read_owner(self) -> dict[str, Any] | None:
        try:
            return parse_owner((self.path / OWNER_FILE).read_text(errors="replace"))
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _clear_if_stale(self) -> dict[str, Any] | None:
        """Remove the lock dir if stale; return the live owner (None if cleared / gone)."""
        try:
            judged = _identity(os.stat(self.path))  # the directory this decision is about
        except FileNotFoundError:
            return None
        owner = self.read_owner()
        if owner is None:
            try:
                age = time.time() - os.stat(self.path).st_mtime
            except FileNotFoundError:
                return None
            if age < MISSING_OWNER_GRACE:
                return {}
        elif not is_stale(owner, time.time(), process_start_time(owner["pid"])):
            return owner
        # Stale: move it aside first so two clearers never delete a fresh lock.
        aside = self.path.with_name(f"lock.stale-{os.getpid()}-{time.monotonic_ns()}")
        try:
            os.rename(self.path, aside)
        except OSError:
            return None
        # The renamed dir could be a brand-new lock taken after our check (cleared by someone
        # else, then re-taken): put it back unless it is the very directory judged stale. Its
        # owner file may not even be written yet, so compare the directories, not the owners.
        try:
            same_dir = _identity(os.stat(aside)) == judged
        except OSError:
            same_dir = False
        moved = parse_owner(_read(aside / OWNER_FILE))
        if not same_dir or (
            moved is not None
            and moved != owner
            and not is_stale(moved, time.time(), process_start_time(moved["pid"]))
        ):
            with contextlib.suppress(OSError):
                os.rename(aside, self.path)  # put a live lock back
            return moved or {}
        shutil.rmtree(aside, ignore_errors=True)
        return None

    # -- acquire / release --------------------------------------------------------------------
    def acquire(self) -> DirLock:
        ident = (self._key, threading.get_ident())
        if not self._tlock.acquire(timeout=max(self.timeout, 0.001)):
            raise LockError(
                f"{self.path}: held by another thread of this process for {self.timeout:.0f}s",
                path=self.path,
                owner=self.read_owner(),
            )
        depth = _depth.get(ident, 0)
        if depth:
            _depth[ident] = depth + 1
            return self
        try:
            self._take_dir()
        except BaseException:
            self._tlock.release()
            raise
        _depth[ident] = 1
        return self

    def _take_dir(self) -> None:
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        text = self._owner_text().encode()  # ready before mkdir: keep the owner-less window tiny
        self.ralph_dir.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                os.mkdir(self.path)
            except FileExistsError:
                owner = self._clear_if_stale()
                if owner is None:
                    continue  # cleared: try again at once
                if time.monotonic() >= deadline:
                    raise LockError(
                        f"{self.path} is held by {describe_owner(owner)}; waited "
                        f"{self.timeout:g}s. If that process is gone, remove the directory.",
                        path=self.path,
                        owner=owner or None,
                    ) from None
                time.sleep(delay)
                delay = min(delay * 1.5, 0.05)
                continue
            try:
                self._write_owner(text)
            except BaseException:
                shutil.rmtree(self.path, ignore_errors=True)
                raise
            return

    def _owner_text(self) -> str:
        me = psutil.Process()
        owner = {
            "pid": os.getpid(),
            "started_at": _utc_now_text(),
            "command": " ".join(" ".join(sys.argv).split()) or "python",  # one line
            "label": " ".join(self.label.split()) or "unspecified",
            "process_start": f"{me.create_time():.3f}",
            "host": socket.gethostname(),
        }
        return render_owner(owner)

    def _write_owner(self, text: bytes) -> None:
        fd = os.open(self.path / OWNER_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, text)
            os.fsync(fd)
        finally:
            os.close(fd)

    def release(self) -> None:
        ident = (self._key, threading.get_ident())
        depth = _depth.get(ident, 0)
        if depth <= 0:
            return
        if depth == 1:
            del _depth[ident]
            owner = self.read_owner()
            # Only our own lock: if ours was removed by hand and another process has just
            # taken the lock (owner file not written yet), that one is not ours to delete.
            if owner is not None and owner.get("pid") == os.getpid():
                shutil.rmtree(self.path, ignore_errors=True)
        else:
            _depth[ident] = depth - 1
        self._tlock.release()

    @property
    def held(self) -> bool:
        return _depth.get((self._key, threading.get_ident()), 0) > 0

    def __enter__(self) -> DirLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    """Which directory this is: inode numbers get reused, so its modification time comes too
    (a rename within the parent leaves it alone; creating the owner file inside changes it)."""
    return st.st_dev, st.st_ino, st.st_mtime_ns


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
