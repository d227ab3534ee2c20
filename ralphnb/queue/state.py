"""The parsed state of both task files, and the small guards `Queue` reads them with.

Owns: `State` (both documents with the bytes they were parsed from, and a copy-on-write view
for one mutation), `no_gc` (no cyclic GC passes over a large, acyclic parse) and
`refuse_non_files` (a directory, FIFO or device where a queue file belongs is an error).
Never: reads or writes a file itself.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from pathlib import Path

from .._paths import not_a_file
from ..errors import QueueError


class State:
    """Both files parsed and validated, with the exact bytes they were parsed from."""

    __slots__ = ("qdoc", "ddoc", "open", "done", "healed", "qraw", "draw")

    def __init__(self, qdoc: dict, ddoc: dict, healed: bool, qraw: bytes, draw: bytes | None):
        self.qdoc, self.ddoc, self.healed = qdoc, ddoc, healed
        self.open: list[dict] = qdoc["tasks"]
        self.done: list[dict] = ddoc["tasks"]
        self.qraw, self.draw = qraw, draw

    def working_copy(self) -> State:
        """Copy-on-write view for one mutation: new lists, shared (unmodified) task dicts."""
        qdoc = {**self.qdoc, "tasks": list(self.open)}
        ddoc = {**self.ddoc, "tasks": list(self.done)}
        return State(qdoc, ddoc, self.healed, self.qraw, self.draw)


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic GC while building a large, acyclic structure (restores its state)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def refuse_non_files(*paths: Path) -> None:
    """A directory, FIFO or device where a queue file belongs is an error naming what it is."""
    for p in paths:
        what = not_a_file(p)
        if what is not None:
            raise QueueError(
                f"{p}: is {what}, not a queue file; move it out of the way (ralphnb init then "
                "creates an empty queue)",
                path=p,
            )
