"""A started loop's scheduler, assembled from the Loop's options and its run.

Owns: `new_scheduler(loop, run, ...)` -- the `DriverSettings` every driver gets,
the scheduler's `Limits` (a wall-time deadline counted from the run's start) and the
`Scheduler` itself. Reads the Loop's public options at `start()`, so a change made between
construction and start (`loop.runner = ...`) counts.
Never: starts anything (the Loop starts the scheduler's thread).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from .context import DriverSettings, RunFlags
from .events import Event
from .review import ReviewDesk
from .rundir import LiveRun
from .scheduler import Limits, Scheduler
from .table import WorkerTable


def new_scheduler(
    loop: Any,
    run: LiveRun,
    *,
    flags: RunFlags,
    table: WorkerTable,
    emit: Callable[[Event], None],
    review: ReviewDesk | None,
) -> Scheduler:
    """The scheduler of `loop`'s run `run` (the Loop passes itself: its options are read)."""
    settings = DriverSettings(
        repo=loop.repo,
        run_id=run.run_id,
        run_dir=run.run_dir,
        runner=loop.runner,
        max_iterations=loop.max_iterations,
        check=loop.check,
        completion_promise=loop.completion_promise,
        prompt_template=loop.prompt_template,
        grace=loop.grace,
        max_log_bytes=loop.max_log_bytes,
        target_branch=loop.target_branch,
        queue_files=loop.queue_files,
        publish=loop.publish,
        push=loop.push_policy,
        resume_hours=loop.resume_hours,
        phases=loop.phases,
        passes=loop.passes,
    )
    wall = None
    if loop.max_wall_time is not None:
        wall = run.started_at + timedelta(seconds=float(loop.max_wall_time))
    limits = Limits(
        parallel=loop.parallel,
        only=frozenset(loop.only) if loop.only is not None else None,
        wall_deadline=wall,
        max_cost_usd=loop.max_cost_usd,
        max_consecutive_failures=loop.max_consecutive_failures,
    )
    return Scheduler(
        settings,
        limits,
        flags,
        emit=emit,
        queue=loop.queue,
        workspaces=loop.workspaces,
        executor=loop.executor,
        table=table,
        review=review,
        budget=loop.budget,
    )


__all__ = ["new_scheduler"]
