"""JSONC reading, pretty writing, atomic replacement and the temp-file sweep."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ralphnb.errors import QueueError
from ralphnb.queue import jsonio


def test_plain_json_and_jsonc_comments_and_trailing_commas_are_read():
    assert jsonio.loads_jsonc('{"a": [1, 2]}') == {"a": [1, 2]}
    text = """{
      // a line comment
      "url": "http://example.com/*not a comment*/", /* block
      comment */ "list": [1, 2,],
      "obj": {"k": "v", /* c */ },
    }"""
    assert jsonio.loads_jsonc(text) == {
        "url": "http://example.com/*not a comment*/",
        "list": [1, 2],
        "obj": {"k": "v"},
    }


def test_strings_with_comment_markers_and_escaped_quotes_are_untouched():
    text = '{"a": "x // y", "b": "q\\" // still string", "c": "/* z */",} // end'
    assert jsonio.loads_jsonc(text) == {"a": "x // y", "b": 'q" // still string', "c": "/* z */"}


def test_syntax_error_reports_true_line_and_column_after_comments(tmp_path: Path):
    text = '{\n  // comment, with "quotes"\n  /* multi\n  line */\n  "a": 1,\n  "b" 2\n}\n'
    with pytest.raises(QueueError) as e:
        jsonio.loads_jsonc(text, path=tmp_path / "q.jsonc")
    assert (e.value.line, e.value.column) == (6, 7)
    assert "q.jsonc:6:7" in str(e.value)


def test_dumps_pretty_keeps_key_order_and_is_plain_json():
    data = {"z": 1, "a": {"y": [1, "é"], "b": None}}
    out = jsonio.dumps_pretty(data)
    assert out.endswith(b"\n") and b"//" not in out
    assert list(json.loads(out)) == ["z", "a"]
    assert out.decode().splitlines()[1] == '  "z": 1,'
    assert json.loads(out) == data


def test_atomic_write_replaces_and_keeps_mode(tmp_path: Path):
    p = tmp_path / "f.json"
    p.write_text("old")
    p.chmod(0o600)
    jsonio.atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"new"
    assert p.stat().st_mode & 0o777 == 0o600
    assert [x.name for x in tmp_path.iterdir()] == ["f.json"]


def test_atomic_write_keeps_a_group_writable_mode_whatever_the_umask(tmp_path: Path):
    # A queue shared by a team is often 0664; a writer with umask 022 must not make it 0644.
    p = tmp_path / "f.json"
    p.write_text("old")
    p.chmod(0o664)
    old = os.umask(0o022)
    try:
        jsonio.atomic_write_bytes(p, b"new")
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o664


def test_enospc_during_write_leaves_old_file_and_no_temp(tmp_path: Path, monkeypatch):
    p = tmp_path / "f.json"
    p.write_bytes(b"previous")
    real_write = os.write

    def full_disk(fd: int, data) -> int:
        real_write(fd, bytes(data[:3]))  # part of the data lands, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jsonio.os, "write", full_disk)
    with pytest.raises(OSError) as e:
        jsonio.atomic_write_bytes(p, b"x" * 100_000)
    assert e.value.errno == errno.ENOSPC
    assert p.read_bytes() == b"previous"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["f.json"]


def test_file_size_limit_in_real_child_leaves_old_file_and_no_temp(tmp_path: Path):
    """A real kernel write failure: RLIMIT_FSIZE makes write(2) fail with EFBIG mid-file."""
    p = tmp_path / "f.json"
    p.write_bytes(b"previous")
    code = textwrap.dedent(
        f"""
        import resource, signal, sys
        from ralphnb.queue.jsonio import atomic_write_bytes
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            atomic_write_bytes({str(p)!r}, b"y" * 1_000_000)
        except OSError as e:
            print(e.errno); sys.exit(3)
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3, r.stderr
    assert int(r.stdout) == errno.EFBIG
    assert p.read_bytes() == b"previous"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["f.json"]


def test_sweep_removes_temp_of_dead_writer_only(tmp_path: Path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        stale = tmp_path / f".queue.jsonc{jsonio.TEMP_MARK}{dead.pid}-abcd"
        busy = tmp_path / f".queue.jsonc{jsonio.TEMP_MARK}{live.pid}-abcd"
        other = tmp_path / ".something-else"
        for f in (stale, busy, other):
            f.write_text("partial")
        assert jsonio.sweep_temp_files(tmp_path) == [stale]
        assert not stale.exists() and busy.exists() and other.exists()
    finally:
        live.kill()
        live.wait()


def test_a_comma_without_a_value_before_it_stays_an_error():
    for bad in ("[,]", '{"a": [1,,]}', "{,}"):
        with pytest.raises(QueueError):
            jsonio.loads_jsonc(bad)


@pytest.mark.parametrize("const", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_syntax_errors_not_values_written_back_as_null(const: str):
    # The stdlib parser accepts them; orjson would then write them back as null, a value
    # ralph's schema rejects. They must be refused where they stand, like any syntax error.
    text = '{\n  // a comment sends this to the slow path\n  "s": "NaN",\n  "x": ' + const + "\n}"
    with pytest.raises(QueueError) as info:
        jsonio.loads_jsonc(text, path="q.jsonc")
    assert (info.value.line, info.value.column) == (4, 8)
    assert const in str(info.value) and "q.jsonc:4:8" in str(info.value)
