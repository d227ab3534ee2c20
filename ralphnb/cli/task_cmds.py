"""The `ralphnb task` subcommands: ralph's lifecycle verbs, spelled as ralph spells them.

Owns: `task add` (ralphnb's), and ralph's `start [--reset]`, `done`/`reject` (repeatable
`--note`), `status STATUS ID...`, `edit FIELD VALUE ID...`, `ready`, `schedule ID WHEN|--clear`
(crates/ralph/src/cli/task/args/{lifecycle,edit}.rs, task/{status,schedule}.rs, and
queue/operations/edit/{key,parsing}.rs for how an edit's value is read: lists split on commas
and newlines, an empty value clears an optional field, `custom_fields` as `k=v,k2=v2`, `agent`
as JSON). With env `RALPHNB_WORKER` set, `task done` leaves the task in queue.jsonc (the loop
archives it after merging the worker's work). Every operation is one call on `ralphnb.queue`.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from .._time import parse_time
from ..errors import QueueError
from ..queue.ralphjson import stamp_now
from ..queue.rules import PRIORITIES, STATUSES, TERMINAL
from ..queue.store import Queue, Task
from .common import emit, find_repo
from .queue_cmds import compact

#: ralph's `TaskEditKey` names (edit/key.rs), in its order.
EDIT_FIELDS = (
    "title",
    "description",
    "status",
    "priority",
    "tags",
    "scope",
    "evidence",
    "plan",
    "notes",
    "request",
    "depends_on",
    "blocks",
    "relates_to",
    "duplicates",
    "custom_fields",
    "agent",
    "created_at",
    "updated_at",
    "completed_at",
    "started_at",
    "scheduled_start",
    "estimated_minutes",
    "actual_minutes",
)
_LISTS = ("tags", "scope", "evidence", "plan", "notes", "depends_on", "blocks", "relates_to")
_TIMES = ("created_at", "updated_at", "completed_at", "started_at", "scheduled_start")


def edit_value(field: str, value: str, task_id: str) -> Any:
    """An edit's text as the field's value, read as ralph reads it (see the module docstring);
    `QueueError` naming the task and field when it cannot be read."""
    text = value.strip()

    def bad(why: str) -> QueueError:
        return QueueError(f"task {task_id}: {field}: {why}", task_id=task_id, field=field)

    if field in _LISTS:
        return [x.strip() for x in value.replace("\n", ",").split(",") if x.strip()]
    if field == "custom_fields":
        out = {}
        for pair in (x.strip() for x in value.replace("\n", ",").split(",") if x.strip()):
            key, eq, val = pair.partition("=")
            if not eq or not key.strip():
                raise bad(f"{pair!r} is not key=value; write k=v,k2=v2")
            out[key.strip()] = val.strip()
        return out
    if field == "agent":
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError as e:
            raise bad(f"not valid JSON ({e}); pass the agent block as a JSON object") from None
    if field in ("estimated_minutes", "actual_minutes"):
        if not text:
            return None
        if not text.isdigit():
            raise bad(f"{value!r} is not a whole number of minutes")
        return int(text)
    if field in _TIMES and text:
        if not text.endswith(("Z", "z")):
            raise bad(f"{value!r} must be an RFC 3339 UTC timestamp such as 2026-02-01T09:00:00Z")
        try:
            parse_time(text)
        except ValueError:
            raise bad(f"{value!r} is not an RFC 3339 timestamp") from None
        return text
    if field in ("status", "priority"):
        return text.lower()
    if field == "title":
        return value
    return value if text else None  # description, request, duplicates: empty clears


def _queue(args: argparse.Namespace) -> Queue:
    return Queue(find_repo(args.repo))


def _say(args: argparse.Namespace, t: Task, text: str) -> int:
    emit(args, t.to_dict(), text)
    return 0


def _cmd_add(args: argparse.Namespace) -> int:
    fields: dict[str, Any] = {"priority": args.priority}
    for key in ("tags", "depends_on", "scope"):
        if getattr(args, key):
            fields[key] = getattr(args, key)
    if args.description:
        fields["description"] = args.description
    t = _queue(args).add(args.title, **fields)
    return _say(args, t, f"added {compact(t)}")


def _cmd_start(args: argparse.Namespace) -> int:
    q = _queue(args)
    t = q.start(args.id)
    if args.reset:
        t = q.update(args.id, started_at=stamp_now())
    return _say(args, t, f"Task {t.id} started (doing since {t.started_at}).")


def _cmd_finish(args: argparse.Namespace) -> int:
    q = _queue(args)
    if args.verb == "reject":
        t = q.reject(args.id, args.note)
        return _say(
            args, t, f"Task {t.id} completed (status: rejected) and archived to {q.done_path.name}."
        )
    archive = not os.environ.get("RALPHNB_WORKER")
    t = q.complete(args.id, args.note, archive=archive)
    where = f"archived to {q.done_path.name}" if archive else f"left in {q.queue_path.name}"
    return _say(args, t, f"Task {t.id} completed (status: done) and {where}.")


def _cmd_status(args: argparse.Namespace) -> int:
    q = _queue(args)
    done = [q.set_status(tid, args.status, args.note) for tid in args.ids]
    archived = " and archived" if args.status in TERMINAL else ""
    lines = [f"Successfully marked {len(done)} tasks as {args.status}{archived}:"]
    emit(args, [t.to_dict() for t in done], "\n".join(lines + [f"  ✓ {t.id}" for t in done]))
    return 0


def _cmd_edit(args: argparse.Namespace) -> int:
    q = _queue(args)
    out = []
    for tid in args.ids:
        value = edit_value(args.field, args.value, tid)
        if args.dry_run:
            before = q.get(tid).to_dict().get(args.field)
            out.append(f"{tid}: {args.field}: {before!r} -> {value!r} (dry run)")
            continue
        t = q.update(tid, **{args.field: value})
        out.append(f"Task {t.id} updated: {args.field}.")
    emit(args, {"updated": [] if args.dry_run else args.ids, "lines": out}, "\n".join(out))
    return 0


def _cmd_ready(args: argparse.Namespace) -> int:
    t = _queue(args).set_status(args.id, "todo", args.note, only_from="draft")
    return _say(args, t, f"Task {t.id} marked ready (draft -> todo).")


def _cmd_schedule(args: argparse.Namespace) -> int:
    if args.clear == bool(args.when):
        raise QueueError(
            f"task {args.id}: give a time (RFC 3339 UTC, e.g. 2026-02-01T09:00:00Z) or --clear",
            task_id=args.id,
            field="scheduled_start",
        )
    value = None if args.clear else edit_value("scheduled_start", args.when, args.id)
    t = _queue(args).update(args.id, scheduled_start=value)
    text = (
        f"Task {t.id} scheduling cleared."
        if args.clear
        else f"Task {t.id} scheduled for {t.scheduled_start}."
    )
    return _say(args, t, text)


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the `task` subcommands to the `ralphnb` parser."""
    task = sub.add_parser("task", help="add a task or move it through its lifecycle")
    verbs = task.add_subparsers(dest="task_command", required=True)
    sp = verbs.add_parser("add", parents=[common], help="append a task")
    sp.add_argument("title")
    sp.add_argument("--priority", choices=PRIORITIES, default="medium")
    sp.add_argument("--depends-on", dest="depends_on", action="append", metavar="ID")
    sp.add_argument("--tag", dest="tags", action="append", metavar="TAG")
    sp.add_argument("--scope", action="append", metavar="PATH")
    sp.add_argument("--description")
    sp.set_defaults(func=_cmd_add)
    sp = verbs.add_parser("start", parents=[common], help="mark a task doing, stamp started_at")
    sp.add_argument("id", metavar="TASK_ID")
    sp.add_argument("--reset", action="store_true", help="stamp started_at even if set")
    sp.set_defaults(func=_cmd_start)
    for verb in ("done", "reject"):
        sp = verbs.add_parser(verb, parents=[common], help=f"{verb} a task and archive it")
        sp.add_argument("id", metavar="TASK_ID")
        sp.add_argument("--note", action="append", help="repeatable")
        sp.set_defaults(func=_cmd_finish, verb=verb)
    sp = verbs.add_parser("status", parents=[common], help="set the status of tasks")
    sp.add_argument("status", choices=STATUSES)
    sp.add_argument("ids", nargs="+", metavar="TASK_ID")
    sp.add_argument("--note")
    sp.set_defaults(func=_cmd_status)
    sp = verbs.add_parser("edit", parents=[common], help="set one field of tasks")
    sp.add_argument("field", choices=EDIT_FIELDS)
    sp.add_argument("value", help="lists: comma-separated; empty clears an optional field")
    sp.add_argument("ids", nargs="+", metavar="TASK_ID")
    sp.add_argument("--dry-run", action="store_true")
    sp.set_defaults(func=_cmd_edit)
    sp = verbs.add_parser("ready", parents=[common], help="promote a draft to todo")
    sp.add_argument("id", metavar="TASK_ID")
    sp.add_argument("--note")
    sp.set_defaults(func=_cmd_ready)
    sp = verbs.add_parser("schedule", parents=[common], help="set or clear scheduled_start")
    sp.add_argument("id", metavar="TASK_ID")
    sp.add_argument("when", nargs="?", help="RFC 3339 UTC time, e.g. 2026-02-01T09:00:00Z")
    sp.add_argument("--clear", action="store_true")
    sp.set_defaults(func=_cmd_schedule)
