"""Isolated workspaces: one directory per task, outside the user's checkout.

Owns: creating, finding and removing a task's workspace. In a git repository a workspace is a
linked worktree (`mode="worktree"`) or a separate local clone (`mode="clone"`) on branch
`ralph/<TASK_ID>` started from the target branch; outside git it is a copy of the directory
(`mode="copy"`) plus a manifest of what was copied (relative path -> sha256, size, exec bit;
`manifest(task_id)`), kept under the root's metadata, never inside the workspace, as the base of
copy.integrate_copy's three-way copy back. `.env*` files and `copy_ignored` paths that git
ignores are copied in; build outputs and caches (`.venv`, `node_modules`, ...) are not. Default
location: `<repo parent>/.workspaces/<repo name>/<TASK_ID>`. Also the record of the branches
ralphnb created (`created_branches()`; records.py).
Does not own: committing or merging work back (merge.py, copy.py).

Invariants:
- The user's checkout (index, working tree, HEAD, stash) is never modified: only refs
  (`ralph/<ID>`) and worktree bookkeeping under `.git/` are written.
- A bare repository, or a path inside a `.git` directory, is refused: there is no checkout.
- Task ids are validated before they become a path or branch; a path resolving outside the
  workspace root is refused. A workspace left from an earlier run is never overwritten:
  `create` raises unless `reuse=True`. A failed `create` leaves nothing behind (no directory,
  no branch it made), and a full disk is reported as such.
- Files are checked out sealed (sealed.py): no filter, hook or other program configured in the
  repository, or globally, runs; other git calls go through `run_git` (git.py).
- `remove` is idempotent and never raises; it deletes a branch only if ralphnb created it.

Untrusted agents: a linked worktree shares the main repository's `.git` (config, hooks, refs,
objects) and an agent can write there. ralphnb's own git calls never run what it plants, but
the user's own later `git` commands in the checkout would (repoconfig.py notices a changed
config). Give an untrusted agent a separate clone: `Workspaces(repo, mode="clone")` (or
`Loop(..., workspace_mode="clone")`). The clone has its own `.git` (objects copied, no
hardlinks), so nothing the agent writes there reaches the user's repository until ralphnb
fetches the finished branch back (`Workspaces.sync_branch`, over the local file transport
only). It is still the same OS user: real containment of a hostile agent needs a container or
a separate account.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import QueueError, WorkspaceError
from ..queue.ids import is_task_id, validate_task_id
from .files import COPY_EXCLUDE, excluded, rmtree, scan_tree
from .git import GitError, no_space, run_git
from .records import BranchRecords
from .sealed import Sealed, layout

log = logging.getLogger(__name__)

BRANCH_PREFIX = "ralph/"
_META_DIR = ".ralphnb-meta"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass
class Workspace:
    """One task's directory. `base` is the commit it started from (None for copies)."""

    task_id: str
    path: Path
    kind: str  # "worktree" | "clone" | "copy"
    branch: str | None
    base: str | None


def refuse_git_dir(path: Path) -> None:
    """Raise a one-line WorkspaceError if `path` is a bare repository or inside a `.git`
    directory: there is no checkout to work from (and `.ralph/` would land in git's files)."""
    r = run_git(["rev-parse", "--is-bare-repository", "--is-inside-git-dir"], path, check=False)
    flags = r.stdout.split() if r.returncode == 0 else []
    if ".git" in path.parts or "true" in flags:
        what = "a bare git repository" if flags[:1] == ["true"] else "inside a .git directory"
        raise WorkspaceError(
            f"{path} is {what}, not a checkout: point ralphnb at a checkout (the directory with "
            "your files and their .git), e.g. one made with `git clone`",
            path=path,
        )


class Workspaces:
    """Creates and tracks the workspaces of one repository (or plain directory)."""

    def __init__(
        self,
        repo: str | Path = ".",
        *,
        root: str | Path | None = None,
        mode: str = "auto",
        copy_ignored: Iterable[str] = (),
        target_branch: str | None = None,
        copy_exclude: Iterable[str] = COPY_EXCLUDE,
    ) -> None:
        if mode not in ("auto", "worktree", "clone", "copy"):
            raise WorkspaceError(
                f"unknown workspace mode {mode!r}: use auto, worktree, clone or copy"
            )
        repo = Path(repo).resolve()
        if not repo.is_dir():
            raise WorkspaceError(f"{repo} is not a directory", path=repo)
        refuse_git_dir(repo)
        top = run_git(["rev-parse", "--show-toplevel"], repo, check=False)
        self.is_git = top.returncode == 0 and bool(top.stdout.strip())
        self.repo = Path(top.stdout.strip()).resolve() if self.is_git else repo
        if mode == "auto":
            mode = "worktree" if self.is_git else "copy"
        if mode in ("worktree", "clone") and not self.is_git:
            raise WorkspaceError(
                f"mode={mode!r} needs a git repository; {repo} is not one (use mode='copy')",
                path=repo,
            )
        self.mode = mode
        self.root = Path(root) if root else self.repo.parent / ".workspaces" / self.repo.name
        self.root = self.root.expanduser().resolve()
        if self.root == self.repo or self.root.is_relative_to(self.repo):
            raise WorkspaceError(
                f"workspace root {self.root} is inside the checkout {self.repo}; workspaces must "
                "live outside it (default: <repo parent>/.workspaces/<repo name>)",
                path=self.root,
            )
        if self.repo.is_relative_to(self.root):
            raise WorkspaceError(
                f"workspace root {self.root} contains the checkout {self.repo}", path=self.root
            )
        self.copy_ignored = tuple(copy_ignored)
        self.copy_exclude = tuple(copy_exclude)
        self.target_branch = target_branch
        if self.is_git and target_branch is None:
            r = run_git(["symbolic-ref", "-q", "--short", "HEAD"], self.repo, check=False)
            self.target_branch = r.stdout.strip() or None  # None: detached HEAD
        self._lock = threading.Lock()
        self._records = BranchRecords(self.root / _META_DIR / "branches.json", self.repo)

    def __repr__(self) -> str:
        return f"<Workspaces {self.repo} mode={self.mode} root={self.root}>"

    # -------------------------------------------------------------- paths and metadata

    def path_for(self, task_id: str) -> Path:
        """The workspace path of a task id (validated; must resolve inside the root)."""
        try:
            validate_task_id(task_id)
            if not _SAFE_NAME.fullmatch(task_id):  # belt and braces: one plain path component
                raise QueueError(f"{task_id!r} is not a plain name", task_id=str(task_id))
        except QueueError as exc:
            raise WorkspaceError(
                f"refusing workspace for {task_id!r}: {exc}", task_id=str(task_id)
            ) from exc
        path = (self.root / task_id).resolve()
        if path.parent != self.root:
            raise WorkspaceError(
                f"workspace path {path} resolves outside the root {self.root}",
                path=path,
                task_id=task_id,
            )
        return path

    def _meta(self, task_id: str) -> Path:
        return self.root / _META_DIR / f"{task_id}.json"

    def manifest_path(self, task_id: str) -> Path:
        """Where a copy workspace's manifest lives: beside it, not inside it."""
        return self.root / _META_DIR / f"{task_id}.manifest.json"

    def manifest(self, task_id: str) -> dict | None:
        """A copy workspace's manifest ({"files": {path: state}, "exclude": [...]}), or None."""
        try:
            doc = json.loads(self.manifest_path(task_id).read_text())
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) and isinstance(doc.get("files"), dict) else None

    def _write_meta(self, ws: Workspace) -> None:
        m = self._meta(ws.task_id)
        m.parent.mkdir(parents=True, exist_ok=True)
        m.write_text(json.dumps({"kind": ws.kind, "branch": ws.branch, "base": ws.base}))

    # -------------------------------------------------------------- create

    def create(self, task_id: str, *, reuse: bool = False) -> Workspace:
        """Create the task's workspace. A leftover one raises, unless `reuse=True` returns it."""
        path = self.path_for(task_id)
        branch = BRANCH_PREFIX + task_id
        with self._lock:
            if path.exists() or path.is_symlink():
                ws = self.get(task_id)
                if reuse and ws is not None:
                    return ws
                raise WorkspaceError(
                    f"workspace for {task_id} already exists at {path} (left from an earlier "
                    f"run?): reuse it with create({task_id!r}, reuse=True) or delete it with "
                    f"remove({task_id!r})",
                    path=path,
                    task_id=task_id,
                )
            fresh = self.mode == "worktree" and not self._branch_exists(branch)
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                if self.mode == "copy":
                    ws = self._create_copy(task_id, path)
                else:
                    ws = self._create_git(task_id, path, reuse=reuse)
                    self._copy_extras(path, task_id)
                self._write_meta(ws)
            except BaseException as exc:
                full = isinstance(exc, OSError | GitError) and no_space(exc, self.root)
                self._remove_quiet(task_id, path)  # it did not exist before: ours to clean
                if fresh and self._branch_exists(branch):  # made by this call: no leftover
                    run_git(["branch", "-D", branch], self.repo, check=False)
                    self._records.forget(branch)
                if full:
                    raise WorkspaceError(
                        f"no space left on device for the workspace of {task_id} at {path}: "
                        "free some space there (or choose another workspace root) and retry",
                        path=path,
                        task_id=task_id,
                    ) from exc
                raise
            return ws

    def _create_git(self, task_id: str, path: Path, *, reuse: bool) -> Workspace:
        branch = BRANCH_PREFIX + task_id
        target = self.target_branch or "HEAD"
        r = run_git(["rev-parse", "--verify", "-q", f"{target}^{{commit}}"], self.repo, check=False)
        base = r.stdout.strip()
        if r.returncode != 0 or not base:
            raise WorkspaceError(
                f"target {target!r} is not a commit in {self.repo}; commit "
                "something first or set target_branch",
                path=self.repo,
                task_id=task_id,
            )
        existed = self._branch_exists(branch)
        if existed and not reuse:
            how = (
                f"remove({task_id!r}, delete_branch=True)"
                if branch in self._records.mine()
                else f"delete it yourself (git branch -D {branch}); ralphnb did not create it"
            )
            raise WorkspaceError(
                f"branch {branch} already exists (left from an earlier run?): pass reuse=True "
                f"to continue on it, or {how} to start over",
                path=path,
                task_id=task_id,
            )
        if self.mode == "worktree":
            # no checkout by git itself: files are checked out sealed below
            args = ["worktree", "add", "-q", "--no-checkout"]
            args += [str(path), branch] if existed else ["-b", branch, str(path), base]
            if run_git(args, self.repo, check=False, task_id=task_id).returncode != 0:
                run_git(["worktree", "prune"], self.repo, check=False)  # stale registration?
                run_git(args, self.repo, task_id=task_id)
            if not existed:
                self._records.add(branch, task_id)
        else:
            clone = ["clone", "-q", "--no-hardlinks", "--no-checkout", "--local"]
            run_git([*clone, str(self.repo), str(path)], self.root, task_id=task_id)
            if existed:  # continue on the branch the user's repository has
                fetch = ["fetch", "-q", "--no-tags", "--no-recurse-submodules"]
                run_git([*fetch, str(self.repo), f"{branch}:{branch}"], path, task_id=task_id)
            else:
                run_git(["update-ref", f"refs/heads/{branch}", base, ""], path, task_id=task_id)
            run_git(["symbolic-ref", "HEAD", f"refs/heads/{branch}"], path, task_id=task_id)
        start = run_git(["rev-parse", "--verify", f"refs/heads/{branch}"], path).stdout.strip()
        with Sealed(layout(path), work_tree=True) as s:
            s.git(["read-tree", "-m", "-u", start])
        if existed:
            base = self._merge_base(path, base) or base
        kind = "worktree" if self.mode == "worktree" else "clone"
        return Workspace(task_id, path, kind, branch, base)

    def _branch_exists(self, branch: str) -> bool:
        r = run_git(["rev-parse", "--verify", "-q", f"refs/heads/{branch}"], self.repo, check=False)
        return r.returncode == 0

    def _merge_base(self, path: Path, base: str) -> str | None:
        r = run_git(["merge-base", "HEAD", base], path, check=False)
        return r.stdout.strip() or None

    def _ignored(self, rels: list[str]) -> set[str]:
        if not rels:
            return set()
        r = run_git(["check-ignore", "--", *rels], self.repo, check=False)
        return {line.strip() for line in r.stdout.splitlines() if line.strip()}

    def _copy_extras(self, path: Path, task_id: str) -> None:
        """Copy `.env*` files and `copy_ignored` paths git ignores (never tracked/committable)."""
        rels = [p.name for p in self.repo.glob(".env*") if p.is_file()]
        for pattern in self.copy_ignored:
            rels += [str(p.relative_to(self.repo)) for p in self.repo.glob(pattern)]
        rels = sorted(set(rels))
        ignored = self._ignored(rels)
        for rel in rels:
            if rel not in ignored:
                log.warning(
                    "%s: not copying %s into the workspace: git does not ignore it, so "
                    "the agent's commit would include it",
                    task_id,
                    rel,
                )
                continue
            src, dst = self.repo / rel, path / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
            else:
                shutil.copy2(src, dst, follow_symlinks=False)

    def _create_copy(self, task_id: str, path: Path) -> Workspace:
        excl = self.copy_exclude
        root = self.root

        def ignore(d: str, names: list[str]) -> list[str]:
            out = [n for n in names if excluded(n, excl)]
            return out + [n for n in names if Path(d, n) == root]

        shutil.copytree(self.repo, path, symlinks=True, ignore=ignore)
        for sub in ("cache", "lock"):  # ralph's runtime state stays in the user's repo
            rmtree(path / ".ralph" / sub)
        # the base for a three-way copy back: hashed from the copy itself, so an edit the user
        # makes while copying is seen as the user's change, not mistaken for the base
        doc = {
            "version": 1,
            "task_id": task_id,
            "source": str(self.repo),
            "exclude": list(excl),
            "files": scan_tree(path, excl),
        }
        m = self.manifest_path(task_id)
        m.parent.mkdir(parents=True, exist_ok=True)
        tmp = m.with_name(m.name + ".tmp")
        tmp.write_text(json.dumps(doc, separators=(",", ":")))
        os.replace(tmp, m)
        return Workspace(task_id, path, "copy", None, None)

    # -------------------------------------------------------------- find

    def get(self, task_id: str) -> Workspace | None:
        """The existing workspace of a task, or None."""
        path = self.path_for(task_id)
        if not path.is_dir():
            return None
        meta: dict = {}
        with contextlib.suppress(OSError, ValueError):
            meta = json.loads(self._meta(task_id).read_text())
        dotgit = path / ".git"
        kind = meta.get("kind") or (
            "worktree" if dotgit.is_file() else "clone" if dotgit.is_dir() else "copy"
        )
        branch, base = meta.get("branch"), meta.get("base")
        if kind != "copy" and branch is None:
            r = run_git(["symbolic-ref", "-q", "--short", "HEAD"], path, check=False)
            branch = r.stdout.strip() or None
        return Workspace(task_id, path, kind, branch, base)

    def existing(self) -> list[Workspace]:
        """Every workspace found under the root (e.g. left over from an earlier run)."""
        if not self.root.is_dir():
            return []
        out = []
        for p in sorted(self.root.iterdir()):
            if p.is_dir() and is_task_id(p.name):
                ws = self.get(p.name)
                if ws is not None:
                    out.append(ws)
        return out

    # -------------------------------------------------------------- clone mode: branch back

    def sync_branch(self, ws: Workspace | str) -> str | None:
        """Clone mode: fetch the clone's `ralph/<ID>` into the user's repo; returns its commit.

        A no-op returning the branch commit for worktrees (the branch is already shared). The
        fetch uses the local file transport only and runs no hook; a branch it creates in the
        user's repository is recorded as ralphnb's.
        """
        ws = ws if isinstance(ws, Workspace) else self.get(ws)
        if ws is None or ws.branch is None:
            return None
        if ws.kind == "clone":
            existed = self._branch_exists(ws.branch)
            fetch = ["fetch", "-q", "--no-tags", "--no-recurse-submodules", str(ws.path)]
            run_git([*fetch, f"+{ws.branch}:{ws.branch}"], self.repo, task_id=ws.task_id)
            if not existed:
                try:
                    self._records.add(ws.branch, ws.task_id)
                except OSError as exc:  # the branch then stays when its task is done
                    log.warning("could not record branch %s as ralphnb's: %s", ws.branch, exc)
        r = run_git(
            ["rev-parse", "--verify", "-q", f"refs/heads/{ws.branch}"], self.repo, check=False
        )
        return r.stdout.strip() or None

    def created_branches(self) -> dict[str, str]:
        """task id -> branch, for every branch ralphnb created here that still exists."""
        if not self.is_git:
            return {}
        return {t: b for b, t in sorted(self._records.mine().items()) if self._branch_exists(b)}

    def keep_branch(self, task_id: str) -> None:
        """Hand task `task_id`'s branch to the user: ralphnb forgets it made it, so no later
        `remove(..., delete_branch=True)` deletes it (git_publish_mode off). Never raises."""
        self._records.forget(BRANCH_PREFIX + task_id)

    # -------------------------------------------------------------- remove

    def remove(self, ws_or_task_id: Workspace | str, *, delete_branch: bool = False) -> None:
        """Delete a workspace, and with `delete_branch` its branch if ralphnb created it (a
        branch it did not make is never deleted). Idempotent; never raises."""
        try:
            task_id = (
                ws_or_task_id.task_id if isinstance(ws_or_task_id, Workspace) else ws_or_task_id
            )
            path = self.path_for(task_id)
            branch = BRANCH_PREFIX + task_id
            with self._lock:
                self._remove_quiet(task_id, path)
                if not (delete_branch and self.is_git):
                    return
                if branch not in self._records.mine():
                    log.info("leaving branch %s: ralphnb did not create it", branch)
                    return
                r = run_git(["branch", "-D", branch], self.repo, check=False)
                if r.returncode == 0 or not self._branch_exists(branch):
                    self._records.forget(branch)
                else:
                    log.warning("could not delete branch %s: %s", branch, r.stderr.strip())
        except Exception as exc:
            log.warning("could not remove workspace %r: %s", ws_or_task_id, exc)

    def _remove_quiet(self, task_id: str, path: Path) -> None:
        try:
            if self.is_git and (path / ".git").is_file():
                r = run_git(
                    ["worktree", "remove", "--force", "--force", str(path)], self.repo, check=False
                )
                if r.returncode != 0 and path.exists():
                    log.info(
                        "git worktree remove failed for %s (%s); deleting the directory",
                        path,
                        r.stderr.strip(),
                    )
            rmtree(path)
            if self.is_git:
                run_git(["worktree", "prune"], self.repo, check=False)
            for meta in (self._meta(task_id), self.manifest_path(task_id)):
                with contextlib.suppress(OSError):
                    meta.unlink()
        except Exception as exc:
            log.warning("could not remove workspace %s: %s", path, exc)
