"""The resources of one started run, owned by one object: `LiveRun`.

Owns: the repository's loop lock (`.ralph/cache/ralphnb/loop.lock`, an flock held for the run:
one loop per repository), the run directory (see `runs` for its layout), its event journal, the
control socket other processes use, and `loop.json`, which says who runs it and how to reach it.
Invariants: `LiveRun.open` either returns with every resource taken or releases all it took and
raises (a failed start never leaves the repository locked, nor its empty run directory, and says
which file could not be written); `loop.json` is written atomically, no temp file of it is ever
left, and one that cannot be marked finished is removed (it would say "running"); `close` never
raises and always releases the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from .._time import format_time, utcnow
from ..errors import RalphError
from ..queue.jsonio import atomic_write_bytes
from .control import ControlServer
from .events import Journal
from .failures import describe, with_file
from .runs import LOOP_INFO, new_run_id, pid_create_time, runs_root


def take_repo_lock(repo: Path) -> IO[str]:
    """The repository's loop lock, held while the returned file is open."""
    path = runs_root(repo).parent / "loop.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")  # noqa: SIM115 - held for the loop's lifetime
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        owner = fh.read().strip()
        fh.close()
        raise RalphError(
            f"another loop is running on {repo} ({owner or 'unknown'}); "
            "stop it first (`ralphnb status`, `ralphnb stop`)"
        ) from None
    try:  # unbuffered: a failed write leaves nothing for a later close to flush again
        os.ftruncate(fh.fileno(), 0)
        os.write(fh.fileno(), f"pid {os.getpid()}\n".encode())
    except OSError as exc:  # e.g. a full disk: let go of the lock, say which file
        fh.close()
        raise RalphError(f"cannot start a run in {repo}: {describe(with_file(exc, path))}") from exc
    return fh


@dataclass
class LiveRun:
    """One started run's lock, directory, journal and control socket (see the module
    docstring). `control` is None when no socket could be made: the run goes on without it."""

    repo: Path
    run_id: str
    run_dir: Path
    started_at: datetime
    journal: Journal
    control: ControlServer | None
    lockfile: IO[str]

    @classmethod
    def open(cls, repo: Path, on_control: Callable[[dict[str, Any]], dict[str, Any]]) -> LiveRun:
        """Lock the repository and set up a new run directory, or raise having released all."""
        lockfile = take_repo_lock(repo)
        journal: Journal | None = None
        control: ControlServer | None = None
        run_dir: Path | None = None
        try:
            started_at = utcnow()
            run_id = new_run_id(started_at)
            run_dir = runs_root(repo) / run_id
            (run_dir / "workers").mkdir(parents=True, exist_ok=True)
            journal = Journal(run_dir / "events.jsonl")
            with contextlib.suppress(OSError):
                control = ControlServer(f"{run_id}-{os.getpid()}", on_control)
            run = cls(repo, run_id, run_dir, started_at, journal, control, lockfile)
            run.write_info()
        except BaseException as exc:  # nothing started: release what was taken, or the repo
            for res in (control, journal, lockfile):  # stays locked to this process
                if res is not None:
                    with contextlib.suppress(Exception):
                        res.close()
            if run_dir is not None:  # made just now, and holding nothing yet
                shutil.rmtree(run_dir, ignore_errors=True)
            if isinstance(exc, OSError):  # e.g. a full disk: say which file, in one line
                raise RalphError(f"cannot start a run in {repo}: {describe(exc)}") from exc
            raise
        return run

    def write_info(self, **extra: Any) -> None:
        """Write `loop.json` atomically: this process, its control address, `extra`."""
        info = {
            "run_id": self.run_id,
            "repo": str(self.repo),
            "pid": os.getpid(),
            "create_time": pid_create_time(),
            "control": self.control.address if self.control else None,
            "started_at": format_time(self.started_at),
            "finished_at": None,
            **extra,
        }
        path = self.run_dir / LOOP_INFO
        try:
            atomic_write_bytes(path, json.dumps(info).encode())  # leaves no temp file
        except OSError as exc:
            raise with_file(exc, path) from None

    def close(self, ended_at: datetime) -> None:
        """Close the socket and the journal, mark the run finished, release the lock."""
        if self.control is not None:
            with contextlib.suppress(Exception):
                self.control.close()
        try:
            self.journal.close()
            for tmp in self.run_dir.rglob("*.tmp"):  # a write in the run dir that failed
                with contextlib.suppress(OSError):  # midway (a full disk) left its temp
                    tmp.unlink()
            try:
                self.write_info(finished_at=format_time(ended_at))
            except OSError:  # a full disk: no loop.json rather than one saying "running"
                with contextlib.suppress(OSError):
                    (self.run_dir / LOOP_INFO).unlink()
        finally:
            with contextlib.suppress(OSError):
                self.lockfile.close()
