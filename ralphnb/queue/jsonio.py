"""JSON(C) reading and atomic writing for the queue files.

Owns: parsing JSONC (comments, trailing commas) with errors that point at the true 1-based line
and column; plain pretty JSON output that keeps key order; atomic replacement of a file (temp in
the same directory, fsync, rename, fsync of the directory) and the sweep of temp files a killed
writer left behind.

Invariants: plain JSON takes the fast path (orjson) and is never rewritten; the JSONC cleaner
only blanks characters (never removes them), so positions in errors are positions in the file;
a failed write removes its temp file and leaves the target untouched; `replace_if_unchanged`
never overwrites a save it did not read (compare-and-swap).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

import orjson

from ..errors import QueueError

TEMP_MARK = ".ralphnb-tmp-"

# A JSON string, a // comment, or a /* */ comment; strings are matched first so that
# "http://x" stays untouched.
_TOKEN_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"|//[^\n]*|/\*[\s\S]*?\*/')
# A comma followed only by whitespace before a closing bracket (run after comments are blanked).
_TRAILING_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"|,(?=\s*[\]}])')


def _blank(m: re.Match[str]) -> str:
    s = m.group(0)
    if s[0] == '"':
        return s
    # Keep newlines so line numbers stay true; everything else becomes a space.
    return re.sub(r"[^\n]", " ", s)


def _drop_comma(m: re.Match[str]) -> str:
    s = m.group(0)
    if s[0] == '"':
        return s
    text, i = m.string, m.start() - 1
    while i >= 0 and text[i] in " \t\r\n":
        i -= 1
    # Only a comma after a value is a trailing comma; `[,]` stays a syntax error.
    return s if i < 0 or text[i] in "[{," else " "


def strip_jsonc(text: str) -> str:
    """`text` with comments and trailing commas replaced by spaces (same length, same lines)."""
    return _TRAILING_RE.sub(_drop_comma, _TOKEN_RE.sub(_blank, text))


def loads_jsonc(text: str | bytes, *, path: str | Path | None = None) -> Any:
    """Parse JSON, or JSONC on the slow path; `QueueError` with line/column on bad syntax."""
    try:
        return _loads_jsonc(text, path)
    except RecursionError:  # the stdlib fallback on arrays/objects nested thousands deep
        raise QueueError(
            f"{path or '<text>'}: nested too deeply to be a task file; fix the file by hand "
            "(nothing was written)",
            path=path,
        ) from None


def _loads_jsonc(text: str | bytes, path: str | Path | None) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise QueueError(f"{path or '<text>'}: not UTF-8 ({e})", path=path) from None
    cleaned = strip_jsonc(text)
    try:
        return orjson.loads(cleaned)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(cleaned, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        line, column, msg = e.lineno, e.colno, e.msg
    except _NotJSON as e:
        # The stdlib reads NaN/Infinity, which JSON (and ralph) reject and orjson would write
        # back as null: refuse them here, pointing at the first one.
        line, column = _position(cleaned, e.pos)
        msg = f"{e.name} is not a JSON number"
    raise QueueError(
        f"{path or '<text>'}:{line}:{column}: JSON syntax error: {msg}; fix the file by hand "
        "(nothing was written)",
        path=path,
        line=line,
        column=column,
    )


class _NotJSON(ValueError):
    def __init__(self, name: str, pos: int) -> None:
        super().__init__(name)
        self.name, self.pos = name, pos


# A JSON string (skipped) or one of the non-JSON constants the stdlib accepts.
_CONSTANT_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"|-?(?:NaN|Infinity)')


def _reject_constant(name: str) -> Any:
    raise _NotJSON(name, -1)


def _position(text: str, pos: int) -> tuple[int, int]:
    """1-based line and column of the first NaN/Infinity outside a string (or of `pos`)."""
    for m in _CONSTANT_RE.finditer(text):
        if m.group(0)[0] != '"':
            pos = m.start()
            break
    pos = max(pos, 0)
    return text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)


def read_jsonc(path: str | Path) -> Any:
    """Read and parse one JSON(C) file."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise QueueError(f"{p}: file not found", path=p) from None
    return loads_jsonc(data, path=p)


def dumps_pretty(obj: Any) -> bytes:
    """Plain JSON, 2-space indent, key order kept, trailing newline."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n"
    except TypeError:  # e.g. integers beyond 64 bits: the stdlib handles them
        return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def fsync_dir(directory: str | Path) -> None:
    """fsync a directory so a rename inside it is durable (best effort where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_temp(p: Path, data: bytes) -> Path:
    """`data` in a fsynced temp file beside `p`, with `p`'s exact mode (or 0644 when new)."""
    tmp = p.with_name(f".{p.name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")
    try:
        mode: int | None = os.stat(p).st_mode & 0o777
    except FileNotFoundError:
        mode = None
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644 if mode is None else mode)
    try:
        try:
            if mode is not None:
                os.fchmod(fd, mode)  # exactly the old mode: the umask must not narrow it
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace `path` with `data` atomically: a reader sees the old file or the new, never a mix.

    The temp file lives in the same directory (`.<name>.ralphnb-tmp-<pid>-<hex>`); on any
    failure (ENOSPC, EFBIG, an interrupt) it is removed and the target is left as it was.
    """
    p = Path(path)
    tmp = _write_temp(p, data)
    try:
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(p.parent)


def read_or_none(p: Path) -> bytes | None:
    """The bytes of `p`, or None when it does not exist."""
    try:
        return p.read_bytes()
    except FileNotFoundError:
        return None


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux `renameat2(RENAME_EXCHANGE)`); False where the
    C library or the filesystem cannot."""
    if _renameat2 is None:
        return False
    rc = _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def replace_if_unchanged(path: str | Path, data: bytes, expected: bytes | None) -> bool:
    """Compare-and-swap: replace `path` with `data` atomically only while it still holds
    `expected` (None: while it does not exist). False, with the file left as another writer
    left it, when it changed since the caller read it: the caller re-reads and re-applies.

    The new file is swapped in with one atomic exchange; the file it displaced is compared with
    `expected`, and a save that landed between the compare and the swap (a person's editor) is
    swapped back, so it is never lost. Without exchange support the compare is made just before
    a plain rename.
    """
    p = Path(path)
    tmp = _write_temp(p, data)
    try:
        if read_or_none(p) != expected:
            return False
        try:
            swapped = expected is not None and exchange(tmp, p)
        except FileNotFoundError:  # removed since the compare: changed
            return False
        if swapped:
            if read_or_none(tmp) != expected:  # saved by someone between compare and swap
                exchange(tmp, p)
                return False
        else:
            os.replace(tmp, p)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    fsync_dir(p.parent)
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_temp_files(directory: str | Path) -> list[Path]:
    """Remove temp files of `atomic_write_bytes` whose writer process is gone.

    Returns the removed paths. Files of a live writer (another process mid-write) are kept.
    """
    removed: list[Path] = []
    d = Path(directory)
    try:
        entries = list(os.scandir(d))
    except FileNotFoundError:
        return removed
    for entry in entries:
        name = entry.name
        i = name.find(TEMP_MARK)
        if i < 0 or not name.startswith("."):
            continue
        pid_part = name[i + len(TEMP_MARK) :].split("-", 1)[0]
        try:
            pid = int(pid_part)
        except ValueError:
            continue
        if pid == os.getpid() or _pid_alive(pid):
            continue  # a live writer (or our own) finishes or cleans up itself
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed
