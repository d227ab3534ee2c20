"""Loop subcommands of the `ralphnb` command: `run`, `status`, `stop`, `kill`.

Owns: argument parsing for those, the live text table of `ralphnb run` (rewritten in place on a
TTY, one line per change otherwise), and talking to a loop running in another process through
its control socket (see `run.ControlServer`). `status` falls back to the newest run's journal
when no loop is running. `register(subparsers, common)` is the hook `cli.py` calls.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import threading
from typing import Any

from .errors import RalphError


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the loop subcommands to the `ralphnb` parser."""
    sp = subparsers.add_parser("run", parents=[common], help="run agents over the queue")
    sp.add_argument("--runner", default="demo", help="claude, codex, gemini, opencode, cursor, "
                    "demo (default)")  # fmt: skip
    sp.add_argument("--parallel", type=int, default=2, metavar="N")
    sp.add_argument("--max-iterations", type=int, default=5, metavar="N")
    sp.add_argument("--check", metavar="CMD", help="command that must pass in the workspace "
                    "(split like a shell would, never run by one)")  # fmt: skip
    sp.add_argument("--model", help="model for the runner")
    sp.add_argument("--target-branch", metavar="BRANCH")
    sp.add_argument("--max-wall-time", type=float, metavar="SECONDS")
    sp.add_argument("--max-cost", type=float, metavar="USD")
    sp.add_argument("--task", action="append", metavar="ID", help="only these tasks")
    sp.set_defaults(func=_cmd_run)
    sp = subparsers.add_parser("status", parents=[common],
                               help="workers of the running loop (else of the latest run)")
    sp.set_defaults(func=_cmd_status)
    for name, helptext in (("stop", "stop one task's worker gracefully (SIGINT, grace, kill)"),
                           ("kill", "kill one task's worker and its processes now")):  # fmt: skip
        sp = subparsers.add_parser(name, parents=[common], help=helptext)
        sp.add_argument("id")
        sp.set_defaults(func=_cmd_control, op=name)


def _repo(args: argparse.Namespace) -> Any:
    from .cli import find_repo

    return find_repo(getattr(args, "repo", None))


class _Printer:
    """Subscriber that redraws the table: in place on a TTY (at most ~5/s), else a line per
    change of a worker's status."""

    def __init__(self, loop: Any, out: Any) -> None:
        self.loop, self.out = loop, out
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self._last: dict[str, str] = {}
        self._drawn = 0
        self._dirty = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True) if self.tty else None

    def __call__(self, event: Any) -> None:
        if self.tty:
            self._dirty.set()
        elif event.worker_id:
            self._line(event)
        elif event.kind in ("loop_finished", "halted", "recovered", "queue_error"):
            print(f"[{event.kind}] {json.dumps(event.data)}", file=self.out, flush=True)

    def _line(self, event: Any) -> None:
        from .render import attempt_line

        recs = [r for r in self.loop.snapshot(sample=False) if r["worker_id"] == event.worker_id]
        if not recs or self._last.get(event.worker_id) == recs[0]["status"]:
            return
        self._last[event.worker_id] = recs[0]["status"]
        print(attempt_line(recs[0]), file=self.out, flush=True)

    def start(self) -> None:
        if self._thread is not None:
            self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            self._dirty.wait()
            self._dirty.clear()
            self.draw()
            self._done.wait(0.2)

    def draw(self) -> None:
        from .render import attempts_table

        text = attempts_table(self.loop.snapshot())
        up = f"\x1b[{self._drawn}F\x1b[J" if self._drawn else ""
        self.out.write(up + text + "\n")
        self.out.flush()
        self._drawn = text.count("\n") + 1

    def close(self) -> None:
        self._done.set()
        self._dirty.set()
        if self._thread is not None:
            self._thread.join(2)
            self.draw()


def _cmd_run(args: argparse.Namespace) -> int:
    from .loop import Loop
    from .runners import get_runner

    runner = get_runner(args.runner)
    if args.model:
        runner = runner.with_options(model=args.model)
    check = shlex.split(args.check) if args.check else None
    loop = Loop(_repo(args), runner=runner, parallel=args.parallel,
                max_iterations=args.max_iterations, check=check,
                target_branch=args.target_branch, max_wall_time=args.max_wall_time,
                max_cost_usd=args.max_cost, tasks=args.task)  # fmt: skip
    printer = _Printer(loop, sys.stdout)
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
    bad = {"failed", "conflict", "stopped", "killed", "timed_out"}
    last = df.drop_duplicates("task_id", keep="last")
    return 1 if last.status.isin(bad).any() or loop.halt_reason else 0


def _cmd_status(args: argparse.Namespace) -> int:
    from .render import attempts_table
    from .runs import Run, live_run, send_control

    repo = _repo(args)
    live = live_run(repo)
    if live is not None and live[1].get("control"):
        reply = send_control(live[1]["control"], {"op": "status"})
        if "error" in reply:
            raise RalphError(reply["error"])
        recs, head = reply["records"], f"run {reply['run_id']}: running"
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
    from .ids import validate_task_id
    from .runs import live_run, send_control

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
