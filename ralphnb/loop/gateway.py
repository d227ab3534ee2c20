"""The queue as one task's driver sees it: the few operations it makes, and how they wait.

Owns: `TaskQueue`, bound to one task of one run. The operations a task's outcome depends on
(start, read its status, complete, archive, reopen) wait and retry while the queue file does not
parse (a user saving it half-edited) rather than fail a task whose work is done and leave it
`doing`; the row's error says what they wait for, and they give up when the task or the loop is
asked to stop; a write that fails (a full disk) raises naming the file. The rest are best effort
by design: the note of a task put back (the loop's bookkeeping must never take a driver down;
`put_back` returns what it could not write instead), the queue marks of a remote agent (applied
once; see `marks`) and the copy of the task given to an executor.
Invariants: one locked read-modify-write per operation (the `Queue` does that); never holds the
flags' condition while the queue lock is held.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import QueueError, RalphError
from ..queue.store import Queue, Task
from .context import RunFlags
from .failures import describe, with_file
from .marks import apply_queue_marks

#: seconds between two reads of a queue file that does not parse (or a merge that is blocked)
RETRY_BLOCKED_S = 2.0


class TaskQueue:
    """Queue operations of task `task_id`'s driver (see the module docstring).

    `waiting(message)` puts a wait on the task's row; `asked_to_stop()` (called with
    `flags.cond` held) ends a wait by re-raising the queue's error."""

    def __init__(
        self,
        queue: Queue,
        task_id: str,
        flags: RunFlags,
        *,
        waiting: Callable[[str], None],
        asked_to_stop: Callable[[], bool],
    ) -> None:
        self.queue = queue
        self.task_id = task_id
        self.flags = flags
        self.waiting = waiting
        self.asked_to_stop = asked_to_stop

    def _retry(self, fn: Callable[..., Task], *args: Any, **kwargs: Any) -> Task:
        last = ""
        while True:
            try:
                return fn(*args, **kwargs)
            except OSError as exc:  # e.g. a full disk: say which file
                archiving = fn == self.queue.archive or kwargs.get("archive")
                path = self.queue.done_path if archiving else self.queue.queue_path
                raise with_file(exc, path) from None
            except QueueError as exc:
                if exc.line is None:  # not a syntax error: retrying will not help
                    raise
                if str(exc) != last:
                    last = str(exc)
                    self.waiting(f"{exc}; waiting for the file to be fixed")
                with self.flags.cond:
                    if self.flags.stopping or self.asked_to_stop():
                        raise
                    self.flags.cond.wait(RETRY_BLOCKED_S)

    # ------------------------------------------------------------ retried while unparsable

    def start(self) -> None:
        """Mark the task `doing`."""
        self._retry(self.queue.start, self.task_id)

    def status(self) -> str:
        """The task's status now (a fresh read of a file others write)."""
        return str(self._retry(self.queue.get, self.task_id).status)

    def complete(self, *, archive: bool) -> None:
        """Mark the task done; `archive=False` leaves it in the queue file until it is merged."""
        self._retry(self.queue.complete, self.task_id, archive=archive)

    def archive(self) -> None:
        """Move the (done) task to the done file."""
        self._retry(self.queue.archive, self.task_id)

    def reopen(self) -> None:
        """Undo a done mark that did not complete the task: back to `doing`."""
        self._retry(self.queue.update, self.task_id, status="doing", completed_at=None)

    # ------------------------------------------------------------ best effort

    def current(self, default: dict[str, Any]) -> dict[str, Any]:
        """The task as the queue holds it now; `default` if it cannot be read."""
        try:
            return self.queue.get(self.task_id).to_dict()
        except RalphError:
            return default

    def apply_marks(self, marks: Mapping[str, Any]) -> str | None:
        """Apply a remote agent's queue marks (see `marks`) once; the error, if any."""
        try:
            apply_queue_marks(self.queue, self.task_id, marks)
        except RalphError as exc:
            return str(exc)
        except Exception as exc:  # marks come from another host: a malformed one is reported
            return f"{type(exc).__name__}: {exc}"
        return None

    def put_back(self, note: str) -> str | None:
        """Back to `todo` with `note` (a user's reject or draft stands: only the note is added).
        Never raises: a task the loop cannot put back (its file unreadable, a full disk) stays
        as it is, the next run sees it; returns why, in one line, or None when it is back."""
        try:
            task = self.queue.get(self.task_id)
            notes = [*task.notes, note]
            if task.status in ("rejected", "draft"):  # the user's decision stands
                self.queue.update(self.task_id, notes=notes)
            else:
                self.queue.update(self.task_id, status="todo", completed_at=None, notes=notes)
        except (RalphError, OSError) as exc:
            return describe(exc, self.queue.queue_path)  # (a failed write names no file)
        return None
