"""The Loop: scheduling, iterations until complete, integration back, the live worker table.

Owns: one scheduler thread (sleeps on a Condition; woken by events, times out only for real
deadlines), one driver thread per active task (workspace -> attempts -> check -> integrate),
the event sink (`_emit`: table -> journal -> subscribers -> wake), the run directory, and the
control socket other processes use. Decisions are pure functions at the top of this file.
Invariants: every state change is an Event applied in order under one lock; a worker's exit is
applied by its monitor thread at once; only this process writes the queue files while it runs;
integrations are serialised; a task a user stopped/killed, failed or conflicted goes back to
`todo` with a note and is not picked again in this run.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import shlex
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import RalphError, WorkerError
from .events import Event, Journal, format_time, utcnow
from .executors import Callbacks, Executor, LocalExecutor, WorkerHandle, WorkerSpec
from .integrate import commit_bookkeeping, integrate
from .process import build_env, find_leftovers, reap_leftovers
from .queue import Queue
from .run import LOOP_INFO, ControlServer, list_runs, new_run_id, runs_root
from .table import WorkerTable, fill_live, format_table

CheckType = Sequence[str] | str | Callable[[Path], bool] | None
RETRY_BLOCKED_S = 2.0

# --------------------------------------------------------------------- pure decisions


def deps_merged(task: dict[str, Any], open_status: dict[str, str]) -> bool:
    """A dependency still in queue.jsonc (even `done`, i.e. not yet merged) is not satisfied,
    unless it was rejected."""
    return all(open_status.get(d, "rejected") == "rejected" for d in task.get("depends_on") or ())


def pick_tasks(runnable: Iterable[dict[str, Any]], open_status: dict[str, str], *,
               busy: set[str], free: int) -> list[dict[str, Any]]:  # fmt: skip
    """Up to `free` tasks to start, in the queue's selection order."""
    out: list[dict[str, Any]] = []
    for t in runnable:
        if len(out) >= free:
            break
        if t["id"] not in busy and deps_merged(t, open_status):
            out.append(t)
    return out


@dataclass(frozen=True)
class Decision:
    action: str  # "complete" | "retry" | "fail"
    reason: str = ""


def decide(*, iteration: int, max_iterations: int, marked_done: bool, promise_seen: bool,
           check_ok: bool | None, check_msg: str = "", exit_msg: str = "") -> Decision:  # fmt: skip
    """After an attempt: complete, another iteration, or give up (with the reason)."""
    if marked_done or promise_seen:
        if check_ok is None or check_ok:
            return Decision("complete")
        reason = f"check failed: {check_msg}".strip()
    else:
        reason = "the agent neither marked the task done nor printed the completion promise"
        if exit_msg:
            reason = f"{exit_msg}; {reason}"
    if iteration >= max_iterations:
        return Decision("fail", f"not complete after {iteration} iteration(s): {reason}")
    return Decision("retry", reason)


def next_deadline(now: datetime, *, wall_deadline: datetime | None,
                  scheduled: Iterable[datetime]) -> float | None:  # fmt: skip
    """Seconds until the scheduler must wake without an event (None: only on events)."""
    times = [t for t in (wall_deadline, *scheduled) if t is not None and t > now]
    return max(0.001, (min(times) - now).total_seconds()) if times else None


def run_check(check: CheckType, workspace: Path, env: dict[str, str]) -> tuple[bool, str]:
    """Run the user's check in the workspace: argv list, shell-free string, or callable."""
    if check is None:
        return True, ""
    if callable(check):
        try:
            return bool(check(workspace)), ""
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
    argv = shlex.split(check) if isinstance(check, str) else [str(a) for a in check]
    try:
        r = subprocess.run(argv, cwd=workspace, env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, errors="replace")  # fmt: skip
    except OSError as exc:
        return False, f"{argv[0]!r} could not run: {exc}"
    tail = " ".join((r.stdout + r.stderr).split())[-300:]
    return r.returncode == 0, f"`{shlex.join(argv)}` exited {r.returncode}: {tail}"


# --------------------------------------------------------------------- per-task state


@dataclass
class _TaskRun:
    task_id: str
    title: str
    iteration: int = 0
    handle: WorkerHandle | None = None
    action: str | None = None  # "stop" | "kill" | "stop_all" | "timeout", asked from outside
    thread: threading.Thread | None = None
    integrate_only: bool = False
    task: dict[str, Any] = field(default_factory=dict)
    marked_done: bool = False


@dataclass
class _Attempt:
    worker_id: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    started: bool = False
    promise_seen: bool = False
    parser: Any = None
    secrets: list[str] = field(default_factory=list)


class Loop:
    """Run agents over the queue of `repo`: parallel isolated workers, iterations until each
    task is complete, finished work merged back, a live table of every worker attempt.

    `runner`: a name ("demo", "claude", "codex", ...) or a runner object (e.g.
    `ralphnb.Command([...])`). `parallel`: workers at once. `max_iterations`: attempts per task
    (a task's `agent.iterations` wins). `check`: argv list, a command string (split like a
    shell, never run by one) or `callable(workspace_path) -> bool`, run after the agent says it
    is done. `completion_promise`: text that counts as "done" in the agent's output.
    `grace`: seconds between SIGINT and SIGKILL on stop. `target_branch`: where work is merged
    (default: the checked-out branch). Limits: `max_wall_time` (s, whole loop),
    `max_cost_usd`, `max_consecutive_failures`. `executor`: where workers run (local processes
    by default). `workspace_mode`: auto/worktree/clone/copy. `tasks`: only these task ids.

    `start()` returns at once; `run()` blocks and returns the final `df`; `await arun()`.
    `df`, `snapshot()`, `events`, `subscribe(cb)`, `logs(task_id)`; `stop(id)`, `kill(id)`,
    `stop_all()`, `pause()`, `resume()`. The run is journaled under
    `.ralph/cache/ralphnb/runs/<run_id>/` (`Run.load(loop.run_dir).df` rebuilds `df`).
    """

    def __init__(self, repo: str | Path = ".", runner: Any = "demo", parallel: int = 2,
                 max_iterations: int = 5, check: CheckType = None,
                 completion_promise: str = "<promise>COMPLETE</promise>", grace: float = 1.5,
                 target_branch: str | None = None, max_wall_time: float | None = None,
                 max_cost_usd: float | None = None, max_consecutive_failures: int | None = None,
                 *, executor: Executor | None = None, workspace_mode: str = "auto",
                 workspace_root: str | Path | None = None, prompt_template: str | None = None,
                 tasks: Iterable[str] | None = None) -> None:  # fmt: skip
        from .runners import get_runner
        from .workspace import COPY_EXCLUDE, Workspaces

        self.queue = Queue(repo)
        self.repo = self.queue.repo
        self.runner = get_runner(runner)
        self.parallel = max(1, int(parallel))
        self.max_iterations = max(1, int(max_iterations))
        self.check = check
        self.completion_promise = completion_promise
        self.grace = grace
        self.max_wall_time, self.max_cost_usd = max_wall_time, max_cost_usd
        self.max_consecutive_failures = max_consecutive_failures
        self.prompt_template = prompt_template
        self.only = set(tasks) if tasks is not None else None
        self.executor: Executor = executor or LocalExecutor()
        # copies never take `.ralph/` (the run's own logs and lock live there; the agent
        # reaches the queue through RALPHNB_REPO)
        self.workspaces = Workspaces(self.repo, root=workspace_root, mode=workspace_mode,
                                     target_branch=target_branch,
                                     copy_exclude=(*COPY_EXCLUDE, ".ralph"))  # fmt: skip
        self.target_branch = self.workspaces.target_branch
        if self.workspaces.is_git and not self.target_branch:
            raise RalphError(f"{self.repo}: HEAD is detached; check out a branch or pass "
                             "target_branch='main' so finished work has somewhere to go")
        self.run_id: str | None = None
        self.run_dir: Path | None = None
        self.started_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.halt_reason: str | None = None
        self._table = WorkerTable()
        self._events: list[Event] = []
        self._subs: list[Callable[[Event], None]] = []
        self._emit_lock = threading.RLock()
        self._cond = threading.Condition()
        self._merge_lock = threading.Lock()
        self._active: dict[str, _TaskRun] = {}
        self._excluded: set[str] = set()
        self._handles: dict[str, WorkerHandle] = {}  # worker id -> handle (live attempts)
        self._paused = self._stopping = False
        self._failures = 0
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self._journal: Journal | None = None
        self._control: ControlServer | None = None
        self._lockfile: Any = None

    # ----------------------------------------------------------------- public: lifecycle

    def start(self) -> Loop:
        """Start the scheduler in a background thread and return at once."""
        if self._thread is not None:
            raise RalphError("this Loop was already started; create a new Loop for a new run")
        self._take_repo_lock()
        self.started_at = utcnow()
        self.run_id = new_run_id(self.started_at)
        self.run_dir = runs_root(self.repo) / self.run_id
        (self.run_dir / "workers").mkdir(parents=True, exist_ok=True)
        self._journal = Journal(self.run_dir / "events.jsonl")
        try:
            self._control = ControlServer(f"{self.run_id}-{os.getpid()}", self._on_control)
        except OSError:
            self._control = None
        self._write_info()
        _LOOPS.add(self)
        self._thread = threading.Thread(target=self._main, name="ralphnb-loop", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the loop has finished; False on timeout."""
        if self._thread is None:
            return True
        return self._finished.wait(timeout)

    def run(self) -> Any:
        """Start, block until finished, return the final `df`. Ctrl-C / a kernel interrupt stops
        this loop's workers cleanly (tasks go back to `todo`), then re-raises KeyboardInterrupt."""
        if self._thread is None:
            self.start()
        try:
            self.wait()
        except KeyboardInterrupt:
            self.stop_all()
            self.wait(30)
            raise
        return self.df

    async def arun(self) -> Any:
        """`await loop.arun()`: run without blocking the event loop; cancelling stops workers."""
        import asyncio

        if self._thread is None:
            self.start()
        try:
            await asyncio.to_thread(self.wait)
        except asyncio.CancelledError:
            self.stop_all(wait=False)
            raise
        return self.df

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._finished.is_set()

    # ----------------------------------------------------------------- public: control

    def stop(self, task_id: str, *, wait: bool = True) -> None:
        """Stop one task's worker gracefully (SIGINT, grace, kill); not restarted in this run."""
        self._act(task_id, "stop", wait)

    def kill(self, task_id: str, *, wait: bool = True) -> None:
        """Kill one task's worker and its whole tree now; not restarted in this run."""
        self._act(task_id, "kill", wait)

    def stop_all(self, *, wait: bool = True) -> None:
        """Stop every worker and start no new one; the loop then finishes."""
        with self._cond:
            self._stopping = True
            ids = list(self._active)
            self._cond.notify_all()
        threads = [threading.Thread(target=self._act, args=(t, "stop_all", True), daemon=True)
                   for t in ids]  # fmt: skip
        for th in threads:
            th.start()
        if wait:
            for th in threads:
                th.join()

    def pause(self) -> None:
        """Start no new worker (running ones go on) until `resume()`."""
        with self._cond:
            self._paused = True
        self._emit(Event("paused"))

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()
        self._emit(Event("resumed"))

    # ----------------------------------------------------------------- public: looking

    @property
    def events(self) -> list[Event]:
        with self._emit_lock:
            return list(self._events)

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call `callback(event)` for every event from now on (from the emitting thread; keep
        it quick). Returns the function that unsubscribes."""
        with self._emit_lock:
            self._subs.append(callback)

        def unsubscribe() -> None:
            with self._emit_lock:
                if callback in self._subs:
                    self._subs.remove(callback)

        return unsubscribe

    def _sample(self, rec: dict[str, Any]) -> dict[str, Any] | None:
        h = self._handles.get(rec["worker_id"])
        try:
            return h.resources() if h is not None else None
        except Exception:
            return None

    def snapshot(self) -> list[dict[str, Any]]:
        """Copies of the worker records (live cpu/rss/elapsed filled in), oldest first."""
        recs = self._table.records()
        fill_live(recs, self._sample, utcnow())
        return recs

    @property
    def df(self) -> Any:
        """A pandas DataFrame snapshot, one row per worker attempt; never changes later."""
        return self._table.df(self._sample, utcnow())

    @property
    def progress(self) -> tuple[int, int]:
        """(tasks integrated in this run, tasks seen in this run)."""
        recs = self._table.records()
        tasks = {r["task_id"] for r in recs}
        done = {r["task_id"] for r in recs if r["status"] == "integrated"}
        return len(done), len(tasks)

    def logs(self, task_id: str, n: int = 50) -> list[str]:
        """The last `n` lines of the task's current (or latest) attempt's log."""
        recs = [r for r in self._table.records() if r["task_id"] == task_id]
        if not recs:
            raise RalphError(f"no attempt of {task_id} in this run yet")
        h = self._handles.get(recs[-1]["worker_id"])
        if h is not None:
            return h.tail(n)
        path = recs[-1]["log_path"]
        if not path or not Path(path).exists():
            return []
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 256 * 1024))
            return fh.read().decode("utf-8", "replace").splitlines()[-n:]

    def __repr__(self) -> str:
        state = "finished" if self.finished else ("running" if self.running else "not started")
        head = f"Loop({str(self.repo)!r}, runner={self.runner.name!r}, parallel={self.parallel}"
        return f"{head}) {state}\n" + format_table(self.snapshot())

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from .widgets import mimebundle

        return mimebundle(self, include=include, exclude=exclude)

    def dashboard(self, **kwargs: Any) -> Any:
        from .widgets import dashboard

        return dashboard(self, **kwargs)

    # ----------------------------------------------------------------- events

    def _emit(self, event: Event) -> None:
        """The one sink: table, journal, subscribers, then wake the scheduler."""
        with self._emit_lock:
            self._table.apply(event)
            if self._journal is not None:
                self._journal.append(event)
            self._events.append(event)
            for cb in list(self._subs):
                try:
                    cb(event)
                except Exception:
                    pass
        if event.kind != "output":  # parsed output never changes what the scheduler does
            with self._cond:
                self._cond.notify_all()

    def _ev(self, kind: str, tr: _TaskRun, wid: str | None = None, **data: Any) -> None:
        self._emit(Event(kind, tr.task_id, wid or f"{tr.task_id}#{tr.iteration}", data=data))

    # ----------------------------------------------------------------- the scheduler

    def _main(self) -> None:
        try:
            self._emit(Event("loop_started", data={
                "run_id": self.run_id, "repo": str(self.repo), "runner": self.runner.name,
                "parallel": self.parallel, "max_iterations": self.max_iterations,
                "target_branch": self.target_branch, "pid": os.getpid()}))  # fmt: skip
            self._recover()
            self._schedule()
        except Exception as exc:  # the loop must always finish and release its workers
            self.halt_reason = f"loop error: {type(exc).__name__}: {exc}"
            self.stop_all()
            with self._cond:
                while self._active:
                    self._cond.wait()
        finally:
            self._finish()

    def _schedule(self) -> None:
        wall = None
        if self.max_wall_time is not None and self.started_at is not None:
            from datetime import timedelta

            wall = self.started_at + timedelta(seconds=float(self.max_wall_time))
        with self._cond:
            while True:
                now = utcnow()
                if wall is not None and now >= wall and self.halt_reason is None:
                    self._halt("max_wall_time reached", stop_reason="timeout")
                stop = self._stopping or self.halt_reason is not None
                scheduled: list[datetime] = []
                if not stop and not self._paused and len(self._active) < self.parallel:
                    self._cond.release()
                    try:
                        picks, scheduled, waiting = self._pick(now)
                    finally:
                        self._cond.acquire()
                    for t in picks:
                        if not (t["id"] in self._active or t["id"] in self._excluded
                                or self._stopping or self._paused):
                            self._launch(t)
                else:  # a paused loop waits for resume() or stop_all()
                    waiting = bool(self._active) or (self._paused and not stop)
                if not self._active and (stop or not waiting):
                    return
                self._cond.wait(next_deadline(utcnow(), wall_deadline=wall, scheduled=scheduled))

    def _pick(self, now: datetime) -> tuple[list[dict], list[datetime], bool]:
        """(tasks to start now, future scheduled_start times, whether anything may still run).
        Reads task attributes, never whole-task copies: this runs after every slot frees up."""
        from .events import parse_time

        tasks = self.queue.tasks
        open_status = {t.id: t.status for t in tasks}
        with self._cond:
            busy = set(self._active) | self._excluded
            free = self.parallel - len(self._active)
        if self.only is not None:
            busy |= set(open_status) - self.only
        runnable = {t.id: t for t in self.queue.runnable(exclude=busy, now=now)}
        light = [{"id": tid, "depends_on": t.depends_on} for tid, t in runnable.items()]
        picks = [runnable[t["id"]].to_dict()
                 for t in pick_tasks(light, open_status, busy=busy, free=free)]  # fmt: skip
        scheduled = [parse_time(t.scheduled_start) for t in tasks
                     if t.status == "todo" and t.id not in busy and t.scheduled_start
                     and parse_time(t.scheduled_start) > now]  # fmt: skip
        waiting = bool(scheduled) or bool(self._active) or bool(picks)
        return picks, scheduled, waiting

    def _launch(self, task: dict[str, Any], *, integrate_only: bool = False) -> None:
        """Start a driver thread for `task` (caller holds the condition)."""
        tr = _TaskRun(task["id"], str(task.get("title", "")), integrate_only=integrate_only,
                      task=task, marked_done=task.get("status") == "done")
        self._active[tr.task_id] = tr
        tr.thread = threading.Thread(target=self._drive, args=(tr,), daemon=True,
                                     name=f"ralphnb-task-{tr.task_id}")  # fmt: skip
        tr.thread.start()

    def _halt(self, reason: str, *, stop_reason: str | None = None) -> None:
        """Start no new attempt; with `stop_reason` also stop the running ones (cond held)."""
        if self.halt_reason is None:
            self.halt_reason = reason
            threading.Thread(target=self._emit, args=(Event("halted", data={"reason": reason}),),
                             daemon=True).start()  # fmt: skip
        if stop_reason:
            for tid in list(self._active):
                threading.Thread(target=self._act, args=(tid, stop_reason, False),
                                 daemon=True).start()  # fmt: skip
        self._cond.notify_all()

    def _act(self, task_id: str, action: str, wait: bool) -> None:
        with self._cond:
            tr = self._active.get(task_id)
            if tr is None:
                if action in ("stop_all", "timeout"):
                    return
                raise RalphError(f"no active worker for {task_id} in this loop")
            if tr.action is None:
                tr.action = action
            self._excluded.add(task_id)
            handle = tr.handle
        if handle is None:
            return  # the driver checks tr.action before its next spawn
        if action != "kill":
            self._ev("stopping", tr)
        call = (lambda: handle.kill()) if action == "kill" else (lambda: handle.stop(self.grace))
        if wait:
            try:
                call()
            except WorkerError:
                pass
        else:
            threading.Thread(target=lambda: _quiet(call), daemon=True).start()

    # ----------------------------------------------------------------- one task

    def _drive(self, tr: _TaskRun) -> None:
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

    def _work(self, tr: _TaskRun) -> None:
        from .runners import iterations_for_task, runner_for_task

        task = tr.task
        max_it = iterations_for_task(task, self.max_iterations)
        runner = runner_for_task(self.runner, task)
        tr.iteration = 1
        self._ev("queued", tr, title=tr.title, iteration=1)
        ws = self.workspaces.create(tr.task_id, reuse=True)
        if task.get("status") != "doing":
            self.queue.start(tr.task_id)
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
            marked = not att.promise_seen and self.queue.get(tr.task_id).status == "done"
            ok, msg = (None, "")
            if marked or att.promise_seen:
                ok, msg = run_check(self.check, Path(ws.path), self._env(tr, ws))
            if tr.action is not None or self._stopping:  # asked to stop while checking
                return self._requeue(tr, self._why_not_continued(tr))
            d = decide(iteration=tr.iteration, max_iterations=max_it, marked_done=marked,
                       promise_seen=att.promise_seen, check_ok=ok, check_msg=msg,
                       exit_msg=exit_msg)  # fmt: skip
            self._ev("iteration_end", tr, decision=d.action, reason=d.reason,
                     marked_done=marked, promise=att.promise_seen, check_ok=ok,
                     **({"error": exit_msg} if exit_msg else {}))  # fmt: skip
            if d.action == "complete":
                tr.marked_done = marked
                if not marked and self.workspaces.is_git:  # done before merging: a crash
                    self.queue.complete(tr.task_id, archive=False)  # then re-integrates
                    tr.marked_done = True
                return self._integrate(tr, ws)
            if marked:
                self.queue.update(tr.task_id, status="doing", completed_at=None)
            if d.action == "fail":
                self._ev("failed", tr, error=d.reason, status="failed")
                return self._requeue(tr, d.reason)
            if self.halt_reason is not None:
                return self._requeue(tr, self._why_not_continued(tr))
            tr.iteration += 1
            self._ev("queued", tr, title=tr.title, iteration=tr.iteration)

    def _wait_unpaused(self, tr: _TaskRun) -> bool:
        with self._cond:
            while self._paused and tr.action is None and not self._stopping:
                self._cond.wait()
            return tr.action is None and not self._stopping and self.halt_reason is None

    def _why_not_continued(self, tr: _TaskRun) -> str:
        if tr.action == "kill":
            return "killed by the user"
        if tr.action == "stop":
            return "stopped by the user"
        if tr.action == "timeout" or self.halt_reason:
            return f"loop halted: {self.halt_reason}"
        return "the loop was stopped (stop_all, Ctrl-C or interpreter exit)"

    def _env(self, tr: _TaskRun, ws: Any, extra: dict[str, str] | None = None) -> dict[str, str]:
        path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
        return build_env({
            **(extra or {}), "PATH": path, "RALPHNB_REPO": str(self.repo),
            "RALPHNB_WORKER": f"{tr.task_id}#{tr.iteration}", "RALPHNB_TASK_ID": tr.task_id,
            "RALPHNB_ITERATION": str(tr.iteration), "RALPHNB_RUN_DIR": str(self.run_dir),
            "RALPHNB_WORKSPACE": str(ws.path)})  # fmt: skip

    def _attempt(self, tr: _TaskRun, runner: Any, task: dict, ws: Any) -> tuple[Any, _Attempt]:
        from .runners import build_prompt

        assert self.run_dir is not None
        wid = f"{tr.task_id}#{tr.iteration}"
        att = _Attempt(wid)
        prompt_file = self.run_dir / "prompts" / tr.task_id / f"{tr.iteration}.md"
        prompt_file.parent.mkdir(parents=True, exist_ok=True)
        log_path = self.run_dir / "logs" / tr.task_id / f"{tr.iteration}.log"
        self._ev("starting", tr, workspace=str(ws.path), branch=ws.branch, log_path=str(log_path))
        try:
            prompt_file.write_text(build_prompt(
                task, workspace=ws.path, completion_promise=self.completion_promise,
                template=self.prompt_template, iteration=tr.iteration), encoding="utf-8")
            cmd = runner.command(task, workspace=Path(ws.path), prompt_file=prompt_file,
                                 iteration=tr.iteration)  # fmt: skip
        except RalphError as exc:
            self._ev("failed", tr, error=str(exc), status="failed")
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
            self._emit(Event("exited", tr.task_id, wid, data={
                "pid": info.pid, "returncode": info.returncode, "signal": info.signal,
                "reason": reason, "started_at": format_time(info.started_at),
                "ended_at": format_time(info.ended_at)}))  # fmt: skip

        spec = WorkerSpec(worker_id=wid, task_id=tr.task_id, iteration=tr.iteration,
                          argv=tuple(cmd.argv), cwd=str(ws.path), env=env,
                          log_path=str(log_path),
                          stdin_path=str(cmd.stdin_path) if cmd.stdin_path else None,
                          registry_path=str(self.run_dir / "workers"))  # fmt: skip
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

    def _started(self, tr: _TaskRun, att: _Attempt, pid: int | None, at: datetime | None) -> None:
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

    def _requeue(self, tr: _TaskRun, why: str) -> None:
        """Back to `todo` with a note; not picked again in this run."""
        with self._cond:
            self._excluded.add(tr.task_id)
        try:
            self.queue.update(tr.task_id, status="todo", completed_at=None)
            self.queue.add_note(tr.task_id, f"ralphnb run {self.run_id}: {why}")
        except RalphError:
            pass

    def _merge(self, tr: _TaskRun, ws: Any) -> Any:
        """One integration attempt (merge lock held) -> MergeResult."""
        from .integrate import MergeResult, merge_branch, rev
        from .workspace import BRANCH_PREFIX

        target = self.target_branch or ""
        if not self.workspaces.is_git:
            return MergeResult("integrated")  # plain directory: the work stays in its copy
        if ws is None or not ws.branch:  # recovered with its branch but no workspace
            branch = BRANCH_PREFIX + tr.task_id
            if rev(self.repo, f"refs/heads/{branch}") is None:
                return MergeResult("noop")
            return merge_branch(self.repo, branch, target,
                                message=f"Merge {branch}: {tr.task_id}: {tr.title}")
        sync = (lambda: self.workspaces.sync_branch(ws)) if ws.kind == "clone" else None
        return integrate(self.repo, ws.path, branch=ws.branch, target=target,
                         task_id=tr.task_id, title=tr.title, before_merge=sync)  # fmt: skip

    def _integrate(self, tr: _TaskRun, ws: Any) -> None:
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
                    err = f"merge conflict in {', '.join(res.paths)}{where}"
                    self._ev("conflict", tr, error=err, paths=res.paths)
                    return self._requeue(tr, err)
                if res.status in ("integrated", "noop"):
                    if tr.marked_done:
                        self.queue.archive(tr.task_id)
                    else:  # nothing to merge (plain directory): one write
                        self.queue.complete(tr.task_id)
                    if self.workspaces.is_git:
                        commit_bookkeeping(self.repo, f"{tr.task_id}: archive ({tr.title})")
                    self._ev("integrated", tr, commit=res.commit)
                    if self.workspaces.is_git:
                        if ws is not None:
                            self.workspaces.remove(ws, delete_branch=True)
                        else:
                            self.workspaces.remove(tr.task_id, delete_branch=True)
                    return
            if res.message != last:
                self._ev("integrating", tr, error=res.message)
                last = res.message
            with self._cond:
                if self._stopping or tr.action is not None:
                    return  # left done-but-not-archived: the next run integrates it
                self._cond.wait(RETRY_BLOCKED_S)

    # ----------------------------------------------------------------- recovery & teardown

    def _take_repo_lock(self) -> None:
        path = runs_root(self.repo).parent / "loop.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a+")  # noqa: SIM115 - held for the loop's lifetime
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            owner = fh.read().strip()
            fh.close()
            raise RalphError(f"another loop is running on {self.repo} ({owner or 'unknown'}); "
                             "stop it first (`ralphnb status`, `ralphnb stop`)") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}\n")
        fh.flush()
        self._lockfile = fh

    def _write_info(self, **extra: Any) -> None:
        from .run import pid_create_time

        assert self.run_dir is not None
        info = {"run_id": self.run_id, "repo": str(self.repo), "pid": os.getpid(),
                "create_time": pid_create_time(), "control": self._control.address
                if self._control else None, "started_at": format_time(self.started_at or
                utcnow()), "finished_at": None, **extra}  # fmt: skip
        tmp = self.run_dir / (LOOP_INFO + ".tmp")
        tmp.write_text(json.dumps(info))
        os.replace(tmp, self.run_dir / LOOP_INFO)

    def _recover(self) -> None:
        """Reap workers of crashed runs; integrate tasks done but not archived."""
        regs = [d / "workers" for d in list_runs(self.repo) if d != self.run_dir
                and (d / "workers").is_dir() and any((d / "workers").iterdir())]  # fmt: skip
        found = len(find_leftovers(regs)) if regs else 0
        reaped = reap_leftovers(regs) if regs else 0
        pending = [t.to_dict() for t in self.queue.tasks if t.status == "done"]
        doing = [t.id for t in self.queue.tasks if t.status == "doing"]
        if found or pending or doing:
            self._emit(Event("recovered", data={"reaped": reaped, "integrate": [t["id"] for t
                       in pending], "doing": doing}))  # fmt: skip
        with self._cond:
            for t in pending:
                if self.only is None or t["id"] in self.only:
                    self._launch(t, integrate_only=True)

    def _finish(self) -> None:
        self.ended_at = utcnow()
        try:
            if self.workspaces.is_git:
                commit_bookkeeping(self.repo, f"ralphnb: queue after run {self.run_id}")
        except Exception:
            pass
        self._emit(Event("loop_finished", data={"reason": self.halt_reason or (
            "stopped" if self._stopping else "no runnable tasks left")}))  # fmt: skip
        if self._control is not None:
            self._control.close()
        if self._journal is not None:
            self._journal.close()
        try:
            self._write_info(finished_at=format_time(self.ended_at))
        except OSError:
            pass
        if self._lockfile is not None:
            self._lockfile.close()
        self._finished.set()

    def _on_control(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        if op == "status":
            recs = [{k: (format_time(v) if isinstance(v, datetime) else v) for k, v in r.items()}
                    for r in self.snapshot()]  # fmt: skip
            return {"run_id": self.run_id, "records": recs, "finished": self.finished,
                    "paused": self._paused, "halt_reason": self.halt_reason}  # fmt: skip
        try:
            if op in ("stop", "kill"):
                getattr(self, op)(str(req.get("task_id")))
            elif op in ("stop_all", "pause", "resume"):
                getattr(self, op)()
            else:
                return {"error": f"unknown request {op!r}"}
        except RalphError as exc:
            return {"error": str(exc)}
        return {"ok": True}


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
        from .runners.base import secret_values
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


_LOOPS: weakref.WeakSet[Loop] = weakref.WeakSet()
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


__all__ = ["Decision", "Loop", "decide", "deps_merged", "next_deadline", "pick_tasks", "run_check"]
