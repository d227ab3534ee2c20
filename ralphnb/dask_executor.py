"""Run workers on a Dask distributed cluster, with the same stop/kill/exit semantics as locally.

Owns: `DaskExecutor` (client side: spawn, stop/kill over `client.run` aimed at the owning Dask
worker, lost-worker detection, live lines and resources streamed back) and the remote side (the
task function that supervises one agent with `process.Worker`, and `RalphnbWorkerPlugin`, whose
teardown kills every agent of a closing Dask worker, live in `_dask_remote.py`).
Does not own: scheduling or what an exit means (the loop), workspaces (the loop creates them on
the client; with workspace="shared" the Dask workers use those paths — LocalCluster or a shared
filesystem; with workspace="ship" a copy travels with the task and its result comes back,
see `_dask_ship.py`).
Invariants:
- `Future.cancel()` does not interrupt a running task, so stop/kill never rely on it: the agent
  runs in its own session under the shim and is stopped by its own supervisor on the owner worker,
  after checking the process identity (pid + create_time).
- Every handle gets exactly one exit, delivered in order after its lines: the agent's own exit, or
  a synthesised one with reason "lost" when its Dask worker died or the cluster went away (after
  its processes were swept on that host).
- Each task is pinned to one Dask worker and refuses to run anywhere else, so a lost task is never
  silently re-run by the scheduler.
- With `queue_writes="client"` the agent's `ralphnb task done` lands in a stub queue on the worker;
  the client applies it to the user's queue. Only the client writes the user's queue files.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue as _queue
import signal
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

try:
    from distributed import Client
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("DaskExecutor needs Dask distributed: pip install 'ralphnb[dask]'") from exc

from ._dask_remote import (
    LOST,
    PLUGIN_NAME,
    RalphnbWorkerPlugin,
    _quiet_kill,
    _remote_control,
    _remote_run,
    _remote_sweep,
    reap_dead_workers,
)
from .errors import WorkerError
from .process import ExitInfo

__all__ = ["LOST", "DaskExecutor", "DaskExitInfo", "DaskHandle", "RalphnbWorkerPlugin",
           "reap_dead_workers"]

log = logging.getLogger(__name__)

# fields of a task an agent added in its stub queue that the user's queue sets itself
_NOT_COPIED = ("id", "title", "status", "created_at", "updated_at", "started_at",
               "completed_at")


def _spec_dict(spec: Any) -> dict[str, Any]:
    get = spec.get if isinstance(spec, Mapping) else (lambda k, d=None: getattr(spec, k, d))
    argv = list(get("argv"))
    stdin = get("stdin_path")
    return {
        "argv": [str(a) for a in argv], "env": dict(get("env") or {}),
        "cwd": str(get("cwd")), "log_path": str(get("log_path")),
        "worker_id": str(get("worker_id")), "task_id": get("task_id"),
        "stdin_path": str(stdin) if stdin else None,
        "tail_lines": int(get("tail_lines", 200) or 200),
    }  # fmt: skip


def _callback(callbacks: Any, name: str) -> Callable[..., Any] | None:
    if callbacks is None:
        return None
    if isinstance(callbacks, Mapping):
        return callbacks.get(name)
    return getattr(callbacks, name, None)


def _local_host(host: str) -> bool:
    if host in ("127.0.0.1", "localhost", "::1"):
        return True
    with contextlib.suppress(OSError):
        return host in socket.gethostbyname_ex(socket.gethostname())[2]
    return False


@dataclass(frozen=True)
class DaskExitInfo(ExitInfo):
    """An `ExitInfo` that also says where the agent ran and, for reason "lost" (its Dask worker
    died, the cluster closed, its task was cancelled) or a start failure, why."""

    address: str | None = None
    detail: str | None = None


class DaskHandle:
    """One agent running on a Dask worker; same surface as a local worker handle."""

    def __init__(self, executor: DaskExecutor, spec: dict[str, Any], callbacks: Any,
                 address: str, tail_lines: int = 200) -> None:  # fmt: skip
        self._ex = executor
        self.hid = uuid.uuid4().hex[:12]
        self.spec = spec
        self.task_id: str | None = spec.get("task_id")
        self.worker_id: str = spec["worker_id"]
        self.address = address  # the owning Dask worker
        self.log_path = Path(spec["log_path"])
        self.pid: int | None = None  # on the owner's host
        self.create_time: float | None = None
        self.started_at = datetime.now(UTC)
        self.exit_info: ExitInfo | None = None
        self.detail: str | None = None  # why a "lost" exit happened
        self.future: Any = None
        self._on_line = _callback(callbacks, "on_line")
        self._on_exit = _callback(callbacks, "on_exit")
        self._on_drained = _callback(callbacks, "on_drained")
        self._tail: collections.deque[str] = collections.deque(maxlen=max(1, tail_lines))
        self._res: dict[str, float | int] = {"cpu_percent": 0.0, "rss_mb": 0.0, "num_procs": 0}
        self._started = threading.Event()
        self._exited = threading.Event()
        self._lock = threading.Lock()
        self._losing = False
        self._spawning = False
        self._logf: Any = None  # ship mode: the client writes the log from the stream
        self.start_error: str | None = None
        self.host = ""

    def __repr__(self) -> str:
        state = "exited" if self._exited.is_set() else "running"
        return f"<DaskHandle {self.worker_id} task={self.task_id} on {self.address} {state}>"

    # ------------------------------------------------------------ applied on the dispatcher

    def _apply(self, msg: dict[str, Any]) -> None:
        kind = msg.get("k")
        if self._exited.is_set():
            return
        if kind == "lines":
            for line in msg["lines"]:
                self._line(line)
        elif kind == "res":
            self._res = dict(msg["res"])
        elif kind == "started":
            self.pid, self.create_time = msg["pid"], msg["create_time"]
            if msg.get("started_at"):
                self.started_at = datetime.fromisoformat(msg["started_at"])
            self._started.set()
        elif kind == "error":
            if self._spawning:  # spawn() raises it, as the local executor does: no exit
                self.start_error = msg["message"]
                self._ex._forget(self)
                self._started.set()
                return
            self._line(f"[ralphnb] cannot start on {self.address}: {msg['message']}")
            self._finish(self._synth(returncode=127, reason=None, detail=msg["message"]),
                         msg["message"])
        elif kind == "exit":
            ex = msg["exit"]
            if ex.get("shipped") or ex.get("ship_error"):
                self._bring_back(ex)
            if ex.get("marks"):
                self._apply_marks(ex["marks"])
            if ex.get("detail"):
                self._line(f"[ralphnb] {ex['detail']}")
            stderr = ex.get("stderr_path") if self._logf is None else None  # shipped: remote
            info = DaskExitInfo(
                pid=ex["pid"], returncode=ex["returncode"], signal=ex["signal"],
                started_at=datetime.fromisoformat(ex["started_at"]),
                ended_at=datetime.fromisoformat(ex["ended_at"]), log_path=self.log_path,
                reason=ex["reason"], task_id=self.task_id, worker_id=self.worker_id,
                stderr_path=Path(stderr) if stderr else None, address=self.address,
                detail=ex.get("detail"),
            )  # fmt: skip
            self._finish(info, ex.get("detail"))
        elif kind == "abort":  # never ran; a late start is killed as a stray
            self._finish(self._synth(signal_=int(signal.SIGKILL), reason=msg["reason"],
                                     detail=msg["why"]), msg["why"])
        elif kind == "lost":
            if self._logf is None:  # shared path: the remote writer is gone, add the reason
                with contextlib.suppress(OSError), open(self.log_path, "a", encoding="utf-8") as f:
                    f.write(f"[ralphnb] {msg['why']}\n")
            self._line(f"[ralphnb] {msg['why']}")
            self._finish(self._synth(signal_=int(signal.SIGKILL), reason=LOST, detail=msg["why"]),
                         msg["why"])

    def _inbox(self, msg: dict[str, Any]) -> None:
        self._ex._inbox.put((self, msg))

    def _bring_back(self, ex: dict[str, Any]) -> None:
        """Mirror the shipped workspace's final tree over the client's workspace."""
        from ._dask_ship import sync_back

        err = ex.get("ship_error")
        if err is None:
            try:
                res = self.future.result(timeout=120)
                sync_back(res["workspace_tar"], self.spec["cwd"])
            except Exception as exc:
                err = f"could not bring the workspace back from {self.address}: {exc}"
        if err is not None:
            self._line(f"[ralphnb] {err}")
            ex["detail"] = ex.get("detail") or err

    def _line(self, line: str) -> None:
        if self._logf is not None:
            with contextlib.suppress(OSError):
                self._logf.write(line + "\n")
        self._tail.append(line)
        if self._on_line is not None:
            try:
                self._on_line(line)
            except Exception:
                log.exception("on_line callback of %s failed", self.worker_id)

    def _apply_marks(self, marks: dict[str, Any]) -> None:
        """Apply what the agent did to its stub queue to the user's queue (client writes only):
        done/reject of its task with its notes, and tasks it added (new ids allocated here;
        links to other stub-only ids dropped)."""
        repo = self.spec["env"].get("RALPHNB_REPO")
        if not repo:
            return
        from .queue import Queue

        note = "\n".join(marks.get("notes") or []) or None
        try:
            q = Queue(repo)
            for t in marks.get("added") or []:
                fields = {k: v for k, v in t.items() if k not in _NOT_COPIED}
                for link in ("depends_on", "blocks", "relates_to", "duplicates"):
                    if fields.get(link):
                        fields[link] = [i for i in fields[link] if i == self.task_id]
                if fields.get("parent_id") and fields["parent_id"] != self.task_id:
                    del fields["parent_id"]
                q.add(str(t.get("title") or "untitled"), **fields)
            if marks.get("status") == "done":
                q.complete(self.task_id, note, archive=False)
            elif marks.get("status") == "rejected":
                q.reject(self.task_id, note)
        except Exception as exc:
            log.warning("could not apply %s's queue update for %s: %s", self.worker_id,
                        self.task_id, exc)  # fmt: skip

    def _synth(self, *, returncode: int | None = None, signal_: int | None = None,
               reason: str | None, detail: str) -> ExitInfo:  # fmt: skip
        return DaskExitInfo(
            pid=self.pid or 0, returncode=returncode, signal=signal_, started_at=self.started_at,
            ended_at=datetime.now(UTC), log_path=self.log_path, reason=reason,
            task_id=self.task_id, worker_id=self.worker_id, address=self.address, detail=detail,
        )  # fmt: skip

    def _finish(self, info: ExitInfo, detail: str | None = None) -> None:
        with self._lock:
            if self._exited.is_set():
                return
            self.exit_info, self.detail = info, detail
            self._exited.set()
        self._started.set()
        self._ex._forget(self)
        if self._logf is not None:
            with contextlib.suppress(OSError):
                self._logf.close()
        for cb in (self._on_exit, self._on_drained):  # remote lines are drained before exit
            if cb is not None:
                try:
                    cb(info)
                except Exception:
                    log.exception("exit callback of %s failed", self.worker_id)

    # ------------------------------------------------------------ public surface

    @property
    def alive(self) -> bool:
        return not self._exited.is_set()

    def wait(self, timeout: float | None = None) -> ExitInfo | None:
        """Block until the exit event was delivered (lines first); None on timeout."""
        return self.exit_info if self._exited.wait(timeout) else None

    def tail(self, n: int = 50) -> list[str]:
        lines = list(self._tail)
        return lines[-n:] if n > 0 else []

    def resources(self) -> dict[str, float | int]:
        """The latest sample sent by the owner (about once a second); zeros once exited."""
        if not self.alive:
            return {"cpu_percent": 0.0, "rss_mb": 0.0, "num_procs": 0}
        return dict(self._res)

    def stop(self, grace: float = 1.5, timeout: float = 10.0) -> ExitInfo:
        """SIGINT the agent's group, `grace` seconds, then kill the tree; returns the exit."""
        return self._control("stop", grace, grace + timeout)

    def kill(self, timeout: float = 10.0) -> ExitInfo:
        """SIGKILL the agent and every descendant now; returns the exit."""
        return self._control("kill", 0.0, timeout)

    def _control(self, action: str, grace: float, timeout: float) -> ExitInfo:
        deadline = time.monotonic() + timeout
        if self.alive and not self._started.is_set():  # still queued on its worker: cancel it
            with contextlib.suppress(Exception):
                self.future.cancel()
            why = f"{action} before it started on {self.address}"
            self._inbox({"k": "abort", "why": why, "reason": action})
        if self.alive and self.pid is not None:
            try:
                res = self._ex.client.run(
                    _remote_control, self.hid, self.pid, self.create_time, action, grace,
                    workers=[self.address], on_error="return",
                )  # fmt: skip
                answer = res.get(self.address)
            except Exception as exc:  # the owner is gone: the lost path delivers the exit
                answer = exc
            if answer != "ok" and self.alive and not self._exited.wait(0.5):
                log.warning("%s on %s for %s answered %r", action, self.address, self.worker_id,
                            answer)  # fmt: skip
        info = self.wait(max(0.0, deadline - time.monotonic()))
        if info is None:
            raise WorkerError(
                f"{action} of worker {self.worker_id} on Dask worker {self.address} was not "
                f"confirmed within {timeout:.1f}s",
                task_id=self.task_id,
            )
        return info


class _WorkerWatch:
    """One handler per (client, worker topic), fanned out to every executor of that client:
    `subscribe_topic` keeps a single handler per topic, so executors must not each set one."""

    _lock = threading.Lock()
    _by_client: dict[str, tuple[set[str], weakref.WeakSet[DaskExecutor]]] = {}

    @classmethod
    def watch(cls, ex: DaskExecutor, addr: str) -> None:
        with cls._lock:
            topics, executors = cls._by_client.setdefault(ex.client.id, (set(), weakref.WeakSet()))
            executors.add(ex)
            if addr in topics:
                return
            topics.add(addr)
        ex.client.subscribe_topic(addr, partial(cls._fan_out, ex.client.id, addr))

    @classmethod
    def _fan_out(cls, client_id: str, addr: str, event: tuple[float, dict]) -> None:
        with cls._lock:
            topics, executors = cls._by_client.get(client_id, (set(), weakref.WeakSet()))
            if event[1].get("action") == "remove-worker":
                topics.discard(addr)
            targets = list(executors)
        for ex in targets:
            ex._on_worker_event(addr, event[1])


class DaskExecutor:
    """Start agents on a Dask cluster: `Loop(..., executor=DaskExecutor(client))`.

    `client`: a connected `distributed.Client`. `workers`: restrict to these worker addresses.
    `queue_writes`: "client" (the agent's `ralphnb task done` goes to a stub queue on the worker
    and the client applies it) or "direct" (RALPHNB_REPO left as given; needs a shared queue).
    `workspace`: "shared" (default: the workspace, prompt and log paths of each spec are used as
    they are, so the Dask workers must see the client's filesystem: a LocalCluster, or NFS) or
    "ship" (the workspace without `.git`, the prompt and stdin files travel with the task; the
    agent works in a copy on the worker; its final tree comes back as the task's result and is
    mirrored over the client's workspace, where the loop commits and merges it as usual; the
    client writes the log from the streamed lines). `wait_started`: `spawn` returns once the
    agent runs (True) or at once (False). `interval`: how often the remote side flushes lines
    and checks for cancellation.
    """

    def __init__(self, client: Client, *, workers: list[str] | None = None,
                 queue_writes: str = "client", interval: float = 0.1,
                 register_plugin: bool = True, wait_started: bool = True,
                 workspace: str = "shared") -> None:  # fmt: skip
        if queue_writes not in ("client", "direct"):
            raise ValueError("queue_writes must be 'client' or 'direct'")
        if workspace not in ("shared", "ship"):
            raise ValueError("workspace must be 'shared' or 'ship'")
        if workspace == "ship" and queue_writes != "client":
            raise ValueError("workspace='ship' needs queue_writes='client' (no shared queue)")
        self.workspace = workspace
        self.client = client
        self.workers = list(workers) if workers else None
        self.queue_writes = queue_writes
        self.interval = interval
        self.wait_started = wait_started
        self.topic = f"ralphnb-{uuid.uuid4().hex[:12]}"
        self._handles: dict[str, DaskHandle] = {}
        self._lock = threading.Lock()
        self._inbox: _queue.SimpleQueue[tuple[DaskHandle, dict] | None] = _queue.SimpleQueue()
        self._closed = False
        if register_plugin:
            client.register_plugin(RalphnbWorkerPlugin(), name=PLUGIN_NAME)
        client.subscribe_topic(self.topic, self._on_event)
        self._dispatcher = threading.Thread(target=self._dispatch, daemon=True,
                                            name="ralphnb-dask-dispatch")  # fmt: skip
        self._dispatcher.start()
        self._watchdog = threading.Thread(target=self._watch, daemon=True,
                                          name="ralphnb-dask-watchdog")  # fmt: skip
        self._watchdog.start()

    def __repr__(self) -> str:
        return f"<DaskExecutor {self.client.scheduler.address} running={len(self._handles)}>"

    # ------------------------------------------------------------ spawning

    def _pick(self) -> tuple[str, str, bool]:
        """The least-busy worker (by our own running agents per thread), its host, and whether
        all its threads are already taken (the agent will queue there)."""
        try:
            info = self.client.scheduler_info(n_workers=-1)["workers"]
        except Exception as exc:
            raise WorkerError(f"the Dask scheduler cannot be reached ({self.client.status}): "
                              f"{type(exc).__name__}: {exc}") from exc  # fmt: skip
        if self.workers:
            info = {a: w for a, w in info.items() if a in self.workers}
        if not info:
            raise WorkerError("no Dask worker available to run an agent")
        with self._lock:
            busy = collections.Counter(h.address for h in self._handles.values())
        addr = min(info, key=lambda a: (busy[a] / max(1, info[a].get("nthreads", 1)), a))
        return addr, info[addr].get("host", ""), busy[addr] >= info[addr].get("nthreads", 1)

    def spawn(self, spec: Any, callbacks: Any = None) -> DaskHandle:
        """Start one agent on a Dask worker; returns once it runs there (its pid known).

        Raises `WorkerError` if it cannot start (e.g. missing executable on that worker), like
        the local executor. `callbacks`: on_line(str), on_exit(ExitInfo), on_drained(ExitInfo).
        When every thread of the chosen worker is taken (more agents than Dask threads), or with
        `wait_started=False`, it returns at once (pid None until the agent starts); a start
        failure is then an exit with code 127, and stop/kill cancel the queued agent.
        """
        if self._closed:
            raise WorkerError("DaskExecutor is closed")
        sd = _spec_dict(spec)
        addr, host, full = self._pick()
        h = DaskHandle(self, sd, callbacks, addr, tail_lines=sd["tail_lines"])
        h.host = host
        remote = dict(sd)
        if self.queue_writes == "client" and sd["env"].get("RALPHNB_REPO") and h.task_id:
            remote["stub_task"] = self._task_dict(sd["env"]["RALPHNB_REPO"], h.task_id)
        if self.workspace == "ship":
            from ._dask_ship import ship_spec

            remote = ship_spec(remote)
            Path(sd["log_path"]).parent.mkdir(parents=True, exist_ok=True)
            h._logf = open(sd["log_path"], "w", encoding="utf-8", buffering=1)  # noqa: SIM115
        self._watch_worker(addr)
        h._spawning = (self.wait_started and not full
                       and threading.current_thread() is not self._dispatcher)
        with self._lock:
            self._handles[h.hid] = h
        h.future = self.client.submit(
            _remote_run, remote, h.hid, self.topic, addr, self.interval,
            key=f"ralphnb-{h.task_id or 'cmd'}-{h.hid}", workers=[addr],
            allow_other_workers=False, pure=False, retries=0,
        )  # fmt: skip
        h.future.add_done_callback(lambda fut, h=h: self._on_done(h, fut))
        if not h._spawning:
            return h
        h._started.wait()  # started, failed to start, or lost (worker gone / cluster closed)
        h._spawning = False
        if h.start_error is not None:
            raise WorkerError(f"cannot start {h.worker_id} on Dask worker {addr}: "
                              f"{h.start_error}", task_id=h.task_id)  # fmt: skip
        return h

    @staticmethod
    def _task_dict(repo: str, task_id: str) -> dict[str, Any] | None:
        from .queue import Queue

        with contextlib.suppress(Exception):
            return Queue(repo).get(task_id).to_dict()
        return None

    # ------------------------------------------------------------ events

    def _on_event(self, event: tuple[float, dict]) -> None:  # on the client's event loop
        msg = event[1]
        h = self._handles.get(msg.get("h", ""))
        if h is not None:
            self._inbox.put((h, msg))
        elif msg.get("k") == "started":  # a handle we already gave up on: kill it there
            threading.Thread(target=self._kill_stray, args=(msg,), daemon=True).start()

    def _kill_stray(self, msg: dict) -> None:
        with contextlib.suppress(Exception):
            self.client.run(_remote_control, msg["h"], msg["pid"], msg["create_time"], "kill",
                            0.0, workers=[msg["address"]], on_error="ignore")  # fmt: skip

    def _dispatch(self) -> None:
        while True:
            item = self._inbox.get()
            if item is None:
                return
            h, msg = item
            try:
                h._apply(msg)
            except Exception:
                log.exception("applying %s to %s failed", msg.get("k"), h.worker_id)

    def _watch_worker(self, addr: str) -> None:
        _WorkerWatch.watch(self, addr)

    def _on_worker_event(self, addr: str, msg: dict) -> None:  # on the client's event loop
        if msg.get("action") != "remove-worker":
            return
        with self._lock:
            lost = [h for h in self._handles.values() if h.address == addr]
        for h in lost:
            self._lose(h, f"Dask worker {addr} was removed from the cluster mid-task")

    def _on_done(self, h: DaskHandle, fut: Any) -> None:
        """Backstop: the task ended but no exit event came (cancelled, errored, refused)."""
        if not h.alive:
            return

        def later() -> None:
            if h._exited.wait(2.0):
                return
            why = f"the Dask task ended ({fut.status}) without an exit event"
            with contextlib.suppress(Exception):
                res = fut.result(timeout=0) if fut.status == "finished" else None
                if isinstance(res, dict) and res.get("pid"):
                    self._inbox.put((h, {"k": "exit", "exit": res}))
                    return
                if isinstance(res, dict):
                    why = res.get("refused") or res.get("error") or why
            self._lose(h, why, sweep=False)

        threading.Thread(target=later, daemon=True).start()

    def _lose(self, h: DaskHandle, why: str, *, sweep: bool = True) -> None:
        """Synthesise the exit of an agent whose Dask worker is gone, after sweeping its host."""
        with h._lock:
            if h._losing or not h.alive:
                return
            h._losing = True

        def run() -> None:
            with contextlib.suppress(Exception):
                h.future.cancel()
            if sweep:
                self._sweep_host(getattr(h, "host", ""), exclude=h.address)
            self._inbox.put((h, {"k": "lost", "why": why}))

        threading.Thread(target=run, daemon=True).start()

    def _sweep_host(self, host: str, exclude: str) -> None:
        """Reap the agents of dead Dask worker processes on `host` (from a survivor there)."""
        with contextlib.suppress(Exception):
            info = self.client.scheduler_info(n_workers=-1)["workers"]
            peers = [a for a, w in info.items() if w.get("host") == host and a != exclude]
            if peers:
                self.client.run(_remote_sweep, workers=peers[:1], on_error="ignore")
                return
        if _local_host(host):
            with contextlib.suppress(Exception):
                reap_dead_workers()

    def _watch(self) -> None:
        """Once a second while agents run: a client cut off from its scheduler loses them all."""
        cut_since: float | None = None
        while not self._closed:
            time.sleep(1.0)
            if not self._handles:
                cut_since = None
                continue
            if self.client.status == "running":
                cut_since = None
                continue
            cut_since = cut_since or time.monotonic()
            if time.monotonic() - cut_since > 3.0:
                for h in list(self._handles.values()):
                    self._lose(h, f"lost contact with the Dask scheduler ({self.client.status})")

    def _forget(self, h: DaskHandle) -> None:
        with self._lock:
            self._handles.pop(h.hid, None)

    # ------------------------------------------------------------ lifecycle

    @property
    def running(self) -> list[DaskHandle]:
        with self._lock:
            return list(self._handles.values())

    def stop_all(self, grace: float = 1.5, timeout: float = 10.0) -> None:
        """Stop every running agent (in parallel); never raises."""
        threads = [threading.Thread(target=_quiet_kill, args=(h, grace)) for h in self.running]
        for t in threads:
            t.start()
        for t in threads:
            t.join(grace + timeout + 1.0)

    def close(self, grace: float = 0.5) -> None:
        """Stop every agent and stop listening. The client stays open (it is the caller's)."""
        if self._closed:
            return
        self.stop_all(grace=grace)
        self._closed = True
        with contextlib.suppress(Exception):
            self.client.unsubscribe_topic(self.topic)
        self._inbox.put(None)

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
