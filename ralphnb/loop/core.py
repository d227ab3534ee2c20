"""The Loop: scheduling, iterations until complete, integration back, the live worker table.

Owns: one scheduler thread (sleeps on a Condition; woken by events, times out only for real
deadlines), one driver thread per active task (workspace -> attempts -> check -> integrate),
the event sink (`_emit`: table -> journal -> subscribers -> wake), the run directory, and the
control socket other processes use. What one task's driver does, and the pure decisions, are in
`loop_tasks.py`.
Invariants: every state change is an Event applied in order under one lock; a worker's exit is
applied by its monitor thread at once; only this process writes the queue files while it runs;
integrations are serialised; a task a user stopped/killed, failed or conflicted goes back to
`todo` with a note and is not picked again in this run.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from .._time import format_time, utcnow
from ..errors import QueueError, RalphError, WorkerError
from ..queue.store import Queue
from ..workers.executors import Executor, LocalExecutor, WorkerHandle
from ..workers.registry import find_leftovers, reap_leftovers
from ..workspace.merge import commit_bookkeeping, rev
from .check import CheckType, kill_check, run_check
from .control import ControlServer
from .decide import Decision, decide, deps_merged, next_deadline, pick_tasks
from .driver import _LOOPS, RETRY_BLOCKED_S, TaskDriver, TaskRun, _quiet
from .events import Event, Journal
from .report import attempts_table
from .runs import LOOP_INFO, list_runs, new_run_id, runs_root
from .table import WorkerTable, fill_live


class Loop(TaskDriver):
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

    def __init__(
        self,
        repo: str | Path = ".",
        runner: Any = "demo",
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
    ) -> None:
        from ..runners import get_runner
        from ..workspace.workspaces import COPY_EXCLUDE, Workspaces

        self.queue = Queue(repo)
        self.repo = self.queue.repo
        # the queue files relative to the repo (`.ralph/config.jsonc` may move them)
        self.queue_files = tuple(
            Path(os.path.relpath(p, self.repo)).as_posix()
            for p in (self.queue.queue_path, self.queue.done_path)
        )
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
        if self.only is not None:
            self._check_only(self.only)
        self.executor: Executor = executor or LocalExecutor()
        # copies never take `.ralph/` (the run's own logs and lock live there; the agent
        # reaches the queue through RALPHNB_REPO)
        self.workspaces = Workspaces(
            self.repo,
            root=workspace_root,
            mode=workspace_mode,
            target_branch=target_branch,
            copy_exclude=(*COPY_EXCLUDE, ".ralph"),
        )
        self.target_branch = self.workspaces.target_branch
        if self.workspaces.is_git and not self.target_branch:
            raise RalphError(
                f"{self.repo}: HEAD is detached; check out a branch or pass "
                "target_branch='main' (`ralphnb run --target-branch main`) so "
                "finished work has somewhere to go"
            )
        if self.workspaces.is_git and rev(self.repo, f"refs/heads/{self.target_branch}") is None:
            # up front, not one failed task (and one note in the queue) per task
            raise RalphError(
                f"{self.repo}: branch {self.target_branch!r} has no commit yet; "
                "commit something first, or pass an existing target_branch"
            )
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
        self._active: dict[str, TaskRun] = {}
        self._excluded: set[str] = set()
        self._handles: dict[str, WorkerHandle] = {}  # worker id -> handle (live attempts)
        self._paused = self._stopping = False
        self._failures = 0
        self._queue_error: str | None = None  # the last queue file error seen by the scheduler
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self._journal: Journal | None = None
        self._control: ControlServer | None = None
        self._lockfile: Any = None

    def _check_only(self, ids: set[str]) -> None:
        """`tasks=` names only open tasks: an unknown or finished id is an error up front, not
        a run that silently does nothing."""
        open_ids = {t.id for t in self.queue.tasks}
        for tid in sorted(ids - open_ids):
            closed = {t.id: t.status for t in self.queue.done}
            why = (
                f"it is already {closed[tid]} (in {self.queue.done_path.name})"
                if tid in closed
                else "no such task"
            )
            raise QueueError(
                f"{self.queue.queue_path}: cannot run {tid}: {why}; "
                "`ralphnb queue list` shows the open tasks",
                path=self.queue.queue_path,
                task_id=tid,
            )

    # ----------------------------------------------------------------- public: lifecycle

    def start(self) -> Loop:
        """Start the scheduler in a background thread and return at once."""
        if self._thread is not None:
            raise RalphError("this Loop was already started; create a new Loop for a new run")
        self._take_repo_lock()
        try:
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
        except BaseException:  # nothing started: release what was taken, or the repo stays
            for res in (self._control, self._journal, self._lockfile):  # locked to this process
                if res is not None:
                    _quiet(res.close)
            self._control = self._journal = self._lockfile = None
            raise
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
        threads = [
            threading.Thread(target=self._act, args=(t, "stop_all", True), daemon=True) for t in ids
        ]
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

    @property
    def paused(self) -> bool:
        """True between `pause()` and `resume()` (no new worker starts)."""
        return self._paused

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
        return f"{head}) {state}\n" + attempts_table(self.snapshot())

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from ..view.widgets import mimebundle

        return mimebundle(self, include=include, exclude=exclude)

    def dashboard(self, **kwargs: Any) -> Any:
        from ..view.widgets import dashboard

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

    def _ev(self, kind: str, tr: TaskRun, wid: str | None = None, **data: Any) -> None:
        self._emit(Event(kind, tr.task_id, wid or f"{tr.task_id}#{tr.iteration}", data=data))

    # ----------------------------------------------------------------- the scheduler

    def _main(self) -> None:
        try:
            self._emit(
                Event(
                    "loop_started",
                    data={
                        "run_id": self.run_id,
                        "repo": str(self.repo),
                        "runner": self.runner.name,
                        "parallel": self.parallel,
                        "max_iterations": self.max_iterations,
                        "target_branch": self.target_branch,
                        "pid": os.getpid(),
                    },
                )
            )
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
                        picks, scheduled, waiting = self._pick_or_wait(now)
                    finally:
                        self._cond.acquire()
                    for t in picks:
                        if not (
                            t["id"] in self._active
                            or t["id"] in self._excluded
                            or self._stopping
                            or self._paused
                        ):
                            self._launch(t)
                else:  # a paused loop waits for resume() or stop_all()
                    waiting = bool(self._active) or (self._paused and not stop)
                if not self._active and (stop or not waiting):
                    return
                timeout = next_deadline(utcnow(), wall_deadline=wall, scheduled=scheduled)
                if self._queue_error is not None:  # re-read a broken queue file now and then
                    timeout = min(timeout or RETRY_BLOCKED_S, RETRY_BLOCKED_S)
                self._cond.wait(timeout)

    def _pick_or_wait(self, now: datetime) -> tuple[list[dict], list[datetime], bool]:
        """`_pick`, but a queue file that does not parse mid-run (a user saving it half-edited)
        does not take the running workers down: say so once, start nothing, re-read later. With
        no worker running there is nothing to protect: the error ends the loop."""
        try:
            picks = self._pick(now)
        except QueueError as exc:
            with self._cond:
                if not self._active:
                    raise
            if str(exc) != self._queue_error:
                self._queue_error = str(exc)
                self._emit(
                    Event(
                        "queue_error",
                        data={
                            "error": f"{exc}; no new worker starts until the file is valid again"
                        },
                    )
                )
            return [], [], True
        self._queue_error = None
        return picks

    def _pick(self, now: datetime) -> tuple[list[dict], list[datetime], bool]:
        """(tasks to start now, future scheduled_start times, whether anything may still run).
        Reads task attributes, never whole-task copies: this runs after every slot frees up."""
        from .._time import parse_time

        tasks = self.queue.tasks
        open_status = {t.id: t.status for t in tasks}
        with self._cond:
            busy = set(self._active) | self._excluded
            free = self.parallel - len(self._active)
        if self.only is not None:
            busy |= set(open_status) - self.only
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
        waiting = bool(scheduled) or bool(self._active) or bool(picks)
        return picks, scheduled, waiting

    def _launch(self, task: dict[str, Any], *, integrate_only: bool = False) -> None:
        """Start a driver thread for `task` (caller holds the condition)."""
        tr = TaskRun(
            task["id"],
            str(task.get("title", "")),
            integrate_only=integrate_only,
            task=task,
            marked_done=task.get("status") == "done",
        )
        self._active[tr.task_id] = tr
        tr.thread = threading.Thread(
            target=self._drive, args=(tr,), daemon=True, name=f"ralphnb-task-{tr.task_id}"
        )
        tr.thread.start()

    def _halt(self, reason: str, *, stop_reason: str | None = None) -> None:
        """Start no new attempt; with `stop_reason` also stop the running ones (cond held)."""
        if self.halt_reason is None:
            self.halt_reason = reason
            threading.Thread(
                target=self._emit, args=(Event("halted", data={"reason": reason}),), daemon=True
            ).start()
        if stop_reason:
            for tid in list(self._active):
                threading.Thread(
                    target=self._act, args=(tid, stop_reason, False), daemon=True
                ).start()
        self._cond.notify_all()

    def _act(self, task_id: str, action: str, wait: bool) -> None:
        with self._cond:
            tr = self._active.get(task_id)
            if tr is None:
                if action in ("stop_all", "timeout"):
                    return
                raise RalphError(
                    f"{task_id} has no running worker in this loop (run "
                    f"{self.run_id}); `loop.df` or `ralphnb status` lists them"
                )
            if tr.action is None or action == "kill":  # a kill overrides a pending stop
                tr.action = action
            self._excluded.add(task_id)
            handle, wid = tr.handle, f"{task_id}#{tr.iteration}"
            kill_check(tr.check_proc)  # the user's check may hang: it never outlives a stop
            self._cond.notify_all()  # a driver waiting out a pause between attempts
        if handle is None:
            return  # the driver checks tr.action before its next spawn
        if action != "kill":
            self._ev("stopping", tr, wid)  # this attempt's row, even if the next one began
        call = (lambda: handle.kill()) if action == "kill" else (lambda: handle.stop(self.grace))
        if wait:
            try:
                call()
            except WorkerError:
                pass
        else:
            threading.Thread(target=lambda: _quiet(call), daemon=True).start()

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
            raise RalphError(
                f"another loop is running on {self.repo} ({owner or 'unknown'}); "
                "stop it first (`ralphnb status`, `ralphnb stop`)"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}\n")
        fh.flush()
        self._lockfile = fh

    def _write_info(self, **extra: Any) -> None:
        from .runs import pid_create_time

        assert self.run_dir is not None
        info = {
            "run_id": self.run_id,
            "repo": str(self.repo),
            "pid": os.getpid(),
            "create_time": pid_create_time(),
            "control": self._control.address if self._control else None,
            "started_at": format_time(self.started_at or utcnow()),
            "finished_at": None,
            **extra,
        }
        tmp = self.run_dir / (LOOP_INFO + ".tmp")
        tmp.write_text(json.dumps(info))
        os.replace(tmp, self.run_dir / LOOP_INFO)

    def _recover(self) -> None:
        """Reap workers of crashed runs; integrate tasks done but not archived."""
        regs = [
            d / "workers"
            for d in list_runs(self.repo)
            if d != self.run_dir and (d / "workers").is_dir() and any((d / "workers").iterdir())
        ]
        found = len(find_leftovers(regs)) if regs else 0
        reaped = reap_leftovers(regs) if regs else 0
        pending = [t.to_dict() for t in self.queue.tasks if t.status == "done"]
        doing = [t.id for t in self.queue.tasks if t.status == "doing"]
        if found or pending or doing:
            self._emit(
                Event(
                    "recovered",
                    data={
                        "reaped": reaped,
                        "integrate": [t["id"] for t in pending],
                        "doing": doing,
                    },
                )
            )
        with self._cond:
            for t in pending:
                if self.only is None or t["id"] in self.only:
                    self._launch(t, integrate_only=True)

    def _finish(self) -> None:
        self.ended_at = utcnow()
        try:
            if self.workspaces.is_git:
                commit_bookkeeping(
                    self.repo, f"ralphnb: queue after run {self.run_id}", paths=self.queue_files
                )
        except Exception:
            pass
        self._emit(
            Event(
                "loop_finished",
                data={
                    "reason": self.halt_reason
                    or ("stopped" if self._stopping else "no runnable tasks left")
                },
            )
        )
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
            recs = [
                {k: (format_time(v) if isinstance(v, datetime) else v) for k, v in r.items()}
                for r in self.snapshot()
            ]
            return {
                "run_id": self.run_id,
                "records": recs,
                "finished": self.finished,
                "paused": self._paused,
                "halt_reason": self.halt_reason,
            }
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


__all__ = ["Decision", "Loop", "decide", "deps_merged", "next_deadline", "pick_tasks", "run_check"]
