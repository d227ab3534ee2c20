"""Run workers on a Dask distributed cluster, with the same stop/kill/exit semantics as locally.

Owns: `DaskExecutor`, the client side: picking a Dask worker and submitting the task, the
dispatcher thread that applies streamed messages to handles in order, stop/kill over
`client.run` aimed at the owning Dask worker, and lost-worker detection (a removed worker, a
finished task without an exit, a client cut off from its scheduler).
Does not own: the per-agent handle (`handle.py`, which asks this executor only through its
`ExecutorLink`), the Dask-worker side (`remote.py`: the task that supervises one agent with
`process.Worker`, and `RalphnbWorkerPlugin`, whose teardown kills every agent of a closing Dask
worker), scheduling or what an exit means (the loop), workspaces (the loop creates them on the
client; with workspace="shared" the Dask workers use those paths — LocalCluster or a shared
filesystem; with workspace="ship" a copy travels with the task and its result comes back, see
`ship.py`).
Invariants:
- `Future.cancel()` does not interrupt a running task, so stop/kill never rely on it: the agent
  runs in its own session under the shim and is stopped by its own supervisor on the owner worker,
  after checking the process identity (pid + create_time).
- Every handle gets exactly one exit, delivered in order after its lines: the agent's own exit, or
  a synthesised one with reason "lost" when its Dask worker died or the cluster went away (after
  its processes were swept on that host).
- Each task is pinned to one Dask worker and refuses to run anywhere else, so a lost task is never
  silently re-run by the scheduler.
- Nothing here reads or writes the user's queue files. With `queue_writes="client"` the agent's
  `ralphnb task done` lands in a stub queue on the worker, built from `spec.task`; what the agent
  did there comes back in its exit's `queue_marks`, which the loop applies.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue as _queue
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from functools import partial
from typing import Any

try:
    from distributed import Client
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("DaskExecutor needs Dask distributed: pip install 'ralphnb[dask]'") from exc

from ...errors import WorkerError
from ..logfile import DEFAULT_MAX_LOG_BYTES
from .handle import DaskHandle, ExecutorLink
from .remote import (
    PLUGIN_NAME,
    RalphnbWorkerPlugin,
    reap_dead_workers,
    remote_control,
    remote_run,
    remote_sweep,
)
from .ship import ship_spec

log = logging.getLogger(__name__)


def _spec_dict(spec: Any) -> dict[str, Any]:
    """A `WorkerSpec` (or a mapping with its fields) as the plain dict that travels."""
    get = spec.get if isinstance(spec, Mapping) else (lambda k, d=None: getattr(spec, k, d))
    argv = list(get("argv"))
    stdin = get("stdin_path")
    return {
        "argv": [str(a) for a in argv],
        "env": dict(get("env") or {}),
        "cwd": str(get("cwd")),
        "log_path": str(get("log_path")),
        "worker_id": str(get("worker_id")),
        "task_id": get("task_id"),
        "stdin_path": str(stdin) if stdin else None,
        "tail_lines": int(get("tail_lines", 200) or 200),
        "task": dict(get("task")) if get("task") else None,
        "grace": float(get("grace", 1.5)),
        "max_log_bytes": get("max_log_bytes", DEFAULT_MAX_LOG_BYTES),
    }


def _local_host(host: str) -> bool:
    if host in ("127.0.0.1", "localhost", "::1"):
        return True
    with contextlib.suppress(OSError):
        return host in socket.gethostbyname_ex(socket.gethostname())[2]
    return False


def _stop_quietly(h: DaskHandle, grace: float) -> None:
    with contextlib.suppress(Exception):
        h.stop(grace=grace)


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
    `queue_writes`: "client" (the agent's RALPHNB_REPO is a stub queue on the worker holding only
    `spec.task`; its `ralphnb task done`/`reject`/`add` land there and come back as the exit's
    `queue_marks`, for the loop to apply to the user's queue) or "direct" (RALPHNB_REPO left as
    given; needs a shared queue). A spec without `task` or without RALPHNB_REPO in its env gets
    no stub: RALPHNB_REPO is left as given, as with "direct".
    `workspace`: "shared" (default: the workspace, prompt and log paths of each spec are used as
    they are, so the Dask workers must see the client's filesystem: a LocalCluster, or NFS) or
    "ship" (the workspace without `.git`, the prompt and stdin files travel with the task; the
    agent works in a copy on the worker; its final tree comes back as the task's result and is
    mirrored over the client's workspace, where the loop commits and merges it as usual; the
    client writes the log from the streamed lines). `wait_started`: `spawn` returns once the
    agent runs (True) or at once (False). `interval`: how often the remote side flushes lines
    and checks for cancellation.

    Security: each spec's environment (a runner's API key included) travels to the worker with
    the task, and output lines travel back through the scheduler, which keeps the most recent
    events of each topic in memory (`distributed.admin.log-length`). Across machines, use a
    cluster with TLS (`distributed.security.Security`) and trust its scheduler like the host.
    """

    def __init__(
        self,
        client: Client,
        *,
        workers: list[str] | None = None,
        queue_writes: str = "client",
        interval: float = 0.1,
        register_plugin: bool = True,
        wait_started: bool = True,
        workspace: str = "shared",
    ) -> None:
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
        self._link = ExecutorLink(post=self._post, forget=self._forget, control=self._control)
        if register_plugin:
            client.register_plugin(RalphnbWorkerPlugin(), name=PLUGIN_NAME)
        client.subscribe_topic(self.topic, self._on_event)
        self._dispatcher = threading.Thread(
            target=self._dispatch, daemon=True, name="ralphnb-dask-dispatch"
        )
        self._dispatcher.start()
        self._watchdog = threading.Thread(
            target=self._watch, daemon=True, name="ralphnb-dask-watchdog"
        )
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
            raise WorkerError(
                f"the Dask scheduler cannot be reached ({self.client.status}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
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
        remote = {k: v for k, v in sd.items() if k != "task"}
        if self.queue_writes == "client" and sd["env"].get("RALPHNB_REPO") and sd["task"]:
            remote["stub_task"] = sd["task"]
        if self.workspace == "ship":
            remote = ship_spec(remote)
        # wait for the start unless it queues there, or this is the dispatcher (a callback's
        # respawn), which must go on delivering the start message
        waits = (
            self.wait_started and not full and threading.current_thread() is not self._dispatcher
        )
        h = DaskHandle(
            sd,
            callbacks,
            address=addr,
            host=host,
            link=self._link,
            log_on_client=self.workspace == "ship",
            spawning=waits,
        )
        self._watch_worker(addr)
        with self._lock:
            self._handles[h.hid] = h
        h.future = self.client.submit(
            remote_run,
            remote,
            h.hid,
            self.topic,
            addr,
            self.interval,
            key=f"ralphnb-{h.task_id or 'cmd'}-{h.hid}",
            workers=[addr],
            allow_other_workers=False,
            pure=False,
            retries=0,
        )
        h.future.add_done_callback(lambda fut, h=h: self._on_done(h, fut))
        if waits:
            h.wait_started()  # raises WorkerError if it could not start
        return h

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
            self.client.run(
                remote_control,
                msg["h"],
                msg["pid"],
                msg["create_time"],
                "kill",
                0.0,
                workers=[msg["address"]],
                on_error="ignore",
            )

    def _dispatch(self) -> None:
        while True:
            item = self._inbox.get()
            if item is None:
                return
            h, msg = item
            try:
                h.apply(msg)
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
            if h.wait(2.0) is not None:
                return
            why = f"the Dask task ended ({fut.status}) without an exit event"
            with contextlib.suppress(Exception):
                res = fut.result(timeout=0) if fut.status == "finished" else None
                if isinstance(res, dict) and res.get("pid"):
                    self._post(h, {"k": "exit", "exit": res})
                    return
                if isinstance(res, dict):
                    why = res.get("refused") or res.get("error") or why
            self._lose(h, why, sweep=False)

        threading.Thread(target=later, daemon=True).start()

    def _lose(self, h: DaskHandle, why: str, *, sweep: bool = True) -> None:
        """Synthesise the exit of an agent whose Dask worker is gone, after sweeping its host."""
        if not h.claim_lost():
            return

        def run() -> None:
            with contextlib.suppress(Exception):
                h.future.cancel()
            if sweep:
                self._sweep_host(h.host, exclude=h.address)
            self._post(h, {"k": "lost", "why": why})

        threading.Thread(target=run, daemon=True).start()

    def _sweep_host(self, host: str, exclude: str) -> None:
        """Reap the agents of dead Dask worker processes on `host` (from a survivor there)."""
        with contextlib.suppress(Exception):
            info = self.client.scheduler_info(n_workers=-1)["workers"]
            peers = [a for a, w in info.items() if w.get("host") == host and a != exclude]
            if peers:
                self.client.run(remote_sweep, workers=peers[:1], on_error="ignore")
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

    # ------------------------------------------------------------ what handles may ask (link)

    def _post(self, h: DaskHandle, msg: dict[str, Any]) -> None:
        self._inbox.put((h, msg))

    def _forget(self, h: DaskHandle) -> None:
        with self._lock:
            self._handles.pop(h.hid, None)

    def _control(self, h: DaskHandle, action: str, grace: float) -> object:
        res = self.client.run(
            remote_control,
            h.hid,
            h.pid,
            h.create_time,
            action,
            grace,
            workers=[h.address],
            on_error="return",
        )
        return res.get(h.address)

    # ------------------------------------------------------------ lifecycle

    @property
    def running(self) -> list[DaskHandle]:
        with self._lock:
            return list(self._handles.values())

    def stop_all(self, grace: float = 1.5, timeout: float = 10.0) -> None:
        """Stop every running agent (in parallel); never raises."""
        threads = [threading.Thread(target=_stop_quietly, args=(h, grace)) for h in self.running]
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
