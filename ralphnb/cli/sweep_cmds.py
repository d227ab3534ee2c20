"""The `ralphnb sweep` subcommand: run a best-of-N sweep from the terminal.

Owns: its arguments (variants as `runner[:model]` names, repeats, tasks, check, parallel,
budget, `--merge`) and what it prints: the live terminal table while it runs (`view.console`),
then the per-variant summary and the winners (or, with `--json`, the results as JSON records).
`register(subparsers, common)` adds it to the parser of `cli.main`.
Exit code: 0 when every task has a passing run (and, with `--merge`, every winner merged), 1
otherwise.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from ..experiments import Sweep
from ..view.console import Printer
from .common import find_repo


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    sp = subparsers.add_parser(
        "sweep", parents=[common], help="run tasks with several agents/models, compare, merge"
    )
    sp.add_argument(
        "variants",
        nargs="+",
        metavar="RUNNER[:MODEL]",
        help="the variants, e.g. claude:sonnet codex:gpt-5.5 demo",
    )
    sp.add_argument("--task", action="append", metavar="ID", help="only these tasks")
    sp.add_argument("--repeats", type=int, default=1, metavar="N")
    sp.add_argument("--parallel", type=int, default=2, metavar="N")
    sp.add_argument("--max-iterations", type=int, default=1, metavar="N")
    sp.add_argument("--check", metavar="CMD", help="command a run must pass (never run by a shell)")
    sp.add_argument("--max-cost", type=float, metavar="USD", help="one budget for the whole sweep")
    sp.add_argument("--merge", action="store_true", help="merge the best run of each task")
    sp.set_defaults(func=_cmd_sweep)


def _cmd_sweep(args: argparse.Namespace) -> int:
    sweep = Sweep(
        find_repo(getattr(args, "repo", None)),
        tasks=args.task,
        variants=args.variants,
        repeats=args.repeats,
        check=shlex.split(args.check) if args.check else None,
        parallel=args.parallel,
        max_cost_usd=args.max_cost,
        max_iterations=args.max_iterations,
    )
    printer = Printer(sweep, sys.stdout)
    if not args.json:
        sweep.subscribe(printer)
        printer.start()
    try:
        res = sweep.run()
    except KeyboardInterrupt:
        printer.close()
        print("interrupted: the sweep's workers were stopped", file=sys.stderr)
        return 130
    printer.close()
    best = sweep.best()
    merged = sweep.merge(best) if args.merge else None
    if args.json:
        print(res.to_json(orient="records"))
    else:
        print(sweep.summary().to_string())
        print(
            "best:",
            ", ".join(f"{t} -> {v}" for t, v in zip(best.task_id, best.variant, strict=True))
            or "none",
        )
        if merged is not None:
            print(merged[["task_id", "variant", "status"]].to_string(index=False))
    if sweep.halt_reason:
        print(f"ralphnb: halted: {sweep.halt_reason}", file=sys.stderr)
    ok = len(best) == len(sweep.tasks)
    if merged is not None:
        ok = ok and (merged.status == "integrated").all()
    return 0 if ok else 1
