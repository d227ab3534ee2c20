"""The sampler that watches live workers for being stuck, and acts on what `stuck` decides.

Owns: `StuckWatch` -- one daemon thread per started loop that, every `interval` seconds, walks
each live worker's workspace (`stuck.workspace_stamp`), samples its CPU, computes its
`stuck.Signals` and, the first time `stuck.stuck_reason` names a reason for an attempt, emits
a `stuck` event and carries out `on_stuck` (flag only; stop the attempt; or stop it and start
a new attempt, "requeue", with the reason as a note); a flagged worker that recovers gets a
`stuck` event with `stuck: false`. `columns(rec)` gives `loop.df` the live signals;
`take_requeue` is the driver's side of a requeue (kept here, out of the driver's room).
Does not own: the decisions (`stuck`), the worker's activity (fed by its `Attempt`) or how a
stop happens (the scheduler routes it to the task's driver).
Invariants: thin I/O around pure decisions; one action per stuck attempt; the thread never
raises and ends with `close()`; per worker it keeps O(1) state plus a minute of CPU samples.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .events import Event
from .stuck import Activity, Signals, cpu_average, signals, stuck_reason, workspace_stamp
from .table import LIVE


@dataclass
class _Watched:
    stamp: tuple[int, int, int] | None = None
    cpu: collections.deque[tuple[float, float]] = field(
        default_factory=lambda: collections.deque(maxlen=240)
    )
    flagged: bool = False
    acted: bool = False
    last: Signals | None = None


class StuckWatch:
    """Watches live workers (see the module docstring). `records()`: copies of the table's
    records; `activity(rec)` / `resources(rec)`: a live attempt's `Activity` and resource
    sample, or None; `emit`: the loop's sink; `act(task_id, action, note)`: stop or requeue."""

    def __init__(
        self,
        *,
        records: Callable[[], list[dict[str, Any]]],
        activity: Callable[[dict[str, Any]], Activity | None],
        resources: Callable[[dict[str, Any]], dict[str, Any] | None],
        emit: Callable[[Event], None],
        act: Callable[[str, str, str], None],
        stuck_after: float | None,
        on_stuck: str,
        repeat_limit: int,
        interval: float | None = None,
    ) -> None:
        self.records, self.activity, self.resources = records, activity, resources
        self.emit, self.act = emit, act
        self.stuck_after, self.on_stuck, self.repeat_limit = stuck_after, on_stuck, repeat_limit
        if interval is None:
            interval = 5.0 if stuck_after is None else min(10.0, max(0.2, stuck_after / 10))
        self.interval = interval
        self._state: dict[str, _Watched] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ralphnb-stuck", daemon=True)

    def start(self) -> StuckWatch:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed.set()

    def _run(self) -> None:
        while not self._closed.wait(self.interval):
            try:
                self.sample(time.monotonic())
            except Exception:  # a sampling hiccup (a workspace just removed) waits for the next
                pass

    def sample(self, now: float) -> None:
        """One pass over the live workers: signals, then the decision and its action."""
        live = [r for r in self.records() if r["status"] in LIVE]
        with self._lock:
            for gone in set(self._state) - {r["worker_id"] for r in live}:
                del self._state[gone]
        for rec in live:
            act = self.activity(rec)
            if act is None:
                continue
            st = self._state.setdefault(rec["worker_id"], _Watched())
            if rec.get("workspace"):
                stamp = workspace_stamp(rec["workspace"])
                if st.stamp is not None and stamp != st.stamp:
                    act.files_changed(now)
                st.stamp = stamp
            res = self.resources(rec)
            if res and res.get("cpu_percent") is not None:
                st.cpu.append((now, float(res["cpu_percent"])))
            sig = signals(act.facts(), now, cpu_average(st.cpu, now))
            st.last = sig
            if self.stuck_after is not None and rec["status"] != "stopping":
                self._decide(rec, st, sig)

    def _decide(self, rec: dict[str, Any], st: _Watched, sig: Signals) -> None:
        reason = stuck_reason(
            sig, stuck_after=self.stuck_after or 0.0, repeat_limit=self.repeat_limit
        )
        tid, wid = rec["task_id"], rec["worker_id"]
        if reason is None:
            if st.flagged and not st.acted:
                st.flagged = False
                self.emit(Event("stuck", tid, wid, data={"stuck": False, **sig.columns()}))
            return
        if st.flagged:
            return
        st.flagged = True
        data = {"stuck": True, "reason": reason, "action": self.on_stuck, **sig.columns()}
        self.emit(Event("stuck", tid, wid, data=data))
        if self.on_stuck in ("stop", "requeue"):
            st.acted = True
            try:
                self.act(tid, self.on_stuck, f"stuck: {reason}")
            except Exception:  # the attempt ended meanwhile
                pass

    def columns(self, rec: dict[str, Any], now: float | None = None) -> dict[str, Any]:
        """The live signal columns of a record (idle times measured now); {} if not live."""
        act = self.activity(rec)
        if act is None:
            return {}
        now = time.monotonic() if now is None else now
        with self._lock:
            st = self._state.get(rec["worker_id"])
        cpu = cpu_average(st.cpu, now) if st is not None else None
        return signals(act.facts(), now, cpu).columns()


def take_requeue(driver: Any, max_iterations: int) -> bool:
    """After an attempt ended, in its task's driver: True when the watch requeued it and an
    iteration is left -- the request is taken, the ended row says so, and the next iteration
    is announced (the driver's loop then starts it); False leaves the request to the stop
    path (no iteration left: the task goes back with the note)."""
    with driver.flags.cond:
        again = driver.action == "requeue" and driver.attempts + 1 < max_iterations
        if again:  # the stuck attempt counts as one
            driver.action, driver.attempts = None, driver.attempts + 1
    if again:
        emit, tid = driver.ctx.emit, driver.task_id
        emit(Event("status", tid, driver.worker_id, data={"error": f"requeued: {driver.note}"}))
        driver.iteration += 1
        data = {"title": driver.title, "iteration": driver.iteration, "phase": driver.step.phase}
        emit(Event("queued", tid, driver.worker_id, data=data))
    return again


__all__ = ["StuckWatch", "take_requeue"]
