"""Events and the append-only run journal.

Owns: the `Event` record every worker state change travels as, its JSON form, and `Journal`,
the `events.jsonl` file of a run. Invariants: events are immutable; the journal is only ever
appended to, one JSON object per line, flushed per event, so a crash loses at most the line
being written (a torn last line is skipped on read).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .._time import format_time, parse_time, utcnow  # noqa: F401


@dataclass(frozen=True, slots=True)
class Event:
    """One change of state. `kind` names it; `data` holds JSON-able details.

    `worker_id` is `<task_id>#<iteration>` for worker events, None for loop-level ones.
    """

    kind: str
    task_id: str | None = None
    worker_id: str | None = None
    time: datetime = field(default_factory=utcnow)
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "task_id": self.task_id,
            "worker_id": self.worker_id,
            "time": format_time(self.time),
            "data": self.data,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Event:
        return cls(
            kind=obj["kind"],
            task_id=obj.get("task_id"),
            worker_id=obj.get("worker_id"),
            time=parse_time(obj["time"]),
            data=dict(obj.get("data") or {}),
        )


class Journal:
    """Append-only `events.jsonl`. Thread-safe; each event is one flushed line."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - owned, closed in close()

    def append(self, event: Event) -> None:
        line = json.dumps(event.to_json(), ensure_ascii=False, default=str)
        with self._lock:
            if self._fh.closed:
                return
            self._fh.write(line + "\n")
            self._fh.flush()

    def close(self) -> None:
        """Flush, fsync and close; safe to call twice, never raises."""
        with self._lock:
            if self._fh.closed:
                return
            try:
                self._fh.flush()
                os.fsync(self._fh.fileno())
            except OSError:
                pass
            finally:
                self._fh.close()

    @staticmethod
    def read(path: str | Path) -> Iterator[Event]:
        """Events of a journal in order; a torn or garbled line is skipped."""
        with open(path, encoding="utf-8") as fh:
            for raw in fh:
                raw = raw.strip()
                if not raw:
                    continue
                try:
                    yield Event.from_json(json.loads(raw))
                except (ValueError, KeyError, TypeError):
                    continue
