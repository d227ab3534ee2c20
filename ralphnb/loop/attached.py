"""A running loop seen from another process: `AttachedLoop`, with the interface of `Loop`.

Owns: `AttachedLoop` (the client of one run's control socket: `df`, `snapshot()`, `events`,
`subscribe`, `logs`, `stop/kill/stop_all/pause/resume`, `wait`, `run`, the dashboard) and
`attach(repo_or_run_dir)`. Live state comes over the socket (`requests.answer`); events come
over one subscribe stream per client (`feed.EventFeed`) that reconnects and resumes from the
last seq it saw; once the loop's process is gone, the table comes from its journal (`Run.load`).
Never: owns the loop or its workers -- closing, detaching or killing this process (a kernel)
changes nothing in the loop; only its explicit actions do.
Invariants: subscriber callbacks run on the one stream thread, in event order; a broken stream
is retried while the loop's process lives; `finished` is true once the loop said so or its
process is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from .._time import parse_time
from ..errors import RalphError
from ..workers.logfile import tail_lines
from ..workspace.diff import task_diff
from .control import live_run, open_stream, send_control
from .events import Event, Journal
from .report import attempts_table
from .review import waiting_frame
from .runs import JOURNAL, LOOP_INFO, Run, loop_alive, read_loop_info
from .table import COLUMNS, build_frame
from .viewhook import widgets

_TIMES = tuple(k for k, dtype in COLUMNS.items() if dtype.startswith("datetime"))
ACTION_TIMEOUT = 300.0  # s: a stop waits for the grace period, a stop_all for every worker


def _records(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records from the socket, their times back to datetimes (they travel as text)."""
    for r in raw:
        for k in _TIMES:
            if isinstance(r.get(k), str):
                r[k] = parse_time(r[k])
    return raw


class AttachedLoop:
    """A loop running in another process (see the module docstring). Build it with
    `ralphnb.attach(repo)`; a detached `Loop(..., detach=True).start()` returns one too."""

    def __init__(self, run_dir: str | Path | None = None) -> None:
        self.run_dir: Path | None = None
        self._info: dict[str, Any] = {}
        self._subs: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        self._pump: threading.Thread | None = None
        self._closed = threading.Event()
        self.seq = 0  # the last event seq received over the stream (0: none yet)
        self.gaps: list[tuple[int, int]] = []  # event seqs a reconnect came too late for
        self._said_finished = False
        if run_dir is not None:
            self._bind(Path(run_dir))

    def _bind(self, run_dir: Path) -> None:
        info = read_loop_info(run_dir)
        if info is None:
            raise RalphError(f"{run_dir}: no {LOOP_INFO} here; pass a run directory of a loop")
        self.run_dir, self._info = run_dir, info

    # ----------------------------------------------------------------- reaching the loop

    def _dir(self) -> Path:
        if self.run_dir is None:
            raise RalphError("this loop was not started yet; call start() first")
        return self.run_dir

    @property
    def run_id(self) -> str | None:
        return self.run_dir.name if self.run_dir is not None else None

    @property
    def repo(self) -> Path | None:
        return Path(self._info["repo"]) if self._info.get("repo") else None

    @property
    def pid(self) -> int | None:
        """The pid of the loop's process."""
        return self._info.get("pid")

    def _alive(self) -> bool:
        """Is the loop's process still running and still serving this run?"""
        info = read_loop_info(self._dir())
        return bool(info) and info.get("finished_at") is None and loop_alive(info)

    def _send(self, req: dict[str, Any], timeout: float) -> dict[str, Any]:
        """The loop's reply as it is; `RalphError` only when the loop cannot be reached."""
        address = self._info.get("control")
        if not address:
            raise RalphError(f"run {self.run_id} has no control socket; it cannot be reached")
        return send_control(address, req, timeout=timeout)

    def _request(self, req: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        reply = self._send(req, timeout)
        if "error" in reply:  # the loop's answer: e.g. no such task
            raise RalphError(reply["error"])
        return reply

    def _live_request(self, req: dict[str, Any]) -> dict[str, Any] | None:
        """The loop's reply, or None when its process has gone (then the journal is the truth)."""
        if self.run_dir is None:
            raise RalphError("this loop was not started yet; call start() first")
        deadline = time.monotonic() + 2.0
        while True:
            try:
                reply = self._send(req, 30.0)
                break
            except RalphError:
                # a finishing loop closes its socket a moment before loop.json says finished
                if self._said_finished or not self._alive():
                    return None
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)
        if "error" in reply:
            raise RalphError(reply["error"])
        return reply

    # ----------------------------------------------------------------- looking

    def snapshot(self, sample: bool = True) -> list[dict[str, Any]]:
        """Copies of the worker records, oldest first (as `Loop.snapshot`)."""
        reply = self._live_request({"op": "snapshot", "sample": sample})
        if reply is None:
            return [dict(r) for r in Run.load(self._dir()).records.values()]
        return _records(reply["records"])

    @property
    def df(self) -> Any:
        """A pandas DataFrame snapshot of the loop's table, one row per worker attempt."""
        return build_frame(self.snapshot())

    @property
    def events(self) -> list[Event]:
        """Every event of the run so far, read from its journal."""
        path = self._dir() / JOURNAL
        return list(Journal.read(path)) if path.exists() else []

    def logs(self, task_id: str, n: int = 50) -> list[str]:
        reply = self._live_request({"op": "logs", "task_id": task_id, "n": n})
        if reply is not None:
            return list(reply["lines"])
        recs = [r for r in self.snapshot(sample=False) if r["task_id"] == task_id]
        if not recs:
            raise RalphError(f"no attempt of {task_id} in this run")
        return tail_lines(recs[-1]["log_path"], n)

    def _state(self) -> dict[str, Any]:
        reply = self._live_request({"op": "info"}) if not self._said_finished else None
        if reply is not None:
            return reply
        info = read_loop_info(self._dir()) or {}
        return {"finished": True, "paused": False, "halt_reason": None, "loop_error": None, **info}

    @property
    def finished(self) -> bool:
        """True once the loop said it finished, or its process is gone."""
        if self.run_dir is None:
            return False
        return self._said_finished or not self._alive()

    @property
    def running(self) -> bool:
        return self.run_dir is not None and not self.finished

    @property
    def paused(self) -> bool:
        return bool(self._state().get("paused")) if self.running else False

    @property
    def halt_reason(self) -> str | None:
        return self._state().get("halt_reason") if self.run_dir is not None else None

    @property
    def error(self) -> str | None:
        return self._state().get("loop_error") if self.run_dir is not None else None

    @property
    def started_at(self) -> datetime | None:
        t = self._info.get("started_at")
        return parse_time(t) if t else None

    @property
    def ended_at(self) -> datetime | None:
        if not self.finished:
            return None
        t = (read_loop_info(self._dir()) or {}).get("finished_at")
        return parse_time(t) if t else None

    @property
    def progress(self) -> tuple[int, int]:
        recs = self.snapshot(sample=False)
        done = {r["task_id"] for r in recs if r["status"] == "integrated"}
        return len(done), len({r["task_id"] for r in recs})

    # ----------------------------------------------------------------- control

    def _act(self, req: dict[str, Any]) -> None:
        if self.finished:
            raise RalphError(f"run {self.run_id} has finished; there is nothing to {req['op']}")
        self._request(req, timeout=ACTION_TIMEOUT)

    def stop(self, task_id: str, *, wait: bool = True) -> None:
        """Stop one task's worker gracefully (SIGINT, grace, kill); not restarted in this run."""
        self._act({"op": "stop", "task_id": task_id, "wait": wait})

    def kill(self, task_id: str, *, wait: bool = True) -> None:
        """Kill one task's worker and its whole tree now; not restarted in this run."""
        self._act({"op": "kill", "task_id": task_id, "wait": wait})

    def stop_all(self, *, wait: bool = True) -> None:
        """Stop every worker and start no new one; the loop then finishes."""
        if not self.finished:
            self._act({"op": "stop_all", "wait": wait})

    def pause(self) -> None:
        self._act({"op": "pause"})

    def resume(self) -> None:
        self._act({"op": "resume"})

    # ------------------------------------------------- review (a loop started with review=True)

    def _waiting(self) -> list[dict[str, Any]]:
        return list(self._request({"op": "review"}).get("waiting") or [])

    def reviews(self) -> Any:
        """The tasks waiting for review now, as a small DataFrame (as `Loop.reviews`)."""
        return waiting_frame(self._waiting())

    def diff(self, task_id: str) -> Any:
        """The waiting task's change against the target branch (as `Loop.diff`), computed
        here from its workspace: the loop's process only says where that is."""
        reply = self._request({"op": "review"})
        item = next((w for w in reply.get("waiting") or [] if w["task_id"] == task_id), None)
        if item is None:
            raise RalphError(f"{task_id} does not wait for review in run {self.run_id}")
        target = reply.get("target_branch") or "HEAD"
        return widgets().diff_view(task_diff(task_id, item["workspace"], target, base=item["base"]))

    def accept(self, task_id: str) -> None:
        """Merge the waiting task's work; returns once the loop has the decision."""
        self._act({"op": "accept", "task_id": task_id})

    def discard(self, task_id: str, note: str = "") -> None:
        """Drop the waiting task's work; the task goes back to `todo` with `note`."""
        self._act({"op": "discard", "task_id": task_id, "note": note})

    def requeue(self, task_id: str, feedback: str) -> None:
        """Another attempt in the same workspace whose prompt carries `feedback`."""
        self._act({"op": "requeue", "task_id": task_id, "feedback": feedback})

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the loop has finished (or its process is gone); False on timeout."""
        self._ensure_stream()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.finished:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            with self._changed:  # woken by the stream; a process that died is seen within 0.5 s
                self._changed.wait(0.5 if left is None else min(left, 0.5))
        return True

    def run(self) -> Any:
        """Wait until the loop finishes; its final `df`. Interrupting only stops the waiting."""
        self.wait()
        return self.df

    async def arun(self) -> Any:
        await asyncio.to_thread(self.wait)
        return self.df

    # ----------------------------------------------------------------- events, live

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call `callback(event)` for every event of the loop from now on (from this client's
        stream thread; keep it quick). Returns the function that unsubscribes."""
        with self._lock:
            self._subs.append(callback)
        self._ensure_stream()

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subs:
                    self._subs.remove(callback)

        return unsubscribe

    def _ensure_stream(self) -> None:
        with self._lock:
            if self._pump is None and self.run_dir is not None and not self._closed.is_set():
                self._pump = threading.Thread(target=self._stream, name="ralphnb-attached")
                self._pump.daemon = True
                self._pump.start()

    def _deliver(self, event: Event) -> None:
        if event.kind == "loop_finished":
            self._said_finished = True
        with self._lock:
            subs = list(self._subs)
        for cb in subs:
            with contextlib.suppress(Exception):
                cb(event)
        with self._changed:
            self._changed.notify_all()

    def _stream(self) -> None:
        """The stream thread: receive events, reconnecting (from the last seq) while the loop
        lives; when it is gone without having said so, tell subscribers it finished."""
        since: int | None = None
        while not self._closed.is_set() and not self._said_finished:
            try:
                for msg in open_stream(self._info["control"], {"op": "subscribe", "since": since}):
                    if self._closed.is_set():
                        return
                    since = int(msg.get("seq", msg.get("ping", since or 0)))
                    if "gap" in msg:
                        self.gaps.append((int(msg["gap"][0]), int(msg["gap"][1])))
                    if "event" in msg:
                        self.seq = since
                        self._deliver(Event.from_json(msg["event"]))
            except (RalphError, OSError, ValueError):
                pass
            if self._said_finished or not self._alive():
                break
            self._closed.wait(0.2)  # the loop lives: reconnect and resume after `since`
        if not self._said_finished and not self._closed.is_set():
            self._deliver(Event("loop_finished", data={"reason": "the loop's process is gone"}))

    def detach(self) -> None:
        """Stop receiving events; the loop runs on untouched."""
        self._closed.set()

    # ----------------------------------------------------------------- display

    def __repr__(self) -> str:
        if self.run_dir is None:
            return "AttachedLoop(not started)"
        state = "finished" if self.finished else "running"
        head = f"AttachedLoop(run {self.run_id}, pid {self.pid}) {state}\n"
        return head + attempts_table(self.snapshot())

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return widgets().mimebundle(self, include=include, exclude=exclude)

    def dashboard(self, **kwargs: Any) -> Any:
        return widgets().dashboard(self, **kwargs)


def attach(target: str | Path = ".") -> AttachedLoop:
    """The loop running now on repository `target`, or the run in run directory `target`,
    as an `AttachedLoop`. Several processes may attach to one loop at once."""
    path = Path(target)
    if (path / LOOP_INFO).exists():
        return AttachedLoop(path)
    live = live_run(path)
    if live is None:
        raise RalphError(
            f"no loop is running on {path}; `ralphnb status` shows the last run, "
            "`ralphnb.Run.latest(repo)` loads it"
        )
    return AttachedLoop(live[0])


__all__ = ["AttachedLoop", "attach"]
