"""Which task runs when: the scheduler of one started run, and the drivers it starts.

Owns: `Scheduler` -- the body of the loop's scheduler thread (sleeps on the run's condition;
woken by events, times out only for real deadlines: a scheduled start, the wall-time limit, a
broken queue file to re-read), the map of active tasks to their `driver.Driver`, stop/kill
requests routed to them, the loop's limits (wall time, consecutive failures: reaching one
halts the run; the live `budget.Budget`: reaching it starts no new attempt, and with
`on_budget="stop"` stops the running ones; a run that can wait (`hold_on_budget`) then waits for
the budget to be raised, as a paused one waits for resume, else it halts), the halt for an
error of the whole run (`fail`: a full disk, a loop error), and
the recovery at start (workers of crashed runs reaped, workspaces and branches left for archived
tasks removed, tasks done but not archived integrated). It builds the one `DriverContext` every
driver of the run gets.
Invariants: `active`, the failure count and the halt are changed with `flags.cond` held; a
driver is in `active` from its launch until its thread ends (one waiting for review too, so the
run does not finish while work waits for a person, but it holds no worker slot); a queue file
that stops parsing mid-run starts no new worker but stops none.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .._time import parse_time, utcnow
from ..errors import QueueError, RalphError
from ..queue.store import Queue
from ..workers.executors import Executor, WorkerHandle
from ..workers.registry import find_leftovers, reap_leftovers
from ..workspace.workspaces import Workspaces
from .budget import Budget
from .context import DriverContext, DriverSettings, RunFlags
from .decide import next_deadline, pick_tasks
from .driver import Driver
from .events import Event
from .failures import describe, no_space
from .gateway import RETRY_BLOCKED_S
from .review import ReviewDesk
from .runs import list_runs
from .stuck import Activity
from .table import LIVE, WorkerTable


@dataclass(frozen=True)
class Limits:
    """How much of the queue a run works, and when it halts."""

    parallel: int  # drivers at once
    only: frozenset[str] | None  # only these task ids (None: all)
    wall_deadline: datetime | None  # max_wall_time reached: the running workers time out
    max_cost_usd: float | None
    max_consecutive_failures: int | None


class Scheduler:
    """The scheduling of one run (see the module docstring); `run()` is the thread's body."""

    def __init__(
        self,
        settings: DriverSettings,
        limits: Limits,
        flags: RunFlags,
        *,
        emit: Callable[[Event], None],
        queue: Queue,
        workspaces: Workspaces,
        executor: Executor,
        table: WorkerTable,
        review: ReviewDesk | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.limits = limits
        self.review = review
        self.budget = budget
        self.hold_on_budget = True  # False: reaching the budget halts the run (a blocking run)
        self._budget_said: str | None = None  # the budget event last emitted (cond held)
        self.flags = flags
        self.emit = emit
        self.queue = queue
        self.table = table
        self.ctx = DriverContext(
            settings=settings,
            flags=flags,
            emit=emit,
            queue=queue,
            workspaces=workspaces,
            executor=executor,
            merge_lock=threading.Lock(),
            attempt_ended=self.attempt_ended,
            fail=self.fail,
            row=table.get,
            review=review,
            slot_free=lambda: self._busy() < self.limits.parallel,
            budget=budget,
        )
        self.active: dict[str, Driver] = {}  # task id -> its driver (flags.cond held)
        self._failures = 0
        self._queue_error: str | None = None  # the last queue file error seen

    def run(self) -> None:
        """Recover, then start drivers until nothing is left to run; with an unexpected error,
        halt, stop every worker and wait for the drivers (the loop must always finish)."""
        try:
            self._recover()
            self._schedule()
        except Exception as exc:
            why = describe(exc)  # a full disk is said as such; anything else is a loop error
            self.fail(why if no_space(exc) else f"loop error: {type(exc).__name__}: {why}")
            self.stop_all()
            with self.flags.cond:
                while self.active:
                    self.flags.cond.wait()

    # ------------------------------------------------------------ asked from outside

    def act(self, task_id: str, action: str, wait: bool) -> None:
        """Route a stop or kill to the task's driver; RalphError if it has none (but a stop of
        every worker, or a timeout, of a task that has just ended is fine)."""
        with self.flags.cond:
            driver = self.active.get(task_id)
            if driver is None:
                if action in ("stop_all", "timeout"):
                    return
                raise RalphError(
                    f"{task_id} has no running worker in this loop (run "
                    f"{self.ctx.settings.run_id}); `loop.df` or `ralphnb status` lists them"
                )
            self.flags.excluded.add(task_id)
        driver.request(action, wait=wait)

    def stop_all(self, *, wait: bool = True) -> None:
        """Start nothing new and stop every active task's worker."""
        with self.flags.cond:
            self.flags.stopping = True
            ids = list(self.active)
            self.flags.cond.notify_all()
        threads = [
            threading.Thread(target=self.act, args=(t, "stop_all", True), daemon=True) for t in ids
        ]
        for th in threads:
            th.start()
        if wait:
            for th in threads:
                th.join()

    def live_handle(self, rec: dict[str, Any]) -> WorkerHandle | None:
        """The live worker of a table record's attempt, if it is running now."""
        driver = self.active.get(rec["task_id"])
        return driver.live_handle(rec["worker_id"]) if driver is not None else None

    def live_activity(self, rec: dict[str, Any]) -> Activity | None:
        """The `stuck.Activity` of a table record's attempt while it runs, else None."""
        driver = self.active.get(rec["task_id"])
        att = driver.attempt if driver is not None else None
        live = att is not None and driver is not None and driver.live_handle(rec["worker_id"])
        return att.activity if live and att is not None else None

    def stuck(self, task_id: str, action: str, note: str) -> None:
        """The stuck watch's `on_stuck`: "stop" the attempt (the task goes back with `note`) or
        "requeue" it (stopped, then a new attempt); never blocks."""
        driver = self.active.get(task_id)
        if driver is not None:
            driver.note = note
        self.act(task_id, "stuck" if action == "stop" else action, False)

    def fail(self, error: str) -> None:
        """An error of the whole run (a write that failed for a full disk, a loop error): halt
        and stop every running worker; their tasks go back to `todo` where that can be written.
        The first error is the loop's `error` (and, if nothing halted it before, its reason)."""
        with self.flags.cond:
            if self.flags.error is None:
                self.flags.error = error
            self._halt(error, stop_reason="stop_all")

    def attempt_ended(self, failed: bool) -> None:
        """A driver's attempt ended (`failed`: with an error): the limits on consecutive
        failures and on cost may halt the run."""
        lim = self.limits
        with self.flags.cond:
            self._failures = self._failures + 1 if failed else 0
            most = lim.max_consecutive_failures
            if most is not None and self._failures >= most:
                self._halt(f"{self._failures} consecutive failed attempts")
            self.flags.cond.notify_all()  # the budget may be reached: `_schedule` looks

    # ------------------------------------------------------------ the scheduler thread

    def _schedule(self) -> None:
        flags, wall = self.flags, self.limits.wall_deadline
        with flags.cond:
            while True:
                now = utcnow()
                if wall is not None and now >= wall and flags.halt_reason is None:
                    self._halt("max_wall_time reached", stop_reason="timeout")
                stop = flags.stopping or flags.halt_reason is not None
                held = not stop and self._budget_held()
                stop = stop or flags.halt_reason is not None  # a budget that halts the run
                scheduled: list[datetime] = []
                if held:
                    waiting = True  # until the budget is raised, or stop_all()
                elif not stop and not flags.paused and self._busy() < self.limits.parallel:
                    flags.cond.release()
                    try:
                        picks, scheduled, waiting = self._pick_or_wait(now)
                    finally:
                        flags.cond.acquire()
                    for t in picks:
                        if not (
                            t["id"] in self.active
                            or t["id"] in flags.excluded
                            or flags.stopping
                            or flags.paused
                            or self._budget_held()
                        ):
                            self._launch(t)
                else:  # a paused loop waits for resume() or stop_all()
                    waiting = bool(self.active) or (flags.paused and not stop)
                if not self.active and (stop or not waiting):
                    return
                timeout = next_deadline(utcnow(), wall_deadline=wall, scheduled=scheduled)
                if self._queue_error is not None:  # re-read a broken queue file now and then
                    timeout = min(timeout or RETRY_BLOCKED_S, RETRY_BLOCKED_S)
                flags.cond.wait(timeout)

    def _budget_held(self) -> bool:
        """Is the budget reached (cond held)? Says so once per reaching (an event), stops the
        running workers with `on_budget="stop"`, halts a run that cannot wait for a raise."""
        reason = self.budget.reason() if self.budget is not None else None
        if reason is None:
            if self._budget_said is not None and self.budget is not None:
                self._budget_said = None
                ev = Event("budget_raised", data=self.budget.state())
                threading.Thread(target=self.emit, args=(ev,), daemon=True).start()
            return False
        assert self.budget is not None
        if self._budget_said is None:
            self._budget_said = reason
            data = {**self.budget.state(), "reason": reason, "waiting": self.hold_on_budget}
            ev = Event("budget_reached", data=data)
            threading.Thread(target=self.emit, args=(ev,), daemon=True).start()
            if self.budget.on_budget == "stop":  # the live workers; a finished attempt's
                live = [
                    t for t, d in self.active.items() if self._live(d.worker_id)
                ]  # merge goes on
                for tid in live:
                    threading.Thread(
                        target=self.act, args=(tid, "stop_all", False), daemon=True
                    ).start()
        if not self.hold_on_budget:
            self._halt(reason)
        return True

    def _live(self, worker_id: str) -> bool:
        rec = self.table.get(worker_id)
        return rec is not None and rec["status"] in LIVE

    def _pick_or_wait(self, now: datetime) -> tuple[list[dict], list[datetime], bool]:
        """`_pick`, but a queue file that does not parse mid-run (a user saving it half-edited)
        does not take the running workers down: say so once, start nothing, re-read later. With
        no worker running there is nothing to protect: the error ends the loop."""
        try:
            picks = self._pick(now)
        except QueueError as exc:
            with self.flags.cond:
                if not self.active:
                    raise
            if str(exc) != self._queue_error:
                self._queue_error = str(exc)
                error = f"{exc}; no new worker starts until the file is valid again"
                self.emit(Event("queue_error", data={"error": error}))
            return [], [], True
        self._queue_error = None
        return picks

    def _pick(self, now: datetime) -> tuple[list[dict], list[datetime], bool]:
        """(tasks to start now, future scheduled_start times, whether anything may still run).
        Reads task attributes, never whole-task copies: this runs after every slot frees up."""
        tasks = self.queue.tasks
        open_status = {t.id: t.status for t in tasks}
        with self.flags.cond:
            busy = set(self.active) | self.flags.excluded
            free = self.limits.parallel - self._busy()
        if self.limits.only is not None:
            busy |= set(open_status) - self.limits.only
        runnable = {t.id: t for t in self.queue.runnable(exclude=busy, now=now)}
        light = [{"id": tid, "depends_on": t.depends_on} for tid, t in runnable.items()]
        picks = [
            runnable[t["id"]].to_dict()
            for t in pick_tasks(light, open_status, busy=busy, free=free)
        ]
        scheduled = [
            parse_time(t.scheduled_start)
            for t in tasks
            if t.status == "todo"
            and t.id not in busy
            and t.scheduled_start
            and parse_time(t.scheduled_start) > now
        ]
        waiting = bool(scheduled) or bool(self.active) or bool(picks)
        return picks, scheduled, waiting

    def _busy(self) -> int:
        """Drivers holding a worker slot: a task waiting for review holds none (cond held)."""
        return len(self.active) - (self.review.count() if self.review is not None else 0)

    def _launch(self, task: dict[str, Any], *, integrate_only: bool = False) -> None:
        """Start a driver thread for `task` (caller holds the condition)."""
        driver = Driver(self.ctx, task, integrate_only=integrate_only)
        self.active[driver.task_id] = driver
        name = f"ralphnb-task-{driver.task_id}"
        threading.Thread(target=self._drive, args=(driver,), daemon=True, name=name).start()

    def _drive(self, driver: Driver) -> None:
        try:
            driver.run()
        finally:
            with self.flags.cond:
                self.active.pop(driver.task_id, None)
                self.flags.cond.notify_all()

    def _halt(self, reason: str, *, stop_reason: str | None = None) -> None:
        """Start no new attempt; with `stop_reason` also stop the running ones (cond held)."""
        if self.flags.halt_reason is None:
            self.flags.halt_reason = reason
            halted = Event("halted", data={"reason": reason})
            threading.Thread(target=self.emit, args=(halted,), daemon=True).start()
        if stop_reason:
            for tid in list(self.active):
                threading.Thread(
                    target=self.act, args=(tid, stop_reason, False), daemon=True
                ).start()
        self.flags.cond.notify_all()

    def _remove_archived(self) -> list[str]:
        """Remove the workspaces and the branches ralphnb made for tasks already archived (a
        crash between archiving and removing leaves them); a branch it did not make stays
        (`Workspaces.remove`). The ids whose leftovers were removed."""
        ws = self.ctx.workspaces
        archived = {t.id for t in self.queue.done}
        left = {w.task_id for w in ws.existing()} | set(ws.created_branches())
        gone = sorted(left & archived)
        for task_id in gone:
            ws.remove(task_id, delete_branch=True)
        return gone

    def _recover(self) -> None:
        """Reap workers of crashed runs; remove what was left for archived tasks; integrate
        tasks done but not archived."""
        repo, run_dir = self.ctx.settings.repo, self.ctx.settings.run_dir
        regs = [
            d / "workers"
            for d in list_runs(repo)
            if d != run_dir and (d / "workers").is_dir() and any((d / "workers").iterdir())
        ]
        found = len(find_leftovers(regs)) if regs else 0
        reaped = reap_leftovers(regs) if regs else 0
        pending = [t.to_dict() for t in self.queue.tasks if t.status == "done"]
        doing = [t.id for t in self.queue.tasks if t.status == "doing"]
        removed = self._remove_archived()
        if found or pending or doing or removed:
            data = {"reaped": reaped, "integrate": [t["id"] for t in pending], "doing": doing}
            self.emit(Event("recovered", data={**data, "removed": removed}))
        with self.flags.cond:
            for t in pending:
                if self.limits.only is None or t["id"] in self.limits.only:
                    self._launch(t, integrate_only=True)
