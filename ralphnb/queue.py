"""The task queue: `.ralph/queue.jsonc` (open work, file order) and `.ralph/done.jsonc` (archive).

Owns: the `Task` model, validation of both files against ralph's rules, task selection, and
every mutation. It knows nothing of running agents.

Invariants: every mutation takes `.ralph/lock/`, re-reads both files from disk, applies one
change, validates the whole result and writes atomically (done first, then queue, as ralph
does); nothing is written from an in-memory copy, and a file that fails to parse or validate is
never overwritten. Task dicts keep their key order and any valid data ralphnb does not use.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import QueueError
from .events import format_time, parse_time, utcnow
from .ids import DEFAULT_PREFIX, DEFAULT_WIDTH, format_task_id, id_number, is_task_id
from .jsonio import atomic_write_bytes, dumps_pretty, loads_jsonc, sweep_temp_files
from .lock import DirLock

STATUSES = ("draft", "todo", "doing", "done", "rejected")
PRIORITIES = ("critical", "high", "medium", "low")
TERMINAL = frozenset({"done", "rejected"})
# ralph's field order (as its own files are written); new keys are placed accordingly.
FIELDS = (
    "id", "status", "title", "description", "priority", "tags", "scope", "evidence", "plan",
    "notes", "request", "agent", "created_at", "updated_at", "started_at", "scheduled_start",
    "completed_at", "estimated_minutes", "actual_minutes", "depends_on", "blocks", "relates_to",
    "duplicates", "parent_id", "custom_fields",
)  # fmt: skip
_ORDER = {k: i for i, k in enumerate(FIELDS)}
ALLOWED = frozenset(FIELDS)
AGENT_KEYS = frozenset({"runner", "model", "model_effort", "phases", "iterations",
                        "phase_overrides", "runner_cli", "followup_reasoning_effort"})
REQUIRED = ("id", "title", "created_at", "updated_at")
TEXT_LISTS = ("tags", "scope", "evidence", "plan", "notes")
ID_LISTS = ("depends_on", "blocks", "relates_to")
OPT_TEXT = ("description", "request")
OPT_ID = ("duplicates", "parent_id")
TIMES = ("created_at", "updated_at", "started_at", "scheduled_start", "completed_at")
MINUTES = ("estimated_minutes", "actual_minutes")
DEFAULTS: dict[str, Any] = {
    "status": "todo", "priority": "medium", "description": None, "request": None,
    "agent": None, "started_at": None, "scheduled_start": None, "completed_at": None,
    "estimated_minutes": None, "actual_minutes": None, "duplicates": None, "parent_id": None,
    "custom_fields": {}, **{k: [] for k in TEXT_LISTS + ID_LISTS},
}  # fmt: skip
_TS_RE = re.compile(
    r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d"
    r"(?:\.\d{1,9})?(?:Z|\+00:00)\Z"
)
EMPTY_DOC = {"version": 1, "tasks": []}


class Task:
    """One task. Every ralph field is an attribute (with ralph's default when absent)."""

    __slots__ = ("_data", "file")

    def __init__(self, data: dict[str, Any], file: str = "queue") -> None:
        self._data = data
        self.file = file  # "queue" or "done": which file it was read from

    def __getattr__(self, name: str) -> Any:
        if name in DEFAULTS or name in ALLOWED:
            value = self._data.get(name, DEFAULTS.get(name))
            if name == "custom_fields":
                return {k: _coerce_text(v) for k, v in (value or {}).items()}
            return copy.deepcopy(value) if isinstance(value, list | dict) else value
        raise AttributeError(name)

    def to_dict(self) -> dict[str, Any]:
        """The task's JSON form (a copy; key order and unknown-to-ralphnb data kept)."""
        return copy.deepcopy(self._data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Task) and other._data == self._data

    def __repr__(self) -> str:
        return f"Task({self._data.get('id')!r}, {self._data.get('status', 'todo')!r}, " \
            f"{self._data.get('title')!r})"


def _coerce_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


# --- validation ----------------------------------------------------------------------------


def _bad(path: Path | None, tid: Any, field: str | None, problem: str) -> QueueError:
    who = f"task {tid}" if isinstance(tid, str) else "a task"
    where = f"{path}: " if path else ""
    what = f"field {field!r}: " if field else ""
    return QueueError(f"{where}{who}: {what}{problem}", path=path, task_id=tid, field=field)


_STATUS_SET = frozenset(STATUSES)
_PRIORITY_SET = frozenset(PRIORITIES)
_ID_MATCH = re.compile(r"[A-Z][A-Z0-9]{0,15}-[0-9]{1,12}\Z").match  # same rule as ralphnb.ids
_TS_MATCH = _TS_RE.match
_SCALARS = (str, int, float, bool)


def _task_ok(t: Any) -> bool:
    """Fast path of `check_task`: True when valid (C-level checks; any doubt returns False)."""
    try:
        if type(t) is not dict or not ALLOWED.issuperset(t):
            return False
        get = t.get
        tid, title = t["id"], t["title"]
        if type(tid) is not str or _ID_MATCH(tid) is None or type(title) is not str:
            return False
        if not title.strip() or _TS_MATCH(t["created_at"]) is None:
            return False
        if _TS_MATCH(t["updated_at"]) is None:
            return False
        status = get("status", "todo")
        if status not in _STATUS_SET or get("priority", "medium") not in _PRIORITY_SET:
            return False
        for k in ("started_at", "scheduled_start", "completed_at"):
            v = get(k)
            if v is not None and _TS_MATCH(v) is None:
                return False
        for k in TEXT_LISTS:
            v = get(k)
            if v is not None and (type(v) is not list or not all(map(str.__len__, v))):
                return False
        for k in ID_LISTS:
            v = get(k)
            if v is not None and (type(v) is not list or not all(map(_ID_MATCH, v))):
                return False
        for k in ("description", "request"):
            v = get(k)
            if v is not None and type(v) is not str:
                return False
        for k in ("duplicates", "parent_id"):
            v = get(k)
            if v is not None and (type(v) is not str or _ID_MATCH(v) is None):
                return False
        for k in MINUTES:
            v = get(k)
            if v is not None and (type(v) is not int or v < 0):
                return False
        cf = get("custom_fields")
        if cf and (type(cf) is not dict or not all(type(x) in _SCALARS for x in cf.values())):
            return False
        if cf is not None and type(cf) is not dict:
            return False
        agent = get("agent")
        if agent is not None and (type(agent) is not dict or not AGENT_KEYS.issuperset(agent)):
            return False
        return not (status in TERMINAL and get("completed_at") is None)
    except (KeyError, TypeError):
        return False


def check_task(t: Any, path: Path | None = None) -> None:
    """Validate one task dict against ralph's rules; QueueError names file, task and field."""
    if _task_ok(t):
        return
    if type(t) is not dict:
        raise _bad(path, None, None, "is not a JSON object")
    tid = t.get("id")
    if not is_task_id(tid):
        if "id" not in t:
            raise _bad(path, None, "id", "missing (required)")
        raise _bad(path, str(tid), "id", "not a task id like RQ-0001")
    if not ALLOWED.issuperset(t):
        key = sorted(set(t) - ALLOWED)[0]
        raise _bad(path, tid, key, "unknown key (ralph rejects it; remove or rename it)")
    for k in REQUIRED:
        if k not in t:
            raise _bad(path, tid, k, "missing (required)")
    title = t["title"]
    if type(title) is not str or not title.strip():
        raise _bad(path, tid, "title", "must be a non-empty string")
    if t.get("status", "todo") not in STATUSES:
        raise _bad(path, tid, "status", f"{t.get('status')!r} is not one of {STATUSES}")
    if t.get("priority", "medium") not in PRIORITIES:
        raise _bad(path, tid, "priority", f"{t.get('priority')!r} is not one of {PRIORITIES}")
    for k in TIMES:
        v = t.get(k)
        if v is not None and (type(v) is not str or _TS_RE.match(v) is None):
            raise _bad(path, tid, k, f"{v!r} is not an RFC 3339 UTC timestamp (…T…Z)")
    for k in TEXT_LISTS:
        v = t.get(k)
        if v is not None and (type(v) is not list or not all(type(x) is str and x for x in v)):
            raise _bad(path, tid, k, "must be a list of non-empty strings")
    for k in ID_LISTS:
        v = t.get(k)
        if v is not None and (type(v) is not list or not all(is_task_id(x) for x in v)):
            raise _bad(path, tid, k, "must be a list of task ids like RQ-0001")
    for k in OPT_TEXT:
        v = t.get(k)
        if v is not None and type(v) is not str:
            raise _bad(path, tid, k, "must be a string or null")
    for k in OPT_ID:
        v = t.get(k)
        if v is not None and not is_task_id(v):
            raise _bad(path, tid, k, "must be a task id like RQ-0001 or null")
    for k in MINUTES:
        v = t.get(k)
        if v is not None and (type(v) is not int or v < 0):
            raise _bad(path, tid, k, "must be a non-negative integer or null")
    cf = t.get("custom_fields")
    if cf is not None and (
        type(cf) is not dict
        or not all(type(v) in (str, int, float, bool) for v in cf.values())
    ):
        raise _bad(path, tid, "custom_fields", "must map strings to strings")
    agent = t.get("agent")
    if agent is not None and type(agent) is not dict:
        raise _bad(path, tid, "agent", "must be an object or null")
    if agent and not AGENT_KEYS.issuperset(agent):
        key = sorted(set(agent) - AGENT_KEYS)[0]
        raise _bad(path, tid, "agent", f"unknown key {key!r} (ralph rejects it)")
    if t.get("status") in TERMINAL and t.get("completed_at") is None:
        raise _bad(path, tid, "completed_at", "a done/rejected task needs completed_at")


def check_doc(doc: Any, path: Path | None, *, archive: bool = False) -> list[dict[str, Any]]:
    """Validate a whole file's document; return its task list."""
    if type(doc) is not dict:
        raise QueueError(f"{path}: top level must be an object {{version, tasks}}", path=path)
    extra = set(doc) - {"version", "tasks"}
    if extra:
        key = sorted(extra)[0]
        raise QueueError(f"{path}: unknown top-level key {key!r}", path=path, field=key)
    v = doc.get("version")
    if type(v) is not int or v < 0:
        raise QueueError(f"{path}: 'version' must be a non-negative integer", path=path,
                         field="version")  # fmt: skip
    tasks = doc.get("tasks", [])
    if type(tasks) is not list:
        raise QueueError(f"{path}: 'tasks' must be a list", path=path, field="tasks")
    ok = _task_ok
    for t in tasks:
        if not ok(t):
            check_task(t, path)
        if archive and t.get("status", "todo") not in TERMINAL:
            raise _bad(path, t["id"], "status", "done.jsonc may only hold done/rejected tasks")
    return tasks


def check_links(open_tasks: list[dict], done_tasks: list[dict], qpath: Path | None,
                dpath: Path | None) -> None:  # fmt: skip
    """Duplicate ids across both files; dependencies missing, on self, or in a cycle."""
    ids: dict[str, Path | None] = {}
    for tasks, path in ((open_tasks, qpath), (done_tasks, dpath)):
        for t in tasks:
            tid = t["id"]
            if tid in ids:
                other = ids[tid]
                raise _bad(path, tid, "id", f"duplicate id (also in {other})")
            ids[tid] = path
    graph: dict[str, list[str]] = {}
    for tasks, path in ((open_tasks, qpath), (done_tasks, dpath)):
        for t in tasks:
            deps = t.get("depends_on")
            if not deps:
                continue
            tid = t["id"]
            for d in deps:
                if d == tid:
                    raise _bad(path, tid, "depends_on", "a task cannot depend on itself")
                if d not in ids:
                    raise _bad(path, tid, "depends_on", f"depends on {d}, which does not exist")
            graph[tid] = deps
    # Iterative DFS for cycles (white=absent, 1=on stack, 2=done).
    state: dict[str, int] = {}
    for root in graph:
        if state.get(root):
            continue
        stack = [(root, iter(graph.get(root, ())))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                cycle = [n for n, _ in stack][[n for n, _ in stack].index(nxt):] + [nxt]
                raise _bad(ids[nxt], nxt, "depends_on", "dependency cycle: " + " -> ".join(cycle))
            elif not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(graph.get(nxt, ()))))


def heal_interrupted_move(open_tasks: list[dict], done_tasks: list[dict]) -> list[dict]:
    """Drop queue copies of tasks already archived by a move that was cut short.

    A move writes done.jsonc first; a crash before queue.jsonc is rewritten leaves the task in
    both. The same task (same id, title and created_at) in both files is that case.
    """
    done_ids = {t["id"] for t in done_tasks}
    if not any(t["id"] in done_ids for t in open_tasks):
        return open_tasks
    archived = {(t["id"], t.get("title"), t.get("created_at")) for t in done_tasks}
    return [t for t in open_tasks if (t["id"], t.get("title"), t.get("created_at")) not in archived]


# --- selection (pure) ----------------------------------------------------------------------


def runnable_tasks(open_tasks: Sequence[dict], done_tasks: Sequence[dict], *,
                   exclude: Iterable[str] = (), now: datetime) -> list[dict]:  # fmt: skip
    """Tasks selectable now, in ralph's order: `doing` ones first, then runnable `todo`.

    A `todo` is runnable when every `depends_on` task is done or rejected, no unfinished task
    lists it in `blocks`, and its `scheduled_start` (if any) is not in the future.
    """
    skip = set(exclude)
    status = {t["id"]: t.get("status", "todo") for t in done_tasks}
    status.update((t["id"], t.get("status", "todo")) for t in open_tasks)
    blocked: set[str] = set()
    for t in open_tasks:
        if t.get("blocks") and t.get("status", "todo") not in TERMINAL:
            blocked.update(t["blocks"])
    doing = [t for t in open_tasks if t.get("status") == "doing" and t["id"] not in skip]
    todo = []
    for t in open_tasks:
        if t.get("status", "todo") != "todo" or t["id"] in skip or t["id"] in blocked:
            continue
        if any(status.get(d) not in TERMINAL for d in t.get("depends_on") or ()):
            continue
        start = t.get("scheduled_start")
        if start and parse_time(start) > now:
            continue
        todo.append(t)
    return doing + todo


def select_next(open_tasks: Sequence[dict], done_tasks: Sequence[dict], *,
                exclude: Iterable[str] = (), now: datetime) -> dict | None:  # fmt: skip
    """ralph's rule: the first `doing` task, else the first runnable `todo` (or None)."""
    found = runnable_tasks(open_tasks, done_tasks, exclude=exclude, now=now)
    return found[0] if found else None


def next_id(open_tasks: Iterable[dict], done_tasks: Iterable[dict]) -> str:
    """Highest id number across both files (rejected tasks ignored) + 1, never a taken id."""
    taken: set[str] = set()
    best, prefix, width = 0, DEFAULT_PREFIX, DEFAULT_WIDTH
    for tasks in (open_tasks, done_tasks):
        for t in tasks:
            tid = t["id"]
            taken.add(tid)
            if t.get("status") == "rejected":
                continue
            n = id_number(tid)
            if n >= best:
                best, prefix = n, tid.split("-", 1)[0]
                width = max(DEFAULT_WIDTH, len(tid) - len(prefix) - 1)
    n = best + 1
    while format_task_id(n, prefix=prefix, width=width) in taken:
        n += 1
    return format_task_id(n, prefix=prefix, width=width)


def set_field(task: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """Set `key` in place if present, else insert it at ralph's position. None removes it."""
    if value is None:
        task.pop(key, None)
        return task
    if key in task:
        task[key] = value
        return task
    pos = _ORDER.get(key, len(FIELDS))
    items = list(task.items())
    at = len(items)
    for i, (k, _) in enumerate(items):
        if _ORDER.get(k, len(FIELDS)) > pos:
            at = i
            break
    items.insert(at, (key, value))
    task.clear()
    task.update(items)
    return task


# --- the files -----------------------------------------------------------------------------


class _State:
    """Both files parsed and validated, with the exact bytes they were parsed from."""

    __slots__ = ("qdoc", "ddoc", "open", "done", "healed", "qraw", "draw")

    def __init__(self, qdoc: dict, ddoc: dict, healed: bool, qraw: bytes, draw: bytes | None):
        self.qdoc, self.ddoc, self.healed = qdoc, ddoc, healed
        self.open: list[dict] = qdoc["tasks"]
        self.done: list[dict] = ddoc["tasks"]
        self.qraw, self.draw = qraw, draw

    def working_copy(self) -> _State:
        """Copy-on-write view for one mutation: new lists, shared (unmodified) task dicts."""
        qdoc = {**self.qdoc, "tasks": list(self.open)}
        ddoc = {**self.ddoc, "tasks": list(self.done)}
        return _State(qdoc, ddoc, self.healed, self.qraw, self.draw)


def _naive(v: str | None) -> str:
    if not v:
        return "NaT"
    return v[:-1] if v[-1] == "Z" else v[:-6]


def tasks_frame(open_tasks: Sequence[dict], done_tasks: Sequence[dict]) -> Any:
    """A typed DataFrame of both files' tasks (works with pandas 2.2 and 3.x)."""
    import numpy as np
    import pandas as pd

    rows = [(t, "queue") for t in open_tasks] + [(t, "done") for t in done_tasks]
    cols: dict[str, Any] = {"id": [t["id"] for t, _ in rows]}
    cols["file"] = pd.Categorical([f for _, f in rows], categories=["queue", "done"])
    cols["status"] = pd.Categorical([t.get("status", "todo") for t, _ in rows],
                                    categories=list(STATUSES))  # fmt: skip
    cols["priority"] = pd.Categorical([t.get("priority", "medium") for t, _ in rows],
                                      categories=list(PRIORITIES), ordered=True)  # fmt: skip
    cols["title"] = [t["title"] for t, _ in rows]
    for k in TIMES:  # validated as …Z or …+00:00: numpy parses the naive part (fast)
        naive = np.array([_naive(t.get(k)) for t, _ in rows], dtype="datetime64[us]")
        cols[k] = pd.Series(naive).dt.tz_localize("UTC")
    for k in MINUTES:
        cols[k] = pd.array([t.get(k) for t, _ in rows], dtype="Int64")
    for k in ("description", "request", "duplicates", "parent_id"):
        cols[k] = pd.Series([t.get(k) for t, _ in rows], dtype=object)
    for k in TEXT_LISTS + ID_LISTS:
        cols[k] = pd.Series([list(t.get(k) or ()) for t, _ in rows], dtype=object)
    cols["custom_fields"] = pd.Series(
        [{a: _coerce_text(b) for a, b in (t.get("custom_fields") or {}).items()} for t, _ in rows],
        dtype=object,
    )
    cols["agent"] = pd.Series([t.get("agent") for t, _ in rows], dtype=object)
    return pd.DataFrame({k: (v.to_numpy() if isinstance(v, pd.Series) and v.dtype == object
                             else v) for k, v in cols.items()})  # fmt: skip


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic GC while building a large, acyclic structure (restores its state)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class Queue:
    """A repository's queue. Reads are fresh (cached only while both files are unchanged)."""

    def __init__(self, repo: str | Path = ".", *, lock_timeout: float = 10.0,
                 label: str = "ralphnb") -> None:  # fmt: skip
        self.repo = Path(repo).resolve()
        self.ralph_dir = self.repo / ".ralph"
        self.queue_path = self.ralph_dir / "queue.jsonc"
        self.done_path = self.ralph_dir / "done.jsonc"
        self.lock_timeout = lock_timeout
        self.label = label
        self._cache: _State | None = None  # valid only while both files hold the same bytes
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
        with _no_gc():  # bulk parse: no cyclic GC passes over objects that are all live
            qdoc = loads_jsonc(qraw, path=self.queue_path)
            ddoc = (loads_jsonc(draw, path=self.done_path) if draw is not None
                    else {"version": 1, "tasks": []})  # fmt: skip
            open_tasks = check_doc(qdoc, self.queue_path)
            done_tasks = check_doc(ddoc, self.done_path, archive=True)
            healed = heal_interrupted_move(open_tasks, done_tasks)
            qdoc["tasks"] = healed
            ddoc["tasks"] = done_tasks
            check_links(healed, done_tasks, self.queue_path, self.done_path)
        state = _State(qdoc, ddoc, len(healed) != len(open_tasks), qraw, draw)
        self._cache = state
        return state

    def validate(self) -> int:
        """Validate both files fresh from disk; return the number of tasks (raises QueueError)."""
        s = self._load(fresh=True)
        return len(s.open) + len(s.done)

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
            f"{self.queue_path}: no task {task_id} in queue.jsonc or done.jsonc",
            path=self.queue_path, task_id=task_id, field="id",
        )  # fmt: skip

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
        (not modify) a task dict it edits, so the cached parse stays what is on disk.
        """
        with self.lock():
            sweep_temp_files(self.ralph_dir)
            s = self._load().working_copy()
            task, touched = change(s)
            # Both files were fully validated when loaded; the change touched one task.
            in_done = any(t is task for t in s.done)
            path = self.done_path if in_done else self.queue_path
            check_task(task, path)
            if in_done and task.get("status") not in TERMINAL:
                raise _bad(path, task["id"], "status", "done.jsonc may only hold done/rejected")
            check_links(s.open, s.done, self.queue_path, self.done_path)
            self._cache = None
            if "done" in touched:
                s.draw = dumps_pretty(s.ddoc)
                atomic_write_bytes(self.done_path, s.draw)
            if "queue" in touched or s.healed:
                s.qraw = dumps_pretty(s.qdoc)
                atomic_write_bytes(self.queue_path, s.qraw)
            s.healed = False
            self._cache = s
        return Task(copy.deepcopy(task), "done" if in_done else "queue")

    def add(self, title: str, **fields: Any) -> Task:
        """Append a new task (next id, allocated under the lock) and persist it."""
        bad = set(fields) - ALLOWED - {"id"} or ({"id"} & set(fields))
        if bad:
            key = sorted(bad)[0]
            raise QueueError(f"add(): unknown or reserved field {key!r}", field=key)

        def change(s: _State) -> tuple[dict, set[str]]:
            stamp = format_time(utcnow())
            t: dict[str, Any] = {"id": next_id(s.open, s.done), "status": "todo", "title": title,
                                 "priority": "medium"}  # fmt: skip
            for k in TEXT_LISTS:
                t[k] = []
            t["created_at"] = t["updated_at"] = stamp
            for k in ID_LISTS:
                t[k] = []
            t["custom_fields"] = {}
            for k, v in fields.items():
                set_field(t, k, list(v) if isinstance(v, tuple) else v)
            check_task(t, self.queue_path)
            s.open.append(t)
            return t, {"queue"}

        return self._mutate(change)

    def _edit(self, task_id: str, edit: Any, *, move: bool = False) -> Task:
        def change(s: _State) -> tuple[dict, set[str]]:
            tasks, i = self._find(s, task_id)
            t = tasks[i] = copy.deepcopy(tasks[i])  # copy-on-write: the cache stays intact
            edit(t)
            set_field(t, "updated_at", format_time(utcnow()))
            touched = {"queue" if tasks is s.open else "done"}
            if move and tasks is s.open:
                del s.open[i]
                s.done.append(t)
                touched = {"queue", "done"}
            return t, touched

        return self._mutate(change)

    @staticmethod
    def _note(t: dict, note: str | None) -> None:
        if note:
            set_field(t, "notes", [*t.get("notes", []), note])

    def start(self, task_id: str) -> Task:
        """Mark a task `doing` and stamp `started_at` (kept if already set)."""

        def edit(t: dict) -> None:
            if t.get("status") in TERMINAL:
                raise QueueError(f"task {task_id} is already {t['status']}", task_id=task_id,
                                 field="status")  # fmt: skip
            set_field(t, "status", "doing")
            if not t.get("started_at"):
                set_field(t, "started_at", format_time(utcnow()))

        return self._edit(task_id, edit)

    def _finish(self, task_id: str, status: str, note: str | None, archive: bool) -> Task:
        def edit(t: dict) -> None:
            if t.get("status") not in TERMINAL or t.get("status") != status:
                set_field(t, "status", status)
                set_field(t, "completed_at", format_time(utcnow()))
            self._note(t, note)

        return self._edit(task_id, edit, move=archive)

    def complete(self, task_id: str, note: str | None = None, *, archive: bool = True) -> Task:
        """Mark done (stamp completed_at); move to done.jsonc unless `archive=False`."""
        return self._finish(task_id, "done", note, archive)

    def reject(self, task_id: str, note: str | None = None) -> Task:
        """Mark rejected (stamp completed_at) and move to done.jsonc."""
        return self._finish(task_id, "rejected", note, True)

    def archive(self, task_id: str) -> Task:
        """Move an already done/rejected task from queue.jsonc to done.jsonc."""

        def edit(t: dict) -> None:
            if t.get("status") not in TERMINAL:
                raise QueueError(f"task {task_id} is {t.get('status', 'todo')}, not done or "
                                 "rejected; complete() or reject() it", task_id=task_id,
                                 field="status")  # fmt: skip

        return self._edit(task_id, edit, move=True)

    def update(self, task_id: str, **fields: Any) -> Task:
        """Set fields of one task (None removes an optional field); validated before writing."""
        bad = set(fields) - ALLOWED or ({"id", "created_at"} & set(fields))
        if bad:
            key = sorted(bad)[0]
            raise QueueError(f"update(): unknown or read-only field {key!r}", task_id=task_id,
                             field=key)  # fmt: skip

        def edit(t: dict) -> None:
            for k, v in fields.items():
                set_field(t, k, list(v) if isinstance(v, tuple) else v)
            if t.get("status") in TERMINAL and not t.get("completed_at"):
                set_field(t, "completed_at", format_time(utcnow()))
            check_task(t, self.queue_path)

        return self._edit(task_id, edit)

    def add_note(self, task_id: str, note: str) -> Task:
        return self._edit(task_id, lambda t: self._note(t, note))


def init(repo: str | Path = ".") -> Queue:
    """Create `.ralph/` with empty queue and done files (never overwrites) and gitignore lines."""
    root = Path(repo).resolve()
    ralph = root / ".ralph"
    ralph.mkdir(parents=True, exist_ok=True)
    with DirLock(ralph):
        for name in ("queue.jsonc", "done.jsonc"):
            p = ralph / name
            if not p.exists():
                atomic_write_bytes(p, dumps_pretty(EMPTY_DOC))
    gi = root / ".gitignore"
    wanted = [".ralph/lock/", ".ralph/cache/"]
    text = gi.read_text() if gi.exists() else ""
    lines = {ln.strip() for ln in text.splitlines()}
    missing = [w for w in wanted if w not in lines and w.rstrip("/") not in lines]
    if missing:
        sep = "" if not text or text.endswith("\n") else "\n"
        gi.write_text(text + sep + "\n".join(missing) + "\n")
    return Queue(root)
