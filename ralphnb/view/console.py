"""The live text table of a loop in a terminal (`ralphnb run`, `python -m ralphnb.demo`).

Owns: `Printer`, a loop subscriber that redraws the table in place on a TTY (at most ~5 times a
second, from its own thread) or prints one line per change of a worker's status otherwise.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from ..loop.report import attempt_line, attempts_table


class Printer:
    """Subscriber that redraws the table: in place on a TTY (at most ~5/s), else a line per
    change of a worker's status."""

    def __init__(self, loop: Any, out: Any) -> None:
        self.loop, self.out = loop, out
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self._last: dict[str, str] = {}
        self._drawn = 0
        self._dirty = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True) if self.tty else None

    def __call__(self, event: Any) -> None:
        if self.tty:
            self._dirty.set()
        elif event.worker_id:
            self._line(event)
        elif event.kind in ("loop_finished", "halted", "recovered", "queue_error"):
            print(f"[{event.kind}] {json.dumps(event.data)}", file=self.out, flush=True)

    def _line(self, event: Any) -> None:
        recs = [r for r in self.loop.snapshot(sample=False) if r["worker_id"] == event.worker_id]
        if not recs or self._last.get(event.worker_id) == recs[0]["status"]:
            return
        self._last[event.worker_id] = recs[0]["status"]
        print(attempt_line(recs[0]), file=self.out, flush=True)

    def start(self) -> None:
        if self._thread is not None:
            self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            self._dirty.wait()
            self._dirty.clear()
            self.draw()
            self._done.wait(0.2)

    def draw(self) -> None:
        text = attempts_table(self.loop.snapshot())
        up = f"\x1b[{self._drawn}F\x1b[J" if self._drawn else ""
        self.out.write(up + text + "\n")
        self.out.flush()
        self._drawn = text.count("\n") + 1

    def close(self) -> None:
        self._done.set()
        self._dirty.set()
        if self._thread is not None:
            self._thread.join(2)
            self.draw()
