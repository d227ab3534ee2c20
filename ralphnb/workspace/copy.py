"""Integration for copy workspaces (outside git): a three-way copy back, file by file.

Owns: `plan_copy`, the pure decision (given the manifest's base, the workspace's state and the
user's state of each path, which changes apply and which conflict), and `integrate_copy`, the
thin I/O around it: scan the workspace, read the user's files, decide, then apply.
Invariants, as `git merge` has them:
- A change is applied only where the user's file still equals the manifest's base (or both are
  absent for an added path); where both sides changed a path differently it is a conflict, and
  then NOTHING is applied: every path is checked before the first write. Identical edits on both
  sides are fine.
- Each write is atomic (a temp file in the same directory, fsync, rename); a deletion is one
  unlink. Nothing is written through a symlinked or non-directory parent in the user's tree.
- Excluded names (`.git`, `.ralph`, `.venv`, `node_modules`, `__pycache__`, ...) and the
  `keep_out` paths (the queue files) are never copied back, whatever the agent left there; the
  result's `dropped` names the changes so left under `.ralph/` and in `keep_out`.
- A symlink the agent made that leads outside the tree (absolute, `..` past the top, or into a
  `.git`) is a conflict naming it, as in git modes (guards.link_escapes).
Callers serialise integrations (the Loop holds its merge lock), so two tasks that edit the same
file integrate one after the other, and the second sees the first's edit as the user's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..queue.jsonio import fsync_dir
from .files import COPY_EXCLUDE, path_state, scan_tree
from .guards import link_escapes
from .merge import MergeResult

State = Mapping[str, object] | None  # see workspace.path_state; None = absent
NEVER_BACK: tuple[str, ...] = (".git", ".ralph", *COPY_EXCLUDE)


@dataclass(frozen=True)
class CopyPlan:
    """`apply`: path -> the workspace's state to install (None: delete), in path order;
    `conflicts`: paths both sides changed differently; `same`: changed identically on both."""

    apply: dict[str, State] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)
    same: list[str] = field(default_factory=list)


def plan_copy(
    base: Mapping[str, State], ours: Mapping[str, State], theirs: Mapping[str, State]
) -> CopyPlan:
    """Three-way decision per path. `base`: the manifest (what was copied); `ours`: the
    workspace now; `theirs`: the user's directory now, for (at least) every path that differs
    between base and ours; a missing key means absent. Pure: no I/O."""
    apply: dict[str, State] = {}
    conflicts: list[str] = []
    same: list[str] = []
    for p in sorted(set(base) | set(ours)):
        b, o = base.get(p), ours.get(p)
        if o == b:
            continue  # the agent did not touch it
        t = theirs.get(p)
        if t == o:
            same.append(p)
        elif t == b:
            apply[p] = o
        else:
            conflicts.append(p)
    return CopyPlan(apply, conflicts, same)


def changed_paths(base: Mapping[str, State], ours: Mapping[str, State]) -> list[str]:
    return sorted(p for p in set(base) | set(ours) if base.get(p) != ours.get(p))


def user_state(repo: Path, rel: str) -> State:
    """The user's state of `rel`, or {"blocked": component} when a parent in the user's tree is
    a symlink or not a directory (writing there could land outside the tree): a conflict."""
    here = repo
    for part in Path(rel).parts[:-1]:
        here = here / part
        st = path_state(here)
        if st is None:
            return None
        if st != {"dir": True}:
            return {"blocked": here.relative_to(repo).as_posix()}
    return path_state(repo / rel)


def _safe_rel(rel: object) -> bool:
    """A plain relative path inside the tree: no absolute path, no `..`, no empty part."""
    if not isinstance(rel, str) or not rel or "\0" in rel:
        return False
    parts = rel.split("/")
    return not rel.startswith("/") and all(p not in ("", ".", "..") for p in parts)


def _excluded_path(rel: str, exclude: Iterable[str]) -> bool:
    from fnmatch import fnmatch

    pats = tuple(exclude)
    return any(fnmatch(part, p) for part in Path(rel).parts for p in pats)


def _check_manifest(workspace: Path, manifest: Mapping | None) -> MergeResult | None:
    """A conflict when the manifest is missing or names paths outside the tree, else None."""
    if manifest is None or not isinstance(manifest.get("files"), Mapping):
        return MergeResult(
            "conflict",
            message=(
                f"no manifest of what was copied into {workspace}, so its changes cannot be told "
                "apart from yours; copy what you want by hand and remove the workspace"
            ),
        )
    unsafe = sorted(p for p in manifest["files"] if not _safe_rel(p))
    if unsafe:  # the manifest is not ours to trust blindly: it must name paths inside the tree
        return MergeResult(
            "conflict",
            paths=unsafe,
            message=(
                f"the manifest of {workspace} lists paths outside the tree ({', '.join(unsafe)}); "
                "nothing was copied back; copy what you want by hand"
            ),
        )
    return None


def integrate_copy(
    repo: str | Path,
    workspace: str | Path,
    manifest: Mapping | None,
    *,
    exclude: Iterable[str] = NEVER_BACK,
    keep_out: Iterable[str] = (),
) -> MergeResult:
    """Bring a copy workspace's changes back into `repo` (see the module docstring).

    -> MergeResult `integrated` (message lists what was applied), `noop` (nothing to bring
    back), or `conflict` (paths; nothing applied, the workspace stays as it is). `keep_out`:
    more paths never copied back (the queue files, wherever the config puts them); the
    result's `dropped` lists the changes left behind under `.ralph/` or in `keep_out`.
    """
    repo, workspace = Path(repo), Path(workspace)
    refused = _check_manifest(workspace, manifest)
    if refused is not None:
        return refused
    assert manifest is not None  # _check_manifest refuses a missing one
    kept = tuple(keep_out)
    dropped = _dropped(workspace, manifest["files"], kept)
    excl = (*NEVER_BACK, *(manifest.get("exclude") or ()), *exclude)
    base = {
        p: s for p, s in manifest["files"].items() if not _excluded_path(p, excl) and p not in kept
    }
    ours = {p: s for p, s in scan_tree(workspace, excl).items() if p not in kept}
    changed = changed_paths(base, ours)
    links = sorted(
        p for p in changed if "link" in (ours.get(p) or {}) and link_escapes(p, ours[p]["link"])
    )
    if links:
        return MergeResult(
            "conflict",
            paths=links,
            message=f"symlinks pointing outside the tree: {', '.join(links)}; nothing was "
            f"copied back; the agent's version is in {workspace}",
            dropped=dropped,
        )
    theirs = {p: user_state(repo, p) for p in changed}
    plan = plan_copy(base, ours, theirs)
    if plan.conflicts:
        return MergeResult(
            "conflict",
            paths=plan.conflicts,
            message=(
                "you and the agent both changed " + ", ".join(plan.conflicts) + "; nothing was "
                f"copied back; the agent's version is in {workspace}"
            ),
            dropped=dropped,
        )
    if not plan.apply:
        return MergeResult(
            "noop",
            message="nothing to copy back"
            if not plan.same
            else "your files already have the agent's changes",
            dropped=dropped,
        )
    return _apply(repo, workspace, plan, dropped)


def _apply(repo: Path, workspace: Path, plan: CopyPlan, dropped: list[str]) -> MergeResult:
    """Apply a conflict-free plan, path by path; stop at the first write that fails."""
    done: list[str] = []
    # deletions first: the agent may have replaced a file by a directory of the same name
    order = sorted(plan.apply, key=lambda p: (plan.apply[p] is not None, p))
    for rel in order:
        try:
            if plan.apply[rel] is None:
                _delete(repo, rel)
            else:
                _install(workspace / rel, repo / rel)
        except OSError as exc:
            return MergeResult(
                "conflict",
                paths=[rel],
                message=(
                    f"could not write {rel} into {repo}: {exc}; applied before it: "
                    f"{', '.join(done) or 'nothing'}; the workspace is kept"
                ),
                dropped=dropped,
            )
        done.append(rel)
    return MergeResult(
        "integrated",
        paths=done,
        message=f"copied back {len(done)} change(s): {', '.join(done)}",
        dropped=dropped,
    )


def _dropped(workspace: Path, base: Mapping[str, State], keep_out: tuple[str, ...]) -> list[str]:
    """The agent's changes under `.ralph/` and to `keep_out` paths: never copied back."""
    ours = {f".ralph/{p}": s for p, s in scan_tree(workspace / ".ralph", ()).items()}
    ours.update({p: path_state(workspace / p) for p in keep_out if _safe_rel(p)})
    mine = {p: s for p, s in base.items() if p.startswith(".ralph/") or p in keep_out}
    return sorted(p for p in set(mine) | set(ours) if mine.get(p) != ours.get(p))


def _install(src: Path, dst: Path) -> None:
    """Atomically replace `dst` with `src` (a regular file or a symlink)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".ralphnb-tmp", dir=dst.parent)
    tmp = Path(tmp_name)
    try:
        if src.is_symlink():
            os.close(fd)
            tmp.unlink()
            os.symlink(os.readlink(src), tmp)
        else:
            with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
                shutil.copyfileobj(inp, out, 1 << 20)
                out.flush()
                os.fchmod(out.fileno(), os.stat(src).st_mode & 0o7777)
                os.fsync(out.fileno())
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):
        fsync_dir(dst.parent)


def _delete(repo: Path, rel: str) -> None:
    """Unlink the user's file; then remove parent directories this left empty (as git does)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(repo / rel)
    parent = (repo / rel).parent
    while parent != repo:
        try:
            parent.rmdir()  # only if empty
        except OSError:
            break
        parent = parent.parent


__all__ = ["CopyPlan", "NEVER_BACK", "changed_paths", "integrate_copy", "plan_copy", "user_state"]
