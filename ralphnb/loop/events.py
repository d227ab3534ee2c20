"""Events and the append-only run journal.

Owns: the `Event` record every worker state change travels as, its JSON form, and `Journal`,
the `events.jsonl` file of a run. Invariants: events are immutable; the journal is only ever
appended to, one JSON object per line, written per event, so a crash loses at most the line
being written (a torn last line is skipped on read); a failed write ends the journal's writing
(`Journal.failure`) and never raises into the thread that emitted the event. `EventWindow` keeps
only the most recent events in memory (bounded) and reads older ones back from the journal.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .._time import format_time, parse_time, utcnow  # noqa: F401
from .failures import describe


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
    """Append-only `events.jsonl`. Thread-safe; each event is one line, written unbuffered.

    A write that fails (a full disk) is undone (the torn line truncated away) and ends the
    journal's writing: `append` returns False and `failure` says, in one line, which file could
    not be written and why. It never raises, so no thread that emits an event dies of it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fh = open(self.path, "ab", buffering=0)  # noqa: SIM115 - owned, closed in close()
        self._size = os.fstat(self._fh.fileno()).st_size
        self.failure: str | None = None

    def append(self, event: Event) -> bool:
        """Write one event; False once writing failed (see `failure`), or after `close`."""
        raw = (json.dumps(event.to_json(), ensure_ascii=False, default=str) + "\n").encode()
        data = memoryview(raw)
        with self._lock:
            if self._fh.closed or self.failure is not None:
                return self.failure is None
            try:
                while data:
                    data = data[self._fh.write(data) or 0 :]
                self._size += len(raw)
            except OSError as exc:
                if not exc.filename:
                    exc.filename = str(self.path)
                self.failure = describe(exc)
                with contextlib.suppress(OSError):  # no torn line for a reader to trip on
                    os.ftruncate(self._fh.fileno(), self._size)
                return False
            return True

    def close(self) -> None:
        """Fsync and close; safe to call twice, never raises."""
        with self._lock:
            if self._fh.closed:
                return
            with contextlib.suppress(OSError):
                os.fsync(self._fh.fileno())
            with contextlib.suppress(OSError):
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


#: Events a loop keeps in memory by default (`Loop(events_window=...)`); older ones are read
#: back from the journal.
EVENTS_WINDOW = 10_000


class EventWindow:
    """The last `size` events in memory; `events(journal)` is every event of the run, the older
    ones read back from the journal. Memory stays bounded however long the run.

    `append` is called in event order (the loop's emit lock held) after the event was written to
    the journal, if it was (`journaled`), so every event before the window is already on disk.
    Events that were never journaled (emitted before the run had a journal, or after it failed)
    are kept only while they are in the window."""

    def __init__(self, size: int = EVENTS_WINDOW) -> None:
        self.size = max(1, int(size))
        self._lock = threading.Lock()
        # (journal lines written before this event, event)
        self._recent: collections.deque[tuple[int, Event]] = collections.deque(maxlen=self.size)
        self._journaled = 0

    def append(self, event: Event, journaled: bool) -> None:
        with self._lock:
            self._recent.append((self._journaled, event))
            self._journaled += journaled

    def __len__(self) -> int:
        """Events held in memory (at most `size`)."""
        with self._lock:
            return len(self._recent)

    def events(self, journal: str | Path | None) -> list[Event]:
        """All events in order: the journal's lines before the window, then the window."""
        with self._lock:
            if not self._recent:
                return []
            before = self._recent[0][0]
            recent = [ev for _, ev in self._recent]
        if before == 0 or journal is None:
            return recent
        return [*itertools.islice(Journal.read(journal), before), *recent]
