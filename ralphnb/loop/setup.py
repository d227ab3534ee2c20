"""Checks a Loop makes before anything is written: the tasks it was asked for, its workspaces.

Owns: `check_only` (a `tasks=` list names only open tasks), `configured_root` (ralph's
`parallel.workspace_root`) and `open_workspaces` (the run's `Workspaces`, with a target branch
that exists). Never: writes a file or starts a process other
than read-only git.
Invariant: each raises one `QueueError`/`RalphError` naming the file or branch and the next step.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import QueueError, RalphError
from ..queue.config_model import Config
from ..queue.store import Queue
from ..workspace.merge import rev
from ..workspace.workspaces import COPY_EXCLUDE, Workspaces


def check_only(queue: Queue, ids: set[str]) -> None:
    """`tasks=` names only open tasks: an unknown or finished id is an error up front, not a
    run that silently does nothing."""
    open_ids = {t.id for t in queue.tasks}
    for tid in sorted(ids - open_ids):
        closed = {t.id: t.status for t in queue.done}
        why = (
            f"it is already {closed[tid]} (in {queue.done_path.name})"
            if tid in closed
            else "no such task"
        )
        raise QueueError(
            f"{queue.queue_path}: cannot run {tid}: {why}; "
            "`ralphnb queue list` shows the open tasks",
            path=queue.queue_path,
            task_id=tid,
        )


def configured_root(repo: Path, cfg: Config) -> Path | None:
    """`parallel.workspace_root` when a configuration file sets it (`~` expanded, relative to
    the repository), else None: ralphnb's own default place."""
    root = cfg.parallel.workspace_root
    if not root or cfg.source("parallel.workspace_root") in (None, "default"):
        return None
    path = Path(os.path.expanduser(root))
    return path if path.is_absolute() else repo / path


def open_workspaces(
    repo: Path, root: str | Path | None, mode: str, target: str | None
) -> Workspaces:
    """The run's workspaces; in git, a target branch that exists, checked up front (not one
    failed task, and one note in the queue, per task)."""
    # copies never take `.ralph/` (the run's own logs and lock live there; the agent reaches
    # the queue through RALPHNB_REPO)
    ws = Workspaces(
        repo, root=root, mode=mode, target_branch=target, copy_exclude=(*COPY_EXCLUDE, ".ralph")
    )
    if ws.is_git and not ws.target_branch:
        raise RalphError(
            f"{repo}: HEAD is detached; check out a branch or pass "
            "target_branch='main' (`ralphnb run --target-branch main`) so "
            "finished work has somewhere to go"
        )
    if ws.is_git and rev(repo, f"refs/heads/{ws.target_branch}") is None:
        raise RalphError(
            f"{repo}: branch {ws.target_branch!r} has no commit yet; "
            "commit something first, or pass an existing target_branch"
        )
    return ws


__all__ = ["check_only", "configured_root", "open_workspaces"]
