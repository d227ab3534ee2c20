"""Tests of workers.output: lines split with bounded memory, every byte logged, a bounded tail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ralphnb.workers.logfile import LogFile
from ralphnb.workers.output import MAX_LINE, LineSplitter, OutputReader, decode_line

CHILD = str(Path(__file__).resolve().parents[1] / "helpers" / "child.py")
pytestmark = pytest.mark.timeout(60)


def read_pipe(tmp_path: Path, write, on_line=None, **kw) -> tuple[list[str], OutputReader]:
    """Run an OutputReader over a real pipe that `write(fd)` fills and closes."""
    r, w = os.pipe()
    lines: list[str] = []
    logf = LogFile(tmp_path / "out.log", max_bytes=None)  # the reader closes it
    reader = OutputReader(r, logf, on_line=on_line or lines.append, close=lambda: os.close(r), **kw)
    reader.start()
    write(w)
    assert reader.join(20)
    return lines, reader


def write_and_close(data: bytes):
    def write(fd: int) -> None:
        os.write(fd, data)
        os.close(fd)

    return write


def test_long_lines_are_capped_and_partial_last_line_kept(tmp_path):
    def child(fd: int) -> None:  # a real process writing the stream
        subprocess.run(
            [sys.executable, CHILD, "longline", str(MAX_LINE * 3)], stdout=fd, check=True
        )
        os.close(fd)

    lines, reader = read_pipe(tmp_path, child)
    assert lines[0] == "a" and lines[1] == "b" * MAX_LINE
    assert lines[2:] == ["c", "\ufffd", "last"]
    size = 3 + MAX_LINE * 3 + 1 + 2 + 2 + 4
    assert (tmp_path / "out.log").stat().st_size == size == reader.bytes_seen


def test_a_line_split_across_chunks_is_joined():
    s = LineSplitter()
    assert s.feed(b"ab") == [] and s.feed(b"c\nd") == [b"abc"]
    assert s.feed(b"e\n\n") == [b"de", b""]
    assert s.close() is None


def test_an_overlong_line_is_cut_at_max_line_across_chunks_and_the_rest_dropped():
    s = LineSplitter(max_line=4)
    assert s.feed(b"abc") == [] and s.feed(b"defg") == []
    assert s.feed(b"hi\nxy\n123456\nlast") == [b"abcd", b"xy", b"1234"]
    assert s.close() == b"last" and s.close() is None


def test_decode_line_drops_a_trailing_cr_and_replaces_bad_utf8():
    assert decode_line(b"a\r") == "a" and decode_line(b"\xff") == "\ufffd"


def test_tail_is_bounded_and_every_line_is_counted(tmp_path):
    lines, reader = read_pipe(tmp_path, write_and_close(b"1\n2\n3\n4\n5\n"), tail_lines=3)
    assert lines == ["1", "2", "3", "4", "5"] and reader.lines_seen == 5
    assert reader.tail(10) == ["3", "4", "5"] and reader.tail(1) == ["5"] and reader.tail(0) == []
    assert reader.bytes_seen == 10


def test_a_failing_line_callback_does_not_stop_the_reader(tmp_path):
    seen: list[str] = []

    def on_line(line: str) -> None:
        seen.append(line)
        raise RuntimeError("callback bug")

    _, reader = read_pipe(tmp_path, write_and_close(b"one\ntwo\n"), on_line=on_line)
    assert seen == ["one", "two"] and reader.tail() == ["one", "two"]
    assert (tmp_path / "out.log").read_bytes() == b"one\ntwo\n"
