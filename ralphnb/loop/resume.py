"""Resuming an interrupted task: which earlier attempt's agent session a new attempt continues.

Owns: `pick_resume` (pure: given a task's past attempts, "now" and the session timeout, the
`ResumePoint` to continue, or None for a fresh start), `past_attempts` (the I/O around it: the
task's attempts in the journals of earlier runs, newest run first, only runs touched within the
timeout) and `find_resume`, the one call a driver makes. ralph's `agent.session_timeout_hours`
(default 24) bounds how old an interrupted session may be.
Rules: only the task's latest attempt counts, and only when it was interrupted -- stopped,
killed, timed out, or lost with its loop (its journal ends with the worker still live and that
loop's process is gone) -- carried a session id, ran in the workspace the task has now, and
ended (else started) within the timeout. A failed or finished attempt, or a later fresh one,
means a fresh start. Never: writes anything, or resumes when the caller turned it off.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .._time import utcnow
from ..queue.config import resolve_config
from ..runners.base import CommandSpec, Runner
from .runs import JOURNAL, Run, list_runs, loop_alive, read_loop_info
from .table import LIVE

DEFAULT_TIMEOUT_HOURS = 24  # ralph's agent.session_timeout_hours
INTERRUPTED = frozenset(("stopped", "killed", "timed_out"))


@dataclass(frozen=True)
class PastAttempt:
    """One earlier attempt of a task: its row as the run's journal left it, the run's id and
    whether that run's loop process is still alive."""

    run_id: str
    record: dict[str, Any]
    loop_alive: bool = False


@dataclass(frozen=True)
class ResumePoint:
    """What a new attempt continues: `session_id` of attempt `worker_id` in run `run_id`."""

    session_id: str
    worker_id: str
    run_id: str
    status: str  # stopped | killed | timed_out | lost
    workspace: str
    at: datetime | None

    def describe(self) -> str:
        return (
            f"resuming session {self.session_id} of {self.worker_id} ({self.status}, run "
            f"{self.run_id}) in its workspace {self.workspace}"
        )


def _order(a: PastAttempt) -> tuple:
    rec = a.record
    started = rec.get("started_at")
    return (
        a.run_id,
        started.timestamp() if isinstance(started, datetime) else 0.0,
        rec.get("iteration") or 0,
    )


def pick_resume(
    attempts: Iterable[PastAttempt],
    *,
    workspace: str | Path,
    now: datetime,
    timeout_hours: float,
) -> ResumePoint | None:
    """The attempt to resume (see the module docstring), or None. Pure."""
    latest = max(attempts, key=_order, default=None)
    if latest is None:
        return None
    rec = latest.record
    status = str(rec.get("status") or "")
    if status not in INTERRUPTED:
        lost = status in LIVE and not latest.loop_alive  # its loop died while it ran
        if not lost:
            return None
        status = "lost"
    session = rec.get("session_id")
    if not session or str(rec.get("workspace") or "") != str(workspace):
        return None
    at = rec.get("ended_at") or rec.get("started_at")
    if not isinstance(at, datetime) or now - at > timedelta(hours=timeout_hours):
        return None
    return ResumePoint(
        str(session), str(rec.get("worker_id")), latest.run_id, status, str(workspace), at
    )


def past_attempts(
    repo: str | Path, task_id: str, *, exclude: Path | None, since: datetime
) -> list[PastAttempt]:
    """Task `task_id`'s attempts in the newest earlier run that has any, among the runs whose
    journal was written after `since` (older ones cannot be within the timeout)."""
    for run_dir in reversed(list_runs(repo)):
        if exclude is not None and run_dir.resolve() == exclude.resolve():
            continue
        with contextlib.suppress(OSError):
            if (run_dir / JOURNAL).stat().st_mtime < since.timestamp():
                continue
            run = Run.load(run_dir)
            mine = [r for r in run.records.values() if r.get("task_id") == task_id]
            if mine:
                alive = loop_alive(read_loop_info(run_dir))
                return [PastAttempt(run.run_id, dict(r), alive) for r in mine]
    return []


def session_timeout_hours(repo: str | Path) -> float:
    """ralph's `agent.session_timeout_hours` for `repo` (its default: 24)."""
    hours = resolve_config(repo, warn=False).agent.session_timeout_hours
    return float(hours or DEFAULT_TIMEOUT_HOURS)


def find_resume(
    settings: Any, runner: Runner, task_id: str, workspace: str | Path, now: datetime | None = None
) -> ResumePoint | None:
    """Where a driver's first attempt of `task_id` resumes, or None: `settings.resume_hours`
    is None (resume off), the runner cannot resume, or `pick_resume` finds nothing."""
    hours = settings.resume_hours
    if hours is None or not runner.supports_resume:
        return None
    now = now or utcnow()
    since = now - timedelta(hours=hours)
    attempts = past_attempts(settings.repo, task_id, exclude=settings.run_dir, since=since)
    return pick_resume(attempts, workspace=workspace, now=now, timeout_hours=hours)


def command_for(
    runner: Runner,
    task: Any,
    workspace: Path,
    prompt_file: Path,
    iteration: int,
    point: ResumePoint | None,
) -> CommandSpec:
    """The runner's command for an attempt: resuming `point`'s session, else a fresh one."""
    if point is None:
        return runner.command(
            task, workspace=workspace, prompt_file=prompt_file, iteration=iteration
        )
    return runner.resume_command(
        task,
        workspace=workspace,
        prompt_file=prompt_file,
        iteration=iteration,
        session_id=point.session_id,
    )
