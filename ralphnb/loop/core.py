"""The Loop: the public API of a run, its event sink and its live worker table.

Owns: `Loop` -- construction and checks up front (the queue loads, a runner is chosen:
`choice`; tasks and workspaces: `setup`), start/run/arun/wait, stop/kill/pause/resume, the
event sink (`sink.EventSink`: table -> journal -> subscribers -> wake), `df`/`snapshot`/`logs`, and
the thread that runs a `scheduler.Scheduler` (`assemble`; it starts one `driver.Driver` per task and
gives each the narrow `context.DriverContext`; a driver never sees the Loop). The run's
resources (repo lock, run directory, journal, control socket) are one `rundir.LiveRun`; what
the socket answers is `requests.answer`.
Imports: the view only through `viewhook.widgets()`, the one lazy hook (for `_repr_mimebundle_` and
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
from datetime import datetime
from pathlib import Path
from typing import Any

from .._time import utcnow
from ..errors import RalphError
from ..queue.config import resolve_config
from ..queue.store import Queue
from ..workers.executors import Executor, LocalExecutor, WorkerHandle
from ..workers.logfile import DEFAULT_MAX_LOG_BYTES, tail_lines
from ..workspace.merge import commit_bookkeeping
from .assemble import new_scheduler
from .budget import Budget
from .check import CheckType
from .choice import choose_runner
from .context import RunFlags
from .events import EVENTS_WINDOW, Event
from .gate import gate_check
from .launch import DetachedLoop
from .publishing import choose_publish
from .report import attempts_table
from .requests import answer
from .resume import session_timeout_hours
from .review import ReviewDesk, Verdict, diff_of, waiting_frame
from .rundir import LiveRun
from .scheduler import Scheduler
from .setup import check_only, configured_root, open_workspaces
from .shutdown import track
from .sink import EventSink
from .stuck import DEFAULT_REPEAT_LIMIT, ON_STUCK
from .stuckwatch import StuckWatch
from .table import WorkerTable, fill_live
from .transcripts import Transcripts, runner_of
from .viewhook import widgets as _widgets


class Loop:
    """Run agents over the queue of `repo`: parallel isolated workers, iterations until each
    task is complete, finished work merged back, a live table of every worker attempt.

    `runner`: a name ("claude", "codex", "demo", ...) or a runner object (e.g.
    `ralphnb.Command([...])`); None takes `agent.runner` from ralph's configuration
    (`.ralph/config.jsonc`, else the user's global one), or the demo agent in the sample
    repository only; with none of these the Loop raises before anything is written
    (`runner_source` says where the choice came from). `parallel`: workers at once (None:
    `parallel.workers` of the configuration, else 2).
    `max_iterations`: attempts per task until it is done (a retry after an unfinished attempt or
    a failed check counts one). `phases`: 1 implement, 2 plan then implement, 3 plan, implement,
    review (a task's `agent.phases` wins; None: `agent.phases` of the configuration, else 1).
    `passes`: ralph's `iterations`, N fixed passes over a task of which only the last may
    complete it (a task's `agent.iterations` wins; None: the configuration's, else 1). `check`:
    the CI gate, an argv list, a command string (split like a shell, never run by one) or
    `callable(workspace_path) -> bool`, run after the agent says it is done; its failure goes
    back to the agent, resuming the same session where the runner can (None: the configured
    `agent.ci_gate`, unless it is disabled). `completion_promise`: text that counts as "done"
    in the agent's output. `grace`: seconds between SIGINT and SIGKILL on stop. `target_branch`:
    where work is merged (default: the checked-out branch). Limits: `max_wall_time` (s, whole
    loop), `max_cost_usd`, `max_consecutive_failures`. `executor`: where workers run (local
    processes by default). `workspace_mode`: auto/worktree/clone/copy. `workspace_root`: where
    workspaces go (None: `parallel.workspace_root` of the configuration, relative to the repo).
    `tasks`: only these task ids. `max_log_bytes`: cap of each attempt's log file (head and
    tail kept; None: no cap).
    `events_window`: events kept in memory (`events` reads older ones back from the journal).
    `publish`: ralph's git_publish_mode -- "off" (work left on branch `ralph/<ID>`), "commit"
    (merge; the default) or "commit_and_push" (merge, then push the target to its upstream);
    None takes `agent.git_publish_mode` when configuration sets it. `resume`: an interrupted
    attempt's agent session is resumed in its kept workspace (`agent.session_timeout_hours`).
    `review`: finished work waits in status `review` for `accept`/`discard`/`requeue` (see
    `loop.review`); the loop does not finish while work waits, and a stop puts such a task
    back to `todo` with a note, its workspace and branch kept for the next run.

    `detach=True`: the loop runs in its own background process, which outlives this one (a
    kernel restart); `Loop(..., detach=True)` is then a `launch.DetachedLoop`, whose `start()`
    returns it attached, with this same interface (`ralphnb.attach(repo)` reattaches later).
    `stuck_after` (s) / `on_stuck` ("flag", "stop", "requeue") / `repeat_limit`: a worker with
    neither output nor a file change for `stuck_after` seconds, or making the same tool call
    `repeat_limit` times in a row, is flagged stuck (a `stuck` event and column), and stopped
    or requeued (a new attempt) on request; None: never flagged (`stuck`, `stuckwatch`).
    `max_cost_usd` is one live budget for all workers (`loop.budget`: `set(30.0)`, `spent`,
    `left`): reaching it starts no new attempt; `on_budget="finish"` lets running workers
    finish, `"stop"` stops them. A started loop then waits for `loop.budget.set(higher)` (or
    `stop_all()`); a blocking `run()` halts instead.

    `start()` returns at once; `run()` blocks and returns the final `df`; `await arun()`.
    `df`, `snapshot()`, `events`, `subscribe(cb)`, `logs(task_id)`; `stop(id)`, `kill(id)`,
    `stop_all()`, `pause()`, `resume()`, `transcript(id)`. The run is journaled under
    `.ralph/cache/ralphnb/runs/<run_id>/` (`Run.load(loop.run_dir).df` rebuilds `df`).
    """

    def __new__(cls, *args: Any, detach: bool = False, **kwargs: Any) -> Any:
        if detach:  # the loop lives in another process: this object is only its client
            return DetachedLoop(*args, **kwargs)
        return super().__new__(cls)

    def __init__(
        self,
        repo: str | Path = ".",
        runner: Any = None,
        parallel: int | None = None,
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
        phases: int | None = None,
        passes: int | None = None,
        review: bool = False,
        detach: bool = False,
        stuck_after: float | None = 600,
        on_stuck: str = "flag",
        repeat_limit: int = DEFAULT_REPEAT_LIMIT,
        on_budget: str = "finish",
    ) -> None:
        # long but flat: every check a Loop makes before anything is written, one option each
        if on_stuck not in ON_STUCK:
            raise ValueError(f"on_stuck must be one of {', '.join(ON_STUCK)}, not {on_stuck!r}")
        self.queue = Queue(repo)
        self.repo = self.queue.repo
        self.queue.validate()  # a queue file that does not load is an error now, not mid-run
        # the queue files relative to the repo (`.ralph/config.jsonc` may move them)
        self.queue_files = tuple(
            Path(os.path.relpath(p, self.repo)).as_posix()
            for p in (self.queue.queue_path, self.queue.done_path)
        )
        self.runner, self.runner_source = choose_runner(self.repo, runner)
        cfg = resolve_config(self.repo, warn=False)
        self.parallel = max(1, int(parallel or cfg.parallel.workers or 2))
        self.max_iterations = max(1, int(max_iterations))
        self.check = gate_check(check, cfg)
        if phases not in (None, 1, 2, 3) or (passes is not None and not 1 <= passes <= 255):
            raise RalphError(f"phases must be 1, 2 or 3 and passes 1..255, not {phases}/{passes}")
        self.phases, self.passes = phases, passes
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
        root = workspace_root or configured_root(self.repo, cfg)
        self.workspaces = open_workspaces(self.repo, root, workspace_mode, target_branch)
        self.target_branch = self.workspaces.target_branch
        git = self.workspaces.is_git
        self.publish, self.push_policy = choose_publish(self.repo, publish, is_git=git)
        self.resume_hours = session_timeout_hours(self.repo) if resume else None
        self.run_id: str | None = None
        self.run_dir: Path | None = None
        self.started_at: datetime | None = None
        self.ended_at: datetime | None = None
        self._flags = RunFlags()  # pause/stop/halt/excluded, shared with the drivers
        self._review = ReviewDesk(self._flags.cond) if review else None  # the review gate
        self._table = WorkerTable()
        self.budget = Budget(
            max_cost_usd, self._table.records, on_budget=on_budget, on_change=self._budget_set
        )
        self._hold_on_budget = True  # a blocking run() cannot wait for a raise: it halts
        sink = EventSink(
            self._table, self._flags.cond, window=events_window, subscribers=[self.budget.observe]
        )
        self._sink, self._emit = sink, sink.emit  # table -> journal -> window -> subscribers
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self._run: LiveRun | None = None  # from start()
        self._scheduler: Scheduler | None = None  # from start()
        self._watch = StuckWatch(
            records=self._table.records,
            activity=lambda r: self._scheduler.live_activity(r) if self._scheduler else None,
            resources=lambda r: h.resources() if (h := self._live_handle(r)) else None,
            emit=self._emit,
            act=lambda tid, action, note: (
                self._scheduler and self._scheduler.stuck(tid, action, note)
            ),
            stuck_after=stuck_after,
            on_stuck=on_stuck,
            repeat_limit=repeat_limit,
        )
        self._transcripts = Transcripts(
            lambda tid: runner_of(self.queue, self.runner, tid),
            lambda t: _widgets().transcript_html(t),
        )

    # ----------------------------------------------------------------- public: lifecycle

    def start(self) -> Loop:
        """Start the scheduler in a background thread and return at once."""
        if self._thread is not None:
            raise RalphError("this Loop was already started; create a new Loop for a new run")
        run = self._run = LiveRun.open(self.repo, self._on_control)
        self.run_id, self.run_dir, self.started_at = run.run_id, run.run_dir, run.started_at
        self._scheduler = new_scheduler(
            self, run, flags=self._flags, table=self._table, emit=self._emit, review=self._review
        )
        self._scheduler.hold_on_budget = self._hold_on_budget
        self._sink.journal, self._sink.on_journal_lost = run.journal, self._scheduler.fail
        track(self)
        self._thread = threading.Thread(target=self._main, name="ralphnb-loop", daemon=True)
        self._thread.start()
        self._watch.start()
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

    # ----------------------------------------------------------------- public: review

    def _desk(self) -> ReviewDesk:
        if self._review is None:
            raise RalphError("this loop has no review gate: create it with Loop(..., review=True)")
        return self._review

    def reviews(self) -> Any:
        """The tasks waiting for review now, as a small DataFrame."""
        return waiting_frame(self._desk().waiting())

    def diff(self, task_id: str) -> Any:
        """The task's change against the target branch (`.files`, `.stat`, a coloured diff in
        a notebook): the work waiting for review, else its workspace branch so far."""
        d = diff_of(self._review, self.workspaces, task_id, self.target_branch or "HEAD")
        return _widgets().diff_view(d)

    def accept(self, task_id: str, *, wait: bool = True) -> None:
        """Merge the waiting task's work (as without review; a conflict as always). `wait`:
        return once it is merged or conflicted."""
        self._desk().decide(task_id, Verdict("accept"), wait=300.0 if wait else None)

    def discard(self, task_id: str, note: str = "", *, wait: bool = True) -> None:
        """Drop the waiting task's workspace and branch; the task goes back to `todo` with
        `note` (not picked again in this run)."""
        self._desk().decide(task_id, Verdict("discard", note), wait=60.0 if wait else None)

    def requeue(self, task_id: str, feedback: str) -> None:
        """Another attempt in the same workspace whose prompt carries `feedback` (the agent's
        session is resumed where its runner can)."""
        self._desk().decide(task_id, Verdict("requeue", feedback), wait=60.0)

    # ----------------------------------------------------------------- public: looking

    @property
    def events(self) -> list[Event]:
        """Every event of this run (the ones older than `events_window` read from the journal)."""
        return self._sink.events()

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call `callback(event)` for every event from now on (from the emitting thread; keep
        it quick). Returns the function that unsubscribes."""
        return self._sink.subscribe(callback)

    def _live_handle(self, rec: dict[str, Any]) -> WorkerHandle | None:
        return self._scheduler.live_handle(rec) if self._scheduler is not None else None

    def _sample(self, rec: dict[str, Any]) -> dict[str, Any] | None:
        h = self._live_handle(rec)
        try:
            res = h.resources() if h is not None else None
            return {**res, **self._watch.columns(rec)} if res is not None else None
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

    def transcript(self, task_id: str, attempt: int | None = None) -> Any:
        """What the agent said and did in an attempt of `task_id` (its latest by default),
        rebuilt from the attempt's log: a `Transcript` (`.df`, `.entries`; HTML in a notebook)."""
        return self._transcripts.get(self._table.records(), task_id, attempt)

    def __repr__(self) -> str:
        state = "finished" if self.finished else ("running" if self.running else "not started")
        head = f"Loop({str(self.repo)!r}, runner={self.runner.name!r}, parallel={self.parallel}"
        return f"{head}) {state}\n" + attempts_table(self.snapshot())

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return _widgets().mimebundle(self, include=include, exclude=exclude)

    def dashboard(self, **kwargs: Any) -> Any:
        return _widgets().dashboard(self, **kwargs)

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
        self._watch.close()
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
