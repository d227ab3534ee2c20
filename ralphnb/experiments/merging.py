"""A sweep's winners brought back: merged, their tasks marked done, every workspace removed.

Owns: `merge_winners`, which for each winner integrates its workspace into the target branch
with the loop's own `integrate_workspace` (queue files kept out), then marks its task done and
archives it in the user's queue (the only queue write a sweep makes) and commits the queue files;
then removes every workspace and branch of the sweep, winners' and losers' alike. A winner
whose merge conflicts keeps its workspace and its task stays open.
Never: runs an agent.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import RalphError
from ..workspace.integrate import integrate_workspace
from ..workspace.merge import commit_bookkeeping


def merge_winners(sweep: Any, winners: pd.DataFrame) -> pd.DataFrame:
    """Merge `winners` (rows of `sweep.results`, one per task) of `sweep`; one row each:
    key, task_id, variant, status (integrated | noop | conflict | blocked | ...), commit,
    message."""
    if winners["task_id"].duplicated().any():
        raise RalphError("merge() takes at most one winner per task (see sweep.best())")
    queue = sweep.queue
    files = tuple(
        Path(os.path.relpath(p, sweep.repo)).as_posix() for p in (queue.queue_path, queue.done_path)
    )
    ws_all = sweep.workspaces
    rows: list[dict[str, Any]] = []
    keep: set[str] = set()
    ws_ids = {t.key: t.ws_id for t in sweep.trials}
    for row in winners.itertuples(index=False):
        key, task_id = str(row.key), str(row.task_id)
        ws = ws_all.get(ws_ids[key])
        title = next((t.get("title", "") for t in sweep.tasks if t["id"] == task_id), "")
        res = integrate_workspace(
            ws_all,
            ws,
            task_id=ws_ids[key],
            title=title,
            target=sweep.target_branch,
            queue_files=files,
        )
        if res.status in ("integrated", "noop"):
            queue.complete(task_id, f"sweep {sweep.run_id}: winner {row.variant} ({key})")
            commit_bookkeeping(sweep.repo, f"{task_id}: archive ({title})", paths=files)
        else:
            keep.add(key)
        rows.append(
            {
                "key": key,
                "task_id": task_id,
                "variant": str(row.variant),
                "status": "integrated" if res.status == "noop" else res.status,
                "commit": res.commit,
                "message": res.message or None,
            }
        )
    remove_workspaces(sweep, keep)
    return pd.DataFrame(rows, columns=["key", "task_id", "variant", "status", "commit", "message"])


def remove_workspaces(sweep: Any, keep: Collection[str] = ()) -> int:
    """Remove the workspace and branch of every run of `sweep` but those keyed in `keep`;
    how many workspaces there were."""
    gone = 0
    for trial in sweep.trials:
        if trial.key in keep:
            continue
        gone += sweep.workspaces.get(trial.ws_id) is not None
        sweep.workspaces.remove(trial.ws_id, delete_branch=True)
    return gone


__all__ = ["merge_winners", "remove_workspaces"]
