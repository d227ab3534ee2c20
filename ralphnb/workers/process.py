"""Supervised worker processes: spawn, stream output, report the exit at once, stop/kill a tree.

Owns: one agent process per `Worker`, run under the supervisor shim (`_shim.py`) in its own
session, its monitor thread, and stopping this process's workers at exit. Does not own: the
worker environment (`env.build_env`, imported from here too), reading the output into lines
and a tail (`output`), the log file (`logfile`), the lifeline pipe (`lifeline`), what the
output means (runners parse lines), the exit record (`exits.ExitInfo`), what an exit means (the
loop), or the on-disk worker records and leftover reaping (`registry`).
Invariants:
- Exactly one monitor thread per worker reaps the shim (`Popen.wait`) and calls `on_exit` the
  moment the agent exits (the shim reports the agent's wait status on a pipe; no polling).
  `on_exit` may run before the last output lines reach `on_line`; `on_drained` and `wait()`
  come after every line was delivered and the shim was reaped. Signals are never sent after
  the shim was reaped (the monitor waits with WNOWAIT first): a recycled pid is never signalled.
- After `stop()`/`kill()` return, no process of the worker remains: the shim (a child subreaper)
  kills every descendant, and a sweep by the per-worker token env var catches anything else.
  This holds from the moment `start()` returns: the shim is spawned with its signals blocked
  and unblocks them once its handlers exist, so an early SIGUSR1/SIGINT is never fatal to it
  by default (a kill still reports SIGKILL, a stop SIGINT) and start() does not wait for it.
- A worker dies with the process that started it (`die_with_owner`, the default): the shim
  holds the read end of a `lifeline.Lifeline` and, when this process is gone by any death,
  stops the agent itself (SIGINT, `grace`, kill of the tree), within `grace` + a moment. The
  write end is closed only after the shim was reaped. The agent's stdout pipe and the log's fd
  go to the shim too, so it can drain the agent's last words into the log then.
- Memory per worker is bounded: a tail of lines and one partial line (`output.MAX_LINE`); the
  log file holds at most `max_log_bytes` per attempt (head and tail, `logfile.LogFile`).
- A log that cannot be written (a full disk) never stops the output being read and parsed;
  the exit then carries the reason in `ExitInfo.detail` ("<log>: no space left on device").
- Workers get an environment built from an allow-list plus explicit additions (`build_env`).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import psutil

from ..errors import WorkerError
from . import resources as _resources
from .env import build_env  # also imported from here by callers of Worker
from .exits import ExitInfo
from .lifeline import Lifeline
from .logfile import DEFAULT_MAX_LOG_BYTES, MIN_LOG_BYTES, LogFile
from .output import OutputReader
from .registry import TOKEN_VAR, Registry, add_live, live_workers, sweep_token

log = logging.getLogger(__name__)

SHIM_PATH = Path(__file__).with_name("_shim.py")
# Held (blocked) in the shim from exec until its handlers are installed; see `_shim.py`.
SHIM_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGUSR1})


# ---------------------------------------------------------------- live-worker tracking

_atexit_registered = False
_atexit_lock = threading.Lock()


def _track(worker: Worker) -> None:
    global _atexit_registered
    add_live(worker)
    with _atexit_lock:
        if not _atexit_registered:
            atexit.register(stop_all)
            _atexit_registered = True


def stop_all(grace: float = 0.5, timeout: float = 5.0) -> None:
    """Stop every live worker of this process (SIGINT, short grace, then kill). Never raises."""
    workers = live_workers()
    for w in workers:
        with contextlib.suppress(Exception):
            w._send_level(1)
    deadline = time.monotonic() + grace
    for w in workers:
        w._exited.wait(max(0.0, deadline - time.monotonic()))
    for w in workers:
        with contextlib.suppress(Exception):
            w.kill(timeout=timeout)


# ---------------------------------------------------------------- the worker


class Worker:
    """One agent process under the shim, with a monitor thread and an output reader thread.

    `grace`: seconds between SIGINT and the kill when the shim stops the agent because this
    process died (`stop()` takes its own). `die_with_owner=False` lets the worker outlive this
    process (its leftovers are then found by `registry`). `max_log_bytes`: the cap of the log
    file (None: no cap).
    """

    _pre_monitor_hook: Callable[[Worker], None] | None = None  # tests: delay the monitor

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: str | Path,
        env: Mapping[str, str] | None = None,
        log_path: str | Path,
        worker_id: str,
        task_id: str | None = None,
        on_line: Callable[[str], None] | None = None,
        on_exit: Callable[[ExitInfo], None] | None = None,
        on_drained: Callable[[ExitInfo], None] | None = None,
        stdin_path: str | Path | None = None,
        tail_lines: int = 200,
        registry: Registry | None = None,
        grace: float = 1.5,
        die_with_owner: bool = True,
        max_log_bytes: int | None = DEFAULT_MAX_LOG_BYTES,
    ) -> None:
        if isinstance(argv, str) or not argv:
            raise WorkerError("argv must be a non-empty list of strings", task_id=task_id)
        if max_log_bytes is not None and max_log_bytes < MIN_LOG_BYTES:
            raise WorkerError(f"max_log_bytes must be None or >= {MIN_LOG_BYTES}", task_id=task_id)
        self.argv = [str(a) for a in argv]
        self.cwd = Path(cwd)
        self.env = dict(build_env() if env is None else env)
        self.log_path = Path(log_path)
        self.stderr_path = self.log_path.with_name(self.log_path.name + ".stderr")
        self.worker_id = worker_id
        self.task_id = task_id
        self.on_line, self.on_exit, self.on_drained = on_line, on_exit, on_drained
        self.stdin_path = Path(stdin_path) if stdin_path is not None else None
        self.registry = registry
        self.grace, self.die_with_owner, self.max_log_bytes = grace, die_with_owner, max_log_bytes
        self.token = f"{os.getpid()}-{secrets.token_hex(8)}"
        self.pid: int | None = None  # the supervisor shim's pid (session and group leader)
        self.agent_pid: int | None = None  # the agent's own pid, once the shim has forked it
        self.create_time: float | None = None
        self.started_at: datetime | None = None
        self.exit_info: ExitInfo | None = None
        self.tail_lines = tail_lines
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._level = 0  # 1 SIGINT sent, 2 kill-all asked of the shim, 3 SIGKILL + sweep
        self._reaping = False
        self._reason: str | None = None
        self._exited = threading.Event()
        self._drained = threading.Event()
        self._reader: OutputReader | None = None
        self._status_fd = -1
        self._lifeline: Lifeline | None = None
        self._monitor: threading.Thread | None = None

    def __repr__(self) -> str:
        state = "new" if self.pid is None else ("running" if self.alive else "exited")
        return f"<Worker {self.worker_id} task={self.task_id} pid={self.pid} {state}>"

    # -------------------------------------------------------------- start

    def _check_executable(self) -> None:
        exe = self.argv[0]
        if os.sep in exe:
            path = exe if os.path.isabs(exe) else os.path.join(self.cwd, exe)
            ok = os.path.isfile(path) and os.access(path, os.X_OK)
        else:
            ok = shutil.which(exe, path=self.env.get("PATH", os.defpath)) is not None
        if not ok:
            raise WorkerError(
                f"cannot start worker {self.worker_id}: executable {exe!r} not found "
                f"(PATH={self.env.get('PATH', '')!r}, cwd={str(self.cwd)!r}); install it or "
                "give its full path",
                task_id=self.task_id,
            )

    def _popen_shim(self, fds: dict[str, int], out_w: int) -> subprocess.Popen[bytes]:
        """Exec the shim on our argv in a new session, stdout to `out_w`, stderr to its file,
        with `fds` ({shim option: fd}) passed on."""
        env = {**self.env, TOKEN_VAR: self.token}
        shim = [sys.executable, "-I", "-S", str(SHIM_PATH)]
        for option, fd in fds.items():
            shim += [f"--{option}", str(fd)]
        if "lifeline-fd" in fds:
            shim += ["--grace", repr(float(self.grace))]
        stdin = os.fspath(self.stdin_path) if self.stdin_path is not None else os.devnull
        with open(stdin, "rb") as fin, open(self.stderr_path, "wb") as ferr:
            self.started_at = datetime.now(UTC)
            # The shim inherits this thread's signal mask through exec: with its signals
            # blocked, a stop()/kill() sent before its handlers exist is held, not fatal.
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, SHIM_SIGNALS)
            try:
                return subprocess.Popen(
                    [*shim, "--", *self.argv],
                    cwd=self.cwd,
                    env=env,
                    stdin=fin,
                    stdout=out_w,
                    stderr=ferr,
                    start_new_session=True,
                    close_fds=True,
                    pass_fds=tuple(fds.values()),
                )
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def start(self) -> Worker:
        """Spawn the process under the shim and start its reader and monitor threads."""
        if self._proc is not None:
            raise WorkerError(f"worker {self.worker_id} was already started", task_id=self.task_id)
        if not self.cwd.is_dir():
            raise WorkerError(f"worker cwd {self.cwd} is not a directory", task_id=self.task_id)
        self._check_executable()
        logf = self._open_log()
        status_r, status_w = os.pipe()  # the shim writes the agent's wait status here
        out_r, out_w = os.pipe()  # the agent's stdout
        fds = {"status-fd": status_w}
        if self.die_with_owner:  # the shim reads the agent's output into the log if we die
            self._lifeline = Lifeline()
            fds.update(
                {"lifeline-fd": self._lifeline.read_fd, "output-fd": out_r, "log-fd": logf.fd}
            )
        try:
            self._proc = self._popen_shim(fds, out_w)
        except OSError as exc:
            logf.close()
            for fd in (status_r, out_r):
                os.close(fd)
            if self._lifeline is not None:
                self._lifeline.close()
            raise WorkerError(
                f"cannot start worker {self.worker_id} ({self.argv[0]!r}): {exc}",
                task_id=self.task_id,
            ) from exc
        finally:
            os.close(status_w)
            os.close(out_w)
        if self._lifeline is not None:
            self._lifeline.release_read_end()  # the shim has it; the write end stays here
        self._status_fd = status_r
        self.pid = self._proc.pid
        _track(self)
        self._reader = OutputReader(
            out_r,
            logf,
            on_line=self._deliver,
            tail_lines=self.tail_lines,
            name=f"ralphnb-reader-{self.worker_id}",
            close=lambda: os.close(out_r),
        )
        if Worker._pre_monitor_hook is not None:
            Worker._pre_monitor_hook(self)
        # The monitor starts the reader and records the worker, keeping start() cheap.
        self._monitor = threading.Thread(
            target=self._watch, name=f"ralphnb-monitor-{self.worker_id}", daemon=True
        )
        self._monitor.start()
        return self

    def _open_log(self) -> LogFile:
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            return LogFile(self.log_path, max_bytes=self.max_log_bytes)
        except OSError as exc:
            raise WorkerError(
                f"cannot start worker {self.worker_id}: cannot create its log {exc.filename}: "
                f"{exc.strerror or exc}",
                task_id=self.task_id,
            ) from exc

    # -------------------------------------------------------------- threads

    def _deliver(self, line: str) -> None:  # on the reader thread
        if self.on_line is not None:  # read at each line: a caller may set it after start()
            try:
                self.on_line(line)
            except Exception:
                log.exception("on_line callback of worker %s failed", self.worker_id)

    def _watch(self) -> None:
        proc = self._proc
        assert proc is not None and self._reader is not None
        with contextlib.suppress(psutil.Error):
            self.create_time = psutil.Process(proc.pid).create_time()
        if self.registry is not None:
            try:
                self.registry.add(self)
            except OSError as exc:
                log.warning("could not record worker %s in registry: %s", self.worker_id, exc)
        self._reader.start()
        status = self._read_status()  # the agent's own exit, reported by the shim at once
        info = self._exited_with(status) if status is not None else None
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # wait without reaping
        with self._lock:
            self._reaping = True  # from now on the pid may be recycled: no more signals
        rc = proc.wait()
        if self._lifeline is not None:  # the shim is gone: nobody reads the lifeline any more
            self._lifeline.close()
        if info is None:  # the shim died without reporting (e.g. SIGKILLed from outside)
            info = self._exited_with(rc)
        elif rc == -signal.SIGKILL and info.signal != signal.SIGKILL:
            sweep_token(self.token)  # the shim was killed while sweeping: finish its job
        self._drain(info)

    def _read_status(self) -> int | None:
        """Block until the shim reports the agent's wait status; None if it never does.

        The shim first reports the agent's pid (`p<pid>`), then its wait status.
        """
        buf = b""
        try:
            while True:
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.startswith(b"p"):
                        self.agent_pid = int(line[1:])
                    else:
                        return os.waitstatus_to_exitcode(int(line))
                chunk = os.read(self._status_fd, 64)
                if not chunk:
                    return None
                buf += chunk
        except (OSError, ValueError):
            return None
        finally:
            with contextlib.suppress(OSError):
                os.close(self._status_fd)

    def _exited_with(self, rc: int) -> ExitInfo:
        """Record the exit (Popen convention: -N for signal N) and fire `on_exit`."""
        assert self.started_at is not None and self.pid is not None
        info = ExitInfo(
            pid=self.pid,
            returncode=rc if rc >= 0 else None,
            signal=-rc if rc < 0 else None,
            started_at=self.started_at,
            ended_at=datetime.now(UTC),
            log_path=self.log_path,
            reason=self._reason,
            task_id=self.task_id,
            worker_id=self.worker_id,
            stderr_path=self.stderr_path,
            detail=self._reader.log_error if self._reader is not None else None,
        )
        self.exit_info = info
        self._exited.set()
        if self.on_exit is not None:
            try:
                self.on_exit(info)
            except Exception:
                log.exception("on_exit callback of worker %s failed", self.worker_id)
        return info

    def _drain(self, info: ExitInfo) -> None:
        reader = self._reader
        assert reader is not None
        if info.signal == signal.SIGKILL:  # the shim may have died before sweeping
            sweep_token(self.token)
        if not reader.join(0.5):  # something still holds the output pipe: an escapee
            n = sweep_token(self.token)
            log.warning("worker %s: swept %d process(es) holding its output", self.worker_id, n)
            reader.join(5.0)
        if reader.log_error and info.detail is None:  # the log failed after the exit was told
            info = self.exit_info = replace(info, detail=reader.log_error)
        if self.registry is not None:
            self.registry.remove(self)
        self._drained.set()
        if self.on_drained is not None:
            try:
                self.on_drained(info)
            except Exception:
                log.exception("on_drained callback of worker %s failed", self.worker_id)

    # -------------------------------------------------------------- state

    @property
    def alive(self) -> bool:
        return self._proc is not None and not self._exited.is_set()

    @property
    def drained(self) -> bool:
        return self._drained.is_set()

    def wait(self, timeout: float | None = None) -> ExitInfo | None:
        """Block until the process exited and its output is drained; None on timeout."""
        if self._proc is None:
            raise WorkerError(f"worker {self.worker_id} was not started", task_id=self.task_id)
        if not self._drained.wait(timeout):
            return None
        return self.exit_info

    @property
    def lines_seen(self) -> int:
        return self._reader.lines_seen if self._reader is not None else 0

    @property
    def bytes_seen(self) -> int:
        return self._reader.bytes_seen if self._reader is not None else 0

    def tail(self, n: int = 50) -> list[str]:
        """The last `n` output lines (bounded by `tail_lines`)."""
        return self._reader.tail(n) if self._reader is not None else []

    def stderr_tail(self, max_bytes: int = 4096) -> str:
        """The end of the worker's stderr file (decoded, replacement for bad bytes)."""
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - max_bytes))
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    # -------------------------------------------------------------- stop / kill

    def _send_level(self, level: int) -> None:
        """Escalate to `level` once (1 SIGINT group, 2 shim kill-all, 3 SIGKILL + sweep)."""
        with self._lock:
            if self._reaping or self._level >= level or self._proc is None:
                return
            self._level = level
            pid = self._proc.pid
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if level == 1:
                    os.killpg(pid, signal.SIGINT)
                elif level == 2:
                    os.kill(pid, signal.SIGUSR1)
                else:
                    os.killpg(pid, signal.SIGKILL)
        if level == 3:
            sweep_token(self.token)

    def _escalate(self, deadline: float) -> None:
        self._send_level(2)
        if not self._exited.wait(max(0.0, min(1.0, deadline - time.monotonic()))):
            self._send_level(3)

    def _finish(self, deadline: float) -> ExitInfo:
        info = self.wait(max(0.0, deadline - time.monotonic()))
        if info is None:
            raise WorkerError(
                f"worker {self.worker_id} (pid {self.pid}) did not exit in time; "
                "reap it with ralphnb.workers.registry.reap_leftovers",
                task_id=self.task_id,
            )
        return info

    def stop(self, grace: float = 1.5, timeout: float = 10.0) -> ExitInfo:
        """SIGINT the group, wait `grace`, then kill everything. Returns once exit is confirmed."""
        if self._proc is None:
            raise WorkerError(f"worker {self.worker_id} was not started", task_id=self.task_id)
        deadline = time.monotonic() + grace + timeout
        with self._lock:
            if self._reason is None and not self._reaping:
                self._reason = "stop"
        self._send_level(1)
        if not self._exited.wait(grace):
            self._escalate(deadline)
        return self._finish(deadline)

    def kill(self, timeout: float = 10.0) -> ExitInfo:
        """Kill the agent and every descendant now. Returns once exit is confirmed."""
        if self._proc is None:
            raise WorkerError(f"worker {self.worker_id} was not started", task_id=self.task_id)
        deadline = time.monotonic() + timeout
        with self._lock:
            if not self._reaping:
                self._reason = "kill"
        self._escalate(deadline)
        return self._finish(deadline)

    # -------------------------------------------------------------- resources

    def resources(self) -> dict[str, float | int]:
        """CPU % (since the previous sample), RSS in MB and process count of the agent's tree.

        The shim itself is left out. Read from the shared process-table snapshot (`resources`),
        so sampling many workers at once walks the table once; figures are at most
        `resources.WINDOW` old. A process's first sample reports 0 CPU. Zeros once exited.
        """
        if not self.alive or self.pid is None:
            return {"cpu_percent": 0.0, "rss_mb": 0.0, "num_procs": 0}
        started = self.started_at.timestamp() if self.started_at is not None else None
        return _resources.tree_usage(self.pid, started=started)
