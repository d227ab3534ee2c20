"""A past (or running) loop's run, rebuilt from its journal.

Owns: the layout of a run directory (`.ralph/cache/ralphnb/runs/<run_id>/` with `events.jsonl`,
`logs/`, `prompts/`, `workers/`, `loop.json`) and `Run.load`, which replays `events.jsonl`
through the same `table.apply_event` the live loop uses, so `Run.load(path).df` equals the
loop's final `loop.df`. Also the control channel of a running loop (`ControlServer`,
`send_control`, `live_run`), which `ralphnb status/stop/kill` use from another process.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import RalphError
from .events import Event, Journal, utcnow
from .render import attempts_table
from .table import apply_event, build_frame

RUNS_DIR = Path(".ralph") / "cache" / "ralphnb" / "runs"
JOURNAL = "events.jsonl"
LOOP_INFO = "loop.json"


def runs_root(repo: str | Path) -> Path:
    return Path(repo) / RUNS_DIR


def new_run_id(now: datetime | None = None) -> str:
    """Sortable, unique: `20261125T134501-3f9a`."""
    t = now or utcnow()
    return f"{t:%Y%m%dT%H%M%S}-{secrets.token_hex(2)}"


def list_runs(repo: str | Path) -> list[Path]:
    """Run directories of a repository, oldest first."""
    root = runs_root(repo)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / JOURNAL).exists())


def read_loop_info(run_dir: str | Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(run_dir) / LOOP_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def loop_alive(info: dict[str, Any] | None) -> bool:
    """Is the process that owns this run still the same live process?"""
    if not info or not info.get("pid"):
        return False
    import psutil

    try:
        proc = psutil.Process(int(info["pid"]))
        return abs(proc.create_time() - float(info.get("create_time") or 0)) < 1.0
    except (psutil.Error, ValueError, TypeError):
        return False


@dataclass
class Run:
    """A run's journal replayed: `events`, `df`, `records`."""

    path: Path
    events: list[Event] = field(default_factory=list)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> Run:
        """Load a run from its directory or its `events.jsonl`. A torn last line is skipped."""
        p = Path(path)
        journal = p / JOURNAL if p.is_dir() else p
        if not journal.exists():
            raise RalphError(
                f"{journal}: no run journal here; pass a run directory under "
                f"{RUNS_DIR} or its {JOURNAL}"
            )
        run = cls(path=journal.parent)
        for ev in Journal.read(journal):
            run.events.append(ev)
            apply_event(run.records, ev)
        return run

    @classmethod
    def latest(cls, repo: str | Path = ".") -> Run:
        runs = list_runs(repo)
        if not runs:
            raise RalphError(f"{runs_root(repo)}: no runs yet; start one with Loop(...).run()")
        return cls.load(runs[-1])

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def df(self) -> pd.DataFrame:
        return build_frame(dict(r) for r in self.records.values())

    @property
    def info(self) -> dict[str, Any] | None:
        return read_loop_info(self.path)

    def __repr__(self) -> str:
        return f"Run({self.run_id})\n" + attempts_table(list(self.records.values()))


def pid_create_time(pid: int | None = None) -> float:
    import psutil

    return psutil.Process(pid or os.getpid()).create_time()


# --- the control channel: another process asks a running loop for status / stop / kill -----


class ControlServer:
    """A unix socket (Linux abstract namespace: no file, gone when the process dies) on which
    a running loop answers one JSON request per connection, from processes of the same user
    only (checked with SO_PEERCRED). One thread blocks in `accept()`:
    no polling. `handler(request) -> reply` must not raise."""

    def __init__(self, name: str, handler: Any) -> None:
        import socket
        import threading

        self.handler = handler
        self.address = "\0ralphnb-" + name
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.address)
        self._sock.listen(8)
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="ralphnb-control", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        import threading

        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: Any) -> None:
        with conn:
            if not _same_user(conn):  # abstract sockets have no file mode: check the peer
                with contextlib.suppress(OSError):
                    conn.sendall(b'{"error": "permission denied: not the loop\'s user"}\n')
                return
            try:
                conn.settimeout(10)
                request = json.loads(_read_line(conn) or b"{}")
                reply = self.handler(request)
            except Exception as exc:  # a bad request never takes the loop down
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            try:
                conn.sendall(json.dumps(reply, default=str).encode() + b"\n")
            except OSError:
                pass

    def close(self) -> None:
        import socket

        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()


def _same_user(conn: Any) -> bool:
    """Is the process at the other end of a unix socket run by this process's user?"""
    import socket
    import struct

    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return False
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.getuid()


def send_control(address: str, request: dict[str, Any], *, timeout: float = 30.0) -> dict:
    """Send one request to a running loop's control socket; its JSON reply."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(address)
        except OSError as exc:
            raise RalphError(f"the loop is not answering ({exc}); is it still running?") from exc
        try:
            s.sendall(json.dumps(request).encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the loop refused before reading (e.g. another user): its reply is queued
        data = _read_line(s)
    return json.loads(data or b"{}")


def _read_line(sock: Any) -> bytes:
    """Bytes up to and including the first newline, or until the peer closes."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def live_run(repo: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The run directory and loop info of a loop running now on `repo` (newest first)."""
    for run_dir in reversed(list_runs(repo)):
        info = read_loop_info(run_dir)
        if info and info.get("finished_at") is None and loop_alive(info):
            return run_dir, info
    return None
