"""What an agent did to a stub queue away from the user's repository, applied to the real one.

An executor that runs agents elsewhere (Dask) gives each one a stub queue holding only its task;
the agent's `ralphnb task done`/`reject`/`add` land there, and the exit reports them as
`ExitInfo.queue_marks`: `{"status": "done" | "rejected" | None, "notes": [str, ...],
"added": [task dicts]}`. Owns: `apply_queue_marks`, which the loop's driver calls after the
attempt's exit and before it reads the queue to judge the attempt.
Invariants: only the loop's process writes the user's queue (this runs there); tasks the agent
added get new ids from the user's queue, and their links to other stub-only ids are dropped (a
link to the agent's own task stays); `done` does not archive (integration does, after the merge).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..queue.store import Queue

#: fields of an added task that the user's queue sets itself
NOT_COPIED: tuple[str, ...] = (
    "id",
    "title",
    "status",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
)
LINKS: tuple[str, ...] = ("depends_on", "blocks", "relates_to", "duplicates")


def added_task_fields(task: Mapping[str, Any], task_id: str) -> dict[str, Any]:
    """The fields of a task the agent added to its stub queue that the user's queue takes:
    its own ids and timestamps are dropped, and so are links to ids other than `task_id` (they
    named other stub-only tasks, which mean nothing in the user's queue)."""
    fields = {k: v for k, v in task.items() if k not in NOT_COPIED}
    for link in LINKS:
        if fields.get(link):
            fields[link] = [i for i in fields[link] if i == task_id]
    if fields.get("parent_id") and fields["parent_id"] != task_id:
        del fields["parent_id"]
    return fields


def apply_queue_marks(queue: Queue, task_id: str, marks: Mapping[str, Any]) -> None:
    """Apply `marks` (see the module docstring) for task `task_id` to `queue`: first the tasks
    the agent added, then its task's done or rejected status with the notes it wrote.
    Raises what the queue raises (`QueueError`, `LockError`); each step is its own locked write."""
    note = "\n".join(marks.get("notes") or []) or None
    for t in marks.get("added") or []:
        queue.add(str(t.get("title") or "untitled"), **added_task_fields(t, task_id))
    if marks.get("status") == "done":
        queue.complete(task_id, note, archive=False)
    elif marks.get("status") == "rejected":
        queue.reject(task_id, note)
