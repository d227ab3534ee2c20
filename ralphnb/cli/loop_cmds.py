"""Loop subcommands of the `ralphnb` command: `run`, `status`, `attach`, `stop`, `kill`.

Owns: their arguments and what they print. `run` runs a `Loop` in this process and shows it
with the terminal table of `view.console` (`run --detach` starts it in its own background
process instead and returns); `status`, `stop` and `kill` reach a loop running in another
process through its control socket (`loop.control`), and `status` falls back to the newest
run's journal (`loop.runs`) when no loop is running; `attach` follows a running loop live.
`register(subparsers, common)` adds them to the parser of `cli.main`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from ..errors import RalphError
from ..loop.attached import attach
from ..loop.control import live_run, send_control
from ..loop.core import Loop
from ..loop.launch import spawn_detached
from ..loop.report import attempts_table
from ..loop.runs import Run
from ..queue.ids import validate_task_id
from ..view.console import Printer
from .common import find_repo


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the loop subcommands to the `ralphnb` parser."""
    # long but flat: one add_argument per option of `run`, then the small verbs
    sp = subparsers.add_parser("run", parents=[common], help="run agents over the queue")
    sp.add_argument(
        "--runner",
        help="claude, codex, gemini, opencode, pi, kimi, cursor or demo (default: agent.runner of "
        ".ralph/config.jsonc or of your global ralph config; none set is an error)",
    )
    sp.add_argument(
        "--parallel",
        type=int,
        metavar="N",
        help="workers at once (default: parallel.workers, else 2)",
    )
    sp.add_argument("--max-iterations", type=int, default=5, metavar="N")
    sp.add_argument(
        "--phases", type=int, choices=(1, 2, 3), help="1 implement; 2 plan, implement; 3 + review"
    )
    sp.add_argument("--passes", type=int, metavar="N", help="ralph's iterations: N fixed passes")
    sp.add_argument(
        "--publish",
        choices=("off", "commit", "commit_and_push"),
        help="ralph's git_publish_mode (default: agent.git_publish_mode, else commit)",
    )
    sp.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        help="start interrupted tasks afresh instead of resuming the agent's session",
    )
    sp.add_argument(
        "--check",
        metavar="CMD",
        help="command that must pass in the workspace (split like a shell would, never run by one)",
    )
    sp.add_argument("--model", help="model for the runner")
    sp.add_argument("--target-branch", metavar="BRANCH")
    sp.add_argument("--max-wall-time", type=float, metavar="SECONDS")
    sp.add_argument("--max-cost", type=float, metavar="USD")
    sp.add_argument("--task", action="append", metavar="ID", help="only these tasks")
    sp.add_argument(
        "--review",
        action="store_true",
        help="finished work waits for `ralphnb accept/discard/requeue ID` instead of merging",
    )
    sp.add_argument(
        "--detach",
        action="store_true",
        help="run the loop in its own background process and return at once "
        "(`ralphnb status`, `ralphnb attach`, `ralphnb stop ID` reach it)",
    )
    sp.set_defaults(func=_cmd_run)
    sp = subparsers.add_parser(
        "attach", parents=[common], help="follow the running loop live (Ctrl-C leaves it running)"
    )
    sp.set_defaults(func=_cmd_attach)
    sp = subparsers.add_parser(
        "status", parents=[common], help="workers of the running loop (else of the latest run)"
    )
    sp.set_defaults(func=_cmd_status)
    for name, helptext in (
        ("stop", "stop one task's worker gracefully (SIGINT, grace, kill)"),
        ("kill", "kill one task's worker and its processes now"),
    ):
        sp = subparsers.add_parser(name, parents=[common], help=helptext)
        sp.add_argument("id")
        sp.set_defaults(func=_cmd_control, op=name)


def _repo(args: argparse.Namespace) -> Path:
    return find_repo(getattr(args, "repo", None))


def _cmd_run(args: argparse.Namespace) -> int:
    check = shlex.split(args.check) if args.check else None
    options = dict(
        runner=args.runner,
        parallel=args.parallel,
        max_iterations=args.max_iterations,
        check=check,
        target_branch=args.target_branch,
        max_wall_time=args.max_wall_time,
        max_cost_usd=args.max_cost,
        tasks=args.task,
        review=args.review,
        phases=args.phases,
        passes=args.passes,
        publish=args.publish,
        resume=args.resume,
    )
    if args.detach:
        return _run_detached(args, options)
    loop = Loop(_repo(args), **options)
    if args.model:  # on whichever runner was chosen (the argument, ralph's config, ...)
        loop.runner = loop.runner.with_options(model=args.model)
    printer = Printer(loop, sys.stdout)
    if not args.json:
        loop.subscribe(printer)
        printer.start()
    try:
        df = loop.run()
    except KeyboardInterrupt:
        printer.close()
        print("interrupted: workers stopped, their tasks are back in todo", file=sys.stderr)
        return 130
    printer.close()
    if args.json:
        print(df.to_json(orient="records", date_format="iso"))
    if loop.halt_reason:  # why the run stopped early, as one line where errors go
        what = "error" if loop.error else "halted"
        print(f"ralphnb: {what}: {' '.join(loop.halt_reason.split())}", file=sys.stderr)
    bad = {"failed", "conflict", "stopped", "killed", "timed_out"}
    last = df.drop_duplicates("task_id", keep="last")
    return 1 if last.status.isin(bad).any() or loop.halt_reason else 0


def _run_detached(args: argparse.Namespace, options: dict) -> int:
    """`run --detach`: start the loop in its own process, say how to reach it, return."""
    model = {"model": args.model} if args.model else None
    ready = spawn_detached(_repo(args), kwargs=options, runner_options=model)
    run_id = Path(ready["run_dir"]).name
    if args.json:
        print(json.dumps({"run_id": run_id, **ready}))
    else:
        print(f"run {run_id}: running detached (pid {ready['pid']})")
        print("follow it with `ralphnb attach`, or ralphnb.attach(repo) in a notebook")
    return 0


def _cmd_attach(args: argparse.Namespace) -> int:
    """Follow the running loop with the terminal table until it finishes; Ctrl-C only leaves."""
    loop = attach(_repo(args))
    printer = Printer(loop, sys.stdout)
    loop.subscribe(printer)
    printer.start()
    try:
        loop.wait()
    except KeyboardInterrupt:
        printer.close()
        loop.detach()
        print(f"left run {loop.run_id} running", file=sys.stderr)
        return 130
    printer.close()
    loop.detach()
    print(f"run {loop.run_id}: finished")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    repo = _repo(args)
    live = live_run(repo)
    if live is not None and live[1].get("control"):
        reply = send_control(live[1]["control"], {"op": "status"})
        if "error" in reply:
            raise RalphError(reply["error"])
        recs, head = reply["records"], f"run {reply['run_id']}: running (pid {live[1]['pid']})"
    else:
        run = Run.latest(repo)
        recs = list(run.records.values())
        head = f"run {run.run_id}: not running"
    if args.json:
        print(json.dumps({"head": head, "records": recs}, default=str, indent=2))
    else:
        print(head)
        print(attempts_table(recs))
    return 0


def _cmd_control(args: argparse.Namespace) -> int:
    task_id = validate_task_id(args.id)
    repo = _repo(args)
    live = live_run(repo)
    if live is None or not live[1].get("control"):
        raise RalphError(f"no loop is running on {repo}; `ralphnb status` shows the last run")
    reply = send_control(live[1]["control"], {"op": args.op, "task_id": task_id})
    if "error" in reply:
        raise RalphError(reply["error"])
    print(f"{task_id}: {'stopped' if args.op == 'stop' else 'killed'}")
    return 0
