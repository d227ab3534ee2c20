"""One task's life in a run: workspace -> attempts -> judgement -> integrate -> bookkeeping.

Owns: `Driver`, one object per task a `Loop` starts (or integrates after a crash), whose `run()`
is the body of that task's thread. One per task, not one per loop: a task's state (its iteration,
live handle, pending stop or kill, running check, done mark) is then plain attributes of its own
driver, and the loop reaches a task by id through the driver it keeps in its active map. What a
driver is given is its `DriverContext` (context.py): the event sink, the queue (wrapped in a
`gateway.TaskQueue`), workspaces, executor, settings, limits, the shared `RunFlags` and their
condition, the merge lock, the run's `fail` (a full disk halts the run, not one task). It never
sees the `Loop` itself. The git configs its agent could change are watched around each attempt
(`configwatch`): a change holds the merge until it is undone.
Invariants: a task leaves a driver integrated, or back in `todo` with a note saying why (stopped,
killed, failed, conflict, halted, held by a changed git config), or -- only when an integration
was interrupted -- done-but-not-archived, which the next Loop integrates; never silently
dropped; where the queue cannot be written (a full disk) the row says the task stays as it is.
A driver's `handle`, `action` and `check_proc` are read and written with `flags.cond` held.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from .._time import format_time
from ..errors import RalphError, WorkerError
from ..runners import build_prompt, iterations_for_task, runner_for_task
from ..runners.base import CommandSpec, Runner
from ..workers.executors import Callbacks, WorkerHandle, WorkerSpec
from ..workers.exits import ExitInfo
from ..workers.process import build_env
from ..workspace.integrate import integrate_workspace
from ..workspace.merge import MergeResult, commit_bookkeeping
from ..workspace.workspaces import Workspace
from .attempt import Attempt, diagnose, exit_data
from .check import kill_check, run_check
from .configwatch import ConfigWatch, held_message, watched
from .context import DriverContext
from .decide import Decision, decide
from .events import Event
from .failures import NO_SPACE, describe, no_space, with_file
from .gateway import RETRY_BLOCKED_S, TaskQueue
from .outflow import wait_flushing
from .publishing import push_after_merge
from .resume import ResumePoint, command_for, find_resume
from .shutdown import arm_exit_hook, quiet


class Driver:
    """Drives task `task` (a dict as the queue held it when picked) through a run.
    `integrate_only`: a task found done-but-not-archived at start: only integrate it."""

    def __init__(
        self, ctx: DriverContext, task: dict[str, Any], *, integrate_only: bool = False
    ) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.flags = ctx.flags
        self.task = task
        self.task_id = str(task["id"])
        self.title = str(task.get("title", ""))
        self.integrate_only = integrate_only
        self.marked_done = task.get("status") == "done"  # done in the queue, not yet merged
        self.iteration = 0
        # with flags.cond held:
        self.handle: WorkerHandle | None = None  # the live attempt's worker
        self.action: str | None = None  # "stop" | "kill" | "stop_all" | "timeout", from outside
        self.check_proc: subprocess.Popen | None = None  # the user's check, while it runs
        self.config: ConfigWatch | None = None  # the git configs its agent could change
        self.config_noted: str | None = None  # the change last put on a row
        self.resume_at: ResumePoint | None = None  # an interrupted session the next attempt resumes
        self.queue = TaskQueue(
            ctx.queue,
            self.task_id,
            ctx.flags,
            waiting=lambda msg: self._ev("status", error=msg),
            asked_to_stop=lambda: self.action is not None,
        )

    def __repr__(self) -> str:
        return f"<Driver {self.task_id} iteration={self.iteration} action={self.action}>"

    @property
    def worker_id(self) -> str:
        """The current attempt's worker id (its row in the table)."""
        return f"{self.task_id}#{self.iteration}"

    def live_handle(self, worker_id: str) -> WorkerHandle | None:
        """The handle of attempt `worker_id` while its worker runs, else None."""
        handle = self.handle
        return handle if handle is not None and worker_id == self.worker_id else None

    # ------------------------------------------------------------ the task's thread

    def run(self) -> None:
        """The task's whole life; never raises (a failure puts the task back with a note)."""
        try:
            if self.integrate_only:
                self._integrate(self.ctx.workspaces.get(self.task_id))
            else:
                self._work()
        except Exception as exc:
            if no_space(exc):  # the disk is full for every task: halt the run
                error = describe(exc)
                self.ctx.fail(error)
            else:
                error = f"{type(exc).__name__}: {describe(exc)}"
            self._ev("failed", error=error, status="failed")
            self._put_back(f"failed: {error}")

    def _work(self) -> None:
        max_it = iterations_for_task(self.task, self.settings.max_iterations)
        runner = runner_for_task(self.settings.runner, self.task)
        self.iteration = 1
        self._ev("queued", title=self.title, iteration=1)
        ws = self.ctx.workspaces.create(self.task_id, reuse=True)
        self.config = ConfigWatch(watched(Path(self.ctx.workspaces.repo), ws))
        self.resume_at = find_resume(self.settings, runner, self.task_id, ws.path)
        if self.resume_at is not None:
            self._ev("status", message=self.resume_at.describe(), resumed=self.resume_at.worker_id)
        if self.task.get("status") != "doing":
            self.queue.start()
        while True:
            if not self._wait_unpaused():
                return self._put_back(self._why_not_continued())
            self.config.arm()
            info, att = self._attempt(runner, ws)
            if info is None or att is None:
                return  # never started: already put back
            self._note_config_change()
            if self._stop_asked():
                return self._put_back(self._why_not_continued())
            judged = self._judge(runner, info, att, ws, max_it)
            if judged is None or not self._follow(*judged, att, ws):
                return
            self.iteration += 1
            self._ev("queued", title=self.title, iteration=self.iteration)

    def _judge(
        self, runner: Runner, info: ExitInfo, att: Attempt, ws: Workspace, max_it: int
    ) -> tuple[Decision, bool] | None:
        """After an attempt's exit: the decision and whether the agent marked the task done;
        None when the task ends here (the user took it out, or a stop came during the check)."""
        if info.queue_marks:  # a remote agent's stub queue: apply it before reading the queue
            err = self.queue.apply_marks(info.queue_marks)
            if err:
                self._ev("status", error=f"the agent's queue update was not applied: {err}")
        exit_msg = att.redact(diagnose(runner, info, att.parser))
        self.ctx.attempt_ended(bool(exit_msg))
        # the promise alone completes; else ask the queue (a fresh read of a busy file)
        status = self.queue.status()
        if status in ("rejected", "draft"):  # the user took the task out meanwhile
            with self.flags.cond:
                self.flags.excluded.add(self.task_id)
            why = f"{self.task_id} is now {status} in the queue (the user's edit)"
            self._ev("status", error=f"{why}; no further attempt")
            return None
        marked = not att.promise_seen and status == "done"
        ok, msg = self._run_check(ws) if (marked or att.promise_seen) else (None, "")
        if self._stop_asked():  # asked to stop while checking
            self._put_back(self._why_not_continued())
            return None
        d = decide(
            iteration=self.iteration,
            max_iterations=max_it,
            marked_done=marked,
            promise_seen=att.promise_seen,
            check_ok=ok,
            check_msg=msg,
            exit_msg=exit_msg,
        )
        self._ev(
            "iteration_end",
            decision=d.action,
            reason=d.reason,
            marked_done=marked,
            promise=att.promise_seen,
            check_ok=ok,
            **({"error": exit_msg} if exit_msg else {}),
        )
        return d, marked

    def _follow(self, d: Decision, marked: bool, att: Attempt, ws: Workspace) -> bool:
        """Carry out decision `d`; True when another iteration follows."""
        if d.action == "complete":
            self.marked_done = marked
            if not marked:  # done before merging: a crash then re-integrates (a copy's copy
                self.queue.complete(archive=False)  # back is idempotent)
                self.marked_done = True
            self._integrate(ws)
            return False
        # an agent may both mark the task done and print the promise: a mark left from an
        # attempt that did not complete would count for the next one (or a crash's recovery)
        if marked or (att.promise_seen and self.queue.status() == "done"):
            self.queue.reopen()
        if d.action == "fail":
            self._ev("failed", error=d.reason, status="failed")
            self._put_back(d.reason)
            return False
        if self.flags.halt_reason is not None:
            self._put_back(self._why_not_continued())
            return False
        return True

    # ------------------------------------------------------------ one attempt

    def _attempt(self, runner: Runner, ws: Workspace) -> tuple[ExitInfo | None, Attempt | None]:
        """Run one attempt to its end: (its exit, its bookkeeping), or (None, None) when it
        never started (the task was put back: runner error, spawn error, a stop first)."""
        log_path = self.settings.run_dir / "logs" / self.task_id / f"{self.iteration}.log"
        self._ev("starting", workspace=str(ws.path), branch=ws.branch, log_path=str(log_path))
        try:
            cmd = self._command(runner, ws)
        except RalphError as exc:  # e.g. the runner's CLI is not installed
            self._not_started(str(exc))
            return None, None
        env = self._env(ws, cmd.env)
        att = Attempt.new(self.worker_id, runner, self.settings.completion_promise, env)
        spec = self._spec(cmd, ws, env, log_path)
        with self.flags.cond:
            if self._stop_asked():
                self._put_back(self._why_not_continued())
                return None, None
        try:
            handle = self.ctx.executor.spawn(spec, self._callbacks(att))
        except RalphError as exc:
            self._not_started(str(exc))
            return None, None
        return self._follow_worker(handle, att), att

    def _command(self, runner: Runner, ws: Workspace) -> CommandSpec:
        """Write this attempt's prompt file; the runner's command for it."""
        prompt_file = self.settings.run_dir / "prompts" / self.task_id / f"{self.iteration}.md"
        prompt_file.parent.mkdir(parents=True, exist_ok=True)
        prompt = build_prompt(
            self.task,
            workspace=ws.path,
            completion_promise=self.settings.completion_promise,
            template=self.settings.prompt_template,
            iteration=self.iteration,
        )
        try:
            prompt_file.write_text(prompt, encoding="utf-8")
        except OSError as exc:  # a full disk: no half prompt left, and the error names it
            prompt_file.unlink(missing_ok=True)
            raise with_file(exc, prompt_file) from None
        point, self.resume_at = self.resume_at, None  # only the first attempt resumes
        return command_for(runner, self.task, Path(ws.path), prompt_file, self.iteration, point)

    def _spec(self, cmd: CommandSpec, ws: Workspace, env: dict[str, str], log: Path) -> WorkerSpec:
        return WorkerSpec(
            worker_id=self.worker_id,
            task_id=self.task_id,
            iteration=self.iteration,
            argv=tuple(cmd.argv),
            cwd=str(ws.path),
            env=env,
            log_path=str(log),
            stdin_path=str(cmd.stdin_path) if cmd.stdin_path else None,
            registry_path=str(self.settings.run_dir / "workers"),
            task=self.queue.current(self.task),
            grace=self.settings.grace,
            max_log_bytes=self.settings.max_log_bytes,
        )

    def _callbacks(self, att: Attempt) -> Callbacks:
        wid = att.worker_id

        gate = att.open_gate(lambda ev: self.ctx.emit(Event("output", self.task_id, wid, data=ev)))

        def on_line(line: str) -> None:
            gate.offer(att.feed(line))

        def on_exit(info: ExitInfo) -> None:
            self._announce_start(att, info.pid, info.started_at)
            reason = "timeout" if self.action == "timeout" and info.reason else info.reason
            self.ctx.emit(Event("exited", self.task_id, wid, data=exit_data(info, reason)))

        return Callbacks(on_line=on_line, on_exit=on_exit)

    def _follow_worker(self, handle: WorkerHandle, att: Attempt) -> ExitInfo | None:
        """From spawn to exit: announce the start, act on a stop asked meanwhile, wait."""
        self._announce_start(att, handle.pid, None)
        with self.flags.cond:
            self.handle = handle
            action = self.action
        if action is not None:  # asked while spawning, when there was no handle to stop
            self.request(action, wait=True)
        arm_exit_hook()
        info = wait_flushing(handle, att.gate) if att.gate is not None else handle.wait()
        with self.flags.cond:
            self.handle = None
        return info

    def _announce_start(self, att: Attempt, pid: int | None, at: datetime | None) -> None:
        if att.first_start():
            data: dict[str, Any] = {"pid": pid}
            if at is not None:
                data["started_at"] = format_time(at)
            self.ctx.emit(Event("started", self.task_id, att.worker_id, data=data))

    def _not_started(self, error: str) -> None:
        self._ev("failed", error=error, status="failed")
        self.ctx.attempt_ended(True)
        self._put_back(error)

    def _env(self, ws: Workspace, extra: dict[str, str] | None = None) -> dict[str, str]:
        path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
        return build_env(
            {
                **(extra or {}),
                "PATH": path,
                "RALPHNB_REPO": str(self.settings.repo),
                "RALPHNB_WORKER": self.worker_id,
                "RALPHNB_TASK_ID": self.task_id,
                "RALPHNB_ITERATION": str(self.iteration),
                "RALPHNB_RUN_DIR": str(self.settings.run_dir),
                "RALPHNB_WORKSPACE": str(ws.path),
            }
        )

    def _run_check(self, ws: Workspace) -> tuple[bool, str]:
        ok, msg = run_check(
            self.settings.check, Path(ws.path), self._env(ws), started=self._check_started
        )
        with self.flags.cond:
            self.check_proc = None
        return ok, msg

    def _check_started(self, proc: subprocess.Popen) -> None:
        with self.flags.cond:
            self.check_proc = proc
            stopping = self._stop_asked()
        if stopping:  # asked to stop just before the check began
            kill_check(proc)

    def _note_config_change(self) -> None:
        """After an attempt: a git config its agent changed goes on the attempt's row (once)."""
        change = self.config.changed() if self.config is not None else None
        if change is not None and change != self.config_noted:
            self.config_noted = change
            self._ev("status", error=f"{change} while the agent ran; the merge waits until undone")

    # ------------------------------------------------------------ stop, pause, put back

    def request(self, action: str, *, wait: bool) -> None:
        """Stop ("stop", "stop_all", "timeout": SIGINT, grace, kill) or kill ("kill") the task's
        worker; no further attempt follows. A kill overrides a pending stop. With no live
        worker, the driver sees `action` before its next step."""
        with self.flags.cond:
            if self.action is None or action == "kill":
                self.action = action
            handle, wid = self.handle, self.worker_id
            kill_check(self.check_proc)  # the user's check may hang: it never outlives a stop
            self.flags.cond.notify_all()  # a driver waiting out a pause between attempts
        if handle is None:
            return
        if action != "kill":
            self._ev("stopping", wid=wid)  # this attempt's row, even if the next one began
        call = handle.kill if action == "kill" else partial(handle.stop, self.settings.grace)
        if wait:
            try:
                call()
            except WorkerError:
                pass
        else:
            threading.Thread(target=quiet, args=(call,), daemon=True).start()

    def _stop_asked(self) -> bool:
        return self.action is not None or self.flags.stopping

    def _wait_unpaused(self) -> bool:
        with self.flags.cond:
            while (self.flags.paused or self._over_budget()) and not self._stop_asked():
                if self.flags.halt_reason is not None:
                    break
                self.flags.cond.wait()
            return not self._stop_asked() and self.flags.halt_reason is None

    def _over_budget(self) -> bool:
        """The run's budget is reached: the next attempt waits for a raise (or a halt)."""
        return self.ctx.budget is not None and self.ctx.budget.reached()

    def _why_not_continued(self) -> str:
        if self.action == "kill":
            return "killed by the user"
        if self.action == "stop":
            return "stopped by the user"
        if self.action == "timeout" or self.flags.halt_reason:
            return f"loop halted: {self.flags.halt_reason}"
        return "the loop was stopped (stop_all, Ctrl-C or interpreter exit)"

    def _put_back(self, why: str) -> None:
        """Back to `todo` with a note; not picked again in this run."""
        with self.flags.cond:
            self.flags.excluded.add(self.task_id)
        rec = self.ctx.row(self.worker_id) if self.iteration else None
        if (
            rec is not None
            and rec["pid"] is None
            and rec["status"] in ("queued", "starting", "stopping")
        ):
            # an attempt that never got a process: its row must not stay queued forever
            status = {"kill": "killed", "timeout": "timed_out"}.get(self.action or "", "stopped")
            self._ev("status", status=status, error=why)
        error = self.queue.put_back(f"ralphnb run {self.settings.run_id}: {why}")
        if error is not None:  # e.g. a full disk: the task stays as it is in the queue
            self._ev(
                "status",
                error=f"could not put {self.task_id} back to todo: {error}; it stays as it "
                "is in the queue, and the next run resumes it",
            )

    # ------------------------------------------------------------ integration

    def _integrate(self, ws: Workspace | None) -> None:
        """Merge (serialised with other tasks), retrying while it is blocked or while a git
        config the agent changed holds it (`configwatch`); a stop then leaves a merely blocked
        task done-but-not-archived for the next run, and puts a held one back unmerged."""
        if not self.iteration:
            self.iteration = 1
            self._ev("queued", title=self.title, iteration=1)
        self._ev("integrating", target=self.settings.target_branch)
        last = ""
        while True:
            held = self.config.changed() if self.config is not None else None
            if held is not None:
                message = held_message(held, self.task_id)
            else:
                with self.ctx.merge_lock:
                    res = self._merge(ws)
                    if res.status in ("integrated", "noop", "kept"):
                        self._archive(ws, res)
                        pushed = push_after_merge(self.settings, self._stop_asked)
                        return self._ev("status", **pushed) if pushed else None
                if res.status == "conflict":
                    return None  # put back by _merge
                message = res.message
                if NO_SPACE in message.lower():  # a full disk blocks every task: halt
                    self.ctx.fail(f"{self.task_id}: {message}")
            if message != last:
                self._ev("integrating", error=message)
                last = message
            with self.flags.cond:
                if self._stop_asked():
                    if held is not None:  # never merged: back to todo, and why
                        return self._put_back(f"{self._why_not_continued()}; not merged: {held}")
                    return None  # left done-but-not-archived: the next run integrates it
                self.flags.cond.wait(RETRY_BLOCKED_S)

    def _merge(self, ws: Workspace | None) -> MergeResult:
        """One integration attempt (merge lock held); a conflict puts the task back."""
        res = integrate_workspace(
            self.ctx.workspaces,
            ws,
            task_id=self.task_id,
            title=self.title,
            target=self.settings.target_branch or "",
            queue_files=self.settings.queue_files,
            publish=self.settings.publish,
        )
        if res.status == "conflict":
            where = f"; workspace kept at {ws.path}" if ws is not None else ""
            what = f"merge conflict in {', '.join(res.paths)}" if res.paths else res.message
            self._ev("conflict", error=f"{what}{where}", paths=res.paths)
            self._put_back(f"{what}{where}")
        return res

    def _archive(self, ws: Workspace | None, res: MergeResult) -> None:
        """After the merge (merge lock held): archive the task, commit the queue files, remove
        the workspace and its branch. The row's message names what the merge left out."""
        if self.marked_done:
            self.queue.archive()
        else:  # recovered done task: one write
            self.queue.complete(archive=True)
        if self.ctx.workspaces.is_git:
            commit_bookkeeping(
                self.settings.repo,
                f"{self.task_id}: archive ({self.title})",
                paths=self.settings.queue_files,
            )
        shown = res.paths or res.status == "kept"  # kept: git_publish_mode off says where
        extra: dict[str, Any] = {"message": res.message, "paths": res.paths} if shown else {}
        if res.dropped:  # an agent's edit under .ralph/ or of the queue files: never merged
            note = f"dropped from the merge: {', '.join(res.dropped)}"
            extra["message"] = "; ".join(m for m in (extra.get("message"), note) if m)
            extra["dropped"] = res.dropped
        self._ev("integrated", commit=res.commit, **extra)
        self.ctx.workspaces.remove(ws if ws is not None else self.task_id, delete_branch=True)

    def _ev(self, kind: str, *, wid: str | None = None, **data: Any) -> None:
        self.ctx.emit(Event(kind, self.task_id, wid or self.worker_id, data=data))
