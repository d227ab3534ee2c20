"""One entry point that brings a finished task's work back, whatever kind its workspace is.

Owns: `integrate_workspace`, the choice of strategy by workspace kind (a git branch merged by
`merge.integrate`, a clone's branch fetched back first, a copy's three-way copy back by
`copy.integrate_copy`, and a recovered task whose workspace or branch is already gone). The
strategies themselves live in merge and copy; this module only dispatches. With
`publish="off"` (ralph's git_publish_mode) a git workspace's work is only committed on its
branch (`publish.keep_on_branch`), never merged. It is its own module
because copy imports merge, so merge cannot import copy without a circle.
Invariants: never raises for a conflict or a blocked merge (the MergeResult says so); callers
serialise integrations.
"""

from __future__ import annotations

from .copy import integrate_copy
from .merge import KEEP_OUT, MergeResult, integrate, merge_branch, rev
from .publish import keep_on_branch
from .workspaces import BRANCH_PREFIX, Workspace, Workspaces


def integrate_workspace(
    workspaces: Workspaces,
    ws: Workspace | None,
    *,
    task_id: str,
    title: str,
    target: str,
    queue_files: tuple[str, ...],
    publish: str = "commit",
) -> MergeResult:
    """Integrate task `task_id`'s work into `target` (git) or the directory (copy).

    `ws` is None for a task recovered after its workspace was removed: its branch, if it is
    still there, is merged; else there is nothing left to do (`noop`). `queue_files`: the queue
    files relative to the repo, kept out of a branch's merge. `publish="off"`: status `kept`.
    """
    repo = workspaces.repo
    if publish == "off" and workspaces.is_git and (ws is None or ws.kind != "copy"):
        return keep_on_branch(workspaces, ws, task_id=task_id, title=title)
    if not workspaces.is_git or (ws is not None and ws.kind == "copy"):
        if ws is None:  # recovered after its copy back (the workspace goes last)
            return MergeResult("noop")
        return integrate_copy(repo, ws.path, workspaces.manifest(task_id), keep_out=queue_files)
    if ws is None or not ws.branch:  # recovered with its branch but no workspace
        branch = BRANCH_PREFIX + task_id
        if rev(repo, f"refs/heads/{branch}") is None:
            return MergeResult("noop")
        message = f"Merge {branch}: {task_id}: {title}"
        return merge_branch(
            repo, branch, target, message=message, keep_out=(*KEEP_OUT, *queue_files)
        )
    clone = ws
    sync = (lambda: workspaces.sync_branch(clone)) if ws.kind == "clone" else None
    return integrate(
        repo,
        ws.path,
        branch=ws.branch,
        target=target,
        task_id=task_id,
        title=title,
        before_merge=sync,
        bookkeeping=queue_files,
    )
