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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def utcnow() -> datetime:
    """Timezone-aware now in UTC (microsecond precision)."""
    return datetime.now(UTC)


def format_time(t: datetime) -> str:
    """RFC 3339 UTC with a `Z`, as ralph writes timestamps."""
    return t.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(s: str) -> datetime:
    """Parse an RFC 3339 timestamp (with `Z` or an offset) into an aware UTC datetime."""
    text = s.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python accepts at most 6 fractional digits; ralph may write 9.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        frac, tail = rest[:digits], rest[digits:]
        text = f"{head}.{frac[:6].ljust(6, '0')}{tail}" if frac else head + tail
    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        raise ValueError(f"timestamp {s!r} has no timezone; write it in UTC with a trailing Z")
    return t.astimezone(UTC)


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
