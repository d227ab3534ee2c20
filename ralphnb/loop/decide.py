"""Pure decisions of the loop: which tasks start, whether an attempt completed its task, when
the scheduler must next wake.

Invariants: functions of their arguments only (facts and "now" passed in); no I/O, no threads,
no clock reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


def deps_merged(task: dict[str, Any], open_status: dict[str, str]) -> bool:
    """A dependency still in queue.jsonc (even `done`, i.e. not yet merged) is not satisfied,
    unless it was rejected."""
    return all(open_status.get(d, "rejected") == "rejected" for d in task.get("depends_on") or ())


def pick_tasks(
    runnable: Iterable[dict[str, Any]], open_status: dict[str, str], *, busy: set[str], free: int
) -> list[dict[str, Any]]:
    """Up to `free` tasks to start, in the queue's selection order."""
    out: list[dict[str, Any]] = []
    for t in runnable:
        if len(out) >= free:
            break
        if t["id"] not in busy and deps_merged(t, open_status):
            out.append(t)
    return out


@dataclass(frozen=True)
class Decision:
    action: str  # "complete" | "retry" | "fail"
    reason: str = ""


def decide(
    *,
    iteration: int,
    max_iterations: int,
    marked_done: bool,
    promise_seen: bool,
    check_ok: bool | None,
    check_msg: str = "",
    exit_msg: str = "",
) -> Decision:
    """After an attempt: complete, another iteration, or give up (with the reason)."""
    if marked_done or promise_seen:
        if check_ok is None or check_ok:
            return Decision("complete")
        reason = f"check failed: {check_msg}".strip()
    else:
        reason = "the agent neither marked the task done nor printed the completion promise"
        if exit_msg:
            reason = f"{exit_msg}; {reason}"
    if iteration >= max_iterations:
        return Decision("fail", f"not complete after {iteration} iteration(s): {reason}")
    return Decision("retry", reason)


def why_not_continued(action: str | None, halt_reason: str | None, note: str | None = None) -> str:
    """Why a task's driver took no further step: the user's stop or kill, the stuck watch's
    stop or requeue (`note` says why), a halt, a stop_all."""
    if action == "kill":
        return "killed by the user"
    if action == "stop":
        return "stopped by the user"
    if action in ("stuck", "requeue"):
        return f"stopped: {note}"
    if action == "timeout" or halt_reason:
        return f"loop halted: {halt_reason}"
    return "the loop was stopped (stop_all, Ctrl-C or interpreter exit)"


def next_deadline(
    now: datetime, *, wall_deadline: datetime | None, scheduled: Iterable[datetime]
) -> float | None:
    """Seconds until the scheduler must wake without an event (None: only on events)."""
    times = [t for t in (wall_deadline, *scheduled) if t is not None and t > now]
    return max(0.001, (min(times) - now).total_seconds()) if times else None
