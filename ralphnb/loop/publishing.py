"""Which publish mode a loop runs with, and the push a driver makes after a task's merge.

Owns: `choose_publish` (the `Loop(publish=...)` argument, else ralph's `agent.git_publish_mode`
when a config file or profile sets it, else ralphnb's default `commit`; the push policy from
`parallel.max_push_attempts` and `parallel.push_backoff_ms`), its pure core `pick_publish`, and
`push_after_merge`, the one call a driver makes after archiving a merged task.
Invariants: ralph's built-in default (`off`) is not a user's choice and never changes what
ralphnb does; nothing pushes unless the mode is `commit_and_push`, chosen by the caller or the
configuration; only reads files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import RalphError
from ..queue.config import resolve_config
from ..workspace.publish import (
    DEFAULT_ATTEMPTS,
    DEFAULT_BACKOFF_MS,
    DEFAULT_MODE,
    PUBLISH_MODES,
    PushPolicy,
    push_report,
    push_target,
)


def pick_publish(argument: str | None, configured: str | None, source: str | None) -> str:
    """The mode: the argument, else a configured value that a file or profile set (ralph's
    built-in default does not count), else DEFAULT_MODE. Pure."""
    if argument is not None:
        return argument
    if configured is not None and source not in (None, "default"):
        return configured
    return DEFAULT_MODE


def choose_publish(
    repo: str | Path, publish: str | None, *, is_git: bool
) -> tuple[str, PushPolicy]:
    """(mode, push policy) for a loop over `repo`; a RalphError for a mode that is not one of
    PUBLISH_MODES, or for `off` outside git (there is no branch to leave the work on)."""
    cfg = resolve_config(repo, warn=False)
    mode = pick_publish(publish, cfg.agent.git_publish_mode, cfg.source("agent.git_publish_mode"))
    where = "publish" if publish is not None else "agent.git_publish_mode"
    if mode not in PUBLISH_MODES:
        raise RalphError(f"{where}={mode!r}: use one of {', '.join(PUBLISH_MODES)}")
    if mode != "commit" and not is_git:
        raise RalphError(
            f"{where}={mode!r} needs a git repository ({repo} is not one): use publish='commit'"
        )
    policy = PushPolicy(
        attempts=cfg.parallel.max_push_attempts or DEFAULT_ATTEMPTS,
        backoff_ms=tuple(cfg.parallel.push_backoff_ms or DEFAULT_BACKOFF_MS),
    )
    return mode, policy


def push_after_merge(settings: Any, should_stop: Callable[[], bool]) -> dict[str, str] | None:
    """After a task's merge and archive: push the target branch when the loop's mode is
    `commit_and_push` (the event data saying how it went), else nothing (None)."""
    if settings.publish != "commit_and_push" or not settings.target_branch:
        return None
    res = push_target(
        settings.repo, settings.target_branch, policy=settings.push, should_stop=should_stop
    )
    return push_report(res)
