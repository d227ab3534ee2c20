"""`ralphnb init` and the `ralphnb queue` subcommands, spelled and printed as ralph's are.

Owns: `init`, and `queue list/show/next/validate/graph/archive/repair` with ralph's flags and
output formats (crates/ralph/src/cli/queue/{list,show,next,graph,archive,repair}.rs and
outpututil.rs): `list` prints ralph's tab-separated compact rows (`--format long|json`,
repeatable `--status/--tag/--scope`, `--include-done`, `--only-done`, `--limit`, default 50,
0 = none); `show` prints the task's JSON (no final newline, as ralph) or `--format compact`;
`next` prints the id (`--with-title`: id, tab, title) and, when nothing is runnable, the id
the next new task would get, exit 0, as ralph. ralphnb's older spellings stay as aliases:
`--json` (= `--format json`), `list --all` (ralph's "no limit", and as before also the done
tasks). Every operation is one call on `ralphnb.queue`; nothing here touches files itself.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import QueueError, RalphError
from ..queue.rules import STATUSES, next_id
from ..queue.store import Queue, Task, init
from .common import emit, find_repo


def one_line(text: str) -> str:
    """A title on one row, whatever whitespace it holds."""
    return " ".join(str(text).split())


def compact(t: Task) -> str:
    """ralph's `format_task_compact`: id, status, priority, title, tab-separated."""
    return f"{t.id.strip()}\t{t.status}\t{t.priority}\t{one_line(t.title)}"


def long_row(t: Task) -> str:
    """ralph's `format_task_detailed`: compact plus tags, scope, updated_at, completed_at and
    custom fields (`k=v`, sorted), tab-separated."""
    csv = lambda xs: ",".join(x.strip() for x in xs if x.strip())  # noqa: E731
    custom = ",".join(sorted(f"{k}={v}" for k, v in t.custom_fields.items()))
    return "\t".join(
        [
            compact(t),
            csv(t.tags),
            csv(t.scope),
            (t.updated_at or "").strip(),
            (t.completed_at or "").strip(),
            custom,
        ]
    )


def task_json(data: object) -> str:
    """serde_json's pretty form: two-space indent, non-ASCII kept."""
    return json.dumps(data, indent=2, ensure_ascii=False)


def _queue(args: argparse.Namespace) -> Queue:
    return Queue(find_repo(args.repo))


def _matches(t: Task, statuses: set[str], tags: set[str], scopes: list[str]) -> bool:
    """ralph's queue/search filter: any listed status; a tag equal to a listed one and a scope
    holding a listed token, both compared trimmed and case-insensitive."""
    if statuses and t.status not in statuses:
        return False
    if tags and not any(x.strip().lower() in tags for x in t.tags):
        return False
    return not scopes or any(s in x.strip().lower() for x in t.scope for s in scopes)


def _cmd_list(args: argparse.Namespace) -> int:
    if args.include_done and args.only_done:
        raise RalphError(
            "--include-done and --only-done exclude each other: choose one "
            "(ralph's rule for `queue list`)"
        )
    q = _queue(args)
    tasks = [] if args.only_done else q.tasks
    if args.include_done or args.only_done or args.all:
        tasks += q.done
    tags = {x.strip().lower() for x in args.tag or () if x.strip()}
    scopes = [x.strip().lower() for x in args.scope or () if x.strip()]
    tasks = [t for t in tasks if _matches(t, set(args.status or ()), tags, scopes)]
    if args.limit and not args.all:
        tasks = tasks[: args.limit]
    fmt = "json" if args.json else args.format
    if fmt == "json":
        print(task_json([t.to_dict() for t in tasks]))
    else:
        row = compact if fmt == "compact" else long_row
        for t in tasks:
            print(row(t))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    t = _queue(args).get(args.id.strip())
    if args.json or args.format == "json":
        sys.stdout.write(task_json(t.to_dict()))  # ralph prints it without a final newline
        sys.stdout.flush()
    else:
        print(compact(t))
    return 0


def _cmd_next(args: argparse.Namespace) -> int:
    q = _queue(args)
    t = q.next()
    if args.json:
        emit(args, t.to_dict() if t else None, "")
    elif t is not None:
        print(f"{t.id}\t{one_line(t.title)}" if args.with_title else t.id)
    else:  # ralph: with nothing runnable, the id a new task would get
        s = q.settings
        opened = [x.to_dict() for x in q.tasks]
        print(next_id(opened, [x.to_dict() for x in q.done], prefix=s.prefix, width=s.width))
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    q = _queue(args)
    n = q.validate()
    for w in n.warnings:  # ralph logs each warning; the files are valid all the same
        print(f"ralphnb: warning: {w}", file=sys.stderr)
    emit(
        args,
        {"valid": True, "tasks": int(n), "warnings": [str(w) for w in n.warnings]},
        f"ok: {int(n)} tasks in {q.queue_path.name} and {q.done_path.name}"
        + (f" ({len(n.warnings)} warnings)" if n.warnings else ""),
    )
    return 0


def _cmd_graph(args: argparse.Namespace) -> int:
    q = _queue(args)
    g = q.graph(include_done=args.include_done)
    if len(g) == 0:
        print("No tasks found in queue.")
        return 0
    fmt = "json" if args.json else args.format
    if args.task and args.task.strip() not in g.nodes:
        raise QueueError(
            f"no task {args.task.strip()} in {q.queue_path.name} or {q.done_path.name}; "
            "`ralphnb queue list --all` shows the ids",
            task_id=args.task.strip(),
        )
    if fmt == "json":
        print(g.to_json())
    elif fmt == "dot":
        print(g.dot())
    elif args.task:
        print(g.task_tree(args.task, reverse=args.reverse))
    else:
        print(g.tree())
    return 0


def _cmd_archive(args: argparse.Namespace) -> int:
    moved = _queue(args).archive_terminal()
    text = (
        f"Archived {len(moved)} terminal task(s) (done/rejected)."
        if moved
        else "No terminal tasks (done/rejected) to archive."
    )
    emit(args, {"moved": moved}, text)
    return 0


def _cmd_repair(args: argparse.Namespace) -> int:
    report = _queue(args).repair(dry_run=args.dry_run)
    emit(
        args,
        {
            "fixed_tasks": report.fixed_tasks,
            "fixed_timestamps": report.fixed_timestamps,
            "remapped_ids": report.remapped_ids,
            "dry_run": args.dry_run,
        },
        "\n".join(report.lines(dry_run=args.dry_run)),
    )
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    q = init(find_repo(args.repo, for_init=True))
    emit(
        args,
        {"repo": str(q.repo), "queue": str(q.queue_path), "done": str(q.done_path)},
        f"initialised {q.ralph_dir}",
    )
    return 0


def _add(
    sub: argparse._SubParsersAction, name: str, common: argparse.ArgumentParser, helptext: str
) -> argparse.ArgumentParser:
    return sub.add_parser(name, parents=[common], help=helptext)


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `init` and the `queue` subcommands to the `ralphnb` parser."""
    _add(sub, "init", common, "create .ralph/ with empty queue files").set_defaults(func=_cmd_init)
    queue = sub.add_parser("queue", help="inspect and manage the task queue").add_subparsers(
        dest="queue_command", required=True
    )
    sp = _add(queue, "list", common, "list tasks in queue order")
    sp.add_argument("--status", action="append", choices=STATUSES, help="repeatable")
    sp.add_argument("--tag", action="append", help="repeatable, case-insensitive")
    sp.add_argument("--scope", action="append", help="repeatable, substring")
    sp.add_argument("--include-done", action="store_true", help="done tasks after open ones")
    sp.add_argument("--only-done", action="store_true")
    sp.add_argument("--format", choices=("compact", "long", "json"), default="compact")
    sp.add_argument("--limit", type=int, default=50, help="0 = no limit (default 50)")
    sp.add_argument("--all", action="store_true", help="no limit, and the done tasks too")
    sp.set_defaults(func=_cmd_list)
    sp = _add(queue, "show", common, "one task (JSON, as ralph)")
    sp.add_argument("id", metavar="TASK_ID")
    sp.add_argument("--format", choices=("json", "compact"), default="json")
    sp.set_defaults(func=_cmd_show)
    sp = _add(queue, "next", common, "the id of the task ralph's rule picks next")
    sp.add_argument("--with-title", action="store_true")
    sp.set_defaults(func=_cmd_next)
    _add(queue, "validate", common, "check both files; print ralph's warnings").set_defaults(
        func=_cmd_validate
    )
    sp = _add(queue, "graph", common, "the dependency graph as text")
    sp.add_argument("--task", "-t", metavar="TASK_ID", help="one task's dependency tree")
    sp.add_argument("--format", "-f", choices=("tree", "json", "dot"), default="tree")
    sp.add_argument("--include-done", action="store_true")
    sp.add_argument("--reverse", "-r", action="store_true", help="what waits on --task")
    sp.set_defaults(func=_cmd_graph)
    _add(queue, "archive", common, "move done/rejected tasks to done.jsonc").set_defaults(
        func=_cmd_archive
    )
    sp = _add(queue, "repair", common, "fix missing fields, timestamps and duplicate ids")
    sp.add_argument("--dry-run", action="store_true")
    sp.set_defaults(func=_cmd_repair)
