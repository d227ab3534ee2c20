"""Integration: a finished workspace's branch back into the target branch, safely.

Owns: committing what an agent left uncommitted (`<ID>: <title>`, ralph's format), keeping
everything under `.ralph/` (and the queue files wherever the config puts them) out of the
merge, refusing what must not land in the user's checkout (links pointing outside the
repository; files that need a filter driver to be checked out), computing the merge with
`git merge-tree --write-tree` (no working tree touched), and moving the target branch: inside
the checkout that has it checked out by a fast-forward of that checkout (refused when it would
overwrite the user's uncommitted or untracked files: then the result is `blocked`, nothing
moved), else with a compare-and-swap `git update-ref`. Also `commit_bookkeeping`, which commits
only the queue files, leaving the user's other staged and unstaged changes as they are.

Invariants: every command that reads or writes file contents, merges or commits runs sealed
(`sealed.Sealed`: none of the repository's config, attributes or hooks, no global config), so
no filter, merge or diff driver, gpg program or include an agent planted ever runs; commits are
built with plumbing and never signed. Never moves a checked-out branch's ref behind its
checkout's back; holds the checkout's `index.lock` while updating it, as git does. Callers
serialise integrations.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .git import GitError, git_env, no_space, run_git
from .guards import drop_kept_out, link_escapes, needs_filter
from .sealed import Layout, Sealed, index_lock, layout, parse_z_pairs, replace_index

QUEUE_FILES: tuple[str, ...] = (".ralph/queue.jsonc", ".ralph/done.jsonc")
KEEP_OUT: tuple[str, ...] = (".ralph",)  # ralph's and ralphnb's own files: never merged
_FALLBACK = ("ralphnb", "ralphnb@localhost")


@dataclass
class MergeResult:
    """What happened: `integrated` (commit set), `conflict` (paths), `blocked` (message says
    why; retry later), or `noop` (the branch had nothing new). `dropped`: paths the branch
    changed that were kept out on purpose (under `.ralph/`, the queue files)."""

    status: str
    commit: str | None = None
    paths: list[str] = field(default_factory=list)
    message: str = ""
    dropped: list[str] = field(default_factory=list)


def git(args: list[str], cwd: str | Path, *, check: bool = True, env: dict[str, str] | None = None):
    """Run git in the real repository (refs, worktrees, listings; delegates to run_git)."""
    return run_git(args, cwd, check=check, env=env)


def identity(repo: str | Path) -> dict[str, str]:
    """GIT_AUTHOR_*/GIT_COMMITTER_* for ralphnb's commits: the caller's environment, else the
    user's configured name and email, else a fallback (sealed commands read no config)."""
    cfg = [
        git(["config", k], repo, check=False).stdout.strip() for k in ("user.name", "user.email")
    ]
    out = {}
    for who in ("AUTHOR", "COMMITTER"):
        for i, what in enumerate(("NAME", "EMAIL")):
            var = f"GIT_{who}_{what}"
            out[var] = os.environ.get(var) or cfg[i] or _FALLBACK[i]
    return out


def identity_env(repo: str | Path) -> dict[str, str]:
    """The environment for commits: `git_env()` plus `identity(repo)`."""
    return {**git_env(), **identity(repo)}


def _ident(env: dict[str, str] | None, repo: str | Path) -> dict[str, str]:
    if env is not None and all(f"GIT_{w}_EMAIL" in env for w in ("AUTHOR", "COMMITTER")):
        return {k: v for k, v in env.items() if k.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_"))}
    return identity(repo)


def rev(repo: str | Path, name: str) -> str | None:
    r = git(["rev-parse", "--verify", "-q", f"{name}^{{commit}}"], repo, check=False)
    return r.stdout.strip() or None if r.returncode == 0 else None


def is_ancestor(repo: str | Path, a: str, b: str) -> bool:
    with Sealed(layout(repo)) as s:
        return s.git(["merge-base", "--is-ancestor", a, b], check=False).returncode == 0


def _stat_entry(full: Path) -> str | None:
    """The git mode of what is at `full`, or None when git cannot hold it (absent, a dir)."""
    try:
        st = os.lstat(full)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISLNK(st.st_mode):
        return "120000"
    if stat.S_ISREG(st.st_mode):
        return "100755" if st.st_mode & 0o100 else "100644"
    return None


def commit_workspace(ws: str | Path, message: str, *, env: dict[str, str] | None = None) -> bool:
    """Commit everything the agent left (tracked changes and new unignored files) on the
    workspace's HEAD, with plumbing: blobs hashed with no filter, never signed. -> committed?"""
    ws = Path(ws)
    head = rev(ws, "HEAD")
    if head is None:
        return False
    lay = layout(ws)
    top = lay.top or ws
    others = ["ls-files", "-z", "--others", "--exclude-standard"]
    new = run_git(others, top, check=False, errors="surrogateescape")
    entries: dict[str, tuple[str, str] | None] = {}
    want: set[str] = {p for p in new.stdout.split("\0") if p and not p.endswith("/")}
    with Sealed(lay, work_tree=True) as s:
        # the index against the files (stat level) and against HEAD: every path that may differ
        # (raw fields: src mode, dst mode, src id, dst id, status; the index is src of
        # diff-files, dst of diff-index --cached)
        for args, side in ((["diff-files", "-z"], 0), (["diff-index", "--cached", "-z", head], 1)):
            for raw, p in parse_z_pairs(s.git(args).stdout):
                f = raw[1:].split()
                if f[side] == "160000":  # a submodule: keep what the index records
                    entries[p] = (f[side], f[2 + side])
                else:
                    want.add(p)
        if not want and not entries:
            return False
        paths = sorted(want - set(entries))
        modes = {p: _stat_entry(top / p) for p in paths}
        present = [p for p in paths if modes[p] is not None]
        for p, blob in zip(present, s.hash_files([top / p for p in present]), strict=True):
            entries[p] = (modes[p], blob)  # type: ignore[assignment]
        entries.update({p: None for p in paths if modes[p] is None})
        tree = s.tree_with(head, entries)
        if tree == s.out(["rev-parse", f"{head}^{{tree}}"]):
            return False
        commit = s.commit(tree, [head], message, _ident(env, ws))
        git(["update-ref", "-m", f"commit: {message}", "HEAD", commit, head], top)
        # the workspace's own index follows its HEAD (stat data kept where unchanged)
        if s.git(["read-tree", "-m", commit], check=False).returncode != 0:
            s.git(["read-tree", commit], check=False)
    return True


def merge_branch(
    repo: str | Path,
    branch: str,
    target: str,
    *,
    message: str,
    env: dict[str, str] | None = None,
    keep_out: Iterable[str] = KEEP_OUT,
) -> MergeResult:
    """Merge `branch` (a branch name, or a full ref such as a remote-tracking one) into
    `target` without touching any working tree except by fast-forward of the checkout that has
    `target`. `keep_out` paths are never merged (see MergeResult)."""
    repo = Path(repo)
    ident = _ident(env, repo)
    old = rev(repo, f"refs/heads/{target}")
    tip = rev(repo, branch if branch.startswith("refs/") else f"refs/heads/{branch}")
    if old is None or tip is None:
        missing = target if old is None else branch
        return MergeResult("blocked", message=f"branch {missing!r} not found in {repo}")
    try:
        lay = layout(repo)
        with Sealed(lay) as s:
            res = _compute(repo, s, branch, target, old, tip, message, ident, keep_out)
        if res.status != "ready":
            return res
        moved = move_branch(repo, target, old, res.commit or "", env=env, lay=lay)
        moved.dropped = res.dropped
        return moved
    except (GitError, OSError) as exc:
        why = "no space left on device" if no_space(exc) else str(exc)
        return MergeResult("blocked", message=f"could not merge {branch} into {target}: {why}")


def _compute(
    repo: Path,
    s: Sealed,
    branch: str,
    target: str,
    old: str,
    tip: str,
    message: str,
    ident: dict[str, str],
    keep_out: Iterable[str],
) -> MergeResult:
    """The commit `target` should move to (status "ready"), or why not. Sealed throughout.
    (One sequence of checks, each refusing before anything is merged: kept-out paths, links
    leading outside, filtered files, then the merge itself.)"""
    mb = s.out(["merge-base", old, tip])
    if mb == tip:
        return MergeResult("noop", commit=old, message=f"{branch} is already in {target}")
    changes = list(parse_z_pairs(s.git(["diff-tree", "-r", "-z", mb, tip]).stdout))
    tip, dropped, changes = drop_kept_out(s, tip, changes, keep_out, ident)
    kept = f"; kept out of the merge: {', '.join(dropped)}" if dropped else ""
    if not changes:
        return MergeResult(
            "noop", commit=old, message=f"{branch} brings nothing{kept}", dropped=dropped
        )
    links = [(p, h.split()[3]) for h, p in changes if h.split()[1] == "120000"]
    bad = sorted(p for p, b in links if link_escapes(p, s.git(["cat-file", "blob", b]).stdout))
    if bad:
        return MergeResult(
            "conflict",
            paths=bad,
            message=f"symlinks pointing outside the repository: {', '.join(bad)}; "
            "nothing was merged; remove them from the branch or merge by hand",
            dropped=dropped,
        )
    present = [p for h, p in changes if h.split()[4] != "D"]
    filtered = needs_filter(repo, s, tip, present)
    if filtered:
        names = sorted(set(filtered.values()))
        return MergeResult(
            "blocked",
            paths=sorted(filtered),
            message=f"waiting: {', '.join(sorted(filtered)[:5])} need the filter driver "
            f"{', '.join(names)} configured for this repository, and ralphnb never runs one; "
            f"check that config, then merge it yourself (git merge {branch}) and ralphnb "
            "archives the task",
            dropped=dropped,
        )
    if mb == old:  # a fast-forward
        return MergeResult("ready", commit=tip, dropped=dropped)
    r = s.git(["merge-tree", "--write-tree", "--name-only", "--no-messages", old, tip], check=False)
    lines = r.stdout.splitlines()
    if r.returncode == 1:
        paths = sorted({ln for ln in lines[1:] if ln.strip()})
        return MergeResult(
            "conflict",
            paths=paths,
            message="merge conflict in " + ", ".join(paths),
            dropped=dropped,
        )
    if r.returncode != 0 or not lines:
        return MergeResult("blocked", message=f"git merge-tree failed: {r.stderr.strip()}")
    new = s.commit(lines[0].strip(), [old, tip], message, ident)
    return MergeResult("ready", commit=new, dropped=dropped)


def checked_out_at(repo: str | Path, branch: str) -> Path | None:
    """The worktree (the user's checkout or a linked one) that has `branch` checked out."""
    out = git(["worktree", "list", "--porcelain"], repo).stdout
    path = None
    for line in out.splitlines():
        if line.startswith("worktree "):
            path = Path(line[len("worktree ") :])
        elif line == f"branch refs/heads/{branch}" and path is not None:
            return path
    return None


def being_rebased_at(repo: str | Path, branch: str) -> Path | None:
    """The worktree in which `branch` is being rebased (its HEAD is detached meanwhile)."""
    out = git(["worktree", "list", "--porcelain"], repo).stdout
    for line in out.splitlines():
        if not line.startswith("worktree "):
            continue
        path = Path(line[len("worktree ") :])
        r = git(["rev-parse", "--absolute-git-dir"], path, check=False)
        if r.returncode != 0:
            continue
        gitdir = Path(r.stdout.strip())
        for state in ("rebase-merge", "rebase-apply"):
            head = gitdir / state / "head-name"
            if head.is_file() and head.read_text().strip() == f"refs/heads/{branch}":
                return path
    return None


def move_branch(
    repo: str | Path,
    target: str,
    old: str,
    new: str,
    *,
    env: dict[str, str] | None = None,
    lay: Layout | None = None,
) -> MergeResult:
    """Advance `target` from `old` to `new` (a descendant) the safe way for where it lives.
    `lay`: the layout of `repo`, when the caller has it."""
    wt = checked_out_at(repo, target)
    busy = being_rebased_at(repo, target) if wt is None else None
    if busy is not None:  # HEAD is detached mid-rebase; the rebase will rewrite `target` itself
        return MergeResult(
            "blocked",
            message=(
                f"waiting: a rebase of {target} is in progress at {busy}; finish or abort it "
                "(git rebase --continue / --abort) and ralphnb merges after it"
            ),
        )
    if wt is None:
        r = git(
            ["update-ref", "-m", "ralphnb: integrate", f"refs/heads/{target}", new, old],
            repo,
            check=False,
        )
        if r.returncode != 0:
            return MergeResult("blocked", message=f"{target} moved meanwhile; will retry")
        return MergeResult("integrated", commit=new)
    if lay is None or lay.top is None or not wt.samefile(lay.top):
        lay = layout(wt)
    return _advance_checkout(repo, wt, lay, target, old, new)


def _advance_checkout(
    repo: str | Path, wt: Path, lay: Layout, target: str, old: str, new: str
) -> MergeResult:
    """Fast-forward the checkout `wt` (files, index, then ref) from `old` to `new`, sealed,
    holding its index.lock throughout as `git merge --ff-only` would."""
    moved = MergeResult("blocked", message=f"{target} moved meanwhile; will retry")
    with index_lock(lay.index) as locked:
        if not locked:
            return MergeResult(
                "blocked", message=f"waiting: another git command is running in {wt}; will retry"
            )
        if rev(wt, "HEAD") != old:  # the user committed, reset or switched meanwhile
            return moved
        tmp = lay.index.with_name(lay.index.name + ".ralphnb")
        try:
            if lay.index.exists():
                shutil.copy2(lay.index, tmp)  # keeps its mtime: racy entries stay racy
            with Sealed(lay, work_tree=True) as s:
                r = s.git(["read-tree", "-m", "-u", old, new], index=tmp, check=False)
                if r.returncode != 0:
                    why = " ".join(r.stderr.split())
                    dirty = "not uptodate" in why or "would be overwritten" in why
                    what = (
                        "would touch your uncommitted files; commit or stash them"
                        if dirty
                        else "failed"
                    )
                    return MergeResult(
                        "blocked",
                        message=f"waiting: merging into {target} checked out at {wt} {what} "
                        f"(git said: {why[:300]})",
                    )
                u = [
                    "update-ref",
                    "-m",
                    "ralphnb: integrate (fast-forward)",
                    f"refs/heads/{target}",
                ]
                if git([*u, new, old], repo, check=False).returncode != 0:
                    s.git(["read-tree", "-m", "-u", new, old], index=tmp, check=False)  # undo
                    return moved
            replace_index(lay.index, tmp)
        finally:
            tmp.unlink(missing_ok=True)
    return MergeResult("integrated", commit=new)


def tracked(repo: str | Path, paths: tuple[str, ...] = QUEUE_FILES) -> list[str]:
    """Those of `paths` that are tracked in the checkout's index."""
    out = git(["ls-files", "-z", "--", *paths], repo, check=False).stdout.split("\0")
    return [p for p in paths if p in out]


def commit_bookkeeping(
    repo: str | Path, message: str, *, paths: tuple[str, ...] = QUEUE_FILES
) -> str | None:
    """Commit only the queue files in the user's checkout, when they are tracked there.

    Built with plumbing from HEAD plus these files (as `git commit --only` would), then HEAD and
    the index entries of these paths move together under the index lock, so the user's other
    staged and unstaged changes stay exactly as they were. Returns the commit, or None if
    nothing to do or git could not do it now (never raises for that: a merged task is not
    failed by it; the next call retries).
    """
    repo = Path(repo)
    have = tracked(repo, paths)
    if not have:
        return None
    have += [p for p in paths if p not in have and (repo / p).is_file()]  # the done file, later
    head = rev(repo, "HEAD")
    if head is None:
        return None
    try:
        lay = layout(repo)
        with Sealed(lay) as s:
            entries = _file_entries(s, repo, have)
            tree = s.tree_with(head, entries)
            if tree == s.out(["rev-parse", f"{head}^{{tree}}"]):
                return None
            new = s.commit(tree, [head], message, identity(repo))
            return new if _commit_into_checkout(s, lay, repo, head, new, entries, message) else None
    except (GitError, OSError):
        return None


def _file_entries(s: Sealed, top: Path, rels: list[str]) -> dict[str, tuple[str, str] | None]:
    modes = {p: _stat_entry(top / p) for p in rels}
    present = [p for p in rels if modes[p] is not None]
    out: dict[str, tuple[str, str] | None] = {p: None for p in rels if modes[p] is None}
    for p, blob in zip(present, s.hash_files([top / p for p in present]), strict=True):
        out[p] = (modes[p] or "100644", blob)
    return out


def _commit_into_checkout(
    s: Sealed,
    lay: Layout,
    repo: Path,
    head: str,
    new: str,
    entries: dict[str, tuple[str, str] | None],
    message: str,
) -> bool:
    """Move HEAD from `head` to `new` and set `entries` in the checkout's index, atomically
    with respect to other git commands (they wait on index.lock)."""
    with index_lock(lay.index) as locked:
        if not locked:
            return False
        tmp = lay.index.with_name(lay.index.name + ".ralphnb")
        try:
            shutil.copy2(lay.index, tmp)
            zero = "0" * 40
            info = "".join(
                f"{e[0]} {e[1]}\t{p}\0" if e else f"0 {zero}\t{p}\0" for p, e in entries.items()
            )
            s.git(["update-index", "-z", "--index-info"], index=tmp, input=info)
            u = git(
                ["update-ref", "-m", f"commit: {message}", "HEAD", new, head], repo, check=False
            )
            if u.returncode != 0:
                return False
            replace_index(lay.index, tmp)
            return True
        finally:
            tmp.unlink(missing_ok=True)


def integrate(
    repo: str | Path,
    workspace: str | Path,
    *,
    branch: str,
    target: str,
    task_id: str,
    title: str,
    base: str | None = None,
    before_merge: Callable[[], object] | None = None,
    bookkeeping: tuple[str, ...] = QUEUE_FILES,
) -> MergeResult:
    """Commit the workspace, merge into `target` keeping `.ralph/` and the `bookkeeping`
    paths (the queue files relative to the repo; they move with `.ralph/config.jsonc`) out.
    Never raises for a conflict, a dirty checkout or a git failure: the result says so.
    `base` is accepted for callers that know where the workspace started; the merge base is
    computed from the branches themselves."""
    del base
    env = identity_env(repo)
    try:
        commit_workspace(workspace, f"{task_id}: {title}", env=env)
    except (GitError, OSError) as exc:
        why = "no space left on device" if no_space(exc) else str(exc)
        return MergeResult("blocked", message=f"could not commit the work in {workspace}: {why}")
    if before_merge is not None:  # e.g. fetch a clone's branch into the user's repository
        try:
            before_merge()
        except (GitError, OSError) as exc:
            why = exc.stderr if isinstance(exc, GitError) else str(exc)
            return MergeResult(
                "blocked", message=f"could not fetch {branch} from {workspace}: {why}"
            )
    return merge_branch(
        repo,
        branch,
        target,
        message=f"Merge {branch}: {task_id}: {title}",
        env=env,
        keep_out=(*KEEP_OUT, *bookkeeping),
    )
