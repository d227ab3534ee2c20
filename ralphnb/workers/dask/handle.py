"""Client-side handle of one agent running on a Dask worker (see `executor.py`).

Owns: `DaskHandle` (the executor seam's handle: stop/kill/wait/tail/resources/pid), which
applies the messages streamed from the worker in order on the executor's dispatcher thread
(lines, resource samples, start, exit; what an agent did to its stub queue rides in the exit's
`queue_marks`) and brings a shipped workspace back; `DaskExitInfo` (an `ExitInfo` with where
and why); and `ExecutorLink`, all a handle may ask of the executor that owns it (post a message
to the dispatcher, forget the handle, run stop/kill on the owning Dask worker).
Never: imports the executor or reaches into it (the executor uses the handle's public surface);
writes the user's queue (the loop applies `queue_marks`).
Invariants: exactly one exit per handle, after its lines; callbacks run on the dispatcher thread,
never on the Dask client's event loop.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...errors import WorkerError
from ..exits import ExitInfo
from ..logfile import DEFAULT_MAX_LOG_BYTES, LogFile
from .remote import LOST
from .ship import sync_back

log = logging.getLogger(__name__)


def _callback(callbacks: Any, name: str) -> Callable[..., Any] | None:
    if callbacks is None:
        return None
    if isinstance(callbacks, Mapping):
        return callbacks.get(name)
    return getattr(callbacks, name, None)


def _json_shaped(value: Any) -> Any:
    """`value` with every tuple made a list again: events through the scheduler come back with
    tuples for arrays (msgpack), and queue marks must look as the queue files hold them."""
    if isinstance(value, dict):
        return {k: _json_shaped(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_shaped(v) for v in value]
    return value


@dataclass(frozen=True)
class DaskExitInfo(ExitInfo):
    """An `ExitInfo` that also says where the agent ran and, for reason "lost" (its Dask worker
    died, the cluster closed, its task was cancelled) or a start failure, why."""

    address: str | None = None


@dataclass(frozen=True)
class ExecutorLink:
    """What a handle may ask of the executor that owns it: three functions, no back reference.

    `post(handle, msg)`: queue `msg` for `handle.apply` on the dispatcher thread, after every
    message queued before it. `forget(handle)`: drop it from the executor's running agents (it
    exited, or never started). `control(handle, action, grace)`: run "stop" (SIGINT, `grace`
    seconds, then kill) or "kill" on the owning Dask worker; returns that worker's answer ("ok",
    "gone", "mismatch") and raises if the worker cannot be reached.
    """

    post: Callable[[DaskHandle, dict[str, Any]], None]
    forget: Callable[[DaskHandle], None]
    control: Callable[[DaskHandle, str, float], object]


class DaskHandle:
    """One agent running on a Dask worker; same surface as a local worker handle.

    `spec`: the plain spec dict (argv, env, cwd, log_path, worker_id, task_id, tail_lines).
    `callbacks`: on_line(str), on_exit(ExitInfo), on_drained(ExitInfo), optional on_start(pid),
    as attributes or mapping keys. `address`/`host`: the owning Dask worker and its host.
    `log_on_client`: the client writes the log from the streamed lines (a shipped workspace,
    whose remote log is not visible here). `spawning`: `spawn()` waits in `wait_started()`, so a
    start failure raises there instead of ending as an exit. `future`: the Dask task's future,
    set by the executor once it submitted the task.
    """

    def __init__(
        self,
        spec: dict[str, Any],
        callbacks: Any,
        *,
        address: str,
        link: ExecutorLink,
        host: str = "",
        log_on_client: bool = False,
        spawning: bool = False,
    ) -> None:
        self._link = link
        self.hid = uuid.uuid4().hex[:12]
        self.spec = spec
        self.task_id: str | None = spec.get("task_id")
        self.worker_id: str = spec["worker_id"]
        self.address = address  # the owning Dask worker
        self.log_path = Path(spec["log_path"])
        self.pid: int | None = None  # on the owner's host
        self.create_time: float | None = None
        self.started_at = datetime.now(UTC)
        self.exit_info: ExitInfo | None = None
        self.detail: str | None = None  # why a "lost" exit happened
        self.future: Any = None
        self._on_line = _callback(callbacks, "on_line")
        self._on_exit = _callback(callbacks, "on_exit")
        self._on_drained = _callback(callbacks, "on_drained")
        self._on_start = _callback(callbacks, "on_start")  # optional: a late start's pid
        self._tail: collections.deque[str] = collections.deque(maxlen=max(1, spec["tail_lines"]))
        self._res: dict[str, float | int] = {"cpu_percent": 0.0, "rss_mb": 0.0, "num_procs": 0}
        self._started = threading.Event()
        self._exited = threading.Event()
        self._lock = threading.Lock()
        self._losing = False
        self._spawning = spawning
        self._logf: LogFile | None = None
        if log_on_client:  # capped and never raising, as a local worker's log
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            cap = spec.get("max_log_bytes", DEFAULT_MAX_LOG_BYTES)
            self._logf = LogFile(self.log_path, max_bytes=cap)
        self.start_error: str | None = None
        self.host = host

    def __repr__(self) -> str:
        state = "exited" if self._exited.is_set() else "running"
        return f"<DaskHandle {self.worker_id} task={self.task_id} on {self.address} {state}>"

    # ------------------------------------------------------------ applied on the dispatcher

    def apply(self, msg: dict[str, Any]) -> None:
        """Apply one message streamed from the agent's Dask worker (dispatcher thread only)."""
        kind = msg.get("k")
        if self._exited.is_set():
            return
        if kind == "lines":
            for line in msg["lines"]:
                self._line(line)
        elif kind == "res":
            self._res = dict(msg["res"])
        elif kind == "started":
            self._on_started(msg)
        elif kind == "error":
            self._on_error(msg["message"])
        elif kind == "exit":
            self._finish(self._exit_info(msg["exit"]))
        elif kind == "abort":  # never ran; a late start is killed as a stray
            why = msg["why"]
            self._finish(self._synth(signal_=int(signal.SIGKILL), reason=msg["reason"], detail=why))
        elif kind == "lost":
            why = msg["why"]
            if self._logf is None:  # shared path: the remote writer is gone, add the reason
                with contextlib.suppress(OSError), open(self.log_path, "a", encoding="utf-8") as f:
                    f.write(f"[ralphnb] {why}\n")
            self._line(f"[ralphnb] {why}")
            self._finish(self._synth(signal_=int(signal.SIGKILL), reason=LOST, detail=why))

    def _on_started(self, msg: dict[str, Any]) -> None:
        self.pid, self.create_time = msg["pid"], msg["create_time"]
        if msg.get("started_at"):
            self.started_at = datetime.fromisoformat(msg["started_at"])
        self._started.set()
        if self._on_start is not None and not self._spawning:  # it was queued on its worker
            try:
                self._on_start(self.pid)
            except Exception:
                log.exception("on_start callback of %s failed", self.worker_id)

    def _on_error(self, message: str) -> None:
        if self._spawning:  # spawn() raises it, as the local executor does: no exit
            self.start_error = message
            self._link.forget(self)
            self._started.set()
            return
        self._line(f"[ralphnb] cannot start on {self.address}: {message}")
        self._finish(self._synth(returncode=127, reason=None, detail=message))

    def _exit_info(self, ex: dict[str, Any]) -> DaskExitInfo:
        """The agent's own exit as its Dask worker reported it, once its results are back."""
        if ex.get("shipped") or ex.get("ship_error"):
            self._bring_back(ex)
        if ex.get("detail"):
            self._line(f"[ralphnb] {ex['detail']}")
        stderr = ex.get("stderr_path") if self._logf is None else None  # shipped: remote
        return DaskExitInfo(
            pid=ex["pid"],
            returncode=ex["returncode"],
            signal=ex["signal"],
            started_at=datetime.fromisoformat(ex["started_at"]),
            ended_at=datetime.fromisoformat(ex["ended_at"]),
            log_path=self.log_path,
            reason=ex["reason"],
            task_id=self.task_id,
            worker_id=self.worker_id,
            stderr_path=Path(stderr) if stderr else None,
            queue_marks=_json_shaped(ex["marks"]) if ex.get("marks") else None,
            address=self.address,
            detail=ex.get("detail"),
        )

    def _bring_back(self, ex: dict[str, Any]) -> None:
        """Mirror the shipped workspace's final tree over the client's workspace."""
        err = ex.get("ship_error")
        if err is None:
            try:
                res = self.future.result(timeout=120)
                sync_back(res["workspace_tar"], self.spec["cwd"])
            except Exception as exc:
                err = f"could not bring the workspace back from {self.address}: {exc}"
        if err is not None:
            self._line(f"[ralphnb] {err}")
            ex["detail"] = ex.get("detail") or err

    def _line(self, line: str) -> None:
        if self._logf is not None:
            self._logf.write(line.encode("utf-8", "replace") + b"\n")
        self._tail.append(line)
        if self._on_line is not None:
            try:
                self._on_line(line)
            except Exception:
                log.exception("on_line callback of %s failed", self.worker_id)

    def _synth(
        self,
        *,
        returncode: int | None = None,
        signal_: int | None = None,
        reason: str | None,
        detail: str,
    ) -> DaskExitInfo:
        return DaskExitInfo(
            pid=self.pid or 0,
            returncode=returncode,
            signal=signal_,
            started_at=self.started_at,
            ended_at=datetime.now(UTC),
            log_path=self.log_path,
            reason=reason,
            task_id=self.task_id,
            worker_id=self.worker_id,
            address=self.address,
            detail=detail,
        )

    def _finish(self, info: DaskExitInfo) -> None:
        with self._lock:
            if self._exited.is_set():
                return
            if self._logf is not None:
                self._logf.close()
                if info.detail is None and self._logf.error:  # e.g. the client's disk is full
                    info = replace(info, detail=self._logf.error)
            self.exit_info, self.detail = info, info.detail
            self._exited.set()
        self._started.set()
        self._link.forget(self)
        for cb in (self._on_exit, self._on_drained):  # remote lines are drained before exit
            if cb is not None:
                try:
                    cb(info)
                except Exception:
                    log.exception("exit callback of %s failed", self.worker_id)

    # ------------------------------------------------------------ public surface

    def wait_started(self) -> None:
        """Block until the agent runs, failed to start, or was lost (its worker or cluster gone);
        a start failure raises `WorkerError`, as the local executor's spawn does."""
        self._started.wait()
        self._spawning = False
        if self.start_error is not None:
            raise WorkerError(
                f"cannot start {self.worker_id} on Dask worker {self.address}: {self.start_error}",
                task_id=self.task_id,
            )

    def claim_lost(self) -> bool:
        """True once, for the one caller that delivers a "lost" exit; False if already claimed
        or the agent has exited."""
        with self._lock:
            if self._losing or not self.alive:
                return False
            self._losing = True
            return True

    @property
    def alive(self) -> bool:
        return not self._exited.is_set()

    def wait(self, timeout: float | None = None) -> ExitInfo | None:
        """Block until the exit event was delivered (lines first); None on timeout."""
        return self.exit_info if self._exited.wait(timeout) else None

    def tail(self, n: int = 50) -> list[str]:
        lines = list(self._tail)
        return lines[-n:] if n > 0 else []

    def resources(self) -> dict[str, float | int]:
        """The latest sample sent by the owner (about once a second); zeros once exited."""
        if not self.alive:
            return {"cpu_percent": 0.0, "rss_mb": 0.0, "num_procs": 0}
        return dict(self._res)

    def stop(self, grace: float = 1.5, timeout: float = 10.0) -> ExitInfo:
        """SIGINT the agent's group, `grace` seconds, then kill the tree; returns the exit."""
        return self._control("stop", grace, grace + timeout)

    def kill(self, timeout: float = 10.0) -> ExitInfo:
        """SIGKILL the agent and every descendant now; returns the exit."""
        return self._control("kill", 0.0, timeout)

    def _control(self, action: str, grace: float, timeout: float) -> ExitInfo:
        deadline = time.monotonic() + timeout
        if self.alive and not self._started.is_set():  # still queued on its worker: cancel it
            with contextlib.suppress(Exception):
                self.future.cancel()
            why = f"{action} before it started on {self.address}"
            self._link.post(self, {"k": "abort", "why": why, "reason": action})
        if self.alive and self.pid is not None:
            try:
                answer = self._link.control(self, action, grace)
            except Exception as exc:  # the owner is gone: the lost path delivers the exit
                answer = exc
            if answer != "ok" and self.alive and not self._exited.wait(0.5):
                log.warning(
                    "%s on %s for %s answered %r", action, self.address, self.worker_id, answer
                )
        info = self.wait(max(0.0, deadline - time.monotonic()))
        if info is None:
            raise WorkerError(
                f"{action} of worker {self.worker_id} on Dask worker {self.address} was not "
                f"confirmed within {timeout:.1f}s",
                task_id=self.task_id,
            )
        return info
