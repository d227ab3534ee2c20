"""Queue and task subcommands of `ralphnb`: init, task add/done/reject/start, queue
list/show/next/validate.

Every operation is one call on `ralphnb.queue`; nothing here touches files itself. With env
`RALPHNB_WORKER` set, `task done` leaves the task in queue.jsonc (the loop archives it after
merging the worker's work).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..queue.rules import PRIORITIES, STATUSES
from ..queue.store import Queue, Task, init
from .common import emit, find_repo


def _row(t: Task) -> str:
    deps = f"  (after {', '.join(t.depends_on)})" if t.depends_on else ""
    title = " ".join(t.title.split())  # one row per task, whatever newlines the title holds
    return f"{t.id}  {t.status:<8} {t.priority:<8} {title}{deps}"


def _show(t: Task) -> str:
    lines = []
    for k, v in t.to_dict().items():
        if isinstance(v, list):
            lines.append(f"{k}:" + ("" if v else " []"))
            lines += [f"  - {x}" for x in v]
        elif isinstance(v, dict):
            lines.append(f"{k}:" + ("" if v else " {}"))
            lines += [f"  {a}: {b}" for a, b in v.items()]
        else:
            lines.append(f"{k}: {v}")
    return "\n".join(lines)


def _cmd_init(args: argparse.Namespace) -> int:
    q = init(find_repo(args.repo, for_init=True))
    emit(
        args,
        {"repo": str(q.repo), "queue": str(q.queue_path), "done": str(q.done_path)},
        f"initialised {q.ralph_dir}",
    )
    return 0


def _queue(args: argparse.Namespace) -> Queue:
    return Queue(find_repo(args.repo))


def _cmd_add(args: argparse.Namespace) -> int:
    fields: dict[str, Any] = {"priority": args.priority}
    for key in ("tags", "depends_on", "scope"):
        if getattr(args, key):
            fields[key] = getattr(args, key)
    if args.description:
        fields["description"] = args.description
    t = _queue(args).add(args.title, **fields)
    emit(args, t.to_dict(), f"added {_row(t)}")
    return 0


def _cmd_done(args: argparse.Namespace) -> int:
    archive = not os.environ.get("RALPHNB_WORKER")
    q = _queue(args)
    t = q.complete(args.id, args.note, archive=archive)
    where = (
        f"archived to {q.done_path.name}"
        if archive
        else f"left in {q.queue_path.name} for the loop to archive"
    )
    emit(args, t.to_dict(), f"done {t.id} ({where})")
    return 0


def _cmd_reject(args: argparse.Namespace) -> int:
    t = _queue(args).reject(args.id, args.note)
    emit(args, t.to_dict(), f"rejected {t.id}")
    return 0


def _cmd_start(args: argparse.Namespace) -> int:
    t = _queue(args).start(args.id)
    emit(args, t.to_dict(), f"started {t.id}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    q = _queue(args)
    tasks = q.tasks + (q.done if args.all else [])
    if args.status:
        tasks = [t for t in tasks if t.status == args.status]
    text = "\n".join(_row(t) for t in tasks) or "(no tasks)"
    emit(args, [t.to_dict() for t in tasks], text)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    t = _queue(args).get(args.id)
    emit(args, t.to_dict(), _show(t))
    return 0


def _cmd_next(args: argparse.Namespace) -> int:
    t = _queue(args).next()
    emit(args, t.to_dict() if t else None, _row(t) if t else "(no runnable task)")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    q = _queue(args)
    n = q.validate()
    emit(
        args,
        {"valid": True, "tasks": n},
        f"ok: {n} tasks in {q.queue_path.name} and {q.done_path.name}",
    )
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add init, task and queue subcommands to the `ralphnb` parser."""
    sp = sub.add_parser("init", parents=[common], help="create .ralph/ with empty queue files")
    sp.set_defaults(func=_cmd_init)

    task = sub.add_parser("task", help="add, start, finish or reject a task").add_subparsers(
        dest="task_command", required=True
    )
    sp = task.add_parser("add", parents=[common], help="append a task")
    sp.add_argument("title")
    sp.add_argument("--priority", choices=PRIORITIES, default="medium")
    sp.add_argument("--depends-on", dest="depends_on", action="append", metavar="ID")
    sp.add_argument("--tag", dest="tags", action="append", metavar="TAG")
    sp.add_argument("--scope", action="append", metavar="PATH")
    sp.add_argument("--description")
    sp.set_defaults(func=_cmd_add)
    for name, func, helptext in (
        ("done", _cmd_done, "mark a task done"),
        ("reject", _cmd_reject, "reject a task"),
    ):
        sp = task.add_parser(name, parents=[common], help=helptext)
        sp.add_argument("id")
        sp.add_argument("--note")
        sp.set_defaults(func=func)
    sp = task.add_parser("start", parents=[common], help="mark a task doing")
    sp.add_argument("id")
    sp.set_defaults(func=_cmd_start)

    queue = sub.add_parser("queue", help="inspect the queue").add_subparsers(
        dest="queue_command", required=True
    )
    sp = queue.add_parser("list", parents=[common], help="open tasks (with --all: also done)")
    sp.add_argument("--all", action="store_true")
    sp.add_argument("--status", choices=STATUSES)
    sp.set_defaults(func=_cmd_list)
    sp = queue.add_parser("show", parents=[common], help="one task in full")
    sp.add_argument("id")
    sp.set_defaults(func=_cmd_show)
    sp = queue.add_parser("next", parents=[common], help="the task ralph's rule picks next")
    sp.set_defaults(func=_cmd_next)
    sp = queue.add_parser("validate", parents=[common], help="check both files")
    sp.set_defaults(func=_cmd_validate)
