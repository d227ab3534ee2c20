"""Facts about paths that several rooms must agree on: is this a git directory, what kind of
file is this.

Owns: `git_dir_of` (a bare repository, or a path inside a `.git` directory, where no work
tree exists to put `.ralph/` or a workspace in) and `not_a_file` (a directory, FIFO or device
where a regular file is expected — reading a FIFO or `/dev/zero` would block or never end).
Invariants: pure reads of the filesystem (`stat`, existence checks); never runs git, never
opens a file's contents.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def not_a_file(path: str | os.PathLike[str]) -> str | None:
    """What `path` is when it exists but is not a regular file (following links), else None."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def _is_bare_repo(p: Path) -> bool:
    return (p / "HEAD").is_file() and (p / "objects").is_dir() and (p / "refs").is_dir()


def git_dir_of(path: str | os.PathLike[str]) -> Path | None:
    """The git directory `path` is (a bare repository) or lies inside (`.git/...`), else None."""
    p = Path(path).resolve()
    for candidate in (p, *p.parents):
        if candidate.name == ".git" or (
            _is_bare_repo(candidate) and not (candidate / ".git").exists()
        ):
            return candidate
    return None
