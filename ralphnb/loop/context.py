"""What a task's driver is given: the narrow, typed context a `Loop` builds once per run.

Owns: `RunFlags` (the loop-wide state that drivers read or change: pause, stop, halt and the
error that halted it, tasks excluded from this run; every field is read and written with `cond`
held, and `cond` is the one condition the scheduler and all drivers sleep on), `DriverSettings`
(the run's fixed settings) and `DriverContext` (both, plus the services a task's life uses: the
event sink, the queue, workspaces, executor, merge lock, the loop's limits and the worker
table's rows). Invariants: the settings and the context are frozen, so a driver cannot rebind
what it was given; the mutable parts are `RunFlags` (under its condition) and the services' own
locks. A driver reaches the loop only through these names: nothing is inherited.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..queue.store import Queue
from ..runners.base import Runner
from ..workers.executors import Executor
from ..workspace.publish import DEFAULT_MODE, PushPolicy
from ..workspace.workspaces import Workspaces
from .budget import Budget
from .check import CheckType
from .events import Event
from .review import ReviewDesk


@dataclass
class RunFlags:
    """The loop-wide state shared by the scheduler and the drivers (hold `cond` to touch it)."""

    cond: threading.Condition = field(default_factory=threading.Condition)
    paused: bool = False  # start no new attempt until resumed
    stopping: bool = False  # stop_all(): every driver winds down
    halt_reason: str | None = None  # a limit was reached: no new attempt
    error: str | None = None  # the first error that halted the run (a failed write, a bug)
    excluded: set[str] = field(default_factory=set)  # tasks not picked again in this run


@dataclass(frozen=True)
class DriverSettings:
    """A run's fixed settings, as a driver needs them."""

    repo: Path
    run_id: str
    run_dir: Path
    runner: Runner  # the loop's default; a task's `agent` field may choose another
    max_iterations: int  # attempts until done (a failed gate or an unfinished pass counts one)
    check: CheckType  # the CI gate: `check=`, else the configured `agent.ci_gate`
    completion_promise: str
    prompt_template: str | None
    grace: float  # seconds between SIGINT and SIGKILL on stop
    max_log_bytes: int | None  # cap of each attempt's log file (head + tail kept)
    target_branch: str | None  # None outside git
    queue_files: tuple[str, ...]  # relative to the repo; kept out of merges, committed apart
    publish: str = DEFAULT_MODE  # ralph's git_publish_mode: off | commit | commit_and_push
    push: PushPolicy = PushPolicy()  # tries and backoff of commit_and_push's push
    resume_hours: float | None = None  # resume interrupted sessions this recent; None: off
    phases: int | None = None  # 1-3 (`phases.py`); None: a task's or the config's, else 1
    passes: int | None = None  # ralph's `iterations`; None: a task's or the config's, else 1


@dataclass(frozen=True)
class DriverContext:
    """Everything one task's driver uses, and nothing else."""

    settings: DriverSettings
    flags: RunFlags
    emit: Callable[[Event], None]  # the loop's one event sink (table, journal, subscribers)
    queue: Queue  # each driver wraps it in its own `gateway.TaskQueue`
    workspaces: Workspaces
    executor: Executor
    merge_lock: threading.Lock  # integrations one at a time
    attempt_ended: Callable[[bool], None]  # (failed): the loop's limits; may halt the loop
    fail: Callable[[str], None]  # (one line): an error of the whole run (a full disk): halt it
    row: Callable[[str], dict[str, Any] | None]  # the worker table's record of a worker id
    review: ReviewDesk | None = None  # Loop(review=True): finished work waits here (review.py)
    slot_free: Callable[[], bool] = lambda: True  # (cond held) may one more worker run now?
    budget: Budget | None = None  # the run's live budget: reached, no new attempt starts
