"""The task queue: `.ralph/queue.jsonc` (open work, file order) and `.ralph/done.jsonc` (archive).

Both paths, the prefix and width every id must have, and the dependency depth ralph warns
beyond come from ralph's configuration (`config.load_queue_settings`: ralph's defaults, the
user's global config, the repo's `.ralph/config.jsonc`), read once when a `Queue` is made.

Owns: the `Queue` class (reading, caching, locking, every mutation), `init` and the DataFrame
view; `Task` (in `task`) is what it hands out. The pure rules it applies live in `rules`
(schema, selection, ids, archiving), `validation` and `links` (ralph's errors and warnings),
`ralphjson` (ralph's bytes), `graph` (ralph's dependency graph) and `repair` (ralph's repair,
with its own locked read and write, since it reads files that do not validate). It knows
nothing of running agents.

Invariants: every mutation takes `.ralph/lock/`, re-reads both files from disk, applies one
change, validates the whole result and writes atomically (done first, then queue, as ralph
does); nothing is written from an in-memory copy, and a file that fails to parse or validate is
never overwritten. Tasks are held in ralph's form (`ralphjson.canonical_task`), so a write is
the bytes ralph would write: a file ralph wrote changes only in the tasks that changed.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .._paths import git_dir_of
from .._time import utcnow
from ..errors import QueueError
from .config import QueueSettings, load_queue_settings
from .frame import tasks_frame
from .graph import TaskGraph
from .jsonio import (
    atomic_write_bytes,
    loads_jsonc,
    read_or_none,
    replace_if_unchanged,
    sweep_temp_files,
)
from .links import Validation, ValidationWarning, check_links, link_warnings
from .lock import DirLock
from .ralphjson import canonical_task, dumps_queue_file, stamp_now
from .repair import RepairReport, repair_files
from .rules import (
    ALLOWED,
    EMPTY_DOC,
    TERMINAL,
    heal_interrupted_move,
    move_terminal,
    next_id,
    runnable_tasks,
    select_next,
    set_field,
)
from .state import State as _State
from .state import no_gc as _no_gc
from .state import refuse_non_files as _refuse_non_files
from .task import Task
from .validation import check_doc, check_task, task_error

__all__ = ["Queue", "Task", "Validation", "ValidationWarning", "init"]

Notes = str | Sequence[str] | None  # one note, or several (ralph's repeatable `--note`)


class _NothingToDo(Exception):
    """A mutation found nothing to change under the lock: nothing is written."""


#: Rounds of read-change-write before giving up on a file that keeps changing under the lock.
_CAS_TRIES = 50
#: How long a file that does not parse is watched for a save in progress before it is an error.
_SAVE_SETTLE_S = 1.0


class Queue:
    """A repository's queue. Reads are fresh (cached only while both files are unchanged)."""

    def __init__(
        self, repo: str | Path = ".", *, lock_timeout: float = 10.0, label: str = "ralphnb"
    ) -> None:
        self.repo = Path(repo).resolve()
        self.ralph_dir = self.repo / ".ralph"  # the lock lives here whatever the config says
        self.settings: QueueSettings = load_queue_settings(self.repo)
        self.queue_path = self.repo / self.settings.file
        self.done_path = self.repo / self.settings.done_file
        self.lock_timeout = lock_timeout
        self.label = label
        self._cache: _State | None = None  # valid only while both files hold the same bytes
        _refuse_non_files(self.queue_path, self.done_path)
        if not self.queue_path.is_file():
            raise QueueError(
                f"{self.queue_path}: no queue here; create one with ralphnb.init({str(repo)!r})"
                " or `ralphnb init`",
                path=self.queue_path,
            )

    def __repr__(self) -> str:
        return f"Queue({str(self.repo)!r})"

    # -- reading ------------------------------------------------------------------------------
    def _load(self, *, fresh: bool = False) -> _State:
        """Both files, parsed and validated. The parse is reused only when the bytes on disk
        are identical to those it came from (so hand edits are always seen)."""
        _refuse_non_files(self.queue_path, self.done_path)  # a FIFO would block the read
        try:
            qraw = self.queue_path.read_bytes()
        except FileNotFoundError:
            raise QueueError(f"{self.queue_path}: file not found", path=self.queue_path) from None
        try:
            draw: bytes | None = self.done_path.read_bytes()
        except FileNotFoundError:
            draw = None
        c = self._cache
        if not fresh and c is not None and c.qraw == qraw and c.draw == draw:
            return c
        ids = {"prefix": self.settings.prefix, "width": self.settings.width}
        with _no_gc():  # bulk parse: no cyclic GC passes over objects that are all live
            qdoc = loads_jsonc(qraw, path=self.queue_path)
            ddoc = (
                loads_jsonc(draw, path=self.done_path)
                if draw is not None
                else {"version": 1, "tasks": []}
            )
            # tasks are validated and held in ralph's form (`fix`) in one pass
            open_tasks = check_doc(qdoc, self.queue_path, fix=canonical_task, **ids)
            done_tasks = check_doc(ddoc, self.done_path, archive=True, fix=canonical_task, **ids)
            healed = heal_interrupted_move(open_tasks, done_tasks)
            qdoc["tasks"] = healed
            ddoc["tasks"] = done_tasks
            check_links(healed, done_tasks, self.queue_path, self.done_path)
        state = _State(qdoc, ddoc, len(healed) != len(open_tasks), qraw, draw)
        self._cache = state
        return state

    def validate(self) -> Validation:
        """Validate both files fresh from disk as ralph does: raise `QueueError` on the first
        error; else return the number of tasks (an int, as before) whose `.warnings` are every
        warning ralph gives (see `links.link_warnings`), computed when first read."""
        s = self._load(fresh=True)
        depth = self.settings.max_dependency_depth

        def warnings() -> list[ValidationWarning]:  # computed when `.warnings` is first read
            with _no_gc():  # many small objects beside a large live parse: no GC passes
                return link_warnings(
                    s.open, s.done, self.queue_path, self.done_path, max_dependency_depth=depth
                )

        return Validation(len(s.open) + len(s.done), warnings)

    @property
    def tasks(self) -> list[Task]:
        """Open tasks (queue.jsonc), in file order."""
        return [Task(t, "queue") for t in self._load().open]

    @property
    def done(self) -> list[Task]:
        """Archived tasks (done.jsonc), in file order."""
        return [Task(t, "done") for t in self._load().done]

    def _find(self, s: _State, task_id: str) -> tuple[list[dict], int]:
        for tasks in (s.open, s.done):
            for i, t in enumerate(tasks):
                if t["id"] == task_id:
                    return tasks, i
        raise QueueError(
            f"{self.queue_path}: no task {task_id} in {self.queue_path.name} or "
            f"{self.done_path.name}",
            path=self.queue_path,
            task_id=task_id,
            field="id",
        )

    def get(self, task_id: str) -> Task:
        s = self._load()
        tasks, i = self._find(s, task_id)
        return Task(tasks[i], "queue" if tasks is s.open else "done")

    def runnable(self, *, exclude: Iterable[str] = (), now: datetime | None = None) -> list[Task]:
        s = self._load()
        found = runnable_tasks(s.open, s.done, exclude=exclude, now=now or utcnow())
        return [Task(t, "queue") for t in found]

    def next(self, *, exclude: Iterable[str] = (), now: datetime | None = None) -> Task | None:
        s = self._load()
        t = select_next(s.open, s.done, exclude=exclude, now=now or utcnow())
        return Task(t, "queue") if t is not None else None

    @property
    def df(self) -> Any:
        """One row per task (queue then done), typed columns, `file` says which file."""
        s = self._load()
        with _no_gc():
            return tasks_frame(s.open, s.done)

    # -- writing ------------------------------------------------------------------------------
    def lock(self) -> DirLock:
        return DirLock(self.ralph_dir, label=self.label, timeout=self.lock_timeout)

    def _mutate(self, change: Any) -> Task:
        """Lock, read fresh, apply `change(state) -> (task, touched_files)`, validate, write.

        `change` works on a copy-on-write state: it may reorder the lists and must replace
        (not modify) a task dict it edits, so the cached parse stays what is on disk. Each file
        is written with a compare-and-swap: when someone saved it by hand since it was read
        (editors do not take the lock), the change is applied again to what they saved.
        """
        with self.lock():
            for d in dict.fromkeys((self.ralph_dir, self.queue_path.parent, self.done_path.parent)):
                sweep_temp_files(d)
            for _ in range(_CAS_TRIES):
                try:
                    done = self._apply_and_write(change)
                except QueueError as exc:
                    if exc.line is None or not self._being_saved():
                        raise
                    continue  # a half-saved file (an editor writing in place): read it again
                if done is not None:
                    return done
        raise QueueError(
            f"{self.queue_path}: the file kept changing while ralphnb wrote it "
            f"({_CAS_TRIES} tries); stop the program rewriting it and try again",
            path=self.queue_path,
        )

    def _apply_and_write(self, change: Any) -> Task | None:
        """One read-change-write round; None when a file changed under it (nothing lost)."""
        s = self._load().working_copy()
        qraw, draw = s.qraw, s.draw
        task, touched = change(s)
        # Both files were fully validated when loaded; the change touched one task.
        in_done = any(t is task for t in s.done)
        path = self.done_path if in_done else self.queue_path
        check_task(task, path, prefix=self.settings.prefix, width=self.settings.width)
        if in_done and task.get("status") not in TERMINAL:
            raise task_error(path, task["id"], "status", "done.jsonc may only hold done/rejected")
        tasks = s.done if in_done else s.open
        canon = canonical_task(task)  # in ralph's form, as every other task already is
        if canon is not task:
            tasks[next(i for i, t in enumerate(tasks) if t is task)] = task = canon
        check_links(s.open, s.done, self.queue_path, self.done_path)
        self._cache = None
        if "done" in touched:
            s.draw = dumps_queue_file(s.ddoc)
            if not replace_if_unchanged(self.done_path, s.draw, draw):
                return None
        if "queue" in touched or s.healed:
            s.qraw = dumps_queue_file(s.qdoc)
            if not replace_if_unchanged(self.queue_path, s.qraw, qraw):
                if "done" not in touched:
                    return None
                # done.jsonc already holds the moved task: finish the move on the queue as it
                # is now (every read heals a task found in both files, so a give-up is safe)
                self._finish_move()
                return Task(copy.deepcopy(task), "done" if in_done else "queue")
        s.healed = False
        self._cache = s
        return Task(copy.deepcopy(task), "done" if in_done else "queue")

    def _being_saved(self) -> bool:
        """Does either file change within a moment (someone is writing it right now)?"""
        before = [read_or_none(p) for p in (self.queue_path, self.done_path)]
        deadline = time.monotonic() + _SAVE_SETTLE_S  # a loaded machine pauses an editor long
        while time.monotonic() < deadline:
            time.sleep(0.01)
            if before != [read_or_none(p) for p in (self.queue_path, self.done_path)]:
                return True
        return False

    def _finish_move(self) -> None:
        for _ in range(_CAS_TRIES):
            with contextlib.suppress(QueueError):
                s = self._load(fresh=True)
                if not s.healed:
                    return
                if replace_if_unchanged(self.queue_path, dumps_queue_file(s.qdoc), s.qraw):
                    return

    def add(self, title: str, **fields: Any) -> Task:
        """Append a new task (next id, allocated under the lock) and persist it."""
        bad = set(fields) - ALLOWED - {"id"} or ({"id"} & set(fields))
        if bad:
            key = sorted(bad)[0]
            raise QueueError(f"add(): unknown or reserved field {key!r}", field=key)
        if not isinstance(title, str) or not title.strip():
            # Checked before an id is allocated: the error must not name a task that never was.
            raise QueueError(
                f"add(): the title must be a non-empty string, not {title!r}",
                path=self.queue_path,
                field="title",
            )

        def change(s: _State) -> tuple[dict, set[str]]:
            stamp = stamp_now()
            tid = next_id(s.open, s.done, prefix=self.settings.prefix, width=self.settings.width)
            t: dict[str, Any] = {"id": tid, "status": "todo", "title": title, "priority": "medium"}
            t["created_at"] = t["updated_at"] = stamp
            for k, v in fields.items():
                set_field(t, k, list(v) if isinstance(v, tuple) else v)
            check_task(t, self.queue_path, prefix=self.settings.prefix, width=self.settings.width)
            t = canonical_task(t)
            s.open.append(t)
            return t, {"queue"}

        return self._mutate(change)

    def _edit(self, task_id: str, edit: Any, *, move: bool = False) -> Task:
        """Apply `edit(task_dict, now)` to one task; `updated_at` becomes `now`."""

        def change(s: _State) -> tuple[dict, set[str]]:
            tasks, i = self._find(s, task_id)
            t = tasks[i] = copy.deepcopy(tasks[i])  # copy-on-write: the cache stays intact
            now = stamp_now()  # one instant per change: updated_at equals a stamp it sets
            edit(t, now)
            set_field(t, "updated_at", now)
            touched = {"queue" if tasks is s.open else "done"}
            if move and tasks is s.open:
                del s.open[i]
                s.done.append(t)
                touched = {"queue", "done"}
            return t, touched

        return self._mutate(change)

    @staticmethod
    def _note(t: dict, note: str | Sequence[str] | None) -> None:
        new = [note] if isinstance(note, str) else list(note or ())
        if any(new):
            set_field(t, "notes", [*t.get("notes", []), *(n for n in new if n)])

    def start(self, task_id: str) -> Task:
        """Mark a task `doing` and stamp `started_at` (kept if already set)."""

        def edit(t: dict, now: str) -> None:
            if t.get("status") in TERMINAL:
                raise QueueError(
                    f"task {task_id} is already {t['status']}", task_id=task_id, field="status"
                )
            set_field(t, "status", "doing")
            if not t.get("started_at"):
                set_field(t, "started_at", now)

        return self._edit(task_id, edit)

    def _finish(self, task_id: str, status: str, note: Notes, archive: bool) -> Task:
        def edit(t: dict, now: str) -> None:
            if t.get("status") not in TERMINAL or t.get("status") != status:
                set_field(t, "status", status)
                set_field(t, "completed_at", now)
            self._note(t, note)

        return self._edit(task_id, edit, move=archive)

    def complete(self, task_id: str, note: Notes = None, *, archive: bool = True) -> Task:
        """Mark done (stamp completed_at); move to done.jsonc unless `archive=False`."""
        return self._finish(task_id, "done", note, archive)

    def reject(self, task_id: str, note: Notes = None) -> Task:
        """Mark rejected (stamp completed_at) and move to done.jsonc."""
        return self._finish(task_id, "rejected", note, True)

    def set_status(
        self, task_id: str, status: str, note: Notes = None, *, only_from: str | None = None
    ) -> Task:
        """ralph's `task status`: done/rejected complete and archive the task; another status
        is set in place (`doing` stamps `started_at` if unset). `only_from` refuses a task not
        in that status (ralph's `task ready`: only a draft becomes todo)."""
        if status in TERMINAL and only_from is None:
            return self._finish(task_id, status, note, True)

        def edit(t: dict, now: str) -> None:
            if only_from is not None and t.get("status", "todo") != only_from:
                raise QueueError(
                    f"task {task_id} is {t.get('status', 'todo')}, not {only_from}",
                    task_id=task_id,
                    field="status",
                )
            set_field(t, "status", status)
            if status not in TERMINAL:
                set_field(t, "completed_at", None)
            if status == "doing" and not t.get("started_at"):
                set_field(t, "started_at", now)
            self._note(t, note)

        return self._edit(task_id, edit)

    def graph(self, *, include_done: bool = False) -> TaskGraph:
        """The dependency graph of both files; shows as ralph's `queue graph` tree."""
        s = self._load()
        return TaskGraph(s.open, s.done, include_done=include_done)

    def archive_terminal(self) -> list[str]:
        """ralph's `queue archive`: move every done/rejected task of queue.jsonc to done.jsonc
        in one write (each stamped `updated_at`); the ids moved, in file order."""

        ids: list[str] = []

        def change(s: _State) -> tuple[dict, set[str]]:
            moved = move_terminal(s.open, s.done, stamp_now())
            ids[:] = [t["id"] for t in moved]  # this round's (a retried round starts again)
            if not moved:
                raise _NothingToDo
            return moved[-1], {"queue", "done"}

        try:
            self._mutate(change)
        except _NothingToDo:
            return []
        return ids

    def repair(self, *, dry_run: bool = False) -> RepairReport:
        """ralph's `queue repair` (see `repair`); works on files that do not validate."""
        p = self.settings
        self._cache = None
        return repair_files(
            self.queue_path,
            self.done_path,
            self.lock(),
            prefix=p.prefix,
            width=p.width,
            dry_run=dry_run,
        )

    def archive(self, task_id: str) -> Task:
        """Move an already done/rejected task from queue.jsonc to done.jsonc."""

        def edit(t: dict, now: str) -> None:
            if t.get("status") not in TERMINAL:
                raise QueueError(
                    f"task {task_id} is {t.get('status', 'todo')}, not done or "
                    "rejected; complete() or reject() it",
                    task_id=task_id,
                    field="status",
                )

        return self._edit(task_id, edit, move=True)

    def update(self, task_id: str, **fields: Any) -> Task:
        """Set fields of one task (None removes an optional field); validated before writing."""
        bad = set(fields) - ALLOWED or ({"id", "created_at"} & set(fields))
        if bad:
            key = sorted(bad)[0]
            raise QueueError(
                f"update(): unknown or read-only field {key!r}", task_id=task_id, field=key
            )

        def edit(t: dict, now: str) -> None:
            for k, v in fields.items():
                set_field(t, k, list(v) if isinstance(v, tuple) else v)
            if t.get("status") in TERMINAL and not t.get("completed_at"):
                set_field(t, "completed_at", now)
            check_task(t, self.queue_path, prefix=self.settings.prefix, width=self.settings.width)

        return self._edit(task_id, edit)

    def add_note(self, task_id: str, note: str) -> Task:
        return self._edit(task_id, lambda t, now: self._note(t, note))


def init(repo: str | Path = ".") -> Queue:
    """Create `.ralph/` with empty queue and done files (never overwrites) and gitignore lines.

    The files go where `.ralph/config.jsonc` says (if there is one); no config is written.
    """
    root = Path(repo).resolve()
    inside = git_dir_of(root)
    if inside is not None:
        raise QueueError(
            f"{root}: is inside the git directory {inside} (a bare repository or .git), which has "
            "no work tree for .ralph/; run ralphnb in a checkout of the repository",
            path=root,
        )
    settings = load_queue_settings(root)  # a bad config fails before anything is created
    _refuse_non_files(root / settings.file, root / settings.done_file)
    ralph = root / ".ralph"
    ralph.mkdir(parents=True, exist_ok=True)
    with DirLock(ralph):
        for rel in (settings.file, settings.done_file):
            p = root / rel
            if not p.exists():
                p.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(p, dumps_queue_file(EMPTY_DOC))
    gi = root / ".gitignore"
    wanted = [b".ralph/lock/", b".ralph/cache/"]
    # Bytes, not text: a .gitignore in another encoding is kept exactly; the user's file is
    # replaced atomically (never left cut short).
    data = gi.read_bytes() if gi.exists() else b""
    lines = {ln.strip() for ln in data.splitlines()}
    missing = [w for w in wanted if w not in lines and w.rstrip(b"/") not in lines]
    if missing:
        sep = b"" if not data or data.endswith(b"\n") else b"\n"
        atomic_write_bytes(gi.resolve(), data + sep + b"\n".join(missing) + b"\n")  # a link stays
    return Queue(root)
