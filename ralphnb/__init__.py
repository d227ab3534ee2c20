"""ralphnb: run AI coding-agent loops over a ralph-compatible JSON task queue, notebook first.

The public face. Everything a user needs is importable from here; the rooms behind it are
described in each module's docstring.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .errors import (
    IntegrationError,
    LockError,
    QueueError,
    RalphError,
    RunnerError,
    WorkerError,
    WorkspaceError,
)
from .loop.core import Loop
from .loop.runs import Run
from .queue.store import Queue, Task, init
from .runners import Claude, Codex, Command, Cursor, Demo, Gemini, Kimi, Opencode, Pi
from .workers.executors import LocalExecutor

if TYPE_CHECKING:
    import pandas as pd

__version__ = "0.1.0"


def run(repo: str | os.PathLike[str] = ".", **options: Any) -> pd.DataFrame:
    """Run a loop over `repo`'s queue until it is idle and return its final worker table.

    A shorthand for `Loop(repo, **options).run()`; `options` are `Loop`'s keyword arguments
    (runner, parallel, max_iterations, check, ...).
    """
    return Loop(repo, **options).run()


__all__ = [
    "Claude",
    "Codex",
    "Command",
    "Cursor",
    "Demo",
    "Gemini",
    "Kimi",
    "Opencode",
    "Pi",
    "IntegrationError",
    "LocalExecutor",
    "LockError",
    "Loop",
    "Queue",
    "QueueError",
    "RalphError",
    "Run",
    "RunnerError",
    "Task",
    "WorkerError",
    "WorkspaceError",
    "DaskExecutor",
    "__version__",
    "init",
    "run",
]


def __getattr__(name: str):  # lazy: importing ralphnb must not import dask
    if name == "DaskExecutor":
        from .workers.dask.executor import DaskExecutor

        return DaskExecutor
    raise AttributeError(f"module 'ralphnb' has no attribute {name!r}")
