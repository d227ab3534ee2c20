"""The one hardened entry point for git: every git command ralphnb runs goes through `run_git`.

Owns: the command line and environment of ralphnb's git calls (`SAFE_GIT_CONFIG`, `git_env`)
and `GitError`. Invariants: hooks, `core.hooksPath` and fsmonitor are off, no terminal prompt,
no optional index locks, and variables that would point git at another repository
(`GIT_DIR`, `GIT_INDEX_FILE`, ...) are dropped from the caller's environment.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import WorkspaceError

SAFE_GIT_CONFIG: tuple[str, ...] = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "advice.detachedHead=false",
    "core.untrackedCache=false",
    "gc.auto=0",
    "maintenance.auto=false",
)


# Variables that would point git at another repository, index or object store.
_REDIRECT_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
)


class GitError(WorkspaceError):
    """A git command failed; `args`, `returncode` and `stderr` say how."""

    def __init__(
        self,
        message: str,
        *,
        git_args: Sequence[str],
        returncode: int,
        stderr: str,
        path: str | Path | None = None,
        task_id: str | None = None,
    ) -> None:
        super().__init__(message, path=path, task_id=task_id)
        self.git_args = list(git_args)
        self.returncode = returncode
        self.stderr = stderr


def git_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for git: `env` as given, or os.environ without repo-redirecting vars."""
    if env is None:
        out = {k: v for k, v in os.environ.items() if k not in _REDIRECT_VARS}
    else:
        out = dict(env)
    out["GIT_TERMINAL_PROMPT"] = "0"
    out["GIT_OPTIONAL_LOCKS"] = "0"
    return out


def run_git(
    args: Sequence[str],
    cwd: str | Path,
    *,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    task_id: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `git <args>` in `cwd` with hooks and fsmonitor off; text output captured.

    With `check`, a failure raises `GitError` carrying the command and git's stderr.
    """
    cmd = ["git"]
    for item in SAFE_GIT_CONFIG:
        cmd += ["-c", item]
    cmd += list(args)
    try:
        r = subprocess.run(
            cmd,
            cwd=cwd,
            env=git_env(env),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            errors="replace",
        )
    except OSError as exc:
        raise GitError(
            f"cannot run git in {cwd}: {exc}",
            git_args=args,
            returncode=-1,
            stderr=str(exc),
            path=cwd,
            task_id=task_id,
        ) from exc
    if check and r.returncode != 0:
        err = r.stderr.strip()
        raise GitError(
            f"`git {' '.join(args)}` failed in {cwd} (exit {r.returncode}): {err}",
            git_args=args,
            returncode=r.returncode,
            stderr=err,
            path=cwd,
            task_id=task_id,
        )
    return r
