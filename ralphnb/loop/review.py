"""The review gate's state: tasks whose work is finished wait here for a person's decision.

Owns: `ReviewDesk`, one per run started with `review=True`: the tasks waiting (task id ->
`Waiting`), the `Verdict` a person gives one (accept; discard with a note; requeue with
feedback) handed to the task's waiting driver, and which decided tasks are still being carried
out (so `accept(..., wait=True)` can wait for the merge). Also the pure text helpers:
`with_feedback` (the next prompt) and `awaits_review_note` (a task the loop leaves waiting).
Never: merges, removes a workspace or writes the queue -- the driver carries a verdict out
(`reviewgate`). Invariants: every field is read and written with `cond` held (the run's one
condition, so the scheduler sees a task begin or end waiting); a task gets at most one verdict
per wait; a waiting task holds no worker slot (`count()` is subtracted from the busy drivers),
and a requeued one takes a slot only when one is free (`take_slot`), so `parallel` holds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from .._time import format_time, utcnow
from ..errors import RalphError
from ..workspace.diff import Diff, task_diff
from ..workspace.workspaces import Workspaces

ACTIONS = ("accept", "discard", "requeue")


@dataclass(frozen=True)
class Verdict:
    """A person's decision on a waiting task: `text` is a discard's note or the feedback."""

    action: str  # accept | discard | requeue
    text: str = ""


@dataclass(frozen=True)
class Waiting:
    """One task waiting for review: the attempt whose work is shown and where that work is."""

    task_id: str
    worker_id: str
    title: str
    workspace: str
    branch: str | None
    base: str | None  # the commit the workspace started from
    session_id: str | None  # the agent's session, resumed by a requeue where the runner can
    since: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "worker_id": self.worker_id,
            "title": self.title,
            "workspace": self.workspace,
            "branch": self.branch,
            "base": self.base,
            "since": format_time(self.since),
        }


class ReviewDesk:
    """The tasks of one run that wait for review (see the module docstring)."""

    def __init__(self, cond: threading.Condition) -> None:
        self.cond = cond
        self._waiting: dict[str, Waiting] = {}
        self._verdicts: dict[str, Verdict] = {}
        self._carrying: set[str] = set()  # verdict given, driver still carrying it out
        self._held: set[str] = set()  # requeued, waiting for a worker slot (holding none)

    # ------------------------------------------------------------ the driver's side

    def wait(self, item: Waiting, stop_asked: Callable[[], bool]) -> Verdict | None:
        """Wait (in the task's driver thread) for a verdict on `item`; None when the task or
        the loop is asked to stop first. The task counts as carrying out its verdict until
        `settled(task_id)`."""
        tid = item.task_id
        with self.cond:
            self._waiting[tid] = replace(item, since=utcnow())
            self.cond.notify_all()
            try:
                while tid not in self._verdicts and not stop_asked():
                    self.cond.wait()
                verdict = self._verdicts.pop(tid, None)
                if verdict is not None:
                    self._carrying.add(tid)
                return verdict
            finally:
                self._waiting.pop(tid, None)
                self.cond.notify_all()

    def settled(self, task_id: str) -> None:
        """The driver has carried out the task's verdict (merged, discarded, requeued)."""
        with self.cond:
            self._carrying.discard(task_id)
            self.cond.notify_all()

    def take_slot(
        self, task_id: str, slot_free: Callable[[], bool], stop_asked: Callable[[], bool]
    ) -> None:
        """A requeued task waits, holding no worker slot, until `slot_free()` (checked and
        taken under `cond`, so two tasks never take the last slot) or a stop is asked."""
        with self.cond:
            self._held.add(task_id)
            try:
                while not stop_asked() and not slot_free():
                    self.cond.wait()
            finally:
                self._held.discard(task_id)
                self.cond.notify_all()

    # ------------------------------------------------------------ the person's side

    def decide(self, task_id: str, verdict: Verdict, *, wait: float | None = None) -> None:
        """Give a waiting task its verdict; with `wait` (seconds), also wait until the driver
        has carried it out. RalphError when the task does not wait for review."""
        if verdict.action not in ACTIONS:
            raise RalphError(f"unknown review decision {verdict.action!r}; one of {ACTIONS}")
        with self.cond:
            if task_id not in self._waiting or task_id in self._verdicts:
                waiting = ", ".join(sorted(self._waiting)) or "none"
                raise RalphError(
                    f"{task_id} does not wait for review in this loop (waiting: {waiting})"
                )
            self._verdicts[task_id] = verdict
            self.cond.notify_all()
            if wait is not None:
                self.cond.wait_for(
                    lambda: task_id not in self._carrying and task_id not in self._verdicts,
                    timeout=wait,
                )

    def waiting(self) -> list[Waiting]:
        """The tasks waiting now, longest first."""
        with self.cond:
            return sorted(self._waiting.values(), key=lambda w: w.since)

    def get(self, task_id: str) -> Waiting | None:
        with self.cond:
            return self._waiting.get(task_id)

    def count(self) -> int:
        """Tasks whose driver holds no worker slot: waiting for a verdict, or requeued and
        waiting for a slot (read with `cond` held by the caller)."""
        return len(self._waiting) + len(self._held)


def with_feedback(prompt: str, feedback: str | None) -> str:
    """The prompt of an attempt a reviewer asked for, with the reviewer's words at its end."""
    if not feedback:
        return prompt
    return (
        f"{prompt.rstrip()}\n\n"
        "A person reviewed the change you made in this workspace and asks for more work. "
        "Their feedback follows; address it, commit, then mark the task done again as above.\n"
        "<review-feedback>\n"
        f"{feedback.strip()}\n"
        "</review-feedback>\n"
    )


def awaits_review_note(workspace: str, branch: str | None) -> str:
    """The note on a task the loop stopped while its work waited for review."""
    where = f"workspace {workspace}" + (f", branch {branch}" if branch else "")
    return (
        f"its finished work awaited review when the loop stopped; kept in {where}; "
        "the next run resumes the task there"
    )


def waiting_frame(items: list[Waiting] | list[dict[str, Any]]) -> Any:
    """The tasks waiting for review as a small DataFrame (one row each, longest first); the
    items as `Waiting` or as their `to_dict()` (what the control socket carries)."""
    import pandas as pd

    rows = [w.to_dict() if isinstance(w, Waiting) else w for w in items]
    cols = ("task_id", "title", "worker_id", "workspace", "branch")
    frame = pd.DataFrame({c: pd.array([r.get(c) for r in rows], dtype="string") for c in cols})
    frame["since"] = pd.array(
        pd.to_datetime([r.get("since") for r in rows], utc=True), dtype="datetime64[us, UTC]"
    )
    return frame


def diff_of(desk: ReviewDesk | None, workspaces: Workspaces, task_id: str, target: str) -> Diff:
    """The change of task `task_id` against `target`: the work waiting for review, else what
    the task's workspace branch holds so far (its committed work)."""
    if not workspaces.is_git:
        raise RalphError(f"{task_id}: diffs need a git repository (this one is worked on copies)")
    item = desk.get(task_id) if desk is not None else None
    if item is not None:
        path, base = item.workspace, item.base
    else:
        ws = workspaces.get(task_id)
        if ws is None or ws.kind == "copy":
            raise RalphError(f"{task_id} has no git workspace to compare (not started, or merged)")
        path, base = str(ws.path), ws.base
    return task_diff(task_id, path, target, base=base)


__all__ = [
    "ACTIONS",
    "ReviewDesk",
    "Verdict",
    "Waiting",
    "awaits_review_note",
    "diff_of",
    "waiting_frame",
    "with_feedback",
]
