"""`Sweep`: best-of-N runs of tasks x variants x repeats, one live budget, winners merged later.

Owns: the public API of a sweep (construction and checks up front, start/run/wait,
stop/kill per row, stop_all/pause/resume, `df`/`snapshot`/`events`/`subscribe`/`logs` as a
`Loop` has them, so the same dashboard shows it; `results`, `summary()`, `best()`, `merge()`,
`plot()`, `Sweep.load(path)`), its scheduler thread (a pool of `parallel` trial threads held by
the budget) and its event sink (worker table -> journal -> subscribers -> wake), all built on
the loop's pieces: the run directory and journal (`LiveRun`), `WorkerTable`, `Budget`,
`RunFlags`, the executors. One trial's life is `trial.TrialDriver`; the numbers are `results`.
Invariants: every trial's workspace starts at `base` (the target branch's commit when the sweep
was made); nothing is merged and no queue task is marked done until `merge()`; `Sweep.load`
rebuilds the same `df` and `results` from the journal (`sweep_started` holds the grid).
"""

from __future__ import annotations

import secrets
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .._time import utcnow
from ..errors import RalphError
from ..loop import viewhook
from ..loop.budget import Budget
from ..loop.check import CheckType
from ..loop.context import RunFlags
from ..loop.events import Event
from ..loop.report import attempts_table
from ..loop.requests import answer
from ..loop.rundir import LiveRun
from ..loop.sink import EventSink
from ..loop.table import LIVE, WorkerTable, fill_live
from ..queue.store import Queue
from ..workers.executors import Executor, LocalExecutor
from ..workers.logfile import DEFAULT_MAX_LOG_BYTES, tail_lines
from ..workspace.merge import rev
from ..workspace.workspaces import Workspaces
from .merging import merge_winners, remove_workspaces
from .results import pick_best, result_rows, results_frame, summarize
from .saved import grid_data, load_sweep, select_tasks
from .trial import Trial, TrialContext, TrialDriver
from .variants import Variant, variants_from


def _live(rec: dict[str, Any] | None) -> bool:
    """A worker table record whose process may still run (a trial to stop at the budget)."""
    return rec is not None and rec["status"] in LIVE


def _widgets() -> Any:
    """The dashboard, through the loop's one lazy hook (the view imports this room)."""
    return viewhook.widgets()


class Sweep:
    """Run every task of `tasks` with every variant, `repeats` times, each run in its own
    workspace from the same base commit; compare; merge the winners.

    `tasks`: task ids, a predicate on `Task`, or None (every open todo/doing task).
    `variants`: name -> runner object, `Variant(runner, prompt_template)` or "runner[:model]";
    or a list of "runner[:model]" names. `check`: as `Loop(check=...)`, run when the agent says
    it is done: a run passes when it completes and its check passes. `max_iterations`:
    attempts per run (default 1: best-of-N compares single shots). `max_cost_usd`: one live
    budget for the whole sweep (`sweep.budget`), with `on_budget` as on a Loop.
    """

    def __init__(
        self,
        repo: str | Path = ".",
        tasks: Iterable[str] | Callable[[Any], bool] | None = None,
        variants: Mapping[str, Any] | Iterable[str] = ("demo",),
        repeats: int = 1,
        check: CheckType = None,
        parallel: int = 2,
        max_cost_usd: float | None = None,
        *,
        on_budget: str = "finish",
        max_iterations: int = 1,
        completion_promise: str = "<promise>COMPLETE</promise>",
        grace: float = 1.5,
        executor: Executor | None = None,
        workspace_root: str | Path | None = None,
        target_branch: str | None = None,
        max_log_bytes: int | None = DEFAULT_MAX_LOG_BYTES,
    ) -> None:
        # long but flat: checks up front, then one attribute per option and per piece of state
        # long only by the object's fields: checks first (nothing is written before they pass),
        # then the grid of runs, then the run's state
        self.queue = Queue(repo)
        self.repo = self.queue.repo
        self.queue.validate()
        self.variants: dict[str, Variant] = variants_from(variants)
        self.repeats = max(1, int(repeats))
        self.tasks = select_tasks(self.queue, tasks)
        probe = Workspaces(self.repo, root=workspace_root, target_branch=target_branch)
        if not probe.is_git or not probe.target_branch:
            raise RalphError(f"{self.repo}: a sweep needs a git repository on a branch")
        self.target_branch: str = probe.target_branch
        base = rev(self.repo, f"refs/heads/{self.target_branch}")
        if base is None:
            raise RalphError(f"{self.repo}: branch {self.target_branch!r} has no commit yet")
        self.base: str = base
        # every trial's workspace starts at the same commit, whatever the branch does meanwhile
        self.workspaces = Workspaces(self.repo, root=probe.root, target_branch=self.base)
        tag = secrets.token_hex(2).upper()  # workspace ids of this sweep: S<tag>-<n>
        grid = [
            (t, n, r) for t in self.tasks for n in self.variants for r in range(1, self.repeats + 1)
        ]
        self.trials = [
            Trial(f"{t['id']}.{name}.{r}", t, name, r, f"S{tag}-{i:04d}")
            for i, (t, name, r) in enumerate(grid, 1)
        ]
        self.check, self.parallel = check, max(1, int(parallel))
        self.max_iterations = max(1, int(max_iterations))
        self.completion_promise, self.grace = completion_promise, grace
        self.max_log_bytes = max_log_bytes
        self.executor: Executor = executor or LocalExecutor()
        self._table = WorkerTable()
        self.budget = Budget(
            max_cost_usd,
            self._table.records,
            on_budget=on_budget,
            on_change=lambda b: self._emit(Event("budget_set", data=b.state())),
        )
        self._flags = RunFlags()
        self._sink = EventSink(self._table, self._flags.cond, subscribers=[self.budget.observe])
        self._sink.subscribe(self._note_end)
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self._run: LiveRun | None = None
        self._active: dict[str, TrialDriver] = {}  # flags.cond held
        self._ends: dict[str, dict[str, Any]] = {}  # key -> trial_end data
        self._hold_on_budget = True
        self.run_id: str | None = None
        self.run_dir: Path | None = None
        self.started_at = self.ended_at = None
        self.merged: list[str] = []

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> Sweep:
        if self._thread is not None or self._finished.is_set():
            raise RalphError("this Sweep was already started; make a new Sweep for a new run")
        run = self._run = LiveRun.open(self.repo, lambda req: answer(self, req))
        self.run_id, self.run_dir, self.started_at = run.run_id, run.run_dir, run.started_at
        self._sink.journal, self._sink.on_journal_lost = run.journal, self._journal_lost
        self._thread = threading.Thread(target=self._main, name="ralphnb-sweep", daemon=True)
        self._thread.start()
        return self

    def run(self) -> pd.DataFrame:
        """Start, block until every run ended, return `results` (Ctrl-C stops the workers).
        Reaching the budget here halts the sweep (nobody could raise it)."""
        if self._thread is None:
            self._hold_on_budget = False
            self.start()
        try:
            self.wait()
        except KeyboardInterrupt:
            self.stop_all()
            self.wait(30)
            raise
        return self.results

    def wait(self, timeout: float | None = None) -> bool:
        return True if self._thread is None and not self.run_dir else self._finished.wait(timeout)

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._finished.is_set()

    @property
    def paused(self) -> bool:
        return self._flags.paused

    @property
    def halt_reason(self) -> str | None:
        return self._flags.halt_reason

    # ----------------------------------------------------------------- control

    def stop(self, key: str, *, wait: bool = True) -> None:
        """Stop one run (a row's `task_id` is the run's key) gracefully; it does not pass."""
        self._act(key, "stop", wait)

    def kill(self, key: str, *, wait: bool = True) -> None:
        self._act(key, "kill", wait)

    def _act(self, key: str, action: str, wait: bool) -> None:
        with self._flags.cond:
            driver = self._active.get(key)
            if driver is None:
                self._flags.excluded.add(key)  # not started yet: it never starts
                if key not in {t.key for t in self.trials}:
                    raise RalphError(f"{key} is not a run of this sweep (see sweep.results.key)")
                return
        driver.request(action, wait=wait)

    def stop_all(self, *, wait: bool = True) -> None:
        with self._flags.cond:
            self._flags.stopping = True
            drivers = list(self._active.values())
            self._flags.cond.notify_all()
        for d in drivers:
            d.request("stop_all", wait=wait)

    def pause(self) -> None:
        with self._flags.cond:
            self._flags.paused = True
        self._emit(Event("paused"))

    def resume(self) -> None:
        with self._flags.cond:
            self._flags.paused = False
            self._flags.cond.notify_all()
        self._emit(Event("resumed"))

    # ----------------------------------------------------------------- looking

    @property
    def events(self) -> list[Event]:
        """Every event of this sweep (older ones read back from its journal)."""
        return self._sink.events()

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        return self._sink.subscribe(callback)

    def _sample(self, rec: dict[str, Any]) -> dict[str, Any] | None:
        driver = self._active.get(rec["task_id"])
        h = driver.live_handle(rec["worker_id"]) if driver is not None else None
        try:
            return h.resources() if h is not None else None
        except Exception:
            return None

    def snapshot(self, sample: bool = True) -> list[dict[str, Any]]:
        recs = self._table.records()
        fill_live(recs, self._sample if sample else None, utcnow())
        return recs

    @property
    def df(self) -> pd.DataFrame:
        """One row per attempt, as `loop.df` (its `task_id` is the run's key)."""
        return self._table.df(self._sample, utcnow())

    @property
    def progress(self) -> tuple[int, int]:
        """(runs ended, runs in the sweep)."""
        return len(self._ends), len(self.trials)

    def logs(self, key: str, n: int = 50) -> list[str]:
        recs = [r for r in self._table.records() if r["task_id"] == key]
        if not recs:
            raise RalphError(f"no attempt of {key} in this sweep yet")
        driver = self._active.get(key)
        h = driver.live_handle(recs[-1]["worker_id"]) if driver is not None else None
        return h.tail(n) if h is not None else tail_lines(recs[-1]["log_path"], n)

    @property
    def results(self) -> pd.DataFrame:
        """One row per run: task_id, variant, repeat, passed, cost_usd, tokens_in/out, turns,
        elapsed_s, iterations, files_changed, lines_added, lines_removed, exit, error."""
        with self._sink.lock:
            ends = dict(self._ends)
        grid = [
            {"key": t.key, "task_id": t.task["id"], "variant": t.variant, "repeat": t.repeat}
            for t in self.trials
        ]
        return results_frame(result_rows(grid, self._table.records(), ends))

    def summary(self) -> pd.DataFrame:
        """Per variant: runs, passes, pass rate, median cost and time, cost per pass."""
        return summarize(self.results)

    def best(self, by: Iterable[str] = ("passed", "cost_usd")) -> pd.DataFrame:
        """One winning run per task (only passed runs win while `passed` is in `by`)."""
        return pick_best(self.results, tuple(by))

    def plot(self, **kwargs: Any) -> Any:
        """Pass rate and cost per variant (matplotlib; an optional dependency)."""
        from .plots import plot_summary

        return plot_summary(self.summary(), **kwargs)

    def merge(self, winners: pd.DataFrame | None = None) -> pd.DataFrame:
        """Integrate the winners' work (default: `best()`) into the target branch, mark their
        tasks done, remove every workspace of this sweep. One row per winner: its status."""
        if self.running:
            raise RalphError("the sweep is still running: wait() for it, then merge")
        winners = self.best() if winners is None else winners
        out = merge_winners(self, winners)
        self.merged += [
            str(k) for k, s in zip(out["key"], out["status"], strict=True) if s == "integrated"
        ]
        return out

    def discard(self) -> int:
        """Remove every run's workspace and branch without merging anything (how many)."""
        if self.running:
            raise RalphError("the sweep is still running: stop_all() or wait() first")
        return remove_workspaces(self)

    def __repr__(self) -> str:
        state = "finished" if self.finished else ("running" if self.running else "not started")
        head = f"Sweep({str(self.repo)!r}, {len(self.tasks)} tasks x {len(self.variants)} "
        head += f"variants x {self.repeats} repeats, parallel={self.parallel}) {state}"
        return f"{head}\n" + attempts_table(self.snapshot(sample=False))

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return _widgets().mimebundle(self, include=include, exclude=exclude)

    def dashboard(self, **kwargs: Any) -> Any:
        return _widgets().dashboard(self, **kwargs)

    # ----------------------------------------------------------------- events, scheduling

    def _emit(self, event: Event) -> None:
        self._sink.emit(event)

    def _note_end(self, event: Event) -> None:
        """A trial's end, kept for `results` (a subscriber: called with the sink's lock held)."""
        if event.kind == "trial_end" and event.task_id:
            self._ends[event.task_id] = dict(event.data)

    def _journal_lost(self, why: str) -> None:
        """The journal failed (a full disk): the sweep could not be loaded back; halt it."""
        with self._flags.cond:
            if self._flags.halt_reason is None:
                self._flags.halt_reason = why
            self._flags.cond.notify_all()

    def _main(self) -> None:
        assert self._run is not None
        try:
            self._emit(Event("sweep_started", data=grid_data(self)))
            self._schedule()
        except Exception as exc:  # the sweep always finishes
            self._flags.error = f"sweep error: {type(exc).__name__}: {exc}"
            self.stop_all(wait=False)
        finally:
            with self._flags.cond:
                while self._active:
                    self._flags.cond.wait()
            self.ended_at = utcnow()
            reason = self._flags.halt_reason or ("stopped" if self._flags.stopping else "done")
            self._emit(Event("loop_finished", data={"reason": reason}))
            self._run.close(self.ended_at)
            self._finished.set()

    def _context(self) -> TrialContext:
        assert self.run_dir is not None
        return TrialContext(
            run_dir=self.run_dir,
            repo=self.repo,
            workspaces=self.workspaces,
            executor=self.executor,
            flags=self._flags,
            budget=self.budget,
            emit=self._emit,
            check=self.check,
            max_iterations=self.max_iterations,
            completion_promise=self.completion_promise,
            grace=self.grace,
            max_log_bytes=self.max_log_bytes,
        )

    def _schedule(self) -> None:
        """Start trials, `parallel` at once, in grid order; the budget holds (or halts) it."""
        ctx, flags = self._context(), self._flags
        pending = deque(self.trials)
        said: str | None = None
        with flags.cond:
            while True:
                if flags.stopping or flags.halt_reason:
                    return
                reason = self.budget.reason()
                if reason is not None and said is None:
                    said = reason
                    self._budget_reached(reason)
                elif reason is None and said is not None:
                    said = None
                    self._emit_later(Event("budget_raised", data=self.budget.state()))
                if reason is not None and not self._hold_on_budget:
                    flags.halt_reason = reason
                    flags.cond.notify_all()
                    return
                while pending and pending[0].key in flags.excluded:
                    pending.popleft()
                free = len(self._active) < self.parallel
                if pending and free and not flags.paused and reason is None:
                    trial = pending.popleft()
                    driver = TrialDriver(ctx, trial, self.variants[trial.variant])
                    self._active[trial.key] = driver
                    threading.Thread(
                        target=self._drive, args=(driver,), daemon=True, name=f"sweep-{trial.key}"
                    ).start()
                    continue
                if not pending and not self._active:
                    return
                flags.cond.wait()

    def _budget_reached(self, reason: str) -> None:
        """Say so (an event), and stop the running trials with `on_budget="stop"` (cond held)."""
        data = {**self.budget.state(), "reason": reason, "waiting": self._hold_on_budget}
        self._emit_later(Event("budget_reached", data=data))
        if self.budget.on_budget == "stop":
            live = [d for d in self._active.values() if _live(self._table.get(d.worker_id))]
            for d in live:
                threading.Thread(
                    target=d.request, args=("stop_all",), kwargs={"wait": False}, daemon=True
                ).start()

    def _emit_later(self, event: Event) -> None:
        threading.Thread(target=self._emit, args=(event,), daemon=True).start()

    def _drive(self, driver: TrialDriver) -> None:
        try:
            driver.run()
        finally:
            with self._flags.cond:
                self._active.pop(driver.trial.key, None)
                self._flags.cond.notify_all()

    # ----------------------------------------------------------------- load

    @classmethod
    def load(cls, path: str | Path) -> Sweep:
        """A finished sweep back from its run directory (or `events.jsonl`): `df`, `results`,
        `summary()`, `best()` and `merge()`."""
        return load_sweep(cls, path)


__all__ = ["Sweep"]
