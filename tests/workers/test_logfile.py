"""The log of an attempt: capped to its head and tail around a line saying how much was dropped,
with every line still parsed; a full disk (a real small tmpfs) stops the writing, never the
reading, and the exit says which file could not be written.

Figures before: no cap existed, so an agent printing 16 MiB left a 16 MiB log (1 of 1 tries);
on a full tmpfs the reader died with a traceback, the agent lost its stdout (exit 120, a broken
pipe) and only 680 to 1,280 of 20,001 lines were parsed (3 of 3 tries). After: 0 of each.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ralphnb.workers.logfile import MIN_LOG_BYTES, LogFile
from ralphnb.workers.process import Worker, build_env, stop_all

pytestmark = pytest.mark.timeout(120)
MARKER = re.compile(rb"\[ralphnb: (\d+) bytes of output dropped here[^\n]*\]\n")

# An agent printing `N` numbered lines of about 100 bytes, then "the end".
NUMBERED = (
    "import sys\n"
    "out = sys.stdout.buffer\n"
    "for i in range(int(sys.argv[1])):\n"
    "    out.write(b'line %08d ' % i + b'.' * 85 + b'\\n')\n"
    "out.write(b'the end\\n')\n"
)


def numbered(n: int) -> bytes:
    """What `NUMBERED` prints for `n`."""
    return b"".join(b"line %08d " % i + b"." * 85 + b"\n" for i in range(n)) + b"the end\n"


@pytest.fixture(autouse=True)
def _no_leaks():
    yield
    stop_all(grace=0.0)


def split_log(data: bytes) -> tuple[bytes, int, bytes]:
    """A capped log as (head, bytes dropped, tail); exactly one marker line in it."""
    found = list(MARKER.finditer(data))
    assert len(found) == 1, f"{len(found)} marker lines"
    m = found[0]
    return data[: m.start()], int(m.group(1)), data[m.end() :]


def run_agent(tmp_path: Path, log_path: Path, n: int, **kw) -> Worker:
    w = Worker(
        [sys.executable, "-c", NUMBERED, str(n)],
        cwd=tmp_path,
        env=build_env(),
        log_path=log_path,
        worker_id="w1",
        **kw,
    )
    w.start()
    assert w.wait(60) is not None, "the worker never finished"
    return w


def test_a_log_past_its_cap_keeps_head_and_tail_and_every_line_is_parsed(tmp_path):
    cap, n = 256 * 1024, 160_000  # about 16 MiB of output, 64 times the cap
    w = run_agent(tmp_path, tmp_path / "1.log", n, max_log_bytes=cap)
    info = w.exit_info
    assert info is not None and info.returncode == 0 and info.detail is None
    data = (tmp_path / "1.log").read_bytes()
    assert len(data) <= cap
    head, dropped, tail = split_log(data)
    output = numbered(n)
    assert output.startswith(head) and output.endswith(tail)  # the first and the last bytes
    assert len(head) + dropped + len(tail) == len(output)  # the count is exact
    assert head.endswith(b"\n") and tail.startswith(b"line ")  # cut at line boundaries
    assert cap // 2 - 4096 <= len(head) <= cap // 2 and len(tail) >= cap // 4 - 4096
    assert w.lines_seen == n + 1 and w.tail(1) == ["the end"] and w.bytes_seen == len(output)


@pytest.mark.parametrize("chunk", [1, 999, 4096, 70_000])
def test_log_file_cap_holds_for_any_write_size(tmp_path, chunk):
    cap = MIN_LOG_BYTES * 4
    output = numbered(2000)
    log = LogFile(tmp_path / "x.log", max_bytes=cap)
    for i in range(0, len(output), chunk):
        log.write(output[i : i + chunk])
        assert log.size <= cap
    log.close()
    data = (tmp_path / "x.log").read_bytes()
    head, dropped, tail = split_log(data)
    assert output.startswith(head) and output.endswith(tail)
    assert len(head) + dropped + len(tail) == len(output) and len(data) <= cap


def test_a_log_without_newlines_is_still_capped_exactly(tmp_path):
    cap, output = MIN_LOG_BYTES * 2, bytes(range(256)).replace(b"\n", b"") * 200
    log = LogFile(tmp_path / "x.log", max_bytes=cap)
    log.write(output)
    log.close()
    data = (tmp_path / "x.log").read_bytes()
    head, dropped, tail = split_log(data)
    assert head.endswith(b"\n") and output.startswith(head[:-1])  # a newline before the marker
    assert output.endswith(tail) and len(head) - 1 + dropped + len(tail) == len(output)
    assert len(data) <= cap


def test_no_cap_keeps_everything_and_a_tiny_cap_is_refused(tmp_path):
    w = run_agent(tmp_path, tmp_path / "1.log", 50_000, max_log_bytes=None)
    assert (tmp_path / "1.log").read_bytes() == numbered(50_000)
    assert w.exit_info is not None and w.exit_info.detail is None
    with pytest.raises(ValueError, match="max_log_bytes"):
        LogFile(tmp_path / "y.log", max_bytes=100)


# ------------------------------------------------------------------ a full disk


@contextlib.contextmanager
def tmpfs(where: Path, size: str = "2m"):
    """A real small filesystem mounted at `where` (root only; skipped with the reason else)."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)]
    r = subprocess.run(mount, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path, leave: int) -> None:
    """Fill `disk` until only about `leave` bytes are free."""
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    with open(disk / f"filler-{uuid.uuid4().hex}", "wb") as f, contextlib.suppress(OSError):
        f.write(b"\0" * max(0, free - leave))


@pytest.mark.parametrize("cap", [None, 1 << 20])  # the cap is never reached: the disk is full
def test_a_full_disk_stops_the_log_not_the_reader_and_the_exit_says_so(tmp_path, caplog, cap):
    n = 20_000  # about 2 MB of output, on a disk with 64 KiB free
    with tmpfs(tmp_path / "disk") as disk:
        fill(disk, leave=64 * 1024)
        log_path = disk / "logs" / "1.log"
        with caplog.at_level(logging.WARNING):
            w = run_agent(tmp_path, log_path, n, max_log_bytes=cap)
        info = w.exit_info
        assert info is not None and info.returncode == 0, w.stderr_tail()  # never blocked
        assert info.detail == f"{log_path}: no space left on device"
        assert w.lines_seen == n + 1 and w.tail(1) == ["the end"]  # every line was parsed
        assert numbered(n).startswith(log_path.read_bytes())  # what was written is in order
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [
        f"{log_path}: no space left on device; the output is still read, no longer written"
    ]
