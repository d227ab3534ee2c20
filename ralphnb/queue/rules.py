"""Pure rules of ralph's task files: the schema, validation and task selection.

Owns: the schema constants (statuses, priorities, field order, which fields hold what), the
checks of one task, one file's document and the links across both files (`check_task`,
`check_doc`, `check_links`), healing a move cut short, ralph's selection rule
(`runnable_tasks`, `select_next`), id allocation (`next_id`) and field placement (`set_field`).

Invariants: pure functions on plain task dicts and lists -- no file, lock or clock access
(callers pass "now"); nothing here mutates its input except `set_field`, which edits the one
dict it is given. `ralphnb.queue` re-exports every public name, so callers may import either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .._time import parse_time
from ..errors import QueueError
from .ids import DEFAULT_PREFIX, DEFAULT_WIDTH, format_task_id, id_number, is_task_id

STATUSES = ("draft", "todo", "doing", "done", "rejected")
PRIORITIES = ("critical", "high", "medium", "low")
TERMINAL = frozenset({"done", "rejected"})
# ralph's field order (as its own files are written); new keys are placed accordingly.
FIELDS = (
    "id",
    "status",
    "title",
    "description",
    "priority",
    "tags",
    "scope",
    "evidence",
    "plan",
    "notes",
    "request",
    "agent",
    "created_at",
    "updated_at",
    "started_at",
    "scheduled_start",
    "completed_at",
    "estimated_minutes",
    "actual_minutes",
    "depends_on",
    "blocks",
    "relates_to",
    "duplicates",
    "parent_id",
    "custom_fields",
)
_ORDER = {k: i for i, k in enumerate(FIELDS)}
ALLOWED = frozenset(FIELDS)
AGENT_KEYS = frozenset(
    {
        "runner",
        "model",
        "model_effort",
        "phases",
        "iterations",
        "phase_overrides",
        "runner_cli",
        "followup_reasoning_effort",
    }
)
REQUIRED = ("id", "title", "created_at", "updated_at")
TEXT_LISTS = ("tags", "scope", "evidence", "plan", "notes")
ID_LISTS = ("depends_on", "blocks", "relates_to")
OPT_TEXT = ("description", "request")
OPT_ID = ("duplicates", "parent_id")
TIMES = ("created_at", "updated_at", "started_at", "scheduled_start", "completed_at")
MINUTES = ("estimated_minutes", "actual_minutes")
DEFAULTS: dict[str, Any] = {
    "status": "todo",
    "priority": "medium",
    "description": None,
    "request": None,
    "agent": None,
    "started_at": None,
    "scheduled_start": None,
    "completed_at": None,
    "estimated_minutes": None,
    "actual_minutes": None,
    "duplicates": None,
    "parent_id": None,
    "custom_fields": {},
    **{k: [] for k in TEXT_LISTS + ID_LISTS},
}
_TS_RE = re.compile(
    r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d"
    r"(?:\.\d{1,9})?(?:Z|\+00:00)\Z"
)
EMPTY_DOC = {"version": 1, "tasks": []}


# --- validation ----------------------------------------------------------------------------


def task_error(path: Path | None, tid: Any, field: str | None, problem: str) -> QueueError:
    """The one-line error of a task field: `<file>: task <id>: field <name>: <problem>`."""
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
        raise task_error(path, None, None, "is not a JSON object")
    tid = t.get("id")
    if not is_task_id(tid):
        if "id" not in t:
            raise task_error(path, None, "id", "missing (required)")
        raise task_error(path, str(tid), "id", "not a task id like RQ-0001")
    if not ALLOWED.issuperset(t):
        key = sorted(set(t) - ALLOWED)[0]
        raise task_error(path, tid, key, "unknown key (ralph rejects it; remove or rename it)")
    for k in REQUIRED:
        if k not in t:
            raise task_error(path, tid, k, "missing (required)")
    title = t["title"]
    if type(title) is not str or not title.strip():
        raise task_error(path, tid, "title", "must be a non-empty string")
    if t.get("status", "todo") not in STATUSES:
        raise task_error(path, tid, "status", f"{t.get('status')!r} is not one of {STATUSES}")
    if t.get("priority", "medium") not in PRIORITIES:
        raise task_error(path, tid, "priority", f"{t.get('priority')!r} is not one of {PRIORITIES}")
    for k in TIMES:
        v = t.get(k)
        if v is not None and (type(v) is not str or _TS_RE.match(v) is None):
            raise task_error(path, tid, k, f"{v!r} is not an RFC 3339 UTC timestamp (…T…Z)")
    for k in TEXT_LISTS:
        v = t.get(k)
        if v is not None and (type(v) is not list or not all(type(x) is str and x for x in v)):
            raise task_error(path, tid, k, "must be a list of non-empty strings")
    for k in ID_LISTS:
        v = t.get(k)
        if v is not None and (type(v) is not list or not all(is_task_id(x) for x in v)):
            raise task_error(path, tid, k, "must be a list of task ids like RQ-0001")
    for k in OPT_TEXT:
        v = t.get(k)
        if v is not None and type(v) is not str:
            raise task_error(path, tid, k, "must be a string or null")
    for k in OPT_ID:
        v = t.get(k)
        if v is not None and not is_task_id(v):
            raise task_error(path, tid, k, "must be a task id like RQ-0001 or null")
    for k in MINUTES:
        v = t.get(k)
        if v is not None and (type(v) is not int or v < 0):
            raise task_error(path, tid, k, "must be a non-negative integer or null")
    cf = t.get("custom_fields")
    if cf is not None and (
        type(cf) is not dict or not all(type(v) in (str, int, float, bool) for v in cf.values())
    ):
        raise task_error(path, tid, "custom_fields", "must map strings to strings")
    agent = t.get("agent")
    if agent is not None and type(agent) is not dict:
        raise task_error(path, tid, "agent", "must be an object or null")
    if agent and not AGENT_KEYS.issuperset(agent):
        key = sorted(set(agent) - AGENT_KEYS)[0]
        raise task_error(path, tid, "agent", f"unknown key {key!r} (ralph rejects it)")
    if t.get("status") in TERMINAL and t.get("completed_at") is None:
        raise task_error(path, tid, "completed_at", "a done/rejected task needs completed_at")


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
        raise QueueError(
            f"{path}: 'version' must be a non-negative integer", path=path, field="version"
        )
    tasks = doc.get("tasks", [])
    if type(tasks) is not list:
        raise QueueError(f"{path}: 'tasks' must be a list", path=path, field="tasks")
    ok = _task_ok
    for t in tasks:
        if not ok(t):
            check_task(t, path)
        if archive and t.get("status", "todo") not in TERMINAL:
            raise task_error(
                path, t["id"], "status", "done.jsonc may only hold done/rejected tasks"
            )
    return tasks


def check_links(
    open_tasks: list[dict], done_tasks: list[dict], qpath: Path | None, dpath: Path | None
) -> None:
    """Duplicate ids across both files; dependencies missing, on self, or in a cycle."""
    ids: dict[str, Path | None] = {}
    for tasks, path in ((open_tasks, qpath), (done_tasks, dpath)):
        for t in tasks:
            tid = t["id"]
            if tid in ids:
                other = ids[tid]
                raise task_error(path, tid, "id", f"duplicate id (also in {other})")
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
                    raise task_error(path, tid, "depends_on", "a task cannot depend on itself")
                if d not in ids:
                    raise task_error(
                        path, tid, "depends_on", f"depends on {d}, which does not exist"
                    )
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
                cycle = [n for n, _ in stack][[n for n, _ in stack].index(nxt) :] + [nxt]
                raise task_error(
                    ids[nxt], nxt, "depends_on", "dependency cycle: " + " -> ".join(cycle)
                )
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


# --- selection -------------------------------------------------------------------------------


def runnable_tasks(
    open_tasks: Sequence[dict],
    done_tasks: Sequence[dict],
    *,
    exclude: Iterable[str] = (),
    now: datetime,
) -> list[dict]:
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


def select_next(
    open_tasks: Sequence[dict],
    done_tasks: Sequence[dict],
    *,
    exclude: Iterable[str] = (),
    now: datetime,
) -> dict | None:
    """ralph's rule: the first `doing` task, else the first runnable `todo` (or None)."""
    found = runnable_tasks(open_tasks, done_tasks, exclude=exclude, now=now)
    return found[0] if found else None


def next_id(
    open_tasks: Iterable[dict],
    done_tasks: Iterable[dict],
    *,
    prefix: str | None = None,
    width: int | None = None,
) -> str:
    """Highest id number across both files (rejected tasks ignored) + 1, never a taken id.

    With `prefix` (the configured `queue.id_prefix`), only ids with that prefix count and the
    new id has it; without, the new id follows the highest id's prefix (`RQ` when empty).
    `width` (the configured `queue.id_width`) is the zero padding; without, that of the
    highest id, at least 4. Ids with other prefixes are kept and never clash.
    """
    taken: set[tuple[str, int]] = set()
    best, best_prefix, best_width = 0, prefix or DEFAULT_PREFIX, DEFAULT_WIDTH
    for tasks in (open_tasks, done_tasks):
        for t in tasks:
            tid = t["id"]
            p, _, digits = tid.partition("-")
            n = id_number(tid)
            taken.add((p, n))
            if t.get("status") == "rejected" or (prefix is not None and p != prefix):
                continue
            if n >= best:
                best, best_prefix = n, p
                best_width = max(DEFAULT_WIDTH, len(digits))
    n = best + 1
    while (best_prefix, n) in taken:
        n += 1
    return format_task_id(n, prefix=best_prefix, width=width or best_width)


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


def coerce_text(v: Any) -> str:
    """A custom field value as ralph shows it: booleans as true/false, the rest via str()."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
