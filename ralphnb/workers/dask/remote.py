"""The Dask-worker side of `DaskExecutor`: runs inside Dask worker processes, never in the client.

Owns: `remote_run` (the Dask task that supervises one agent with `process.Worker`, streams its
lines, resource samples and exit to the client through `worker.log_event`, and kills the agent
when its own task is cancelled), `remote_control` (stop/kill one agent, aimed by `client.run` at
the owning worker, after a pid + create_time identity check), `RalphnbWorkerPlugin` (teardown
kills every agent of a closing Dask worker), `reap_dead_workers` and its `client.run` target
`remote_sweep` (agents orphaned by a Dask worker process that died by SIGKILL, found by their
on-disk registry on the same host, named by `proc_tag`), and the agent's stub queue: a one-task
queue made from the spec's task, read back after the exit into the exit's `marks`.
Never: reads or writes the user's queue (only the stub, with the stdlib's json).
Invariants: every agent is recorded in its Dask worker process's registry
`<tmp>/ralphnb-dask-<uid>/<pid>-<ms>/` while it runs; a task refuses to run on any worker but the
one it was pinned to; the exit message is sent after every line, exactly once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psutil
from distributed import WorkerPlugin, get_worker
from distributed.worker import thread_state

from ...errors import WorkerError
from ..exits import ExitInfo
from ..logfile import DEFAULT_MAX_LOG_BYTES
from ..process import Worker
from ..registry import Registry, find_leftovers, sweep_token
from .ship import pack_dir, resolve

log = logging.getLogger(__name__)

PLUGIN_NAME = "ralphnb"
LOST = "lost"
_BATCH = 500  # lines per streamed message at most
_BATCH_BYTES = 256 * 1024  # and about this much text (the scheduler keeps recent events)
_GAP = 0.02  # seconds between two line messages of one agent at least


def _registry_root() -> Path:
    return Path(tempfile.gettempdir()) / f"ralphnb-dask-{os.getuid()}"


def proc_tag(pid: int) -> str:
    """Name of a process's registry directory: `<pid>-<create time in ms>` (pid reuse safe)."""
    return f"{pid}-{int(psutil.Process(pid).create_time() * 1000)}"


def _tag_alive(tag: str) -> bool:
    try:
        pid, ms = (int(x) for x in tag.split("-"))
        return abs(psutil.Process(pid).create_time() * 1000 - ms) < 100
    except (ValueError, psutil.Error):
        return False


def reap_dead_workers(root: Path | None = None) -> int:
    """Reap agents left by Dask worker processes of this host that died (e.g. SIGKILL).

    Each Dask worker process records its agents under `<tmp>/ralphnb-dask-<uid>/<pid>-<ms>/`;
    a directory whose owner is dead is swept (pid + create_time + token) and removed.
    """
    root = root or _registry_root()
    n = 0
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if d.is_dir() and not _tag_alive(d.name):
            n += _reap_dir(d)
            shutil.rmtree(d, ignore_errors=True)
    return n


def _reap_dir(d: Path, timeout: float = 5.0) -> int:
    """SIGKILL a registry's leftovers and wait until each is dead (a zombie counts as dead:
    orphans are reaped by PID 1, which some containers do slowly)."""
    procs = find_leftovers(d)
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()
    deadline = time.monotonic() + timeout
    for p in procs:
        while time.monotonic() < deadline:
            try:
                if p.status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.Error:
                break
            time.sleep(0.005)
    for rec in Registry(d).records():
        if rec.get("token"):
            sweep_token(str(rec["token"]))
    return len(procs)


@dataclass
class _Remote:
    """One supervised agent inside a Dask worker process."""

    worker: Worker
    hid: str
    topic: str
    why: str | None = None  # set when the executor side (teardown, cancel) ended it


@dataclass
class _RemoteState:
    registry: Registry
    procs: dict[str, _Remote] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closing: bool = False


_STATES: dict[str, _RemoteState] = {}
_STATES_LOCK = threading.Lock()


def _state(dask_worker: Any) -> _RemoteState:
    with _STATES_LOCK:
        st = _STATES.get(dask_worker.id)
        if st is None:
            st = _RemoteState(Registry(_registry_root() / proc_tag(os.getpid())))
            _STATES[dask_worker.id] = st
        return st


class RalphnbWorkerPlugin(WorkerPlugin):
    """Kills every agent of a Dask worker when it closes; reaps agents of dead siblings."""

    name = PLUGIN_NAME
    idempotent = True  # registering it again must not tear down (kill) the agents running

    def setup(self, worker: Any) -> None:
        _state(worker)
        with contextlib.suppress(Exception):
            n = reap_dead_workers()
            if n:
                log.warning("ralphnb: reaped %d agent process(es) of dead Dask workers", n)

    def teardown(self, worker: Any) -> None:
        with _STATES_LOCK:
            st = _STATES.pop(worker.id, None)
        if st is None:
            return
        with st.lock:
            st.closing = True
            remotes = list(st.procs.values())
        threads = []
        for r in remotes:
            r.why = r.why or f"Dask worker {worker.address} closed"
            t = threading.Thread(target=_quiet_kill, args=(r.worker,), daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join(12.0)
        if not st.registry.records():  # nothing left running: drop the directory
            shutil.rmtree(st.registry.path, ignore_errors=True)


def _quiet_kill(w: Worker, grace: float | None = None) -> None:
    with contextlib.suppress(Exception):
        if grace is None:
            w.kill()
        else:
            w.stop(grace=grace)


def _exit_dict(info: ExitInfo) -> dict[str, Any]:
    return {
        "pid": info.pid,
        "returncode": info.returncode,
        "signal": info.signal,
        "started_at": info.started_at.isoformat(),
        "ended_at": info.ended_at.isoformat(),
        "log_path": str(info.log_path),
        "reason": info.reason,
        "stderr_path": str(info.stderr_path) if info.stderr_path else None,
        "detail": info.detail,
    }


def _dumps(obj: Any) -> bytes:
    """Plain pretty JSON, as the queue writers write it."""
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _make_stub(root: Path, task: dict[str, Any]) -> Path:
    """A one-task queue on the worker for `ralphnb task done` to mark (links stripped)."""
    stub = {k: v for k, v in task.items() if k not in ("depends_on", "blocks", "parent_id")}
    stub.update(status="doing")
    ralph = root / ".ralph"
    ralph.mkdir(parents=True, exist_ok=True)
    (ralph / "queue.jsonc").write_bytes(_dumps({"version": 1, "tasks": [stub]}))
    (ralph / "done.jsonc").write_bytes(_dumps({"version": 1, "tasks": []}))
    return root


def _read_marks(root: Path, task: dict[str, Any]) -> dict[str, Any] | None:
    """What the agent did in the stub queue: its task's final status and the notes it added
    (if it marked it done or rejected), and any tasks it added (e.g. follow-ups), in the shape
    of `ExitInfo.queue_marks`; None if it changed nothing. The stub files are written by the
    agent's queue commands, which write plain JSON (no comments to strip)."""
    out: dict[str, Any] = {"status": None, "notes": [], "added": []}
    for name in ("queue.jsonc", "done.jsonc"):
        with contextlib.suppress(Exception):
            for t in json.loads((root / ".ralph" / name).read_bytes()).get("tasks", []):
                if t.get("id") != task.get("id"):
                    out["added"].append(t)
                elif t.get("status") in ("done", "rejected"):
                    old = list(task.get("notes") or [])
                    out.update(status=t["status"], notes=list(t.get("notes") or [])[len(old) :])
    return out if out["status"] or out["added"] else None


class _Outbox:
    """One agent's messages to the client, in order: "started" before any line, lines in
    batches (at most `_BATCH` lines and about `_BATCH_BYTES` each), resource samples, "exit"
    last. `lock` is held by whoever sends; hold it across several sends to keep them together."""

    def __init__(self, dask_worker: Any, topic: str, hid: str) -> None:
        self._dw, self._topic, self._hid = dask_worker, topic, hid
        self.lock = threading.RLock()
        self.wake = threading.Event()  # set by new output: lines leave within _GAP, not a tick
        self._line_lock = threading.Lock()
        self._pending: list[str] = []
        self._seq = 0

    def send(self, kind: str, **data: Any) -> None:
        with self.lock:
            self._seq += 1
            self._dw.log_event(self._topic, {"h": self._hid, "k": kind, "seq": self._seq, **data})

    def add_line(self, line: str) -> None:  # on the agent's output reader thread
        with self._line_lock:
            self._pending.append(line)
        self.wake.set()

    def flush(self, res: dict | None = None) -> None:
        """Send the lines gathered so far, then the resource sample `res` if given."""
        with self.lock:
            with self._line_lock:
                batch, self._pending = self._pending, []
            i = 0
            while i < len(batch):
                j, size = i, 0
                while j < len(batch) and j - i < _BATCH and size < _BATCH_BYTES:
                    size += len(batch[j])
                    j += 1
                self.send("lines", lines=batch[i:j])
                i = j
            if res is not None:
                self.send("res", res=res)


@dataclass
class _Copies:
    """What one agent needs on this worker besides the spec: the shipped workspace and files
    (`ship_base`) and the stub queue (`stub_root`); `spec` and `env` point at them."""

    spec: dict[str, Any]
    env: dict[str, str]
    ship_base: Path | None = None
    stub_root: Path | None = None

    def remove(self) -> None:
        for tmp in (self.stub_root, self.ship_base):
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
                with contextlib.suppress(OSError):
                    tmp.parent.rmdir()  # stubs/ or ship/, once empty


def _prepare(spec: dict[str, Any], base: Path, hid: str) -> _Copies:
    """Unpack a shipped workspace (no shared filesystem) and make the stub queue, under `base`."""
    copies = _Copies(spec, dict(spec["env"]))
    if spec.get("ship") is not None:
        copies.ship_base = base / "ship" / hid
        copies.spec = resolve(spec, copies.ship_base)
        copies.env = dict(copies.spec["env"])
    if spec.get("stub_task") is not None:
        copies.stub_root = _make_stub(base / "stubs" / hid, spec["stub_task"])
        copies.env["RALPHNB_REPO"] = str(copies.stub_root)
    return copies


def _exit_message(
    info: ExitInfo, why: str | None, copies: _Copies, address: str, result: dict[str, Any]
) -> dict[str, Any]:
    """The "exit" message: the agent's exit (reason "lost" if this side ended it, `why`), its
    stub queue marks, and whether its workspace was packed into `result` (the task's result:
    a tree is too big for an event)."""
    ex = _exit_dict(info)
    if why:
        ex.update(reason=LOST, detail=why)
    if copies.stub_root is not None:
        ex["marks"] = _read_marks(copies.stub_root, copies.spec["stub_task"])
    if copies.ship_base is not None:
        try:
            result["workspace_tar"] = pack_dir(copies.ship_base / "ws")
            ex["shipped"] = True
        except OSError as exc:
            ex["ship_error"] = f"could not pack the workspace on {address}: {exc}"
    result.update(ex)
    return ex


def _task_cancelled(dask_worker: Any, key: Any) -> bool:
    """True once this Dask worker has let go of task `key` (cancelled, or released)."""
    if key is None:
        return False
    ts = dask_worker.state.tasks.get(key)
    return ts is None or ts.state in ("cancelled", "released")


def _supervise(
    remote: _Remote,
    outbox: _Outbox,
    done: threading.Event,
    cancelled: Callable[[], bool],
    interval: float,
) -> None:
    """Until the exit was sent: flush lines (within `_GAP` of new output), send a resource
    sample about once a second, and kill the agent if its Dask task is cancelled."""
    w, last_res = remote.worker, 0.0
    while not done.is_set():
        outbox.wake.wait(interval)
        outbox.wake.clear()
        if done.is_set():
            break
        now = time.monotonic()
        res = None
        if now - last_res >= 1.0:
            last_res, res = now, w.resources()
        outbox.flush(res)
        if cancelled():
            remote.why = remote.why or "the Dask task was cancelled"
            threading.Thread(target=_quiet_kill, args=(w,), daemon=True).start()
            done.wait(15.0)
            return
        done.wait(_GAP)  # coalesce chatty output into fewer messages


def remote_run(spec: dict[str, Any], hid: str, topic: str, owner: str, interval: float) -> dict:
    """Dask task: supervise one agent on this worker, streaming lines and the exit to `topic`.

    Returns the exit (plus a shipped workspace's tar), or `{"refused": why}` / `{"error": why}`.
    """
    dw = get_worker()
    if dw.address != owner:  # re-run elsewhere after its worker died: the client owns retries
        return {"refused": f"task pinned to {owner} reached {dw.address}"}
    st = _state(dw)
    key = getattr(thread_state, "key", None)
    outbox = _Outbox(dw, topic, hid)
    copies = _prepare(spec, st.registry.path, hid)
    done = threading.Event()
    result: dict[str, Any] = {}

    def on_drained(info: ExitInfo) -> None:
        remote = st.procs.get(hid)
        ex = _exit_message(info, remote.why if remote else None, copies, dw.address, result)
        with outbox.lock:
            outbox.flush()
            outbox.send("exit", exit=ex)
        done.set()
        outbox.wake.set()

    w = Worker(
        copies.spec["argv"],
        cwd=copies.spec["cwd"],
        env=copies.env,
        log_path=copies.spec["log_path"],
        worker_id=copies.spec["worker_id"],
        task_id=copies.spec.get("task_id"),
        on_line=outbox.add_line,
        on_drained=on_drained,
        stdin_path=copies.spec.get("stdin_path"),
        registry=st.registry,
        tail_lines=copies.spec.get("tail_lines", 200),
        grace=copies.spec.get("grace", 1.5),  # the Dask worker process is the agent's owner
        max_log_bytes=copies.spec.get("max_log_bytes", DEFAULT_MAX_LOG_BYTES),
    )
    try:
        with st.lock:
            if st.closing:
                return {"refused": f"Dask worker {dw.address} is closing"}
            st.procs[hid] = remote = _Remote(w, hid, topic)
        with outbox.lock:  # "started" leaves before any line or the exit of a quick agent
            try:
                w.start()
            except WorkerError as exc:
                outbox.send("error", message=str(exc))
                return {"error": str(exc)}
            outbox.send(
                "started",
                pid=w.pid,
                create_time=w.create_time,
                address=dw.address,
                started_at=w.started_at.isoformat() if w.started_at else None,
            )
        _supervise(remote, outbox, done, partial(_task_cancelled, dw, key), interval)
        return result
    finally:
        with st.lock:
            st.procs.pop(hid, None)
        copies.remove()


def remote_control(
    hid: str,
    pid: int,
    create_time: float | None,
    action: str,
    grace: float,
    dask_worker: Any = None,
) -> str:
    """`client.run` target: stop or kill one agent of this worker, after an identity check."""
    st = _STATES.get(dask_worker.id) if dask_worker is not None else None
    remote = st.procs.get(hid) if st is not None else None
    if remote is None:
        return "gone"
    w = remote.worker
    if w.pid != pid:
        return "mismatch"
    try:
        if create_time is not None and abs(psutil.Process(pid).create_time() - create_time) > 0.1:
            return "mismatch"
    except psutil.Error:
        return "gone"
    args = (w, grace) if action == "stop" else (w,)
    threading.Thread(target=_quiet_kill, args=args, daemon=True).start()
    return "ok"


def remote_sweep(dask_worker: Any = None) -> int:  # noqa: ARG001 - client.run injects it
    """`client.run` target: reap the agents of dead Dask worker processes of this host."""
    return reap_dead_workers()
