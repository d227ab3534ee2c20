"""The owner's end of a worker's lifeline: a pipe whose closing tells the shim its owner died.

Owns: `Lifeline` (one pipe per worker: the read end goes to the supervisor shim, the write end
stays in this process until the shim was reaped) and closing every write end in children this
process forks without exec. Does not own what the shim does on EOF (`_shim.py`: stop the agent
as `Worker.stop` would) or starting the shim (`process.Worker`).
Invariants:
- Nothing is ever written to a lifeline: its read end sees EOF exactly when every write end is
  closed, which happens when the owning process dies however it dies (the kernel closes a dead
  process's fds, SIGKILL included), or when `close()` is called after the shim was reaped.
- No other process holds a write end: it is close-on-exec (no exec'd child, and no sibling
  worker's shim, inherits it), and an `os.fork()` child without exec (multiprocessing's fork
  start method, a forking server) closes them all at once (`os.register_at_fork`), so a
  long-lived forked child never keeps a dead owner's agents alive.
- The write ends are kept in a module set (`_write_ends`) changed under `_lock`, which the
  fork hooks hold across `os.fork()`: no fork happens between a pipe's creation and its
  recording, or between a write end's removal and its closing.
"""

from __future__ import annotations

import contextlib
import os
import threading

_write_ends: set[int] = set()
_lock = threading.Lock()


def _close_all_in_child() -> None:
    """In a forked child (one thread, holding `_lock` since `before`): close every write end."""
    for fd in list(_write_ends):
        with contextlib.suppress(OSError):
            os.close(fd)
    _write_ends.clear()
    _lock.release()


os.register_at_fork(
    before=_lock.acquire, after_in_parent=_lock.release, after_in_child=_close_all_in_child
)


class Lifeline:
    """One worker's lifeline. `read_fd` is for the shim (close it here once the shim has it);
    the write end stays open until `close()`."""

    def __init__(self) -> None:
        with _lock:
            self.read_fd, self._write_fd = os.pipe()  # both close-on-exec (PEP 446)
            _write_ends.add(self._write_fd)

    def release_read_end(self) -> None:
        """Close this process's copy of the read end (the shim has its own)."""
        if self.read_fd >= 0:
            fd, self.read_fd = self.read_fd, -1
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        """Close the write end: call only once the shim was reaped (or never started)."""
        self.release_read_end()
        with _lock:
            fd, self._write_fd = self._write_fd, -1
            if fd < 0:
                return
            _write_ends.discard(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
