"""ralph's validation of one task and of one task file: every error it raises while loading.

Owns: the checks of one task (`check_task`: the field types serde enforces reading ralph's
`Task`, then ralph's `validate_task_required_fields`, `validate_task_agent_fields` and
`validate_task_id`), of one file (`check_doc`: version 1, a done file holds only finished tasks,
no duplicate id), ralph's timestamp rule and whitespace, and the one-line `task_error`. Rules
follow crates/ralph/src/queue/validation/{task_fields,queue_files}.rs and contracts/task/ in
ralph's source; the links across both files are `links`.

Invariants: pure functions on parsed JSON; errors are `QueueError`s of one line naming the file,
the task, the field and why. Rejected tasks may share an id (ralph excludes them from the
duplicate check). Deliberately stricter than ralph, because ralphnb computes with these: ids are
taken as written (no blanks, upper-case prefix: they become paths and branch names), and
`started_at`/`scheduled_start` must be timestamps like the other three.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import QueueError
from .ids import DEFAULT_PREFIX, DEFAULT_WIDTH, id_matcher, id_problem
from .ralphjson import CANONICAL_KEYS
from .rules import (
    AGENT_KEYS,
    ALLOWED,
    EFFORTS,
    ID_LISTS,
    MINUTES,
    MODEL_EFFORTS,
    OPT_STRINGS,
    PHASE_KEYS,
    PHASES,
    PRIORITIES,
    RUNNER_CLI_OPTIONS,
    RUST_WS,
    STATUSES,
    STRING_LISTS,
    TERMINAL,
    TEXT_LISTS,
    rust_trim,
)

_U32 = 0xFFFF_FFFF
_CF_KEY_OK = re.compile(rf"[{RUST_WS}]*[^{RUST_WS}]+[{RUST_WS}]*").fullmatch
_SCALARS = (str, int, float, bool)
# Timestamps: the common form (UTC `Z`, days 01-28, so the calendar needs no check) matches
# fast; anything else takes ralph's full RFC 3339 rule.
_TS_FAST = re.compile(
    r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1\d|2[0-8])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d"
    r"(?:\.\d{1,9})?Z\Z"
).match
_TS_FULL = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.\d+)?(?:[Zz]|([+-])(\d\d):(\d\d))\Z"
).match
_STATUS_SET = frozenset(STATUSES)
_PRIORITY_SET = frozenset(PRIORITIES)


def task_error(path: Path | None, tid: Any, field: str | None, problem: str) -> QueueError:
    """The one-line error of a task field: `<file>: task <id>: field <name>: <problem>`."""
    who = f"task {tid}" if isinstance(tid, str) else "a task"
    where = f"{path}: " if path else ""
    what = f"field {field!r}: " if field else ""
    return QueueError(f"{where}{who}: {what}{problem}", path=path, task_id=tid, field=field)


def timestamp_problem(value: Any) -> str | None:
    """Why `value` is not an RFC 3339 UTC timestamp as ralph parses one, or None."""
    if type(value) is not str:
        return f"{value!r} must be a string, an RFC 3339 UTC timestamp"
    if _TS_FAST(value):
        return None
    m = _TS_FULL(rust_trim(value))
    if m is None:
        return f"{value!r} is not an RFC 3339 timestamp (like 2026-01-19T05:23:13.000000000Z)"
    try:
        datetime(*(int(x) for x in m.group(1, 2, 3, 4, 5, 6)))
    except ValueError:
        return f"{value!r} is not a real date and time"
    if m[7] and (int(m[8]) > 23 or int(m[9]) > 59):
        return f"{value!r} has an impossible UTC offset"
    if m[7] and (m[8], m[9]) != ("00", "00"):
        return f"{value!r} is not in UTC: write it with Z (or +00:00)"
    return None


# --- one task ------------------------------------------------------------------------------


_EMPTY_LIST: list = []  # read-only defaults of the fast path
_EMPTY_MAP: dict = {}
_WS = itertools.repeat(RUST_WS)  # map(str.strip, items, _WS): C-level trims
_OTHER_LISTS = ("notes", *ID_LISTS)
_STR_ONLY = frozenset({str})
_OPTIONAL = frozenset(("started_at", "scheduled_start", "completed_at", *OPT_STRINGS, *MINUTES))


def _fast_ok(t: Any, id_ok: Any) -> bool:
    """True when `t` is valid and already in ralph's written form (as every task ralph wrote
    is): C-level checks of that common case. Any doubt returns False; the full check then
    finds the reason, or the task is valid and only needs `ralphjson.canonical_task`."""
    try:
        if type(t) is not dict or tuple(t) not in CANONICAL_KEYS or "agent" in t:
            return False  # an agent block is rare: the full check looks at it
        tid, title = t["id"], t["title"]
        if type(tid) is not str or id_ok(tid) is None or type(title) is not str:
            return False
        if not title.strip(RUST_WS) or _TS_FAST(t["created_at"]) is None:
            return False
        if _TS_FAST(t["updated_at"]) is None:
            return False
        get = t.get
        status = get("status", "todo")
        if status not in _STATUS_SET or get("priority", "medium") not in _PRIORITY_SET:
            return False
        for k in TEXT_LISTS:
            v = get(k, _EMPTY_LIST)
            if type(v) is not list or not all(map(str.strip, v, _WS)):  # TypeError: not str
                return False
        for k in _OTHER_LISTS:
            v = get(k, _EMPTY_LIST)
            if type(v) is not list:
                return False
            sum(map(str.__len__, v))  # TypeError on a non-string
        cf = get("custom_fields", _EMPTY_MAP)
        if type(cf) is not dict:
            return False
        if cf and not (_STR_ONLY.issuperset(map(type, cf.values())) and all(map(_CF_KEY_OK, cf))):
            return False
        if not _OPTIONAL.isdisjoint(t) and not _optional_ok(get):
            return False
        return not (status in TERMINAL and get("completed_at") is None)
    except (KeyError, TypeError, AttributeError):
        return False


def _optional_ok(get: Any) -> bool:
    """The optional fields present are valid and not null (ralph leaves a null one out)."""
    for k in ("started_at", "scheduled_start", "completed_at"):
        v = get(k, "")
        if v != "" and (type(v) is not str or _TS_FAST(v) is None):
            return False
    for k in OPT_STRINGS:
        if type(get(k, "")) is not str:
            return False
    for k in MINUTES:
        v = get(k, 0)
        if type(v) is not int or not 0 <= v <= _U32:
            return False
    return True


def _agent_problems(agent: dict, limits: bool) -> Iterator[tuple[str, str]]:
    """(key, why) for what ralph refuses in a task's `agent` block: first what serde refuses
    reading ralph's TaskAgent, then (with `limits`) validate_task_agent_fields' limits."""
    for key in agent:
        if key not in AGENT_KEYS:
            allowed = ", ".join(sorted(AGENT_KEYS))
            yield key, f"unknown key {key!r} (ralph rejects it; allowed: {allowed})"
    for key in ("runner", "model"):
        v = agent.get(key)
        if v is not None and (type(v) is not str or not rust_trim(v)):
            yield key, f"{v!r} must be a non-empty string"
    effort = agent.get("model_effort", "default")
    if effort not in MODEL_EFFORTS:
        yield "model_effort", f"{effort!r} is not one of {', '.join(MODEL_EFFORTS)}"
    followup = agent.get("followup_reasoning_effort")
    if followup is not None and followup not in EFFORTS:
        yield "followup_reasoning_effort", f"{followup!r} is not one of {', '.join(EFFORTS)}"
    for key in ("iterations", "phases"):
        v = agent.get(key)
        if v is not None and (type(v) is not int or not 0 <= v <= 255):
            yield key, f"{v!r} must be a whole number from 0 to 255"
    cli = agent.get("runner_cli")
    if cli is not None and type(cli) is not dict:
        yield "runner_cli", f"{cli!r} must be an object"
    elif cli is not None:
        for key, value in cli.items():
            allowed = RUNNER_CLI_OPTIONS.get(key)
            if allowed is None:
                yield f"runner_cli.{key}", f"unknown key {key!r} (ralph rejects it)"
            elif value is not None and value not in allowed:
                yield f"runner_cli.{key}", f"{value!r} is not one of {', '.join(allowed)}"
    phases = agent.get("phase_overrides")
    if phases is not None:
        yield from _phase_override_problems(phases)
    if limits and agent.get("iterations") == 0:
        yield "iterations", "0: must specify iterations >= 1"
    if limits and agent.get("phases") not in (None, 1, 2, 3):
        yield "phases", f"{agent['phases']!r}: must specify phases in [1, 2, 3]"


def _phase_override_problems(phases: Any) -> Iterator[tuple[str, str]]:
    if type(phases) is not dict:
        yield "phase_overrides", f"{phases!r} must be an object"
        return
    for name, phase in phases.items():
        where = f"phase_overrides.{name}"
        if name not in PHASES:
            yield where, "unknown key (ralph rejects it; allowed: phase1, phase2, phase3)"
        elif phase is not None and type(phase) is not dict:
            yield where, f"{phase!r} must be an object"
        elif phase is not None:
            for key, value in phase.items():
                if key not in PHASE_KEYS:
                    yield f"{where}.{key}", f"unknown key {key!r} (ralph rejects it)"
                elif value is None:
                    continue
                elif key == "reasoning_effort" and value not in EFFORTS:
                    yield f"{where}.{key}", f"{value!r} is not one of {', '.join(EFFORTS)}"
                elif key != "reasoning_effort" and (type(value) is not str or not rust_trim(value)):
                    yield f"{where}.{key}", f"{value!r} must be a non-empty string"


def agent_problem(agent: Any, *, limits: bool = True) -> tuple[str, str] | None:
    """The first (field, why) ralph refuses in a task's `agent` block, or None. Without
    `limits`, only what serde refuses while reading it (types, names, enums)."""
    if agent is None:
        return None
    if type(agent) is not dict:
        return "agent", f"{agent!r} must be an object or null"
    for key, why in _agent_problems(agent, limits):
        return f"agent.{key}", why
    return None


def task_problem(t: Any, prefix: str, width: int) -> tuple[str | None, str] | None:
    """The first (field, why) ralph refuses in one task, in ralph's order, or None.

    First what serde refuses (unknown keys, missing or mistyped fields, null where ralph has no
    Option), then ralph's own field rules, the agent limits, and the id's prefix and width.
    """
    if type(t) is not dict:
        return None, "is not a JSON object"
    for key in t:
        if key not in ALLOWED:
            return key, "unknown key (ralph rejects it; remove or rename it)"
    for key in ("id", "title"):
        if type(t.get(key)) is not str:
            return key, "missing (required)" if key not in t else "must be a string"
    if t.get("status", "todo") not in _STATUS_SET:
        return "status", f"{t.get('status')!r} is not one of {', '.join(STATUSES)}"
    if t.get("priority", "medium") not in _PRIORITY_SET:
        return "priority", f"{t.get('priority')!r} is not one of {', '.join(PRIORITIES)}"
    for key in STRING_LISTS:
        v = t.get(key, [])
        if type(v) is not list or not all(type(x) is str for x in v):
            return key, "must be a list of strings"
    for key in (*OPT_STRINGS, "created_at", "updated_at", "completed_at", "started_at"):
        if t.get(key) is not None and type(t[key]) is not str:
            return key, "must be a string or null"
    if t.get("scheduled_start") is not None and type(t["scheduled_start"]) is not str:
        return "scheduled_start", "must be a string or null"
    for key in MINUTES:
        v = t.get(key)
        if v is not None and (type(v) is not int or not 0 <= v <= _U32):
            return key, f"{v!r} must be a whole number of minutes (0 or more) or null"
    cf = t.get("custom_fields", {})
    if type(cf) is not dict:
        return "custom_fields", "must be an object mapping names to strings"
    for key, value in cf.items():
        if type(value) not in _SCALARS:
            return "custom_fields", f"[{key!r}] must be a string, number or boolean"
    return agent_problem(t.get("agent"), limits=False) or _ralph_field_problem(t, prefix, width)


def _ralph_field_problem(t: dict, prefix: str, width: int) -> tuple[str | None, str] | None:
    """ralph's validate_task_required_fields, validate_task_agent_fields, validate_task_id."""
    if not rust_trim(t["id"]):
        return "id", "missing task ID (empty)"
    if not rust_trim(t["title"]):
        return "title", "must not be empty"
    for key in TEXT_LISTS:
        for i, item in enumerate(t.get(key, ())):
            if not rust_trim(item):
                return key, f"item {i} is empty; remove it or add content"
    for i, key in enumerate(t.get("custom_fields", {})):
        if not rust_trim(key):
            return "custom_fields", f"key {i} is empty"
        if _CF_KEY_OK(key) is None:
            return "custom_fields", f"key {key!r} contains whitespace (keys must not)"
    for key in ("created_at", "updated_at"):
        if t.get(key) is None:
            return key, "missing (required): an RFC 3339 UTC timestamp"
    for key in ("created_at", "updated_at", "completed_at", "started_at", "scheduled_start"):
        if t.get(key) is not None:
            why = timestamp_problem(t[key])
            if why:
                return key, why
    if t.get("completed_at") is None and t.get("status") in TERMINAL:
        return "completed_at", f"a {t['status']} task needs completed_at"
    agent = agent_problem(t.get("agent"))
    if agent is not None:
        return agent
    why = id_problem(t["id"], prefix, width)
    return ("id", why) if why else None


def check_task(
    t: Any, path: Path | None = None, *, prefix: str = DEFAULT_PREFIX, width: int = DEFAULT_WIDTH
) -> None:
    """Validate one task dict as ralph does; `QueueError` names the file, task and field."""
    if _fast_ok(t, id_matcher(prefix, width)):
        return
    found = task_problem(t, prefix, width)
    if found is not None:
        tid = t.get("id") if type(t) is dict else None
        raise task_error(path, tid if type(tid) is str else None, *found)


def check_doc(
    doc: Any,
    path: Path | None,
    *,
    archive: bool = False,
    prefix: str = DEFAULT_PREFIX,
    width: int = DEFAULT_WIDTH,
    fix: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Validate one file's document (ralph's `validate_queue`); return its task list.

    `fix` replaces, in the list, each valid task not already in ralph's written form (the
    store passes `ralphjson.canonical_task`, so the check and the normalising share one pass).
    """
    if type(doc) is not dict:
        raise QueueError(f"{path}: top level must be an object {{version, tasks}}", path=path)
    for key in doc:
        if key not in ("version", "tasks"):
            raise QueueError(f"{path}: unknown top-level key {key!r}", path=path, field=key)
    v = doc.get("version")
    if type(v) is not int or v != 1:
        raise QueueError(
            f"{path}: 'version' is {v!r}; ralph requires version 1", path=path, field="version"
        )
    tasks = doc.get("tasks", [])
    if type(tasks) is not list:
        raise QueueError(f"{path}: 'tasks' must be a list", path=path, field="tasks")
    ok = id_matcher(prefix, width)
    seen: set[str] = set()
    for i, t in enumerate(tasks):
        if not _fast_ok(t, ok):
            check_task(t, path, prefix=prefix, width=width)
            if fix is not None:
                t = tasks[i] = fix(t)
        status = t.get("status", "todo")
        if archive and status not in TERMINAL:
            raise task_error(
                path, t["id"], "status", f"is {status}; done.jsonc may only hold done/rejected"
            )
        if status != "rejected":
            if t["id"] in seen:
                raise task_error(path, t["id"], "id", "duplicate id in this file")
            seen.add(t["id"])
    return tasks
