"""One task's life in a run: workspace -> phase runs -> judgement -> integrate -> bookkeeping.

Owns: `Driver`, one object per task a `Loop` starts (or integrates after a crash), whose `run()`
is the body of that task's thread; a task's state (iteration, live handle, pending stop or kill,
running check, done mark) is plain attributes of its own driver, reached by id. What a
driver is given is its `DriverContext` (context.py): the event sink, the queue (wrapped in a
`gateway.TaskQueue`), workspaces, executor, settings, limits, the shared `RunFlags` and their
condition, the merge lock, the run's `fail` (a full disk halts the run, not one task). It never
sees the `Loop` itself. The git configs its agent could change are watched around each attempt
(`configwatch`): a change holds the merge until it is undone. Its phase runs (`phases.steps`:
plan, implement, review, per pass) are rows `<ID>#1`, `#2`, ...; only the last one is judged
(the gate, completion) and repeated on a retry, resuming its session after a failed gate.
Invariants: a task leaves a driver integrated, or back in `todo` with a note saying why (stopped,
killed, failed, conflict, halted, held by a changed git config), or -- only when an integration
was interrupted -- done-but-not-archived, which the next Loop integrates; never silently
dropped (with `review=True` finished work first waits for a person: `reviewgate`); where the
queue cannot be written (a full disk) the row says the task stays as it is.
A driver's `handle`, `action` and `check_proc` are read and written with `flags.cond` held.
"""

from __future__ import annotations

import subprocess
import threading
from functools import partial
from pathlib import Path
from typing import Any

from ..errors import RalphError, WorkerError
from ..runners.base import Runner
from ..workers.executors import Callbacks, WorkerHandle
from ..workers.exits import ExitInfo
from ..workspace.integrate import integrate_workspace
from ..workspace.merge import MergeResult, commit_bookkeeping
from ..workspace.workspaces import Workspace
from .attempt import Attempt, announce_start, callbacks, diagnose
from .check import kill_check
from .configwatch import ConfigWatch, held_message, watched
from .context import DriverContext
from .decide import Decision, decide, why_not_continued
from .events import Event
from .failures import NO_SPACE, describe, no_space
from .gate import GateResult, run_gate
from .gateway import RETRY_BLOCKED_S, TaskQueue
from .outflow import wait_flushing
from .phases import Handoffs, TaskPhases, phase_env, settings_phases, steps
from .publishing import push_after_merge
from .resume import find_resume
from .reviewgate import review_step
from .shutdown import arm_exit_hook, quiet
from .spawn import phase_command, worker_env, worker_spec
from .stuckwatch import take_requeue

NOT_STARTED = ("queued", "starting", "stopping")  # statuses of a row with no process yet


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
        self.iteration = 0  # this task's runs (one per phase run) in this run: its row number
        self.attempts = 0  # judged runs and failed phase runs: what max_iterations counts
        self.step = steps(1, 1)[0]  # the phase run now (`_work` sets the task's own)
        self.phases: TaskPhases | None = None
        self.handoffs = Handoffs(Path(ctx.settings.repo), self.task_id)
        # with flags.cond held:
        self.handle: WorkerHandle | None = None  # the live attempt's worker
        self.action: str | None = None  # "stop" | "kill" | "stop_all" | "timeout", from outside
        self.check_proc: subprocess.Popen | None = None  # the user's check, while it runs
        self.config: ConfigWatch | None = None  # the git configs its agent could change
        self.feedback: str | None = None  # a reviewer's, for the next prompts (reviewgate)
        self.resume_session: str | None = None  # continued by the next attempt (resume, review)
        self.attempt: Attempt | None = None  # the latest attempt (its `stuck.Activity`)
        self.note: str | None = None  # why the stuck watch stopped or requeued it
        self.queue = TaskQueue(
            ctx.queue,
            self.task_id,
            ctx.flags,
            waiting=lambda msg: self._ev("status", error=msg),
            asked_to_stop=lambda: self.action is not None,
        )

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
        tp = self.phases = settings_phases(self.settings, self.task)
        order, at = tp.steps(), 0
        self.iteration, self.step = 1, order[0]
        self._ev("queued", title=self.title, iteration=1, phase=self.step.phase)
        ws = self.ctx.workspaces.create(self.task_id, reuse=True)
        self.config = ConfigWatch(watched(Path(self.ctx.workspaces.repo), ws))
        point = find_resume(self.settings, tp.runners[self.step.phase], self.task_id, ws.path)
        if point is not None:
            self.resume_session = point.session_id
            self._ev("status", message=point.describe(), resumed=point.worker_id)
        if self.task.get("status") != "doing":
            self.queue.start()
        while True:
            if not self._wait_unpaused():
                return self._put_back(self._why_not_continued())
            self.config.arm()
            runner = tp.runners[self.step.phase]
            info, att = self._attempt(runner, ws)
            if info is None or att is None:
                return  # never started: already put back
            self._note_config_change()
            if take_requeue(self, tp.max_attempts):  # a stuck attempt the watch requeued: once more
                continue
            if self._stop_asked():
                return self._put_back(self._why_not_continued())
            if self.step.judged:
                judged = self._judge(runner, info, att, ws, tp.max_attempts)
                if judged is None or not self._follow(*judged, att, ws):
                    return
            else:
                moved = self._between(runner, info, att, ws)
                if moved is None:
                    return
                at += moved
            self.iteration, self.step = self.iteration + 1, order[at]
            self._ev("queued", title=self.title, iteration=self.iteration, phase=self.step.phase)

    def _taken_out(self) -> bool:
        """True (and the task is not picked again) when the user set it rejected or draft."""
        status = self.queue.status()
        if status not in ("rejected", "draft"):
            return False
        with self.flags.cond:
            self.flags.excluded.add(self.task_id)
        why = f"{self.task_id} is now {status} in the queue (the user's edit)"
        self._ev("status", error=f"{why}; no further attempt")
        return True

    def _between(self, runner: Runner, info: ExitInfo, att: Attempt, ws: Workspace) -> int | None:
        """After a phase that is not judged (a plan; an implementation a review follows; a pass
        before the last): 1 to go on, 0 to run it again (it failed; attempts remain), None when
        the task ended here. A claim of done in such a phase counts for nothing."""
        error = att.redact(diagnose(runner, info, att.parser))
        self.ctx.attempt_ended(bool(error))
        if self._taken_out():
            return None
        if self.queue.status() == "done":
            self.queue.reopen()
        error = error or self.handoffs.take(self.step.phase, Path(ws.path), att.parser)
        if not error:
            self._ev("iteration_end", decision="next")
            return 1
        self.attempts += 1
        self.handoffs.why_again = error
        d = Decision("retry", error)
        if self.attempts >= self.phases.max_attempts:
            d = Decision("fail", f"not complete after {self.attempts} attempt(s): {error}")
        self._ev("iteration_end", decision=d.action, reason=d.reason)
        return 0 if self._follow(d, False, att, ws) else None

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
        self.attempts += 1
        # the promise alone completes; else ask the queue (a fresh read of a busy file)
        if self._taken_out():
            return None
        marked = not att.promise_seen and self.queue.status() == "done"
        gate = self._run_check(ws) if (marked or att.promise_seen) else None
        if self._stop_asked():  # asked to stop while checking
            self._put_back(self._why_not_continued())
            return None
        d = decide(
            iteration=self.attempts,
            max_iterations=max_it,
            marked_done=marked,
            promise_seen=att.promise_seen,
            check_ok=None if gate is None else gate.ok,
            check_msg="" if gate is None else gate.run.message,
            exit_msg=exit_msg,
        )
        if gate is not None:
            self._ev("check", **gate.event_data())
        self.handoffs.judged(d.reason, gate, att.parser.session_id)
        self._ev(
            "iteration_end",
            decision=d.action,
            reason=d.reason,
            marked_done=marked,
            promise=att.promise_seen,
            check_ok=None if gate is None else gate.ok,
            **({"error": exit_msg} if exit_msg else {}),
        )
        return d, marked

    def _follow(self, d: Decision, marked: bool, att: Attempt, ws: Workspace) -> bool:
        """Carry out decision `d`; True when another iteration follows."""
        if d.action == "complete" and self.ctx.review is not None:  # a person decides
            return review_step(self, self.ctx.review, ws, marked)
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
        resume = self.handoffs.resume_session(runner, self.step)
        if resume is None:  # an interrupted session, or one a reviewer asked to go on
            resume, self.resume_session = self.resume_session, None
        more = {"resumed_session": resume} if resume else {}
        self._ev(
            "starting", workspace=str(ws.path), branch=ws.branch, log_path=str(log_path), **more
        )
        try:
            cmd, note = phase_command(
                runner,
                self.task,
                self.step,
                self.phases,
                self.handoffs,
                self.settings,
                resume=resume,
                feedback=self.feedback,
                workspace=Path(ws.path),
                iteration=self.iteration,
                attempt=self.attempts + 1,
            )
        except RalphError as exc:  # e.g. the runner's CLI is not installed
            self._not_started(str(exc))
            return None, None
        if note:
            self._ev("status", message=note)
        extra = {**cmd.env, **phase_env(self.step, self.phases, ws.path, self.task_id)}
        env = self._env(ws, extra)
        att = Attempt.new(self.worker_id, runner, self.settings.completion_promise, env)
        spec = worker_spec(
            self.settings,
            cmd,
            worker_id=self.worker_id,
            task_id=self.task_id,
            iteration=self.iteration,
            cwd=ws.path,
            env=env,
            log=log_path,
            task=self.queue.current(self.task),
        )
        self.attempt = att
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

    def _callbacks(self, att: Attempt) -> Callbacks:
        return callbacks(att, self.task_id, self.ctx.emit, lambda: self.action == "timeout")

    def _follow_worker(self, handle: WorkerHandle, att: Attempt) -> ExitInfo | None:
        """From spawn to exit: announce the start, act on a stop asked meanwhile, wait."""
        announce_start(att, self.task_id, self.ctx.emit, handle.pid, None)
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

    def _not_started(self, error: str) -> None:
        self._ev("failed", error=error, status="failed")
        self.ctx.attempt_ended(True)
        self._put_back(error)

    def _env(self, ws: Workspace, extra: dict[str, str] | None = None) -> dict[str, str]:
        ids = {"worker_id": self.worker_id, "task_id": self.task_id, "iteration": self.iteration}
        return worker_env(self.settings, ws.path, extra=extra, **ids)

    def _run_check(self, ws: Workspace) -> GateResult:
        env, check = self._env(ws), self.settings.check
        gate = run_gate(check, Path(ws.path), env, started=self._check_started)
        with self.flags.cond:
            self.check_proc = None
        return gate

    def _check_started(self, proc: subprocess.Popen) -> None:
        with self.flags.cond:
            self.check_proc = proc
            stopping = self._stop_asked()
        if stopping:  # asked to stop just before the check began
            kill_check(proc)

    def _note_config_change(self) -> None:
        """After an attempt: a git config its agent changed goes on the attempt's row (once)."""
        if self.config is not None and (change := self.config.new_change()) is not None:
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
            while not self._stop_asked() and self.flags.halt_reason is None and self._held():
                self.flags.cond.wait()
            return not self._stop_asked() and self.flags.halt_reason is None

    def _held(self) -> bool:
        """Paused, or the run's budget reached: the next attempt waits (a resume, a raise)."""
        return self.flags.paused or bool(self.ctx.budget and self.ctx.budget.reached())

    def _why_not_continued(self) -> str:
        return why_not_continued(self.action, self.flags.halt_reason, self.note)

    def _put_back(self, why: str) -> None:
        """Back to `todo` with a note; not picked again in this run."""
        with self.flags.cond:
            self.flags.excluded.add(self.task_id)
        rec = self.ctx.row(self.worker_id) if self.iteration else None
        if rec is not None and rec["pid"] is None and rec["status"] in NOT_STARTED:
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
