"""What a task's workspace changes against the target branch: `Diff` and `task_diff`.

Owns: `task_diff(workspace, target)`, which asks git for the change from the merge base of
`target` and the workspace's HEAD to that HEAD, one `FileDiff` per file (path, status, added
and removed lines, its unified diff), and `parse_patch`, the pure split of git's output into
those files. `Diff.stat` is the per-file summary as a small DataFrame.
Never: renders HTML (that is `view.diffview`), changes the workspace, its index or a ref.
Invariants: git runs sealed (`sealed.Sealed`): no diff driver, textconv, external diff or
attribute of the repository runs; ralph's own files (`.ralph/`, never merged) are left out,
as the merge leaves them out; the texts are str that JSON can carry (bytes that are not UTF-8
are replaced).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import WorkspaceError
from .git import GitError, run_git
from .merge import KEEP_OUT, rev
from .sealed import Sealed, layout

_STATUS = {
    "A": "added",
    "M": "modified",
    "D": "deleted",
    "R": "renamed",
    "C": "copied",
    "T": "type changed",
}


@dataclass(frozen=True)
class FileDiff:
    """One file's change. `added`/`removed` are None for a binary file."""

    path: str
    status: str  # added, modified, deleted, renamed, copied, type changed
    added: int | None
    removed: int | None
    patch: str  # the unified diff of this file, headers included
    old_path: str | None = None  # a renamed or copied file's former path

    @property
    def binary(self) -> bool:
        return self.added is None


@dataclass(frozen=True)
class Diff:
    """The change of task `task_id` against `target`: from `base` (their merge base) to `head`."""

    task_id: str
    target: str
    base: str
    head: str
    files: tuple[FileDiff, ...] = field(default_factory=tuple)

    @property
    def added(self) -> int:
        return sum(f.added or 0 for f in self.files)

    @property
    def removed(self) -> int:
        return sum(f.removed or 0 for f in self.files)

    @property
    def stat(self) -> Any:
        """One row per file: path, status, added, removed (Int64; missing for binary files)."""
        import pandas as pd

        return pd.DataFrame(
            {
                "path": pd.array([f.path for f in self.files], dtype="string"),
                "status": pd.array([f.status for f in self.files], dtype="string"),
                "added": pd.array([f.added for f in self.files], dtype="Int64"),
                "removed": pd.array([f.removed for f in self.files], dtype="Int64"),
            }
        )

    @property
    def patch(self) -> str:
        """The whole unified diff."""
        return "".join(f.patch for f in self.files)

    def summary(self) -> str:
        n = len(self.files)
        return (
            f"{self.task_id}: {n} file{'s' if n != 1 else ''} changed, +{self.added} "
            f"-{self.removed} against {self.target} ({self.base[:10]}..{self.head[:10]})"
        )

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        lines = [self.summary()]
        for f in self.files:
            counts = "binary" if f.binary else f"+{f.added} -{f.removed}"
            lines.append(f"  {f.status:<9} {f.path}  {counts}")
        return "\n".join(lines)


def _text(s: str) -> str:
    """git's output read with surrogateescape -> text JSON can carry."""
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _name_status(out: str) -> list[tuple[str, str, str | None]]:
    """`--name-status -z` output -> [(status, path, old path)] in git's order."""
    parts = out.split("\0")
    found: list[tuple[str, str, str | None]] = []
    i = 0
    while i < len(parts) and parts[i]:
        code = parts[i][0]
        if code in "RC":
            found.append((_STATUS[code], _text(parts[i + 2]), _text(parts[i + 1])))
            i += 3
        else:
            found.append((_STATUS.get(code, "modified"), _text(parts[i + 1]), None))
            i += 2
    return found


def _count(chunk: str) -> tuple[int | None, int | None]:
    """Added and removed lines of one file's patch; (None, None) for a binary file."""
    added = removed = 0
    in_hunk = False
    for line in chunk.splitlines():
        if line.startswith("@@"):
            in_hunk = True
        elif not in_hunk:
            if line.startswith("Binary files ") or line == "GIT binary patch":
                return None, None
        elif line.startswith("+"):
            added += 1
        elif line.startswith("-"):
            removed += 1
    return added, removed


def parse_patch(patch: str, names: list[tuple[str, str, str | None]]) -> list[FileDiff]:
    """Split `git diff` output into files, matched in order with `--name-status` entries."""
    chunks: list[str] = []
    for line in _text(patch).splitlines(keepends=True):
        if line.startswith("diff --git ") or not chunks:
            chunks.append(line)
        else:
            chunks[-1] += line
    files = []
    for (status, path, old), chunk in zip(names, chunks, strict=False):
        added, removed = _count(chunk)
        files.append(FileDiff(path, status, added, removed, chunk, old))
    return files


def merge_base(path: str | Path, target: str, head: str, fallback: str | None) -> str:
    """The merge base of `target` and `head` seen from the workspace at `path`; `fallback`
    (the commit the workspace started from) when git finds none."""
    r = run_git(["merge-base", target, head], path, check=False)
    base = r.stdout.strip() if r.returncode == 0 else (fallback or "")
    if not base:
        raise WorkspaceError(f"no common commit of {target} and the workspace at {path}")
    return base


def task_diff(
    task_id: str, path: str | Path, target: str, *, base: str | None = None, context: int = 3
) -> Diff:
    """The committed change of the git workspace at `path` against branch `target`.
    `base`: the workspace's starting commit, used when git finds no merge base."""
    head = rev(path, "HEAD")
    if head is None:
        raise WorkspaceError(f"{task_id}: the workspace at {path} has no commit to compare")
    start = merge_base(path, target, head, base)
    opts = ["-M", "--no-ext-diff", "--no-textconv", "--no-color"]
    spec = ["--", ".", *(f":(exclude){p}" for p in KEEP_OUT)]
    try:
        with Sealed(layout(path)) as s:
            names = s.git(["diff", "--name-status", "-z", *opts, start, head, *spec]).stdout
            patch = s.git(["diff", f"-U{int(context)}", *opts, start, head, *spec]).stdout
    except GitError as exc:
        raise WorkspaceError(f"{task_id}: cannot compute the diff: {exc}") from exc
    files = parse_patch(patch, _name_status(names))
    return Diff(task_id, target, start, head, tuple(files))


__all__ = ["Diff", "FileDiff", "merge_base", "parse_patch", "task_diff"]
