"""One task's life inside a Loop: workspace -> attempts -> check -> integrate -> bookkeeping.

Owns: the pure decisions the Loop makes (which tasks to start, is an attempt complete, when to
wake), the user's check, and `TaskDriver`, the part of `Loop` that one driver thread per active
task runs (split out of loop.py to keep modules readable; it uses the Loop's state and its one
event sink, `_emit`). Invariants: a task leaves a driver integrated, or back in `todo` with a
note saying why (stopped, killed, failed, conflict, halted), or — only when an integration was
interrupted — done-but-not-archived, which the next Loop integrates; never silently dropped.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .._time import format_time
from ..errors import QueueError, RalphError
from ..workers.executors import Callbacks, WorkerHandle, WorkerSpec
from ..workers.process import build_env
from ..workspace.copy import integrate_copy
from ..workspace.merge import commit_bookkeeping, integrate
from .check import kill_check, run_check
from .decide import decide
from .events import Event

RETRY_BLOCKED_S = 2.0

# --------------------------------------------------------------------- pure decisions


# --------------------------------------------------------------------- per-task state


@dataclass
class TaskRun:
    task_id: str
    title: str
    iteration: int = 0
    handle: WorkerHandle | None = None
    action: str | None = None  # "stop" | "kill" | "stop_all" | "timeout", asked from outside
    thread: threading.Thread | None = None
    integrate_only: bool = False
    task: dict[str, Any] = field(default_factory=dict)
    marked_done: bool = False
    check_proc: subprocess.Popen | None = None  # the user's check command, while it runs


@dataclass
class Attempt:
    worker_id: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    started: bool = False
    promise_seen: bool = False
    parser: Any = None
    secrets: list[str] = field(default_factory=list)


class TaskDriver:
    """Mixin of `Loop`: what a task's driver thread does (see the module docstring)."""

    def _drive(self, tr: TaskRun) -> None:
        try:
            if tr.integrate_only:
                self._integrate(tr, self.workspaces.get(tr.task_id))
            else:
                self._work(tr)
        except Exception as exc:
            self._ev("failed", tr, error=f"{type(exc).__name__}: {exc}", status="failed")
            self._requeue(tr, f"failed: {exc}")
        finally:
            with self._cond:
                self._active.pop(tr.task_id, None)
                self._cond.notify_all()

    def _work(self, tr: TaskRun) -> None:
        from ..runners import iterations_for_task, runner_for_task

        task = tr.task
        max_it = iterations_for_task(task, self.max_iterations)
        runner = runner_for_task(self.runner, task)
        tr.iteration = 1
        self._ev("queued", tr, title=tr.title, iteration=1)
        ws = self.workspaces.create(tr.task_id, reuse=True)
        if task.get("status") != "doing":
            self._queue_call(tr, self.queue.start, tr.task_id)
        while True:
            if not self._wait_unpaused(tr):
                return self._requeue(tr, self._why_not_continued(tr))
            info, att = self._attempt(tr, runner, task, ws)
            if info is None:
                return
            if tr.action is not None or self._stopping:
                return self._requeue(tr, self._why_not_continued(tr))
            exit_msg = _redact(_diagnose(runner, info, att.parser), att.secrets)
            self._count_failure(bool(exit_msg))
            # the promise alone completes; else ask the queue (a fresh read of a busy file)
            status = self._status(tr)
            if status in ("rejected", "draft"):  # the user took the task out meanwhile
                with self._cond:
                    self._excluded.add(tr.task_id)
                self._ev(
                    "status",
                    tr,
                    error=f"{tr.task_id} is now {status} in the queue (the "
                    "user's edit); no further attempt",
                )
                return None
            marked = not att.promise_seen and status == "done"
            ok, msg = (None, "")
            if marked or att.promise_seen:
                ok, msg = run_check(
                    self.check,
                    Path(ws.path),
                    self._env(tr, ws),
                    started=lambda p: self._check_started(tr, p),
                )
                with self._cond:
                    tr.check_proc = None
            if tr.action is not None or self._stopping:  # asked to stop while checking
                return self._requeue(tr, self._why_not_continued(tr))
            d = decide(
                iteration=tr.iteration,
                max_iterations=max_it,
                marked_done=marked,
                promise_seen=att.promise_seen,
                check_ok=ok,
                check_msg=msg,
                exit_msg=exit_msg,
            )
            self._ev(
                "iteration_end",
                tr,
                decision=d.action,
                reason=d.reason,
                marked_done=marked,
                promise=att.promise_seen,
                check_ok=ok,
                **({"error": exit_msg} if exit_msg else {}),
            )
            if d.action == "complete":
                tr.marked_done = marked
                if not marked:  # done before merging: a crash then re-integrates (a copy's
                    self._queue_call(tr, self.queue.complete, tr.task_id, archive=False)  # (a
                    # copy's copy back is idempotent)
                    tr.marked_done = True
                return self._integrate(tr, ws)
            # an agent may both mark the task done and print the promise: a mark left from an
            # attempt that did not complete would count for the next one (or a crash's recovery)
            if marked or (att.promise_seen and self._status(tr) == "done"):
                self._queue_call(
                    tr, self.queue.update, tr.task_id, status="doing", completed_at=None
                )
            if d.action == "fail":
                self._ev("failed", tr, error=d.reason, status="failed")
                return self._requeue(tr, d.reason)
            if self.halt_reason is not None:
                return self._requeue(tr, self._why_not_continued(tr))
            tr.iteration += 1
            self._ev("queued", tr, title=tr.title, iteration=tr.iteration)

    def _check_started(self, tr: TaskRun, proc: subprocess.Popen) -> None:
        with self._cond:
            tr.check_proc = proc
            stopping = tr.action is not None or self._stopping
        if stopping:  # asked to stop just before the check began
            kill_check(proc)

    def _queue_call(self, tr: TaskRun, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A queue operation of a driver. While the file does not parse (a user saving it
        half-edited) wait and retry, rather than fail a task whose work is done and leave it
        `doing`; the row's error says what it waits for. Gives up when the loop stops."""
        last = ""
        while True:
            try:
                return fn(*args, **kwargs)
            except QueueError as exc:
                if exc.line is None:  # not a syntax error: retrying will not help
                    raise
                if str(exc) != last:
                    last = str(exc)
                    self._ev("status", tr, error=f"{exc}; waiting for the file to be fixed")
                with self._cond:
                    if self._stopping or tr.action is not None:
                        raise
                    self._cond.wait(RETRY_BLOCKED_S)

    def _status(self, tr: TaskRun) -> str:
        return self._queue_call(tr, self.queue.get, tr.task_id).status

    def _wait_unpaused(self, tr: TaskRun) -> bool:
        with self._cond:
            while self._paused and tr.action is None and not self._stopping:
                self._cond.wait()
            return tr.action is None and not self._stopping and self.halt_reason is None

    def _why_not_continued(self, tr: TaskRun) -> str:
        if tr.action == "kill":
            return "killed by the user"
        if tr.action == "stop":
            return "stopped by the user"
        if tr.action == "timeout" or self.halt_reason:
            return f"loop halted: {self.halt_reason}"
        return "the loop was stopped (stop_all, Ctrl-C or interpreter exit)"

    def _env(self, tr: TaskRun, ws: Any, extra: dict[str, str] | None = None) -> dict[str, str]:
        path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
        return build_env(
            {
                **(extra or {}),
                "PATH": path,
                "RALPHNB_REPO": str(self.repo),
                "RALPHNB_WORKER": f"{tr.task_id}#{tr.iteration}",
                "RALPHNB_TASK_ID": tr.task_id,
                "RALPHNB_ITERATION": str(tr.iteration),
                "RALPHNB_RUN_DIR": str(self.run_dir),
                "RALPHNB_WORKSPACE": str(ws.path),
            }
        )

    def _attempt(self, tr: TaskRun, runner: Any, task: dict, ws: Any) -> tuple[Any, Attempt]:
        from ..runners import build_prompt

        assert self.run_dir is not None
        wid = f"{tr.task_id}#{tr.iteration}"
        att = Attempt(wid)
        prompt_file = self.run_dir / "prompts" / tr.task_id / f"{tr.iteration}.md"
        prompt_file.parent.mkdir(parents=True, exist_ok=True)
        log_path = self.run_dir / "logs" / tr.task_id / f"{tr.iteration}.log"
        self._ev("starting", tr, workspace=str(ws.path), branch=ws.branch, log_path=str(log_path))
        try:
            prompt_file.write_text(
                build_prompt(
                    task,
                    workspace=ws.path,
                    completion_promise=self.completion_promise,
                    template=self.prompt_template,
                    iteration=tr.iteration,
                ),
                encoding="utf-8",
            )
            cmd = runner.command(
                task, workspace=Path(ws.path), prompt_file=prompt_file, iteration=tr.iteration
            )
        except RalphError as exc:  # e.g. the runner's CLI is not installed
            self._ev("failed", tr, error=str(exc), status="failed")
            self._count_failure(True)
            self._requeue(tr, str(exc))
            return None, att
        parser = att.parser = runner.parser()
        promise = self.completion_promise
        env = self._env(tr, ws, cmd.env)
        secrets = att.secrets = _secrets(env)

        def on_line(line: str) -> None:
            for ev in parser.feed(line):
                typ = ev.get("type")
                if typ in ("text", "message", "result") and promise in (ev.get("text") or ""):
                    att.promise_seen = True
                if typ != "text":
                    self._emit(Event("output", tr.task_id, wid, data=_redact(ev, secrets)))

        def on_exit(info: Any) -> None:
            self._started(tr, att, info.pid, info.started_at)
            reason = "timeout" if tr.action == "timeout" and info.reason else info.reason
            self._emit(
                Event(
                    "exited",
                    tr.task_id,
                    wid,
                    data={
                        "pid": info.pid,
                        "returncode": info.returncode,
                        "signal": info.signal,
                        "reason": reason,
                        "started_at": format_time(info.started_at),
                        "ended_at": format_time(info.ended_at),
                    },
                )
            )

        spec = WorkerSpec(
            worker_id=wid,
            task_id=tr.task_id,
            iteration=tr.iteration,
            argv=tuple(cmd.argv),
            cwd=str(ws.path),
            env=env,
            log_path=str(log_path),
            stdin_path=str(cmd.stdin_path) if cmd.stdin_path else None,
            registry_path=str(self.run_dir / "workers"),
        )
        with self._cond:
            if tr.action is not None or self._stopping:
                self._requeue(tr, self._why_not_continued(tr))
                return None, att
        try:
            handle = self.executor.spawn(spec, Callbacks(on_line=on_line, on_exit=on_exit))
        except RalphError as exc:
            self._ev("failed", tr, error=str(exc), status="failed")
            self._count_failure(True)
            self._requeue(tr, str(exc))
            return None, att
        self._handles[wid] = handle
        self._started(tr, att, handle.pid, None)
        with self._cond:
            tr.handle = handle
            action = tr.action
        if action is not None:
            self._act(tr.task_id, action, True)
        _register_atexit()
        info = handle.wait()
        with self._cond:
            tr.handle = None
        self._handles.pop(wid, None)
        return info, att

    def _started(self, tr: TaskRun, att: Attempt, pid: int | None, at: datetime | None) -> None:
        with att.lock:
            if att.started:
                return
            att.started = True
            data: dict[str, Any] = {"pid": pid}
            if at is not None:
                data["started_at"] = format_time(at)
            self._emit(Event("started", tr.task_id, att.worker_id, data=data))

    def _count_failure(self, failed: bool) -> None:
        with self._cond:
            self._failures = self._failures + 1 if failed else 0
            n = self.max_consecutive_failures
            if n is not None and self._failures >= n:
                self._halt(f"{self._failures} consecutive failed attempts")
            cost = sum(r["cost_usd"] or 0.0 for r in self._table.records())
            if self.max_cost_usd is not None and cost >= self.max_cost_usd:
                self._halt(f"cost ${cost:.2f} reached max_cost_usd ${self.max_cost_usd:.2f}")

    def _requeue(self, tr: TaskRun, why: str) -> None:
        """Back to `todo` with a note; not picked again in this run."""
        with self._cond:
            self._excluded.add(tr.task_id)
        rec = self._table.get(f"{tr.task_id}#{tr.iteration}") if tr.iteration else None
        if (
            rec is not None
            and rec["pid"] is None
            and rec["status"] in ("queued", "starting", "stopping")
        ):
            # an attempt that never got a process: its row must not stay queued forever
            status = {"kill": "killed", "timeout": "timed_out"}.get(tr.action or "", "stopped")
            self._ev("status", tr, status=status, error=why)
        try:
            task = self.queue.get(tr.task_id)
            notes = [*task.notes, f"ralphnb run {self.run_id}: {why}"]
            if task.status in ("rejected", "draft"):  # the user's decision stands
                self.queue.update(tr.task_id, notes=notes)
            else:
                self.queue.update(tr.task_id, status="todo", completed_at=None, notes=notes)
        except RalphError:
            pass

    def _merge(self, tr: TaskRun, ws: Any) -> Any:
        """One integration attempt (merge lock held) -> MergeResult."""
        from ..workspace.merge import MergeResult, merge_branch, rev
        from ..workspace.workspaces import BRANCH_PREFIX

        target = self.target_branch or ""
        if not self.workspaces.is_git or (ws is not None and ws.kind == "copy"):
            if ws is None:  # recovered after its copy back (the workspace goes last)
                return MergeResult("noop")
            return integrate_copy(self.repo, ws.path, self.workspaces.manifest(tr.task_id))
        if ws is None or not ws.branch:  # recovered with its branch but no workspace
            branch = BRANCH_PREFIX + tr.task_id
            if rev(self.repo, f"refs/heads/{branch}") is None:
                return MergeResult("noop")
            return merge_branch(
                self.repo, branch, target, message=f"Merge {branch}: {tr.task_id}: {tr.title}"
            )
        sync = (lambda: self.workspaces.sync_branch(ws)) if ws.kind == "clone" else None
        return integrate(
            self.repo,
            ws.path,
            branch=ws.branch,
            target=target,
            task_id=tr.task_id,
            title=tr.title,
            before_merge=sync,
            bookkeeping=self.queue_files,
        )

    def _integrate(self, tr: TaskRun, ws: Any) -> None:
        if not tr.iteration:
            tr.iteration = 1
            self._ev("queued", tr, title=tr.title, iteration=1)
        self._ev("integrating", tr, target=self.target_branch)
        last = ""
        while True:
            with self._merge_lock:
                res = self._merge(tr, ws)
                if res.status == "conflict":
                    where = f"; workspace kept at {ws.path}" if ws is not None else ""
                    what = f"merge conflict in {', '.join(res.paths)}" if res.paths else res.message
                    err = f"{what}{where}"
                    self._ev("conflict", tr, error=err, paths=res.paths)
                    return self._requeue(tr, err)
                if res.status in ("integrated", "noop"):
                    if tr.marked_done:
                        self._queue_call(tr, self.queue.archive, tr.task_id)
                    else:  # recovered done task: one write
                        self._queue_call(tr, self.queue.complete, tr.task_id)
                    if self.workspaces.is_git:
                        commit_bookkeeping(
                            self.repo, f"{tr.task_id}: archive ({tr.title})", paths=self.queue_files
                        )
                    extra = {"message": res.message, "paths": res.paths} if res.paths else {}
                    self._ev("integrated", tr, commit=res.commit, **extra)
                    self.workspaces.remove(ws if ws is not None else tr.task_id, delete_branch=True)
                    return
            if res.message != last:
                self._ev("integrating", tr, error=res.message)
                last = res.message
            with self._cond:
                if self._stopping or tr.action is not None:
                    return  # left done-but-not-archived: the next run integrates it
                self._cond.wait(RETRY_BLOCKED_S)


def _diagnose(runner: Any, info: Any, parser: Any) -> str:
    """One line on why an attempt failed (empty when it did not), from the runner if it can."""
    detail = getattr(info, "detail", None)  # an executor's own reason, e.g. its worker was lost
    if detail:
        return str(detail)
    stderr = ""
    path = getattr(info, "stderr_path", None)
    if path:
        try:
            with open(path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 4096))
                stderr = fh.read().decode("utf-8", "replace")
        except OSError:
            pass
    diagnose = getattr(runner, "diagnose", None)
    if callable(diagnose):
        try:
            return diagnose(info.returncode, parser, stderr, signal=info.signal) or ""
        except Exception:
            pass
    if info.returncode == 0:
        return ""
    return f"exit code {info.returncode}" if info.signal is None else f"signal {info.signal}"


def _secrets(env: dict[str, str]) -> list[str]:
    try:
        from ..runners.base import secret_values
    except ImportError:  # pragma: no cover
        return []
    return secret_values(env)


def _redact(value: Any, secrets: list[str]) -> Any:
    """Known secret values (API keys in the worker's env) replaced in strings, dicts, lists."""
    if not secrets:
        return value
    if isinstance(value, str):
        for sec in secrets:
            value = value.replace(sec, "[redacted]")
        return value
    if isinstance(value, dict):
        return {k: _redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, secrets) for v in value]
    return value


def _quiet(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception:
        pass


_LOOPS: weakref.WeakSet[Any] = weakref.WeakSet()
_ATEXIT = False


def _register_atexit() -> None:
    """Registered after the first worker exists, so it runs before process.stop_all."""
    global _ATEXIT
    if not _ATEXIT:
        _ATEXIT = True
        atexit.register(_stop_loops_at_exit)


def _stop_loops_at_exit() -> None:
    for loop in list(_LOOPS):
        if loop.running:
            _quiet(lambda lp=loop: lp.stop_all())
            loop.wait(10)
