"""Which workers exist: the per-run on-disk records, and reaping what a dead owner left behind.

Owns: a `Registry` directory per run holding one JSON record per worker (pid, create_time,
token, ids, argv); the in-process set of live workers; finding and killing leftovers of a
process that died without stopping its workers; sweeping processes by the per-worker token
env var (`TOKEN_VAR`). Does not own starting or stopping a worker (`process.Worker`).
Invariants:
- A record exists while its worker may be alive: it is written (atomically) once the worker
  runs and removed only after the worker exited and its output was drained (or after
  `reap_leftovers` killed it).
- A recorded pid counts only if psutil reports the recorded create_time (a record without one
  trusts the pid), so a reused pid is never signalled; anything else is found by its token.
- Workers still supervised by this process are never reported or reaped as leftovers.
- This module does not import `process` (process imports it).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import weakref
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import psutil

TOKEN_VAR = "RALPHNB_WORKER_TOKEN"


class WorkerLike(Protocol):
    """What the registry reads of a `process.Worker`."""

    pid: int | None
    create_time: float | None
    token: str
    worker_id: str
    task_id: str | None
    argv: list[str]
    started_at: datetime | None

    @property
    def alive(self) -> bool: ...


# ---------------------------------------------------------------- sweeping by token


def pids_with_token(token: str) -> list[int]:
    """Pids of processes whose environment carries this worker token (self excluded).

    Every process a worker started carries `TOKEN_VAR=<token>` (inherited through setsid, double
    forks and re-parenting), so this finds the ones that left the worker's group and tree.
    """
    needle = f"{TOKEN_VAR}={token}".encode()
    me = os.getpid()
    out = []
    if os.path.isdir("/proc/self"):
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == me:
                continue
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    data = f.read()
            except OSError:
                continue
            if needle + b"\0" in data or data.endswith(needle):
                out.append(int(name))
        return out
    for p in psutil.process_iter():  # pragma: no cover - non-Linux fallback
        with contextlib.suppress(psutil.Error):
            if p.pid != me and p.environ().get(TOKEN_VAR) == token:
                out.append(p.pid)
    return out


def sweep_token(token: str, *, exclude: Iterable[int] = ()) -> int:
    """SIGKILL every process carrying `token` (and its descendants); return how many."""
    procs: dict[int, psutil.Process] = {}
    skip = set(exclude)
    for pid in pids_with_token(token):
        if pid in skip:
            continue
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            procs[pid] = p
            for c in p.children(recursive=True):
                if c.pid not in skip:
                    procs[c.pid] = c
    for p in procs.values():
        with contextlib.suppress(psutil.Error):
            p.kill()
    return len(procs)


# ---------------------------------------------------------------- live workers of this process

_live: weakref.WeakSet[Any] = weakref.WeakSet()
_live_lock = threading.Lock()


def add_live(worker: WorkerLike) -> None:
    """Remember a started worker of this process (weakly) until it exits."""
    with _live_lock:
        _live.add(worker)


def live_workers() -> list[Any]:
    """Workers of this process that have not exited yet."""
    with _live_lock:
        return [w for w in list(_live) if w.alive]


# ---------------------------------------------------------------- registry and leftovers


class Registry:
    """A directory of one small JSON record per live worker, so a later process can reap them."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _file(self, pid: int) -> Path:
        return self.path / f"{pid}.json"

    def add(self, worker: WorkerLike) -> None:
        assert worker.pid is not None
        self.path.mkdir(parents=True, exist_ok=True)
        rec = {
            "pid": worker.pid,
            "create_time": worker.create_time,
            "token": worker.token,
            "worker_id": worker.worker_id,
            "task_id": worker.task_id,
            "argv": worker.argv,
            "started_at": worker.started_at.isoformat() if worker.started_at else None,
            "parent_pid": os.getpid(),
        }
        tmp = self.path / f".{worker.pid}.json.tmp"
        tmp.write_text(json.dumps(rec))
        os.replace(tmp, self._file(worker.pid))

    def remove(self, worker: WorkerLike) -> None:
        if worker.pid is not None:
            with contextlib.suppress(OSError):
                self._file(worker.pid).unlink()

    def records(self) -> list[dict[str, Any]]:
        out = []
        for f in sorted(self.path.glob("*.json")) if self.path.is_dir() else []:
            try:
                rec = json.loads(f.read_text())
                rec["_file"] = str(f)
                out.append(rec)
            except (OSError, ValueError):
                continue
        return out


def _as_registries(path_or_paths: Any) -> list[Registry]:
    if isinstance(path_or_paths, Registry):
        return [path_or_paths]
    if isinstance(path_or_paths, str | os.PathLike):
        return [Registry(path_or_paths)]
    return [p if isinstance(p, Registry) else Registry(p) for p in path_or_paths]


def _leftovers(path_or_paths: Any) -> tuple[list[psutil.Process], list[tuple[dict, bool]]]:
    mine = {w.token for w in live_workers()}
    procs: dict[int, psutil.Process] = {}
    recs: list[tuple[dict, bool]] = []
    for reg in _as_registries(path_or_paths):
        for rec in reg.records():
            if rec.get("token") in mine:
                continue
            found = False
            with contextlib.suppress(psutil.Error, TypeError, ValueError):
                p = psutil.Process(int(rec["pid"]))
                if (
                    rec.get("create_time") is None
                    or abs(p.create_time() - rec["create_time"]) < 0.1
                ):
                    procs[p.pid] = p
                    found = True
                    for c in p.children(recursive=True):
                        procs[c.pid] = c
            if rec.get("token"):
                for pid in pids_with_token(str(rec["token"])):
                    with contextlib.suppress(psutil.Error):
                        procs.setdefault(pid, psutil.Process(pid))
                        found = True
            recs.append((rec, found))
    procs.pop(os.getpid(), None)
    return list(procs.values()), recs


def find_leftovers(path_or_paths: Any) -> list[psutil.Process]:
    """Processes of workers recorded in registries whose owner is gone (pid + create_time + token).

    Workers still supervised by this process are not reported.
    """
    return _leftovers(path_or_paths)[0]


def reap_leftovers(path_or_paths: Any, *, timeout: float = 5.0) -> int:
    """SIGKILL every leftover process (and its tree); remove the records. Returns how many."""
    procs, recs = _leftovers(path_or_paths)
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(procs, timeout=timeout)  # not our children: no exit status to steal
    for rec, _ in recs:
        if rec.get("token"):
            sweep_token(str(rec["token"]))
        with contextlib.suppress(OSError):
            os.unlink(rec["_file"])
    return len(procs)
