"""ralph's `queue repair`: make task files that fail validation loadable again, as ralph does.

Owns: `plan_repair` (pure: what ralph's crates/ralph/src/queue/repair/planning.rs changes, in
its full scope) and `RepairReport`. Per task, in file order (queue, then done): a blank title
becomes "Untitled"; empty `tags`, `scope`, `evidence`, `plan` get ralph's placeholders
("untagged", "unknown", "None provided", "To be determined"); a missing or blank `request`
becomes "Imported task"; `created_at`/`updated_at` (and `completed_at` of a done/rejected task,
or one that has it) that are missing or unparsable become now, and ones with an offset are
rewritten in UTC; an id of the wrong form, blank, or seen before (compared trimmed, upper case)
gets the next free number, and every `depends_on`, `blocks`, `relates_to`, `duplicates` and
`parent_id` naming a remapped id is rewritten (ralph's repair/relationships.rs).

`repair_files` is the I/O around it: under the lock it reads both files as plain JSON (they
may not pass validation: that is why they need a repair), plans, validates the result as every
load does, and writes only the files that changed (atomically, done first).
Invariant: the input lists are not modified; tasks that need no change are returned as the
same dict objects.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

from .._time import parse_time
from ..errors import QueueError
from .ids import format_task_id, id_problem
from .jsonio import atomic_write_bytes, loads_jsonc
from .links import check_links
from .lock import DirLock
from .ralphjson import canonical_task, dumps_queue_file, stamp_now
from .rules import TERMINAL
from .validation import check_doc

#: ralph's placeholders for empty fields (repair/planning.rs), in its order.
_PLACEHOLDERS = (
    ("tags", "untagged"),
    ("scope", "unknown"),
    ("evidence", "None provided"),
    ("plan", "To be determined"),
)
_LINK_LISTS = ("depends_on", "blocks", "relates_to")


@dataclass
class RepairReport:
    """What a repair changed (ralph's `RepairReport`)."""

    fixed_tasks: int = 0
    fixed_timestamps: int = 0
    remapped_ids: list[tuple[str, str]] = field(default_factory=list)
    queue_changed: bool = False
    done_changed: bool = False

    def __bool__(self) -> bool:
        return bool(self.fixed_tasks or self.fixed_timestamps or self.remapped_ids)

    def lines(self, *, dry_run: bool) -> list[str]:
        """The report as ralph's `queue repair` prints it."""
        if not self:
            return ["No issues found. Queue is healthy."]
        out = ["Repair report:"]
        if self.fixed_tasks:
            out.append(f"  Fixed missing fields in {self.fixed_tasks} task(s)")
        if self.fixed_timestamps:
            out.append(f"  Fixed invalid timestamps in {self.fixed_timestamps} task(s)")
        if self.remapped_ids:
            out.append(f"  Remapped {len(self.remapped_ids)} duplicate ID(s):")
            out += [f"    {old} -> {new}" for old, new in self.remapped_ids]
        out.append(
            "Dry run: no changes written to disk." if dry_run else "Repaired queue written to disk."
        )
        return out


def _id_number(tid: Any, prefix: str) -> int | None:
    if not isinstance(tid, str):
        return None
    rest = tid.strip().upper().removeprefix(prefix.strip().upper() + "-")
    return int(rest) if rest != tid.strip().upper() and rest.isdigit() else None


def _fixed_time(value: Any, now: str) -> str | None:
    """The repaired timestamp, or None when `value` is fine (UTC RFC 3339)."""
    if not isinstance(value, str):
        return now
    try:
        t = parse_time(value)
    except (ValueError, TypeError):
        return now
    if value.strip().endswith(("Z", "z", "+00:00", "-00:00")):
        return None  # already UTC
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def _repair_fields(t: dict[str, Any], report: RepairReport, now: str) -> bool:
    """Fill ralph's missing fields and fix timestamps of one task; True when it changed."""
    changed = False
    if not isinstance(t.get("title"), str) or not t["title"].strip():
        t["title"], changed = "Untitled", True
    for key, placeholder in _PLACEHOLDERS:
        if not t.get(key):
            t[key], changed = [placeholder], True
    if not isinstance(t.get("request"), str) or not t["request"].strip():
        t["request"], changed = "Imported task", True
    keys = ["created_at", "updated_at"]
    if t.get("status") in TERMINAL or t.get("completed_at") is not None:
        keys.append("completed_at")
    for key in keys:
        fixed = _fixed_time(t.get(key), now)
        if fixed is not None:
            t[key] = fixed
            report.fixed_timestamps += 1
            changed = True
    return changed


def _remap_links(t: dict[str, Any], remap: dict[str, str]) -> bool:
    changed = False
    for key in _LINK_LISTS:
        items = t.get(key)
        if isinstance(items, list):
            new = [
                remap.get(x, remap.get(x.strip(), x)) if isinstance(x, str) else x for x in items
            ]
            if new != items:
                t[key], changed = new, True
    for key in ("duplicates", "parent_id"):
        v = t.get(key)
        if isinstance(v, str) and (v in remap or v.strip() in remap):
            t[key], changed = remap.get(v, remap.get(v.strip())), True
    return changed


def plan_repair(
    open_tasks: list[Any], done_tasks: list[Any], *, prefix: str, width: int, now: str | None = None
) -> tuple[list[Any], list[Any], RepairReport]:
    """The two task lists as ralph's full repair leaves them, and its report (see the module
    docstring). Entries that are not objects are left as they are (validation names them)."""
    now = now or stamp_now()
    report = RepairReport()
    numbers = [
        _id_number(t.get("id"), prefix) for t in (*open_tasks, *done_tasks) if isinstance(t, dict)
    ]
    next_number = max([n for n in numbers if n is not None], default=0) + 1
    seen: set[str] = set()
    lists: list[list[Any]] = []
    flags: list[bool] = []
    for tasks in (open_tasks, done_tasks):
        out, any_changed = [], False
        for t in tasks:
            if not isinstance(t, dict):
                out.append(t)
                continue
            work = copy.deepcopy(t)
            changed = _repair_fields(work, report, now)
            if changed:
                report.fixed_tasks += 1
            tid = work.get("id")
            key = tid.strip().upper() if isinstance(tid, str) else ""
            if not key or key in seen or id_problem(tid, prefix, width) is not None:
                new = format_task_id(next_number, prefix=prefix.strip().upper(), width=width)
                next_number += 1
                report.remapped_ids.append((str(tid), new))
                work["id"], changed = new, True
                seen.add(new)
            else:
                seen.add(key)
            out.append(work if changed else t)
            any_changed |= changed
        lists.append(out)
        flags.append(any_changed)
    if report.remapped_ids:
        remap = dict(report.remapped_ids)
        for i, tasks in enumerate(lists):
            for j, t in enumerate(tasks):
                if isinstance(t, dict):
                    work = copy.deepcopy(t)
                    if _remap_links(work, remap):
                        tasks[j] = work
                        report.fixed_tasks += 1
                        flags[i] = True
    report.queue_changed, report.done_changed = flags
    return lists[0], lists[1], report


def repair_files(
    queue_path: Path, done_path: Path, lock: DirLock, *, prefix: str, width: int, dry_run: bool
) -> RepairReport:
    """ralph's `queue repair` on the two files (see the module docstring); `dry_run` writes
    nothing. A result that still fails validation raises `QueueError` and writes nothing."""
    with lock:
        qdoc = loads_jsonc(queue_path.read_bytes(), path=queue_path)
        ddoc = (
            loads_jsonc(done_path.read_bytes(), path=done_path)
            if done_path.exists()
            else {"version": 1, "tasks": []}
        )
        for doc, path in ((qdoc, queue_path), (ddoc, done_path)):
            if not isinstance(doc, dict) or not isinstance(doc.get("tasks"), list):
                raise QueueError(f'{path}: not a task file (no "tasks" list)', path=path)
        open_tasks, done_tasks, report = plan_repair(
            qdoc["tasks"], ddoc["tasks"], prefix=prefix, width=width
        )
        qdoc["tasks"], ddoc["tasks"] = open_tasks, done_tasks
        ids = {"prefix": prefix, "width": width}
        open_ok = check_doc(qdoc, queue_path, fix=canonical_task, **ids)
        done_ok = check_doc(ddoc, done_path, archive=True, fix=canonical_task, **ids)
        check_links(open_ok, done_ok, queue_path, done_path)
        if dry_run or not report:
            return report
        if report.done_changed:
            ddoc["tasks"] = done_ok
            atomic_write_bytes(done_path, dumps_queue_file(ddoc))
        if report.queue_changed:
            qdoc["tasks"] = open_ok
            atomic_write_bytes(queue_path, dumps_queue_file(qdoc))
        return report
