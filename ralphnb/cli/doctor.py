"""`ralphnb doctor` and `ralphnb config show`: is this repository ready for a loop, and with
which configuration.

Owns: the doctor's checks, each one line `OK`/`WARN`/`FAIL` as ralph's doctor prints them
(crates/ralph/src/commands/doctor/output.rs, outpututil.rs), then ralph's closing line; exit 1
when any check fails. Checks: git on PATH and its version; the queue files (ralph's errors fail,
its warnings warn); the configuration (`ralphnb.config`: an error fails, each key ralphnb does
not honour warns); the runner binaries (the configured runner must be found, honouring
`agent.<runner>_bin`; the others are listed as found or not); `.ralph/lock/` (free, held, or
left by a dead process); the loop lock (a loop running now); workspaces left behind whose task
is finished or gone. `config show` prints every resolved value with where it came from.
Never: changes anything (the doctor reports and says what to run; it fixes nothing).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import RalphError
from ..loop.control import live_run
from ..queue.config import resolve_config
from ..queue.lock import OWNER_FILE, describe_owner, is_stale, parse_owner, process_start_time
from ..queue.store import Queue
from ..runners.names import RUNNERS, get_runner, runner_from_config
from ..workspace.workspaces import Workspaces
from .common import find_repo

Check = tuple[str, str]  # (OK | WARN | FAIL, message)


def _git() -> Iterator[Check]:
    exe = shutil.which("git")
    if exe is None:
        yield "FAIL", "git: not found on PATH; install git (workspaces are git worktrees)"
        return
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    yield "OK", f"git: {out.stdout.strip() or exe}"


def _queue(repo: Path) -> Iterator[Check]:
    try:
        q = Queue(repo)
        n = q.validate()
    except RalphError as e:
        yield "FAIL", f"queue: {' '.join(str(e).split())}"
        return
    yield "OK", f"queue: {int(n)} tasks valid in {q.queue_path.name} and {q.done_path.name}"
    for w in n.warnings:
        yield "WARN", f"queue: {w}"


def _config(repo: Path) -> Iterator[Check]:
    try:
        cfg = resolve_config(repo, warn=False)
    except RalphError as e:
        yield "FAIL", f"config: {' '.join(str(e).split())}"
        return
    files = ", ".join(str(p) for p in cfg.files.values()) or "ralph's defaults only"
    yield "OK", f"config: valid ({files})"
    for note in cfg.warnings:
        yield "WARN", f"config: {note}"
    yield from _runners(cfg.to_dict().get("agent") or {})


def _runners(agent: dict[str, Any]) -> Iterator[Check]:
    chosen = None
    if agent.get("runner"):
        try:
            runner = runner_from_config(agent)
            chosen = runner.name
            yield "OK", f"runner {runner.name}: {runner.resolve_executable()} (agent.runner)"
        except RalphError as e:
            yield "FAIL", f"runner: {' '.join(str(e).split())}"
    else:
        yield (
            "WARN",
            "runner: none configured; set agent.runner in .ralph/config.jsonc or pass --runner",
        )
    for name in sorted(set(RUNNERS) - {"cursor-agent", "demo", chosen}):
        try:
            r = runner_from_config({**agent, "runner": name, "model": None})
            yield "OK", f"runner {name}: {r.resolve_executable()}"
        except RalphError:
            exe = agent.get(f"{name}_bin") or " or ".join(get_runner(name).default_executables)
            yield "WARN", f"runner {name}: {exe} not found on PATH (only needed to run it)"


def _locks(repo: Path) -> Iterator[Check]:
    lock_dir = repo / ".ralph" / "lock"
    if not lock_dir.exists():
        yield "OK", "queue lock: free"
    else:
        try:
            owner = parse_owner((lock_dir / OWNER_FILE).read_text(errors="replace"))
        except OSError:
            owner = None
        pid = owner.get("pid") if owner else None
        alive = process_start_time(pid) if isinstance(pid, int) else None
        if owner is None or is_stale(owner, time.time(), alive):
            yield (
                "WARN",
                (
                    f"queue lock: {lock_dir} left by a process that is gone "
                    f"({describe_owner(owner)}); the next write clears it, or remove it"
                ),
            )
        else:
            yield "OK", f"queue lock: held by {describe_owner(owner)}"
    live = live_run(repo)
    if live is None:
        yield "OK", "loop lock: no loop running"
    else:
        yield "OK", f"loop lock: a loop is running (run {live[0].name}, pid {live[1].get('pid')})"


def _workspaces(repo: Path) -> Iterator[Check]:
    try:
        spaces = Workspaces(repo).existing()
        q = Queue(repo)
        status = {t.id: t.status for t in (*q.tasks, *q.done)}
    except RalphError:
        return  # the queue check already failed, or this is no place for workspaces
    running = live_run(repo) is not None
    stale = 0
    for ws in spaces:
        st = status.get(ws.task_id)
        if (st in ("done", "rejected") or st is None) and not running:
            stale += 1
            why = f"task {ws.task_id} is {st}" if st else f"no task {ws.task_id}"
            yield (
                "WARN",
                f"workspace: {ws.path} is left over ({why}); remove it when its work is merged",
            )
    if not stale:
        yield "OK", f"workspaces: {len(spaces)} found, none stale"


def doctor_checks(repo: Path) -> list[Check]:
    """Every check's line, in order."""
    sections: list[Callable[[Path], Iterator[Check]]] = [_queue, _config, _locks, _workspaces]
    return [*_git(), *(c for section in sections for c in section(repo))]


def _cmd_doctor(args: argparse.Namespace) -> int:
    checks = doctor_checks(find_repo(args.repo))
    fails = sum(1 for level, _ in checks if level == "FAIL")
    if args.json:
        print(json.dumps([{"level": lv, "message": m} for lv, m in checks], indent=2))
    else:
        for level, message in checks:
            print(f"{level} {message}")
        print(
            f"FAIL Doctor found {fails} issue(s)."
            if fails
            else "Doctor check passed. System is ready."
        )
    return 1 if fails else 0


def _cmd_config_show(args: argparse.Namespace) -> int:
    cfg = resolve_config(find_repo(args.repo), warn=False)
    data = cfg.to_dict()
    if args.json:
        sources = dict(cfg.sources)
        files = {k: str(v) for k, v in cfg.files.items()}
        out = {"config": data, "sources": sources, "files": files, "warnings": list(cfg.warnings)}
        print(json.dumps(out, indent=2, default=str))
        return 0
    for key, value in _leaves(data):
        if value is None:
            continue
        source = cfg.source(key) or "default"
        print(f"{key} = {json.dumps(value, default=str)}  ({source})")
    for note in cfg.warnings:
        print(f"warning: {note}")
    return 0


def _leaves(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(data, dict) and data and prefix.count(".") < 2:
        for k, v in data.items():
            yield from _leaves(v, f"{prefix}{k}.")
    else:
        yield prefix.rstrip("."), data


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add `doctor` and `config show` to the `ralphnb` parser."""
    sp = sub.add_parser("doctor", parents=[common], help="check git, queue, config, runners, locks")
    sp.set_defaults(func=_cmd_doctor)
    config = sub.add_parser("config", help="the resolved ralph configuration").add_subparsers(
        dest="config_command", required=True
    )
    sp = config.add_parser("show", parents=[common], help="every value and where it came from")
    sp.set_defaults(func=_cmd_config_show)
