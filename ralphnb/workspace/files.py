"""Plain files of a workspace, without git: what is at a path, the scan of a tree, removal.

Owns: `COPY_EXCLUDE` (build outputs and caches never copied or copied back), `path_state`
(what is at a path, never following a final symlink), `scan_tree` (every file and link under a
directory), and `rmtree` (removal that copes with read-only directories an agent left).
Never: runs git or writes outside the path it is given.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path

COPY_EXCLUDE: tuple[str, ...] = (
    ".git",
    ".venv",
    "venv",
    "node_modules",
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".tox",
    ".nox",
    ".ipynb_checkpoints",
    ".cache",
    ".gradle",
    ".next",
    ".workspaces",
)


def rmtree(path: Path) -> None:
    def fix(func, p, exc):  # an agent may leave read-only dirs behind
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), stat.S_IRWXU)
            os.chmod(p, stat.S_IRWXU)
        with contextlib.suppress(FileNotFoundError):
            func(p)

    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, onerror=fix)


def excluded(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in patterns)


def path_state(path: Path) -> dict | None:
    """What is at `path`, without following a final symlink: None (absent), {"dir": True},
    {"link": target}, {"sha256", "size", "x"} for a regular file, {"other": True} otherwise."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISLNK(st.st_mode):
        return {"link": os.readlink(path)}
    if stat.S_ISDIR(st.st_mode):
        return {"dir": True}
    if not stat.S_ISREG(st.st_mode):
        return {"other": True}
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return {"sha256": h.hexdigest(), "size": st.st_size, "x": bool(st.st_mode & 0o111)}


def scan_tree(
    top: Path, exclude: Iterable[str] = COPY_EXCLUDE, *, skip: Path | None = None
) -> dict[str, dict]:
    """Every regular file and symlink under `top` (relative posix path -> `path_state`),
    leaving out names matching `exclude` at any depth and the directory `skip`. Symlinked
    directories are recorded as links, never followed."""
    excl = tuple(exclude)
    out: dict[str, dict] = {}
    for d, dirs, files in os.walk(top):
        here = Path(d)
        keep = []
        for n in dirs:
            if excluded(n, excl) or (skip is not None and here / n == skip):
                continue
            if (here / n).is_symlink():
                files.append(n)
            else:
                keep.append(n)
        dirs[:] = keep
        for n in files:
            if excluded(n, excl):
                continue
            state = path_state(here / n)
            if state is not None and "other" not in state:
                out[(here / n).relative_to(top).as_posix()] = state
    return out
