"""Integration: a finished workspace's branch back into the target branch, safely.

Owns: committing what an agent left uncommitted (`<ID>: <title>`, ralph's format), keeping a
branch's edits of the queue files out of the merge, computing the merge with
`git merge-tree --write-tree` (no working tree touched), and moving the target branch: with
`git merge --ff-only` inside the checkout that has it checked out (git refuses when that would
overwrite the user's uncommitted files: then the result is `blocked`, nothing moved), else with a
compare-and-swap `git update-ref`. Also `commit_bookkeeping`, which commits only the two queue
files with `git commit --only`, leaving the user's other staged and unstaged changes as they are.
Invariants: never moves a checked-out branch's ref behind its checkout's back; never runs hooks
or fsmonitor (every git call goes through `workspace.run_git`); callers serialise integrations.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .git import git_env, run_git

QUEUE_FILES: tuple[str, ...] = (".ralph/queue.jsonc", ".ralph/done.jsonc")
_FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "ralphnb",
    "GIT_AUTHOR_EMAIL": "ralphnb@localhost",
    "GIT_COMMITTER_NAME": "ralphnb",
    "GIT_COMMITTER_EMAIL": "ralphnb@localhost",
}


def git(
    args: list[str], cwd: str | Path, *, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run git with hooks and fsmonitor disabled (delegates to workspace.run_git)."""
    return run_git(args, cwd, check=check, env=env)


def _out(args: list[str], cwd: str | Path, env: dict[str, str] | None = None) -> str:
    return git(args, cwd, env=env).stdout.strip()


def identity_env(repo: str | Path) -> dict[str, str]:
    """The environment for commits: the user's identity, or a fallback when none is set."""
    env = git_env()  # never GIT_DIR/GIT_INDEX_FILE/... inherited from the caller's shell
    missing = []
    for who in ("author", "committer"):
        var = f"GIT_{who.upper()}_EMAIL"
        if not env.get(var):
            missing.append(who)
    if missing:
        r = git(["config", "user.email"], repo, check=False)
        if r.returncode != 0 or not r.stdout.strip():
            for k, v in _FALLBACK_IDENTITY.items():
                env.setdefault(k, v)
    return env


@dataclass
class MergeResult:
    """What happened: `integrated` (commit set), `conflict` (paths), `blocked` (message says
    why; retry later), or `noop` (the branch had nothing new)."""

    status: str
    commit: str | None = None
    paths: list[str] = field(default_factory=list)
    message: str = ""


def rev(repo: str | Path, name: str) -> str | None:
    r = git(["rev-parse", "--verify", "-q", f"{name}^{{commit}}"], repo, check=False)
    return r.stdout.strip() or None if r.returncode == 0 else None


def is_ancestor(repo: str | Path, a: str, b: str) -> bool:
    return git(["merge-base", "--is-ancestor", a, b], repo, check=False).returncode == 0


def commit_workspace(ws: str | Path, message: str, *, env: dict[str, str] | None = None) -> bool:
    """Commit everything the agent left (tracked changes and new unignored files)."""
    git(["add", "-A"], ws, env=env)
    if git(["diff", "--cached", "--quiet"], ws, check=False, env=env).returncode == 0:
        return False
    git(["commit", "-q", "--no-verify", "-m", message], ws, env=env)
    return True


def neutralise_bookkeeping(
    ws: str | Path,
    base: str,
    *,
    paths: tuple[str, ...] = QUEUE_FILES,
    env: dict[str, str] | None = None,
) -> bool:
    """Make the branch's queue files equal their `base` version, so bookkeeping never merges."""
    changed = git(["diff", "--name-only", base, "HEAD", "--", *paths], ws, env=env).stdout.split()
    if not changed:
        return False
    for p in changed:
        if git(["cat-file", "-e", f"{base}:{p}"], ws, check=False).returncode == 0:
            git(["checkout", base, "--", p], ws, env=env)
        else:
            git(["rm", "-q", "--cached", "--ignore-unmatch", "--", p], ws, env=env)
            try:
                (Path(ws) / p).unlink()
            except OSError:
                pass
    git(
        [
            "commit",
            "-q",
            "--no-verify",
            "-m",
            "ralphnb: keep queue bookkeeping out of the merge",
            "--",
            *changed,
        ],
        ws,
        env=env,
    )
    return True


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


def merge_branch(
    repo: str | Path, branch: str, target: str, *, message: str, env: dict[str, str] | None = None
) -> MergeResult:
    """Merge `branch` into `target` without touching any working tree except by fast-forward."""
    env = env or identity_env(repo)
    old = rev(repo, f"refs/heads/{target}")
    tip = rev(repo, f"refs/heads/{branch}")
    if old is None or tip is None:
        missing = target if old is None else branch
        return MergeResult("blocked", message=f"branch {missing!r} not found in {repo}")
    if is_ancestor(repo, tip, old):
        return MergeResult("noop", commit=old, message=f"{branch} is already in {target}")
    if is_ancestor(repo, old, tip):
        new = tip
    else:
        r = git(
            ["merge-tree", "--write-tree", "--name-only", "--no-messages", old, tip],
            repo,
            check=False,
            env=env,
        )
        lines = r.stdout.splitlines()
        if r.returncode == 1:
            paths = sorted({ln for ln in lines[1:] if ln.strip()})
            return MergeResult(
                "conflict", paths=paths, message="merge conflict in " + ", ".join(paths)
            )
        if r.returncode != 0 or not lines:
            return MergeResult("blocked", message=f"git merge-tree failed: {r.stderr.strip()}")
        tree = lines[0].strip()
        new = _out(["commit-tree", tree, "-p", old, "-p", tip, "-m", message], repo, env)
    return move_branch(repo, target, old, new, env=env)


def move_branch(
    repo: str | Path, target: str, old: str, new: str, *, env: dict[str, str] | None = None
) -> MergeResult:
    """Advance `target` from `old` to `new` (a descendant) the safe way for where it lives."""
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
            env=env,
        )
        if r.returncode != 0:
            return MergeResult("blocked", message=f"{target} moved meanwhile; will retry")
        return MergeResult("integrated", commit=new)
    if rev(wt, "HEAD") != old:  # the user committed, reset or switched meanwhile: recompute
        return MergeResult("blocked", message=f"{target} moved meanwhile; will retry")
    r = git(["merge", "--ff-only", "--no-edit", "-q", new], wt, check=False, env=env)
    if r.returncode != 0:
        why = " ".join((r.stderr or r.stdout).split())
        return MergeResult(
            "blocked",
            message=f"waiting: merging into {target} checked out at {wt} would touch your "
            f"uncommitted files; commit or stash them (git said: {why[:300]})",
        )
    return MergeResult("integrated", commit=new)


def tracked(repo: str | Path, paths: tuple[str, ...] = QUEUE_FILES) -> list[str]:
    """Those of `paths` that are tracked in the checkout's index."""
    out = git(["ls-files", "--", *paths], repo, check=False).stdout.split()
    return [p for p in paths if p in out]


def commit_bookkeeping(
    repo: str | Path, message: str, *, paths: tuple[str, ...] = QUEUE_FILES
) -> str | None:
    """Commit only the queue files in the user's checkout, when they are tracked there.

    `git commit --only` builds the commit from HEAD plus these paths, so the user's other staged
    and unstaged changes stay exactly as they were. Returns the commit, or None if nothing to do
    or git could not do it now (never raises for that: a merged task is not failed by it).
    """
    have = tracked(repo, paths)
    if not have:
        return None
    for p in paths:  # the done file appears later than the queue file: track it alongside
        if p not in have and (Path(repo) / p).exists():
            if git(["add", "--", p], repo, check=False).returncode != 0:
                return None  # e.g. the user's own git holds index.lock: the next call retries
            have.append(p)
    if git(["diff", "--quiet", "HEAD", "--", *have], repo, check=False).returncode == 0:
        return None
    env = identity_env(repo)
    r = git(
        ["commit", "-q", "--no-verify", "--only", "-m", message, "--", *have],
        repo,
        check=False,
        env=env,
    )
    if r.returncode != 0:
        return None
    return rev(repo, "HEAD")


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
    """Commit the workspace, keep bookkeeping out, merge into `target`. Never raises for a
    conflict or a dirty checkout: the result says so. `bookkeeping`: the queue files' paths
    relative to the repo (they move with `.ralph/config.jsonc`)."""
    env = identity_env(repo)
    commit_workspace(workspace, f"{task_id}: {title}", env=env)
    mb = base or _out(["merge-base", f"refs/heads/{target}", "HEAD"], workspace)
    neutralise_bookkeeping(workspace, mb, paths=bookkeeping, env=env)
    if before_merge is not None:  # e.g. fetch a clone's branch into the user's repository
        before_merge()
    return merge_branch(
        repo, branch, target, message=f"Merge {branch}: {task_id}: {title}", env=env
    )
