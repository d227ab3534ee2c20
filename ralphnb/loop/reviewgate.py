"""The review gate, in a task's driver: finished work waits for a person, then their verdict is
carried out.

Owns: `review_step(driver, ws, marked)`, called by a driver of a loop with `review=True` where
it would integrate: the task stays `doing` in the queue (a done mark is undone, so a crash never
merges work nobody accepted), the workspace's work is committed on its branch (what is shown is
what would be merged), the row goes to `review`, and the driver thread waits on the run's
`ReviewDesk` holding no worker slot. Then: accept -> done and integrated as without review
(conflicts as today); discard -> workspace and branch removed, task back to `todo` with the
note; requeue -> another attempt in the same workspace, once a worker slot is free, whose
prompt carries the feedback and which resumes the agent's session where the runner can
(`spawn.phase_command`); a stop of the task or
the loop -> back to `todo` with `awaits_review_note`, workspace and branch kept.
Never: imports the driver (it is given one; `GateDriver` is what it uses).
"""

from __future__ import annotations

from typing import Any, Protocol

from .._time import utcnow
from ..workspace.merge import commit_workspace
from ..workspace.workspaces import Workspace
from .context import DriverContext
from .events import Event
from .gateway import TaskQueue
from .review import ReviewDesk, Waiting, awaits_review_note


class GateDriver(Protocol):
    """The parts of a `driver.Driver` the gate uses."""

    ctx: DriverContext
    task: dict[str, Any]
    task_id: str
    title: str
    iteration: int
    marked_done: bool
    queue: TaskQueue
    feedback: str | None
    resume_session: str | None

    @property
    def worker_id(self) -> str: ...
    def _ev(self, kind: str, *, wid: str | None = None, **data: Any) -> None: ...
    def _stop_asked(self) -> bool: ...
    def _put_back(self, why: str) -> None: ...
    def _integrate(self, ws: Workspace | None) -> None: ...


def review_step(d: GateDriver, desk: ReviewDesk, ws: Workspace, marked: bool) -> bool:
    """Hold the finished task `d` for review and carry out the verdict; True when another
    attempt follows (a requeue), False when the task's life in this run ends here."""
    if marked:  # done only once a person accepts it
        d.queue.reopen()
    if ws.kind != "copy":
        commit_workspace(ws.path, f"{d.task_id}: {d.title}")
    wid = d.worker_id
    row = d.ctx.row(wid) or {}
    item = Waiting(
        task_id=d.task_id,
        worker_id=wid,
        title=d.title,
        workspace=str(ws.path),
        branch=ws.branch,
        base=ws.base,
        session_id=row.get("session_id"),
        since=utcnow(),
    )
    d._ev("review", status="review")
    verdict = desk.wait(item, d._stop_asked)
    if verdict is None:  # the task or the loop was stopped meanwhile: keep the work
        note = awaits_review_note(str(ws.path), ws.branch)
        d._ev("status", wid=wid, status="stopped", error=note)
        d._put_back(note)
        return False
    try:
        data = {"decision": verdict.action, "text": verdict.text}
        d.ctx.emit(Event("reviewed", d.task_id, wid, data=data))
        if verdict.action == "accept":
            d.queue.complete(archive=False)  # done before merging, as without review
            d.marked_done = True
            d._integrate(ws)
            return False
        if verdict.action == "discard":
            d.ctx.workspaces.remove(ws, delete_branch=True)
            note = f"discarded in review: {verdict.text}" if verdict.text else "discarded in review"
            d._ev("status", wid=wid, status="discarded", error=note)
            d._put_back(note)
            return False
        d.feedback = verdict.text or None
        d.resume_session = item.session_id
        d._ev("status", wid=wid, status="succeeded", message=f"changes requested: {verdict.text}")
        desk.settled(d.task_id)  # the person's `requeue()` returns now, not when a slot frees
        desk.take_slot(d.task_id, d.ctx.slot_free, d._stop_asked)  # `parallel` holds
        return True
    finally:
        desk.settled(d.task_id)


__all__ = ["GateDriver", "review_step"]
