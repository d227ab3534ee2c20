"""What a failed write means for a run: is it a full disk, and how to say so in one line.

Owns: `no_space(exc)` (the error, or any error that caused it, is ENOSPC/EDQUOT, a git command
that said so, or a message of ours that says "no space left on device") and `describe(exc)`
(one line naming the file that could not be written and why). A full disk is a condition of
the whole run, not of one task: the loop halts on it (scheduler, core) rather than failing
every task in turn.
`with_file` names the file of an OSError that named none. Invariants: no I/O; never raise.
"""

from __future__ import annotations

import errno
import os

from ..workspace.git import GitError
from ..workspace.git import no_space as git_no_space

NO_SPACE = "no space left on device"


def with_file(exc: OSError, path: str | os.PathLike[str]) -> OSError:
    """`exc`, naming `path` as its file if it named none (`os.write` names no file)."""
    if not exc.filename:
        exc.filename = os.fspath(path)
    return exc


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and the errors it was raised from or while handling, innermost last."""
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in out and len(out) < 20:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def no_space(exc: BaseException) -> bool:
    """Whether `exc` failed for a full disk (or an exhausted quota)."""
    for e in _chain(exc):
        if isinstance(e, OSError | GitError) and git_no_space(e):
            return True
        if NO_SPACE in str(e).lower():
            return True
    return False


_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO)


def describe(exc: BaseException, path: str | os.PathLike[str] | None = None) -> str:
    """One line: "could not write FILE: no space left on device" for a write that failed (the
    file from the error, else `path`), else the error's own message (with "no space left on
    device" added when that is what caused it)."""
    if isinstance(exc, OSError) and exc.errno:
        where = exc.filename or path
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        why = NO_SPACE if full else exc.strerror
        if exc.errno in _WRITE_ERRNOS:
            return f"could not write {where}: {why}" if where else why
        return f"{where}: {why}" if where else why
    text = " ".join(str(exc).split()) or type(exc).__name__
    if no_space(exc) and NO_SPACE not in text.lower():
        text = f"{text} ({NO_SPACE})"
    return text
