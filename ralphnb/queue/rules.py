"""Pure rules of ralph's task files: the schema's names, task selection, ids and field placement.

Owns: the schema constants (statuses, priorities, ralph's `Task` field order, which fields hold
what, the enums of a task's `agent` block), ralph's selection rule (`runnable_tasks`,
`select_next`), id allocation (`next_id`), field placement (`set_field`), ralph's archive of
terminal tasks (`move_terminal`) and healing a move cut short. Validation (errors and
warnings) lives in `validation`, ralph's byte layout in `ralphjson`.

Invariants: pure functions on plain task dicts and lists -- no file, lock or clock access
(callers pass "now"); nothing here mutates its input except `set_field`, which edits the one
dict it is given, and `move_terminal`, which edits the two lists it is given. Links
(`depends_on`, `blocks`) are compared trimmed and blank entries are ignored, as ralph does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from .._time import parse_time
from ..errors import QueueError
from .ids import DEFAULT_PREFIX, DEFAULT_WIDTH, format_task_id, id_number

STATUSES = ("draft", "todo", "doing", "done", "rejected")
PRIORITIES = ("critical", "high", "medium", "low")
TERMINAL = frozenset({"done", "rejected"})
# ralph's `Task` struct, in its declaration order: serde writes the fields in this order.
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
    "completed_at",
    "started_at",
    "estimated_minutes",
    "actual_minutes",
    "scheduled_start",
    "depends_on",
    "blocks",
    "relates_to",
    "duplicates",
    "custom_fields",
    "parent_id",
)
_ORDER = {k: i for i, k in enumerate(FIELDS)}
ALLOWED = frozenset(FIELDS)
REQUIRED = ("id", "title", "created_at", "updated_at")
TEXT_LISTS = ("tags", "scope", "evidence", "plan")  # items must not be blank
ID_LISTS = ("depends_on", "blocks", "relates_to")
STRING_LISTS = (*TEXT_LISTS, "notes", *ID_LISTS)  # every list field: strings only
OPT_STRINGS = ("description", "request", "duplicates", "parent_id")
TIMES = ("created_at", "updated_at", "started_at", "scheduled_start", "completed_at")
MINUTES = ("estimated_minutes", "actual_minutes")
# Fields serde always writes (no skip rule); every other field is left out when null.
ALWAYS = ("id", "status", "title", "priority", *STRING_LISTS, "custom_fields")
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
    **{k: [] for k in STRING_LISTS},
}
EMPTY_DOC = {"version": 1, "tasks": []}

# A task's `agent` block (ralph's `TaskAgent`), and the enums it shares with the config.
BUILTIN_RUNNERS = ("codex", "opencode", "gemini", "claude", "cursor", "kimi", "pi")
EFFORTS = ("low", "medium", "high", "xhigh")
MODEL_EFFORTS = ("default", *EFFORTS)
RUNNER_CLI_OPTIONS: dict[str, tuple[str, ...]] = {  # ralph's RunnerCliOptionsPatch, in order
    "output_format": ("stream_json", "json", "text"),
    "verbosity": ("quiet", "normal", "verbose"),
    "approval_mode": ("default", "auto_edits", "yolo", "safe"),
    "sandbox": ("default", "enabled", "disabled"),
    "plan_mode": ("default", "enabled", "disabled"),
    "unsupported_option_policy": ("ignore", "warn", "error"),
}
PHASES = ("phase1", "phase2", "phase3")
PHASE_KEYS = ("runner", "model", "reasoning_effort")
AGENT_FIELDS = (  # TaskAgent's declaration order
    "runner",
    "model",
    "model_effort",
    "phases",
    "iterations",
    "followup_reasoning_effort",
    "runner_cli",
    "phase_overrides",
)
AGENT_KEYS = frozenset(AGENT_FIELDS)


# Rust's `char::is_whitespace` (what ralph's `trim()` strips): Python's str.strip() also strips
# \x1c-\x1f, which Rust keeps.
RUST_WS = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + ("\u2028\u2029\u202f\u205f\u3000")
)


def rust_trim(text: str) -> str:
    """`text` trimmed as Rust's `str::trim` does (ralph trims ids, links, names, keys)."""
    return text.strip(RUST_WS)


def canonical_runner(value: str) -> str:
    """A runner id as ralph reads it: trimmed, and a built-in name in lower case."""
    token = rust_trim(value)
    return token.lower() if token.lower() in BUILTIN_RUNNERS else token


def link(value: str) -> str:
    """A link as ralph compares it: trimmed (an empty result means no link)."""
    return value.strip(RUST_WS)


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


def move_terminal(open_tasks: list[dict], done_tasks: list[dict], now: str) -> list[dict]:
    """ralph's archive (queue/operations/archive.rs): move every done/rejected task from
    `open_tasks` to the end of `done_tasks`, in order, as a new dict with `updated_at` = `now`
    (and `completed_at` = `now` when blank); returns the moved tasks. Edits both lists."""
    moved = []
    keep = []
    for t in open_tasks:
        if t.get("status") in TERMINAL:
            t = dict(t)
            if not (t.get("completed_at") or "").strip():
                set_field(t, "completed_at", now)
            set_field(t, "updated_at", now)
            moved.append(t)
        else:
            keep.append(t)
    open_tasks[:] = keep
    done_tasks.extend(moved)
    return moved


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
            blocked.update(link(b) for b in t["blocks"])
    doing = [t for t in open_tasks if t.get("status") == "doing" and t["id"] not in skip]
    todo = []
    for t in open_tasks:
        if t.get("status", "todo") != "todo" or t["id"] in skip or t["id"] in blocked:
            continue
        deps = t.get("depends_on")
        if deps and any(status.get(link(d)) not in TERMINAL for d in deps if link(d)):
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
    prefix: str = DEFAULT_PREFIX,
    width: int = DEFAULT_WIDTH,
) -> str:
    """ralph's next id: the highest number across both files (rejected tasks ignored) + 1.

    Unlike ralph, a number a rejected task still holds is skipped, so every id names one task.
    An id that would need more digits than `width` (ralph would write one its own validation
    rejects) is a `QueueError` saying to raise `queue.id_width`.
    """
    taken: set[int] = set()
    best = 0
    for tasks in (open_tasks, done_tasks):
        for t in tasks:
            n = id_number(t["id"])
            taken.add(n)
            if t.get("status") != "rejected" and n > best:
                best = n
    n = best + 1
    while n in taken:
        n += 1
    new = format_task_id(n, prefix=prefix, width=width)
    if len(new) != len(prefix) + 1 + width:
        raise QueueError(
            f"no {width}-digit id is left after {format_task_id(n - 1, prefix=prefix, width=width)}"
            f"; raise queue.id_width in .ralph/config.jsonc (and renumber the ids) to add tasks",
            field="id",
        )
    return new


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
