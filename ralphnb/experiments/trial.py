"""One run of a sweep: one (task, variant, repeat) in its own workspace, from the sweep's base.

Owns: `Trial` (what is run: the key `<task>.<variant>.<repeat>` that names its rows, and the
id of its workspace and branch, `S<tag>-<n>`: workspaces take task-id-shaped names) and
`TrialDriver`, whose `run()` is the body of the trial's thread: the
workspace (from the sweep's base commit), a one-task stub queue the agent marks done in (so the
user's queue is never touched: nothing is marked done until `Sweep.merge()`), attempts up to
`max_iterations` judged by the loop's own `decide`, the check, then the work committed in the
workspace and its diff against the base measured. It uses the loop's pieces: `Attempt`,
`diagnose`, `exit_data`, `run_check`, the runner's command and the executor.
Never: merges, archives, or writes the user's queue files.
Invariants: every state change is an Event through the sweep's sink; the trial ends with exactly
one `trial_end` event (passed or not, and why); a stop/kill is routed here by key and no
further attempt follows it; `handle`/`action` are touched with `flags.cond` held.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ..errors import RalphError, WorkerError
from ..loop.attempt import Attempt, diagnose, exit_data
from ..loop.budget import Budget
from ..loop.check import CheckType, run_check
from ..loop.context import RunFlags
from ..loop.decide import decide
from ..loop.events import Event
from ..loop.outflow import wait_flushing
from ..loop.shutdown import quiet
from ..runners import build_prompt
from ..workers.executors import Callbacks, Executor, WorkerHandle, WorkerSpec
from ..workers.exits import ExitInfo
from ..workers.process import build_env
from ..workspace.git import run_git
from ..workspace.merge import commit_workspace
from ..workspace.workspaces import Workspace, Workspaces
from .variants import Variant


@dataclass(frozen=True)
class Trial:
    """One cell of the sweep grid."""

    key: str  # names its rows (their `task_id`)
    task: dict[str, Any]
    variant: str
    repeat: int
    ws_id: str  # names its workspace and branch (`ralph/<ws_id>`)


@dataclass(frozen=True)
class TrialContext:
    """What every trial of a sweep is given."""

    run_dir: Path
    repo: Path
    workspaces: Workspaces  # created from the sweep's base commit
    executor: Executor
    flags: RunFlags
    budget: Budget
    emit: Callable[[Event], None]
    check: CheckType
    max_iterations: int
    completion_promise: str
    grace: float
    max_log_bytes: int | None


class TrialDriver:
    """Drives one trial (see the module docstring)."""

    def __init__(self, ctx: TrialContext, trial: Trial, variant: Variant) -> None:
        self.ctx, self.trial, self.variant = ctx, trial, variant
        self.flags = ctx.flags
        self.iteration = 0
        self.handle: WorkerHandle | None = None  # flags.cond held
        self.action: str | None = None  # "stop" | "kill" | "stop_all", flags.cond held

    @property
    def worker_id(self) -> str:
        return f"{self.trial.key}#{self.iteration}"

    def live_handle(self, worker_id: str) -> WorkerHandle | None:
        h = self.handle
        return h if h is not None and worker_id == self.worker_id else None

    def run(self) -> None:
        """The trial's whole life; never raises (an error is the trial's `error`)."""
        passed, error, ws = False, "", None
        try:
            self.iteration = 1
            self._ev("queued", title=self.trial.task.get("title", ""), iteration=1)
            ws = self.ctx.workspaces.create(self.trial.ws_id)
            passed, error = self._iterate(ws)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            self._ev("failed", error=error, status="failed")
        stats = _diffstat(ws) if ws is not None else {}
        self.ctx.emit(
            Event(
                "trial_end",
                self.trial.key,
                self.worker_id,
                data={"passed": passed, "error": error or None, **stats},
            )
        )

    def _iterate(self, ws: Workspace) -> tuple[bool, str]:
        stub = _make_stub(self.ctx.run_dir / "stubs" / self.trial.key, self.trial.task)
        runner = self.variant.runner
        while True:
            if not self._wait_to_start():
                return False, self._why_stopped()
            info, att = self._attempt(runner, ws, stub)
            if info is None or att is None:
                return False, self._why_stopped() if self.action else "the agent did not start"
            if self.action is not None or self.flags.stopping:
                return False, self._why_stopped()
            exit_msg = att.redact(diagnose(runner, info, att.parser))
            marked = _marked_done(stub, info)
            done = marked or att.promise_seen
            ok, msg = (
                run_check(self.ctx.check, Path(ws.path), self._env(ws, stub))
                if done
                else (None, "")
            )
            d = decide(
                iteration=self.iteration,
                max_iterations=self.ctx.max_iterations,
                marked_done=marked,
                promise_seen=att.promise_seen,
                check_ok=ok,
                check_msg=msg,
                exit_msg=exit_msg,
            )
            self._ev("iteration_end", decision=d.action, reason=d.reason, check_ok=ok)
            if d.action == "complete":
                return True, ""
            if d.action == "fail":
                self._ev("status", status="failed", error=d.reason)
                return False, d.reason
            _make_stub(stub, self.trial.task)  # a mark that did not complete does not count
            self.iteration += 1
            self._ev("queued", title=self.trial.task.get("title", ""), iteration=self.iteration)

    def _wait_to_start(self) -> bool:
        """Wait while paused or over the budget; False when stopped or halted instead."""
        with self.flags.cond:
            while (self.flags.paused or self.ctx.budget.reached()) and not self._stopping():
                if self.flags.halt_reason is not None:
                    break
                self.flags.cond.wait()
            return not self._stopping() and self.flags.halt_reason is None

    def _stopping(self) -> bool:
        return self.action is not None or self.flags.stopping

    def _why_stopped(self) -> str:
        if self.action in ("stop", "kill"):
            return f"{'killed' if self.action == 'kill' else 'stopped'} by the user"
        if self.flags.halt_reason:
            return f"sweep halted: {self.flags.halt_reason}"
        return "the sweep was stopped"

    def _attempt(
        self, runner: Any, ws: Workspace, stub: Path
    ) -> tuple[ExitInfo | None, Attempt | None]:
        log_path = self.ctx.run_dir / "logs" / self.trial.key / f"{self.iteration}.log"
        self._ev("starting", workspace=str(ws.path), branch=ws.branch, log_path=str(log_path))
        prompt_file = self.ctx.run_dir / "prompts" / self.trial.key / f"{self.iteration}.md"
        prompt_file.parent.mkdir(parents=True, exist_ok=True)
        prompt_file.write_text(
            build_prompt(
                self.trial.task,
                workspace=ws.path,
                completion_promise=self.ctx.completion_promise,
                template=self.variant.prompt_template,
                iteration=self.iteration,
            ),
            encoding="utf-8",
        )
        try:
            cmd = runner.command(
                self.trial.task,
                workspace=Path(ws.path),
                prompt_file=prompt_file,
                iteration=self.iteration,
            )
            env = self._env(ws, stub, cmd.env)
            att = Attempt.new(self.worker_id, runner, self.ctx.completion_promise, env)
            spec = WorkerSpec(
                worker_id=self.worker_id,
                task_id=self.trial.key,
                iteration=self.iteration,
                argv=tuple(cmd.argv),
                cwd=str(ws.path),
                env=env,
                log_path=str(log_path),
                stdin_path=str(cmd.stdin_path) if cmd.stdin_path else None,
                registry_path=str(self.ctx.run_dir / "workers"),
                task=dict(self.trial.task, status="doing"),
                grace=self.ctx.grace,
                max_log_bytes=self.ctx.max_log_bytes,
            )
            with self.flags.cond:
                if self._stopping():
                    self._ev("status", status="stopped", error=self._why_stopped())
                    return None, None
            handle = self.ctx.executor.spawn(spec, self._callbacks(att))
        except RalphError as exc:
            self._ev("failed", error=str(exc), status="failed")
            return None, None
        with self.flags.cond:
            self.handle, action = handle, self.action
        if action is not None:  # asked while spawning
            self.request(action, wait=True)
        info = wait_flushing(handle, att.gate) if att.gate is not None else handle.wait()
        with self.flags.cond:
            self.handle = None
        return info, att

    def _callbacks(self, att: Attempt) -> Callbacks:
        wid, key = att.worker_id, self.trial.key

        # parsed output goes through the attempt's gate (redacted, batched), as a Loop's does
        gate = att.open_gate(lambda ev: self.ctx.emit(Event("output", key, wid, data=ev)))

        def on_line(line: str) -> None:
            gate.offer(att.feed(line))

        def on_exit(info: ExitInfo) -> None:
            if att.first_start():
                self.ctx.emit(Event("started", key, wid, data={"pid": info.pid}))
            self.ctx.emit(Event("exited", key, wid, data=exit_data(info, info.reason)))

        return Callbacks(on_line=on_line, on_exit=on_exit)

    def _env(
        self, ws: Workspace, stub: Path, extra: dict[str, str] | None = None
    ) -> dict[str, str]:
        path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
        return build_env(
            {
                **(extra or {}),
                "PATH": path,
                "RALPHNB_REPO": str(stub),  # the agent's `ralphnb task done` lands here
                "RALPHNB_WORKER": self.worker_id,
                "RALPHNB_TASK_ID": str(self.trial.task["id"]),
                "RALPHNB_ITERATION": str(self.iteration),
                "RALPHNB_RUN_DIR": str(self.ctx.run_dir),
                "RALPHNB_WORKSPACE": str(ws.path),
            }
        )

    def request(self, action: str, *, wait: bool) -> None:
        """Stop ("stop", "stop_all": SIGINT, grace, kill) or kill the trial's worker; no
        further attempt follows."""
        with self.flags.cond:
            if self.action is None or action == "kill":
                self.action = action
            handle, wid = self.handle, self.worker_id
            self.flags.cond.notify_all()
        if handle is None:
            return
        if action != "kill":
            self._ev("stopping", wid=wid)
        call = handle.kill if action == "kill" else partial(handle.stop, self.ctx.grace)
        if wait:
            try:
                call()
            except WorkerError:
                pass
        else:
            threading.Thread(target=quiet, args=(call,), daemon=True).start()

    def _ev(self, kind: str, *, wid: str | None = None, **data: Any) -> None:
        self.ctx.emit(Event(kind, self.trial.key, wid or self.worker_id, data=data))


def _make_stub(root: Path, task: dict[str, Any]) -> Path:
    """A one-task queue (links stripped) for the agent's `ralphnb task done` to mark."""
    stub = {k: v for k, v in task.items() if k not in ("depends_on", "blocks", "parent_id")}
    stub["status"] = "doing"
    ralph = root / ".ralph"
    ralph.mkdir(parents=True, exist_ok=True)
    for name, tasks in (("queue.jsonc", [stub]), ("done.jsonc", [])):
        (ralph / name).write_text(json.dumps({"version": 1, "tasks": tasks}, indent=2) + "\n")
    return root


def _marked_done(stub: Path, info: ExitInfo) -> bool:
    """Did the agent mark its task done (in the stub queue, or in a remote stub's marks)?"""
    marks = info.queue_marks or {}
    if marks.get("status") == "done":
        return True
    for name in ("queue.jsonc", "done.jsonc"):
        try:
            doc = json.loads((stub / ".ralph" / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if any(t.get("status") == "done" for t in doc.get("tasks", [])):
            return True
    return False


def _diffstat(ws: Workspace) -> dict[str, Any]:
    """Commit what the agent left in the workspace; files changed and lines added/removed
    since the base commit (empty outside git)."""
    if ws.kind == "copy" or not ws.base:
        return {}
    try:
        commit_workspace(ws.path, f"sweep: {ws.task_id}")
        r = run_git(
            ["diff", "--numstat", "--no-ext-diff", "--no-textconv", ws.base, "HEAD"], ws.path
        )
    except Exception:
        return {}
    files = added = removed = 0
    for line in r.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            files += 1
            added += int(parts[0]) if parts[0].isdigit() else 0
            removed += int(parts[1]) if parts[1].isdigit() else 0
    return {"files_changed": files, "lines_added": added, "lines_removed": removed}


__all__ = ["Trial", "TrialContext", "TrialDriver"]
