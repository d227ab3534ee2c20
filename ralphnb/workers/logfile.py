"""One attempt's log file: the output in order up to a size cap, then its head and its latest
tail around one line saying how much was dropped; a failing write stops the writing, never the
reading.

Owns: `LogFile` (the file, its cap, its write error), the pure helpers that place the cut
(`marker_line`, `head_cut`, `tail_cut`) and `tail_lines` (the last lines of a finished log).
Does not own reading the output (`output.OutputReader` calls `write` for every chunk it reads)
or what the output means.
Invariants:
- With `max_bytes` set the file never grows past it (the supervisor shim may append up to
  `_shim.AFTER_OWNER_LOG` bytes once the log's owner died). Until it would, it holds every byte in
  order. From then on it holds: the first bytes of the output (about half the cap, cut after a
  newline when one is near), one marker line `[ralphnb: N bytes of output dropped here ...]`,
  then the latest bytes (cut after a newline when one is near), in order; N counts exactly the
  output bytes not in the file. The file is such a log after every `write` (a reader sees a
  transient state only during a compaction).
- Compaction moves the kept tail down in place, `COPY` bytes at a time: memory stays one chunk,
  and each byte is copied at most about twice on average (the tail kept is a quarter of the cap).
- `write` never raises. The first OSError (ENOSPC, EIO, ...) is kept in `error` as
  "<path>: <reason>" (e.g. "no space left on device"), logged once as a warning, and every later
  write is dropped, so a full disk never stops the reader from draining the agent's pipe.
- The file is opened close-on-exec, never O_APPEND (compaction writes at offsets); `fd` may be
  handed to the supervisor shim, which appends after its owner died (`_shim.py`).
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_MAX_LOG_BYTES = 64 << 20
MIN_LOG_BYTES = 4096
COPY = 1 << 20
ALIGN = 4096  # how far a cut looks for a newline


def marker_line(dropped: int, max_bytes: int, *, newline_first: bool) -> bytes:
    """The line that stands for the dropped middle of the output."""
    text = (
        f"[ralphnb: {dropped} bytes of output dropped here; the log keeps the first and the "
        f"last bytes of an attempt, {max_bytes} at most]\n"
    )
    return (b"\n" if newline_first else b"") + text.encode()


def head_cut(window: bytes, end: int) -> int:
    """Where the head ends: just after the last newline of `window` (the bytes before offset
    `end`), else at `end`."""
    nl = window.rfind(b"\n")
    return end if nl < 0 else end - len(window) + nl + 1


def tail_cut(window: bytes, start: int) -> int:
    """Where the kept tail starts: just after the first newline of `window` (the bytes from
    offset `start`), else at `start`."""
    nl = window.find(b"\n")
    return start if nl < 0 else start + nl + 1


def tail_lines(path: str | Path | None, n: int = 50, window: int = 256 * 1024) -> list[str]:
    """The last `n` lines of the log at `path` (reading at most its last `window` bytes); []
    when there is no such file."""
    if not path or not Path(path).exists():
        return []
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - window))
        return fh.read().decode("utf-8", "replace").splitlines()[-n:]


class LogFile:
    """The log file of one attempt, written only by the output reader's thread."""

    def __init__(self, path: str | Path, *, max_bytes: int | None = DEFAULT_MAX_LOG_BYTES) -> None:
        if max_bytes is not None and max_bytes < MIN_LOG_BYTES:
            raise ValueError(f"max_log_bytes must be None or at least {MIN_LOG_BYTES}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.error: str | None = None
        self.dropped = 0  # output bytes not in the file (cut by the cap)
        self.size = 0
        self._head_end: int | None = None  # set at the first compaction
        self._tail_start = 0  # where the kept tail starts (after the marker line)
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC  # read: compaction
        self.fd = os.open(self.path, flags, 0o644)

    def write(self, data: bytes) -> None:
        """Append `data` to the log (compacting it at the cap); never raises."""
        if self.error is not None or self.fd < 0:
            return
        try:
            while data:
                room = len(data) if self.max_bytes is None else self.max_bytes - self.size
                if room <= 0:
                    self._compact()
                    continue
                part, data = data[:room], data[room:]
                self._write_at(part, self.size)
        except OSError as exc:
            self._fail(exc)

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            try:
                os.close(fd)
            except OSError as exc:  # e.g. a deferred write error surfacing at close
                self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        if self.error is None:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            self.error = f"{self.path}: {reason[:1].lower()}{reason[1:]}"
            log.warning("%s; the output is still read, no longer written", self.error)

    def _write_at(self, data: bytes, offset: int) -> None:
        """Write all of `data` at `offset` (a short write is continued), growing `size`."""
        view = memoryview(data)
        while view:
            n = os.pwrite(self.fd, view, offset)
            if n <= 0:  # a regular file takes at least one byte or fails; never spin
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            view, offset = view[n:], offset + n
            self.size = max(self.size, offset)

    def _compact(self) -> None:
        """Drop the middle: keep the head, rewrite the marker, move the latest quarter of the
        cap down behind it and truncate there."""
        assert self.max_bytes is not None
        if self._head_end is None:
            end = self.max_bytes // 2
            self._head_end = head_cut(os.pread(self.fd, ALIGN, end - ALIGN), end)
            self._tail_start = self._head_end
        start = self.size - self.max_bytes // 4
        start = tail_cut(os.pread(self.fd, ALIGN, start), start)
        if start >= self.size:  # a newline at the very end: keep from the window's start
            start = self.size - self.max_bytes // 4
        self.dropped += start - self._tail_start
        head_nl = self._head_end == 0 or os.pread(self.fd, 1, self._head_end - 1) == b"\n"
        marker = marker_line(self.dropped, self.max_bytes, newline_first=not head_nl)
        dest = self._head_end + len(marker)
        os.pwrite(self.fd, marker, self._head_end)
        src = start
        while src < self.size:  # forward copy: dest < src, so nothing unread is overwritten
            chunk = os.pread(self.fd, min(COPY, self.size - src), src)
            os.pwrite(self.fd, chunk, dest)
            src, dest = src + len(chunk), dest + len(chunk)
        os.ftruncate(self.fd, dest)
        self.size, self._tail_start = dest, self._head_end + len(marker)
