"""How one attempt's parsed output reaches the event sink: at a bounded rate, nothing lost.

Owns: `OutputGate` (one per attempt, between the runner's parser and the loop's event sink) and
`wait_flushing` (the driver's wait for a worker, waking to send what the gate holds). The raw
lines stay in the attempt's log; the gate decides which parsed events become `output` events
(the table, the journal and subscribers all see exactly these, so `Run.load` rebuilds the
same rows as the live table).
Invariants:
- session, result, retry, error and any kind the gate does not know pass at once, after what
  it held: the order of what is sent is the order of the stream.
- message, usage and tool events are held: the latest message, the latest usage (running
  totals, so the latest says everything) and every tool call (sent as one `tool` event: `name`
  the last one, `calls` each name's count when there was more than one call). What is held is
  sent when `interval` seconds have passed since the last send (the first update at once), at
  the next passing event, at a `tick` after the interval, and at `close`: never lost, never
  more than one batch per interval. A flood of output thus costs one parse per line and a few
  events a second per worker.
- Everything is sent with the gate's lock held, so the output reader and the driver's tick
  never reorder it; after `close` events pass straight through (a straggler line).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..workers.executors import WorkerHandle
from ..workers.exits import ExitInfo

#: Seconds between two sends of held message/usage/tool updates of one attempt.
INTERVAL = 0.25
#: Kinds that are held and coalesced; everything else passes at once.
HELD = frozenset(("message", "usage", "tool"))

Send = Callable[[dict[str, Any]], None]


def tool_batch(calls: dict[str, int], last: str) -> dict[str, Any]:
    """One `tool` event for the calls held since the last send (`last`: the latest name)."""
    ev: dict[str, Any] = {"type": "tool", "name": last}
    if sum(calls.values()) > 1:
        ev["calls"] = dict(calls)
    return ev


class OutputGate:
    """Sends an attempt's parsed events through `send`, coalescing the frequent kinds."""

    def __init__(self, send: Send, interval: float = INTERVAL) -> None:
        self._send = send
        self.interval = interval
        self._lock = threading.Lock()
        self._held: dict[str, dict[str, Any]] = {}  # kind -> latest; order: last update
        self._calls: dict[str, int] = {}  # tool name -> calls held
        self._last_tool = "?"
        self._last_send = float("-inf")
        self._closed = False

    def offer(self, events: list[dict[str, Any]], now: float | None = None) -> None:
        """Events of one output line, in order (`now`: `time.monotonic()` by default)."""
        if not events:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            for ev in events:
                kind = ev.get("type")
                if self._closed or kind not in HELD:
                    self._flush()
                    self._send(ev)
                    continue
                if kind == "tool":  # the batch is built when it is sent
                    self._last_tool = name = str(ev.get("name") or "?")
                    self._calls[name] = self._calls.get(name, 0) + 1
                self._held.pop(kind, None)  # re-inserted last: the dict keeps update order
                self._held[kind] = ev
            if now - self._last_send >= self.interval:
                self._flush()
                self._last_send = now

    def tick(self, now: float | None = None) -> None:
        """Send what is held if the interval has passed (an idle agent's last words)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._held and now - self._last_send >= self.interval:
                self._flush()
                self._last_send = now

    def close(self) -> None:
        """Send everything held; from now on every event passes at once."""
        with self._lock:
            self._flush()
            self._closed = True

    @property
    def held(self) -> int:
        """How many events are held (for tests and the curious)."""
        with self._lock:
            return len(self._held)

    def _flush(self) -> None:  # lock held
        if not self._held:
            return
        held = [
            tool_batch(self._calls, self._last_tool) if kind == "tool" else ev
            for kind, ev in self._held.items()
        ]
        self._held.clear()
        self._calls.clear()
        for ev in held:
            self._send(ev)


def wait_flushing(handle: WorkerHandle, gate: OutputGate) -> ExitInfo:
    """`handle.wait()`, ticking `gate` every interval meanwhile; closes the gate once the
    worker's output is drained, so the attempt's last state is sent before its judgement."""
    try:
        while True:
            info = handle.wait(gate.interval)
            if info is not None:
                return info
            gate.tick()
    finally:
        gate.close()
