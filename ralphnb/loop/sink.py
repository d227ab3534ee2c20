"""A run's event sink: where every event of a `Loop` or a `Sweep` goes, in order.

Owns: `EventSink` -- under one lock, each event is applied to the worker table, appended to the
run's journal (once it has one), kept in the bounded window of recent events and handed to the
subscribers; then the run's condition is notified (parsed output excepted: it never changes
what a scheduler does). `events()` is every event of the run (older ones read back from the
journal); `subscribe(cb)` returns the function that unsubscribes.
Invariants: `emit` never raises (a subscriber's error is swallowed); the first event the journal
could not take is reported once, through `on_journal_lost`, outside the lock (the handler takes
the run's condition, which emitting threads may hold); memory stays bounded by the window.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from .events import EVENTS_WINDOW, Event, EventWindow, Journal
from .table import WorkerTable

Subscriber = Callable[[Event], None]


class EventSink:
    """The one sink of a run (see the module docstring). `journal` and `on_journal_lost` are
    set when the run starts; before that, events are kept only while they are in the window."""

    def __init__(
        self,
        table: WorkerTable,
        cond: threading.Condition,
        *,
        window: int = EVENTS_WINDOW,
        subscribers: Iterable[Subscriber] = (),
    ) -> None:
        self.table = table
        self.cond = cond
        self.journal: Journal | None = None
        self.on_journal_lost: Callable[[str], None] | None = None
        self.lock = threading.RLock()
        self._window = EventWindow(window)
        self._subs: list[Subscriber] = list(subscribers)
        self._lost = False  # the journal could not be written (lock held)

    def emit(self, event: Event) -> None:
        with self.lock:
            self.table.apply(event)
            journal = self.journal
            failed = journal is not None and not journal.append(event)
            first_loss = failed and not self._lost
            self._lost = self._lost or failed
            self._window.append(event, journal is not None and not failed)
            for cb in list(self._subs):
                try:
                    cb(event)
                except Exception:
                    pass
        if first_loss and journal is not None and self.on_journal_lost is not None:
            # a run that cannot be journaled cannot be rebuilt after a crash: its owner halts it
            self.on_journal_lost(journal.failure or "the run journal failed")
        if event.kind != "output":
            with self.cond:
                self.cond.notify_all()

    def events(self) -> list[Event]:
        """Every event of the run in order (the ones before the window from the journal)."""
        return self._window.events(self.journal.path if self.journal is not None else None)

    @property
    def held(self) -> int:
        """Events held in memory now (at most the window's size)."""
        return len(self._window)

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback(event)` for every event from now on (from the emitting thread, with
        the sink's lock held: keep it quick). Returns the function that unsubscribes."""
        with self.lock:
            self._subs.append(callback)

        def unsubscribe() -> None:
            with self.lock:
                if callback in self._subs:
                    self._subs.remove(callback)

        return unsubscribe


__all__ = ["EventSink", "Subscriber"]
