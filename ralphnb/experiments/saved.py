"""What a sweep writes about itself and reads back: its grid, its tasks, `Sweep.load`.

Owns: `select_tasks` (the tasks a sweep runs: ids, a predicate or every open task), `grid_data`
(the `sweep_started` event's data: base commit, target branch, workspace root, variants and
every trial with its key and workspace id) and `load_sweep` (a finished sweep rebuilt from its
journal by replaying it through the worker table, as `Run.load` does).
Never: starts a worker or writes a file.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..errors import RalphError
from ..loop.budget import Budget
from ..loop.context import RunFlags
from ..loop.runs import Run
from ..loop.sink import EventSink
from ..loop.table import WorkerTable
from ..queue.store import Queue
from ..workspace.workspaces import Workspaces
from .trial import Trial
from .variants import Variant


def select_tasks(queue: Queue, tasks: Iterable[str] | Callable[[Any], bool] | None) -> list[dict]:
    """The tasks a sweep runs, as dicts, in queue order; an unknown or closed id is an error."""
    open_tasks = [t for t in queue.tasks if t.status in ("todo", "doing")]
    if tasks is None:
        chosen = open_tasks
    elif callable(tasks):
        chosen = [t for t in open_tasks if tasks(t)]
    else:
        known = {t.id: t for t in open_tasks}
        ids = list(tasks)
        missing = [i for i in ids if i not in known]
        if missing:
            raise RalphError(
                f"{queue.queue_path}: cannot sweep {', '.join(missing)}: not an open task "
                "(`ralphnb queue list` shows them)"
            )
        chosen = [known[i] for i in ids]
    if not chosen:
        raise RalphError(f"{queue.queue_path}: no open task to sweep")
    return [t.to_dict() for t in chosen]


def grid_data(sweep: Any) -> dict[str, Any]:
    """The data of a sweep's `sweep_started` event: all `load_sweep` needs."""
    return {
        "run_id": sweep.run_id,
        "repo": str(sweep.repo),
        "kind": "sweep",
        "base": sweep.base,
        "target_branch": sweep.target_branch,
        "workspace_root": str(sweep.workspaces.root),
        "variants": {
            n: getattr(v.runner, "name", str(v.runner)) for n, v in sweep.variants.items()
        },
        "trials": [
            {
                "key": t.key,
                "task_id": t.task["id"],
                "title": t.task.get("title", ""),
                "variant": t.variant,
                "repeat": t.repeat,
                "ws_id": t.ws_id,
            }
            for t in sweep.trials
        ],
        "parallel": sweep.parallel,
        "max_cost_usd": sweep.budget.limit,
        "pid": os.getpid(),
    }


def load_sweep(cls: type, path: str | Path) -> Any:
    """A finished sweep of class `cls` from its run directory or `events.jsonl`."""
    run = Run.load(path)
    grid = next((e.data for e in run.events if e.kind == "sweep_started"), None)
    if grid is None:
        raise RalphError(f"{path}: not a sweep's journal (no sweep_started event)")
    self = cls.__new__(cls)
    self.repo = Path(grid["repo"])
    self.queue = Queue(self.repo)
    self.base, self.target_branch = grid["base"], grid["target_branch"]
    self.workspaces = Workspaces(self.repo, root=grid["workspace_root"], target_branch=self.base)
    self.variants = {n: Variant(r) for n, r in grid["variants"].items()}
    tasks = {
        t["task_id"]: {"id": t["task_id"], "title": t.get("title", "")} for t in grid["trials"]
    }
    self.tasks = list(tasks.values())
    self.trials = [
        Trial(t["key"], tasks[t["task_id"]], t["variant"], int(t["repeat"]), t["ws_id"])
        for t in grid["trials"]
    ]
    self.repeats = max((t.repeat for t in self.trials), default=1)
    self.parallel = int(grid.get("parallel") or 1)
    self._table = WorkerTable()
    self.budget = Budget(grid.get("max_cost_usd"), self._table.records)
    self._flags, self._finished = RunFlags(), threading.Event()
    self._sink = EventSink(self._table, self._flags.cond, window=max(1, len(run.events)))
    for ev in run.events:  # the table rebuilt, every event held
        self._sink.emit(ev)
    self._finished.set()
    self._thread, self._run, self._active = None, None, {}
    self._ends = {
        e.task_id: dict(e.data) for e in run.events if e.kind == "trial_end" and e.task_id
    }
    self.run_id, self.run_dir = grid["run_id"], run.path
    self.started_at = run.events[0].time if run.events else None
    self.ended_at = run.events[-1].time if run.events else None
    self.merged = []
    return self


__all__ = ["grid_data", "load_sweep", "select_tasks"]
