"""The Loop: the public API of a run, its event sink and its live worker table.

Owns: `Loop` -- construction and checks up front (the queue loads, a runner is chosen:
`choice`; tasks and workspaces: `setup`), start/run/arun/wait, stop/kill/pause/resume, the
event sink (`_emit`: table -> journal -> subscribers -> wake), `df`/`snapshot`/`logs`, and
the thread that runs a `scheduler.Scheduler` (which starts one `driver.Driver` per task and
gives each the narrow `context.DriverContext`; a driver never sees the Loop). The run's
resources (repo lock, run directory, journal, control socket) are one `rundir.LiveRun`; what
the socket answers is `requests.answer`.
Imports: the view only through `_widgets()`, the one lazy hook (for `_repr_mimebundle_` and
`dashboard`), so importing the loop imports no widget library.
Invariants: every state change is an Event applied in order under one lock, and emitting never
raises (a journal write that fails halts the run instead: `error`); a worker's exit is applied
by its monitor thread at once; only this process writes the queue files while it runs;
integrations are serialised; a task a user stopped/killed, failed or conflicted goes back to
`todo` with a note and is not picked again in this run.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from .._time import utcnow
from ..errors import RalphError
from ..queue.store import Queue
from ..workers.executors import Executor, LocalExecutor, WorkerHandle
from ..workers.logfile import DEFAULT_MAX_LOG_BYTES, tail_lines
from ..workspace.merge import commit_bookkeeping
from .budget import Budget
from .check import CheckType
from .choice import choose_runner
from .context import DriverSettings, RunFlags
from .events import EVENTS_WINDOW, Event, EventWindow
from .publishing import choose_publish
from .report import attempts_table
from .requests import answer
from .resume import session_timeout_hours
from .rundir import LiveRun
from .scheduler import Limits, Scheduler
from .setup import check_only, open_workspaces
from .shutdown import track
from .table import WorkerTable, fill_live


def _widgets() -> ModuleType:
    """The one lazy hook into the view: the dashboard needs ipywidgets, which importing the
    loop must not import (and the view imports the loop, not the other way round)."""
    from ..view import widgets

    return widgets


class Loop:
    """Run agents over the queue of `repo`: parallel isolated workers, iterations until each
    task is complete, finished work merged back, a live table of every worker attempt.

    `runner`: a name ("claude", "codex", "demo", ...) or a runner object (e.g.
    `ralphnb.Command([...])`); None takes `agent.runner` from ralph's configuration
    (`.ralph/config.jsonc`, else the user's global one), or the demo agent in the sample
    repository only; with none of these the Loop raises before anything is written
    (`runner_source` says where the choice came from). `parallel`: workers at once.
    `max_iterations`: attempts per task (a task's `agent.iterations` wins). `check`: argv list,
    a command string (split like a shell, never run by one) or `callable(workspace_path) ->
    bool`, run after the agent says it is done. `completion_promise`: text that counts as "done"
    in the agent's output. `grace`: seconds between SIGINT and SIGKILL on stop. `target_branch`:
    where work is merged (default: the checked-out branch). Limits: `max_wall_time` (s, whole
    loop), `max_cost_usd`, `max_consecutive_failures`. `executor`: where workers run (local
    processes by default). `workspace_mode`: auto/worktree/clone/copy. `tasks`: only these task
    ids. `max_log_bytes`: cap of each attempt's log file (head and tail kept; None: no cap).
    `events_window`: events kept in memory (`events` reads older ones back from the journal).
    `publish`: ralph's git_publish_mode -- "off" (work left on branch `ralph/<ID>`), "commit"
    (merge; the default) or "commit_and_push" (merge, then push the target to its upstream);
    None takes `agent.git_publish_mode` when configuration sets it. `resume`: an interrupted
    attempt's agent session is resumed in its kept workspace (`agent.session_timeout_hours`).
    `max_cost_usd` is one live budget for all workers (`loop.budget`: `set(30.0)`, `spent`,
    `left`): reaching it starts no new attempt; `on_budget="finish"` lets running workers
    finish, `"stop"` stops them. A started loop then waits for `loop.budget.set(higher)` (or
    `stop_all()`); a blocking `run()` halts instead.

    `start()` returns at once; `run()` blocks and returns the final `df`; `await arun()`.
    `df`, `snapshot()`, `events`, `subscribe(cb)`, `logs(task_id)`; `stop(id)`, `kill(id)`,
    `stop_all()`, `pause()`, `resume()`. The run is journaled under
    `.ralph/cache/ralphnb/runs/<run_id>/` (`Run.load(loop.run_dir).df` rebuilds `df`).
    """

    def __init__(
        self,
        repo: str | Path = ".",
        runner: Any = None,
        parallel: int = 2,
        max_iterations: int = 5,
        check: CheckType = None,
        completion_promise: str = "<promise>COMPLETE</promise>",
        grace: float = 1.5,
        target_branch: str | None = None,
        max_wall_time: float | None = None,
        max_cost_usd: float | None = None,
        max_consecutive_failures: int | None = None,
        *,
        executor: Executor | None = None,
        workspace_mode: str = "auto",
        workspace_root: str | Path | None = None,
        prompt_template: str | None = None,
        tasks: Iterable[str] | None = None,
        max_log_bytes: int | None = DEFAULT_MAX_LOG_BYTES,
        events_window: int = EVENTS_WINDOW,
        publish: str | None = None,
        resume: bool = True,
        on_budget: str = "finish",
    ) -> None:
        self.queue = Queue(repo)
        self.repo = self.queue.repo
        self.queue.validate()  # a queue file that does not load is an error now, not mid-run
        # the queue files relative to the repo (`.ralph/config.jsonc` may move them)
        self.queue_files = tuple(
            Path(os.path.relpath(p, self.repo)).as_posix()
            for p in (self.queue.queue_path, self.queue.done_path)
        )
        self.runner, self.runner_source = choose_runner(self.repo, runner)
        self.parallel = max(1, int(parallel))
        self.max_iterations = max(1, int(max_iterations))
        self.check = check
        self.completion_promise = completion_promise
        self.grace = grace
        self.max_log_bytes = max_log_bytes
        self.max_wall_time, self.max_cost_usd = max_wall_time, max_cost_usd
        self.max_consecutive_failures = max_consecutive_failures
        self.prompt_template = prompt_template
        self.only = set(tasks) if tasks is not None else None
        if self.only is not None:
            check_only(self.queue, self.only)
        self.executor: Executor = executor or LocalExecutor()
        self.workspaces = open_workspaces(self.repo, workspace_root, workspace_mode, target_branch)
        self.target_branch = self.workspaces.target_branch
        git = self.workspaces.is_git
        self.publish, self.push_policy = choose_publish(self.repo, publish, is_git=git)
        self.resume_hours = session_timeout_hours(self.repo) if resume else None
        self.run_id: str | None = None
        self.run_dir: Path | None = None
        self.started_at: datetime | None = None
        self.ended_at: datetime | None = None
        self._flags = RunFlags()  # pause/stop/halt/excluded, shared with the drivers
        self._table = WorkerTable()
        self.budget = Budget(
            max_cost_usd, self._table.records, on_budget=on_budget, on_change=self._budget_set
        )
        self._hold_on_budget = True  # a blocking run() cannot wait for a raise: it halts
        self._events = EventWindow(events_window)  # older events are read from the journal
        self._subs: list[Callable[[Event], None]] = [self.budget.observe]
        self._emit_lock = threading.RLock()
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self._run: LiveRun | None = None  # from start()
        self._scheduler: Scheduler | None = None  # from start()
        self._journal_lost = False  # the journal could not be written (emit lock held)

    # ----------------------------------------------------------------- public: lifecycle

    def start(self) -> Loop:
        """Start the scheduler in a background thread and return at once."""
        if self._thread is not None:
            raise RalphError("this Loop was already started; create a new Loop for a new run")
        run = self._run = LiveRun.open(self.repo, self._on_control)
        self.run_id, self.run_dir, self.started_at = run.run_id, run.run_dir, run.started_at
        self._scheduler = self._new_scheduler(run)
        track(self)
        self._thread = threading.Thread(target=self._main, name="ralphnb-loop", daemon=True)
        self._thread.start()
        return self

    def _new_scheduler(self, run: LiveRun) -> Scheduler:
        settings = DriverSettings(
            repo=self.repo,
            run_id=run.run_id,
            run_dir=run.run_dir,
            runner=self.runner,
            max_iterations=self.max_iterations,
            check=self.check,
            completion_promise=self.completion_promise,
            prompt_template=self.prompt_template,
            grace=self.grace,
            max_log_bytes=self.max_log_bytes,
            target_branch=self.target_branch,
            queue_files=self.queue_files,
            publish=self.publish,
            push=self.push_policy,
            resume_hours=self.resume_hours,
        )
        wall = None
        if self.max_wall_time is not None:
            wall = run.started_at + timedelta(seconds=float(self.max_wall_time))
        limits = Limits(
            parallel=self.parallel,
            only=frozenset(self.only) if self.only is not None else None,
            wall_deadline=wall,
            max_cost_usd=self.max_cost_usd,
            max_consecutive_failures=self.max_consecutive_failures,
        )
        sched = Scheduler(
            settings,
            limits,
            self._flags,
            emit=self._emit,
            queue=self.queue,
            workspaces=self.workspaces,
            executor=self.executor,
            table=self._table,
            budget=self.budget,
        )
        sched.hold_on_budget = self._hold_on_budget
        return sched

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the loop has finished; False on timeout."""
        if self._thread is None:
            return True
        return self._finished.wait(timeout)

    def run(self) -> Any:
        """Start, block until finished, return the final `df`. Ctrl-C / a kernel interrupt stops
        this loop's workers cleanly (tasks go back to `todo`), then re-raises KeyboardInterrupt."""
        if self._thread is None:
            self._hold_on_budget = False
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

    @property
    def halt_reason(self) -> str | None:
        """Why the loop stopped starting attempts (a limit, a loop error), or None."""
        return self._flags.halt_reason

    @property
    def error(self) -> str | None:
        """The error that halted the loop, in one line (a file that could not be written for a
        full disk, an unexpected loop error), or None: a limit reached is not an error."""
        return self._flags.error

    # ----------------------------------------------------------------- public: control

    def _act(self, task_id: str, action: str, wait: bool) -> None:
        if self._scheduler is None:
            raise RalphError(f"{task_id} has no running worker: this loop was not started")
        self._scheduler.act(task_id, action, wait)

    def stop(self, task_id: str, *, wait: bool = True) -> None:
        """Stop one task's worker gracefully (SIGINT, grace, kill); not restarted in this run."""
        self._act(task_id, "stop", wait)

    def kill(self, task_id: str, *, wait: bool = True) -> None:
        """Kill one task's worker and its whole tree now; not restarted in this run."""
        self._act(task_id, "kill", wait)

    def stop_all(self, *, wait: bool = True) -> None:
        """Stop every worker and start no new one; the loop then finishes."""
        if self._scheduler is not None:
            self._scheduler.stop_all(wait=wait)
            return
        with self._flags.cond:  # not started: a later start() starts nothing
            self._flags.stopping = True

    def pause(self) -> None:
        """Start no new worker (running ones go on) until `resume()`."""
        with self._flags.cond:
            self._flags.paused = True
        self._emit(Event("paused"))

    def resume(self) -> None:
        with self._flags.cond:
            self._flags.paused = False
            self._flags.cond.notify_all()
        self._emit(Event("resumed"))

    def _budget_set(self, budget: Budget) -> None:
        """`loop.budget.set(...)`: say so, and wake the scheduler and any waiting driver."""
        self._emit(Event("budget_set", data=budget.state()))

    @property
    def paused(self) -> bool:
        """True between `pause()` and `resume()` (no new worker starts)."""
        return self._flags.paused

    # ----------------------------------------------------------------- public: looking

    @property
    def events(self) -> list[Event]:
        """Every event of this run, in order (the older ones read back from the journal)."""
        return self._events.events(self._run.journal.path if self._run is not None else None)

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

    def _live_handle(self, rec: dict[str, Any]) -> WorkerHandle | None:
        return self._scheduler.live_handle(rec) if self._scheduler is not None else None

    def _sample(self, rec: dict[str, Any]) -> dict[str, Any] | None:
        h = self._live_handle(rec)
        try:
            return h.resources() if h is not None else None
        except Exception:
            return None

    def snapshot(self, sample: bool = True) -> list[dict[str, Any]]:
        """Copies of the worker records, oldest first, live `elapsed_s` filled in.
        `sample=True` also fills live workers' `cpu_percent`/`rss_mb` (one shared process-table
        scan); `sample=False` leaves those empty and costs only the copy."""
        recs = self._table.records()
        fill_live(recs, self._sample if sample else None, utcnow())
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
        h = self._live_handle(recs[-1])
        return h.tail(n) if h is not None else tail_lines(recs[-1]["log_path"], n)

    def __repr__(self) -> str:
        state = "finished" if self.finished else ("running" if self.running else "not started")
        head = f"Loop({str(self.repo)!r}, runner={self.runner.name!r}, parallel={self.parallel}"
        return f"{head}) {state}\n" + attempts_table(self.snapshot())

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return _widgets().mimebundle(self, include=include, exclude=exclude)

    def dashboard(self, **kwargs: Any) -> Any:
        return _widgets().dashboard(self, **kwargs)

    # ----------------------------------------------------------------- events

    def _emit(self, event: Event) -> None:
        """The one sink: table, journal, subscribers, then wake the scheduler."""
        with self._emit_lock:
            self._table.apply(event)
            failed = self._run is not None and not self._run.journal.append(event)
            lost = failed and not self._journal_lost  # the first event the journal lost
            self._journal_lost = self._journal_lost or failed
            self._events.append(event, self._run is not None and not failed)
            for cb in list(self._subs):
                try:
                    cb(event)
                except Exception:
                    pass
        if lost and self._scheduler is not None and self._run is not None:
            # a run that cannot be journaled cannot be rebuilt after a crash: halt it (outside
            # the emit lock: the halt takes the flags' condition, which drivers hold to emit)
            self._scheduler.fail(self._run.journal.failure or "the run journal failed")
        if event.kind != "output":  # parsed output never changes what the scheduler does
            with self._flags.cond:
                self._flags.cond.notify_all()

    # ----------------------------------------------------------------- the scheduler thread

    def _main(self) -> None:
        assert self._scheduler is not None
        try:
            self._emit(
                Event(
                    "loop_started",
                    data={
                        "run_id": self.run_id,
                        "repo": str(self.repo),
                        "runner": self.runner.name,
                        "runner_source": self.runner_source,
                        "parallel": self.parallel,
                        "max_iterations": self.max_iterations,
                        "target_branch": self.target_branch,
                        "pid": os.getpid(),
                    },
                )
            )
            self._scheduler.run()
        finally:
            self._finish()

    def _finish(self) -> None:
        """Bookkeeping commit, `loop_finished`, the run's resources released: whatever fails
        on the way (a full disk), the loop is marked finished and the repository unlocked."""
        self.ended_at = utcnow()
        try:
            if self.workspaces.is_git:
                commit_bookkeeping(
                    self.repo, f"ralphnb: queue after run {self.run_id}", paths=self.queue_files
                )
        except Exception:
            pass
        try:
            reason = self._flags.halt_reason or (
                "stopped" if self._flags.stopping else "no runnable tasks left"
            )
            data = {"reason": reason, **({"error": self.error} if self.error else {})}
            self._emit(Event("loop_finished", data=data))
        finally:
            try:
                if self._run is not None:
                    self._run.close(self.ended_at)
            finally:
                self._finished.set()

    def _on_control(self, req: dict[str, Any]) -> dict[str, Any]:
        return answer(self, req)


__all__ = ["Loop"]
