"""The exception hierarchy of ralphnb.

Owns: `RalphError` and its few subclasses. Every message names the file, task or field at fault
and says what the user can do next. Nothing here does I/O.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class RalphError(Exception):
    """Base of every error ralphnb raises on purpose."""


class QueueError(RalphError):
    """A queue or done file is unreadable, invalid, or an operation on it is not allowed.

    `path` is the file; `line`/`column` are set for syntax errors (1-based), `task_id`/`field`
    for schema errors.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        column: int | None = None,
        task_id: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None
        self.line = line
        self.column = column
        self.task_id = task_id
        self.field = field


class LockError(RalphError):
    """The `.ralph/lock/` directory lock could not be taken; `owner` describes its holder."""

    def __init__(
        self, message: str, *, path: str | Path | None = None, owner: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None
        self.owner = owner


class WorkspaceError(RalphError):
    """A workspace could not be created, found, or removed safely."""

    def __init__(
        self, message: str, *, path: str | Path | None = None, task_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None
        self.task_id = task_id


class WorkerError(RalphError):
    """A worker process could not be spawned, stopped or reaped."""

    def __init__(self, message: str, *, task_id: str | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id


class RunnerError(RalphError):
    """An agent CLI is missing, misconfigured, or produced output it cannot be trusted with."""

    def __init__(
        self, message: str, *, runner: str | None = None, command: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.runner = runner
        self.command = command


class IntegrationError(RalphError):
    """Finished work could not be merged back into the target branch."""

    def __init__(
        self, message: str, *, task_id: str | None = None, paths: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.paths = paths or []
