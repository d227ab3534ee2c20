"""Where workers run: the executor seam between the Loop and processes.

Owns: `WorkerSpec` (everything needed to start one attempt, plain data, picklable, so a remote
executor can ship it), `Callbacks` (the only way information comes back: output lines, the
exit at once, the exit after output is drained), the `Executor`/`WorkerHandle` protocols, and
`LocalExecutor`, which runs specs as local `process.Worker`s. The Loop never touches a process
directly; a distributed executor implements the same two protocols.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .exits import ExitInfo
from .logfile import DEFAULT_MAX_LOG_BYTES
from .process import Worker
from .registry import Registry


@dataclass(frozen=True)
class WorkerSpec:
    """One attempt of one task, as plain data.

    `task`: the task as the queue holds it when the attempt is spawned (a `Task.to_dict()`, set
    by the loop). A local worker ignores it; the Dask executor builds the agent's stub queue from
    it, so nothing on the worker side reads the user's queue. `grace`: seconds between SIGINT
    and the kill when the worker stops its agent because its owner process died (the loop's
    `grace`). `max_log_bytes`: the cap of the attempt's log file (None: none).
    """

    worker_id: str
    task_id: str
    iteration: int
    argv: tuple[str, ...]
    cwd: str
    env: dict[str, str] = field(default_factory=dict)
    log_path: str = ""
    stdin_path: str | None = None
    registry_path: str | None = None
    tail_lines: int = 200
    task: dict[str, Any] | None = None
    grace: float = 1.5
    max_log_bytes: int | None = DEFAULT_MAX_LOG_BYTES


@dataclass
class Callbacks:
    """Called from the executor's threads. `on_exit` fires the moment the process exits;
    `on_drained` once its output is fully read too (then `wait()` returns)."""

    on_line: Callable[[str], None] | None = None
    on_exit: Callable[[ExitInfo], None] | None = None
    on_drained: Callable[[ExitInfo], None] | None = None


@runtime_checkable
class WorkerHandle(Protocol):
    @property
    def pid(self) -> int | None: ...
    def stop(self, grace: float = 1.5, timeout: float = 10.0) -> ExitInfo: ...
    def kill(self, timeout: float = 10.0) -> ExitInfo: ...
    def wait(self, timeout: float | None = None) -> ExitInfo | None: ...
    def tail(self, n: int = 50) -> list[str]: ...
    def resources(self) -> dict[str, Any]: ...


@runtime_checkable
class Executor(Protocol):
    def spawn(self, spec: WorkerSpec, callbacks: Callbacks) -> WorkerHandle: ...
    def close(self) -> None: ...


class LocalHandle:
    """A `process.Worker` seen through the handle protocol."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    @property
    def pid(self) -> int | None:
        return self.worker.pid

    @property
    def alive(self) -> bool:
        return self.worker.alive

    def stop(self, grace: float = 1.5, timeout: float = 10.0) -> ExitInfo:
        return self.worker.stop(grace=grace, timeout=timeout)

    def kill(self, timeout: float = 10.0) -> ExitInfo:
        return self.worker.kill(timeout=timeout)

    def wait(self, timeout: float | None = None) -> ExitInfo | None:
        return self.worker.wait(timeout)

    def tail(self, n: int = 50) -> list[str]:
        return self.worker.tail(n)

    def resources(self) -> dict[str, Any]:
        return dict(self.worker.resources())

    def __repr__(self) -> str:
        return f"LocalHandle({self.worker!r})"


class LocalExecutor:
    """Runs each spec as a local supervised process (own session, monitor thread, registry)."""

    def __init__(self) -> None:
        self._registries: dict[str, Registry] = {}

    def _registry(self, path: str | None) -> Registry | None:
        if path is None:
            return None
        reg = self._registries.get(path)
        if reg is None:
            reg = self._registries[path] = Registry(path)
        return reg

    def spawn(self, spec: WorkerSpec, callbacks: Callbacks) -> LocalHandle:
        """Start the process; raises `WorkerError` (e.g. missing executable) before any thread."""
        Path(spec.log_path).parent.mkdir(parents=True, exist_ok=True)
        worker = Worker(
            list(spec.argv),
            cwd=spec.cwd,
            env=spec.env,
            log_path=spec.log_path,
            worker_id=spec.worker_id,
            task_id=spec.task_id,
            on_line=callbacks.on_line,
            on_exit=callbacks.on_exit,
            on_drained=callbacks.on_drained,
            stdin_path=spec.stdin_path,
            tail_lines=spec.tail_lines,
            registry=self._registry(spec.registry_path),
            grace=spec.grace,
            max_log_bytes=spec.max_log_bytes,
        )
        return LocalHandle(worker.start())

    def close(self) -> None:
        """Nothing pooled locally; workers are stopped by their owner (and at exit)."""

    def __repr__(self) -> str:
        return "LocalExecutor()"
