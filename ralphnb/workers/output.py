"""A worker's output stream: read to its end, every byte to the log file, lines to a callback.

Owns: `LineSplitter` (bytes in, complete lines out, pure), `decode_line`, and `OutputReader`
(the reader thread of one pipe, a bounded tail of lines and the byte and line counts). Does not
own what a line means (runners parse it), the log file's cap and write errors (`logfile`), or
the process (`process.Worker`).
Invariants:
- Memory is bounded: one partial line of at most `MAX_LINE` bytes and `tail_lines` lines. A line
  longer than `MAX_LINE` bytes is cut to its first `MAX_LINE` bytes; the rest of it is dropped
  from the lines (never from the log file, which is given every byte read, in order).
- The pipe is read to its end whatever happens to the log file (capped, or the disk full):
  every line is parsed and the agent is never blocked on a pipe nobody drains.
- Lines reach the callback in stream order, from the reader thread only; an unterminated last
  line is delivered at end of stream. The reader closes the log file and the pipe when done.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
from collections.abc import Callable

from .logfile import LogFile

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
MAX_LINE = 64 * 1024


def decode_line(raw: bytes) -> str:
    """One line as text: a trailing CR dropped (CRLF output), bad UTF-8 replaced."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return raw.decode("utf-8", errors="replace")


class LineSplitter:
    """Splits a byte stream into lines (without the newline), each at most `max_line` bytes."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._partial = bytearray()
        self._overflow = False  # the current line passed max_line: drop bytes until its newline

    def feed(self, chunk: bytes) -> list[bytes]:
        """The lines `chunk` completes, in order; keeps the unterminated rest for later."""
        out: list[bytes] = []
        partial, limit, start = self._partial, self.max_line, 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                if not self._overflow:
                    partial += chunk[start : start + limit - len(partial)]
                    self._overflow = len(partial) >= limit
                return out
            if self._overflow:
                self._overflow = False
                out.append(bytes(partial))
                partial.clear()
            elif partial:
                partial += chunk[start : min(nl, start + limit - len(partial))]
                out.append(bytes(partial))
                partial.clear()
            else:
                out.append(chunk[start : min(nl, start + limit)])
            start = nl + 1

    def close(self) -> bytes | None:
        """At end of stream: the unterminated last line, if there is one."""
        rest = bytes(self._partial) if self._partial else None
        self._partial.clear()
        self._overflow = False
        return rest


class OutputReader:
    """Reads `fd` to its end on its own thread: bytes to `logf`, lines to `on_line` and a tail.

    `log_error` is the log file's write error, if it had one (the reading went on).

    `on_line` is called on the reader thread; an exception in it is logged, never propagated.
    `close` (e.g. the pipe's file object) is closed with the log file once the stream ends.
    """

    def __init__(
        self,
        fd: int,
        logf: LogFile,
        *,
        on_line: Callable[[str], None],
        tail_lines: int = 200,
        name: str = "ralphnb-reader",
        close: Callable[[], None] | None = None,
    ) -> None:
        self.lines_seen = 0
        self.bytes_seen = 0
        self._fd, self._logf, self._on_line, self._close = fd, logf, on_line, close
        self._tail: collections.deque[str] = collections.deque(maxlen=max(1, tail_lines))
        self._tail_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the end of the stream; True once the reader is done."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def log_error(self) -> str | None:
        return self._logf.error

    def tail(self, n: int = 50) -> list[str]:
        """The last `n` lines (bounded by `tail_lines`)."""
        with self._tail_lock:
            lines = list(self._tail)
        return lines[-n:] if n > 0 else []

    def _emit(self, raw: bytes) -> None:
        line = decode_line(raw)
        with self._tail_lock:
            self._tail.append(line)
        self.lines_seen += 1
        try:
            self._on_line(line)
        except Exception:
            log.exception("line callback of %s failed", self._thread.name)

    def _run(self) -> None:
        splitter = LineSplitter()
        try:
            while True:
                try:
                    chunk = os.read(self._fd, CHUNK)
                except InterruptedError:  # pragma: no cover - PEP 475 retries
                    continue
                if not chunk:
                    break
                self.bytes_seen += len(chunk)
                self._logf.write(chunk)
                for raw in splitter.feed(chunk):
                    self._emit(raw)
            last = splitter.close()
            if last is not None:
                self._emit(last)
        except Exception:
            log.exception("output reader %s failed", self._thread.name)
        finally:
            self._logf.close()
            if self._close is not None:
                with contextlib.suppress(OSError):
                    self._close()
