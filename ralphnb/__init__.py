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
from .experiments import Sweep
from .experiments.variants import Variant
from .loop.attached import AttachedLoop, attach
from .loop.budget import Budget
from .loop.core import Loop
from .loop.runs import Run
from .queue.config import resolve_config
from .queue.config_model import Config
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


def config(
    repo: str | os.PathLike[str] = ".",
    *,
    profile: str | None = None,
    task: Task | dict[str, Any] | str | None = None,
    **overrides: Any,
) -> Config:
    """The effective ralph configuration of `repo`, resolved as ralph resolves it.

    Layers, later wins, merged value by value: ralph's defaults, the global
    `~/.config/ralph/config.jsonc` (or `$XDG_CONFIG_HOME/ralph/config.jsonc`), the repo's
    `.ralph/config.jsonc`, the `profile` (one under `profiles`, or ralph's `safe` /
    `power-user`), the `task`'s `agent` block (a `Task`, a task dict or a task id), then the
    keyword arguments: an agent key by name (`runner="claude"`, `phases=2`) or a whole section
    (`parallel={"workers": 4}`). None means "not given".

    Returns a frozen `Config`: `cfg.agent.runner`, `cfg.source("agent.runner")` (`default`,
    `global`, `project`, `profile:<name>`, `task`, `argument`), `cfg.warnings`. No runner is
    ever picked by default: with none named anywhere, `cfg.agent.runner` is None. A bad value,
    or a command in an untrusted project config, raises `ConfigError` naming the file and key.
    """
    agent, label = None, "task"
    if task is not None:
        found = Queue(repo).get(task) if isinstance(task, str) else task
        data = found.to_dict() if isinstance(found, Task) else dict(found)
        agent, label = data.get("agent"), f"task {data.get('id')}"
    return resolve_config(
        repo, profile=profile, task_agent=agent, task_label=label, overrides=overrides
    )


__all__ = [
    "AttachedLoop",
    "Claude",
    "Codex",
    "Command",
    "Config",
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
    "Budget",
    "Sweep",
    "Variant",
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
    "attach",
    "config",
    "init",
    "run",
]


def __getattr__(name: str):  # lazy: importing ralphnb must not import dask
    if name == "DaskExecutor":
        from .workers.dask.executor import DaskExecutor

        return DaskExecutor
    raise AttributeError(f"module 'ralphnb' has no attribute {name!r}")
