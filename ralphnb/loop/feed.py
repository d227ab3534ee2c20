"""A loop's events numbered and kept in a bounded window, for clients that stream them live.

Owns: `EventFeed` (subscribed to one loop: numbers every event it sees with `seq` 1, 2, ...,
keeps the last `keep` of them, and serves `stream(since)`, the messages a subscribe connection
sends) and `feed_of(loop)`, the one feed of a loop (made on first use; a detached loop makes it
before it starts, so its numbering starts with the run).
Messages: `{"seq": n, "event": {...}}` per event in order; `{"ping": n}` when nothing happened
for `heartbeat` seconds (how a server notices a client that went away); `{"gap": [a, b]}` when
events a..b fell out of the window before a reconnecting client asked for them (its table is
still right: it reads snapshots, not events).
Invariants: the loop's emit path only appends under a condition (never blocks on a client);
a stream ends after it sent `loop_finished`; memory is bounded by `keep`.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections import deque
from collections.abc import Iterator
from typing import Any

from .events import Event

DEFAULT_KEEP = 10_000


class EventFeed:
    """Numbered events of one loop in a bounded window; call it with each event."""

    def __init__(self, keep: int = DEFAULT_KEEP) -> None:
        self._cond = threading.Condition()
        self._ring: deque[Event] = deque(maxlen=max(1, int(keep)))
        self.seq = 0  # the number of the newest event (0: none yet)
        self.finished = False
        self.streams = 0  # open streams, so a finishing process can let them drain

    def __call__(self, event: Event) -> None:
        with self._cond:
            self.seq += 1
            self._ring.append(event)
            if event.kind == "loop_finished":
                self.finished = True
            self._cond.notify_all()

    def _after(self, last: int) -> tuple[list[tuple[int, Event]], tuple[int, int] | None]:
        """Events numbered after `last` still in the window, and the gap before them (or None).
        Called with the condition held."""
        first = self.seq - len(self._ring) + 1  # number of the oldest kept event
        gap = (last + 1, first - 1) if last + 1 < first else None
        start = max(0, last + 1 - first)
        items = list(itertools.islice(self._ring, start, None))
        return [(first + start + i, ev) for i, ev in enumerate(items)], gap

    def stream(self, since: int | None = None, heartbeat: float = 1.0) -> Iterator[dict[str, Any]]:
        """Messages for a subscriber: the events after `since` (None: from now on), then each
        new one as it comes, pings while idle; ends after `loop_finished`."""
        with self._cond:
            self.streams += 1
            last = self.seq if since is None else max(0, min(int(since), self.seq))
        try:
            yield {"ping": last}  # the subscription is live from here
            while True:
                with self._cond:
                    if self.seq == last and not self.finished:
                        self._cond.wait(heartbeat)
                    items, gap = self._after(last)
                    done = self.finished
                if gap is not None:
                    yield {"gap": list(gap)}
                for seq, ev in items:
                    yield {"seq": seq, "event": ev.to_json()}
                    last = seq
                if done and not items:
                    return
                if not items and gap is None:
                    yield {"ping": last}
        finally:
            with self._cond:
                self.streams -= 1
                self._cond.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait (up to `timeout` s) until no stream is open; False if some still are."""
        with self._cond:
            return self._cond.wait_for(lambda: self.streams == 0, timeout)


_FEEDS: weakref.WeakKeyDictionary[Any, EventFeed] = weakref.WeakKeyDictionary()
_FEEDS_LOCK = threading.Lock()


def feed_of(loop: Any) -> EventFeed:
    """The feed of `loop` (anything with `subscribe(callback)`), made and subscribed once."""
    with _FEEDS_LOCK:
        feed = _FEEDS.get(loop)
        if feed is None:
            feed = _FEEDS[loop] = EventFeed()
            loop.subscribe(feed)
            feed.finished = bool(getattr(loop, "finished", False))  # nothing more will come
        return feed


__all__ = ["DEFAULT_KEEP", "EventFeed", "feed_of"]
