"""The one hardened entry point for git: every git command ralphnb runs goes through `run_git`.

Owns: the command line and environment of ralphnb's git calls (`SAFE_GIT_CONFIG`, `git_env`),
`GitError`, and `no_space`, which tells a full disk apart from other failures.
Invariants, for every call: hooks, `core.hooksPath`, fsmonitor and signing are off; no terminal
prompt, askpass, editor or pager; only the local `file` transport is allowed
(`GIT_ALLOW_PROTOCOL` overrides any `protocol.*` or `url.*` key, so no ssh, ext:: or remote
helper can start); replace refs are ignored; no optional index locks; and variables that would
point git at another repository (`GIT_DIR`, `GIT_INDEX_FILE`, ...) are dropped from the caller's
environment. Commands that read or write file contents, merge or commit do not run here with
the repository's config at all: they go through `sealed.Sealed`, which builds on `run_git`.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import WorkspaceError

SAFE_GIT_CONFIG: tuple[str, ...] = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.untrackedCache=false",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "credential.helper=",  # an empty value resets the list of helpers
    "protocol.ext.allow=never",
    "advice.detachedHead=false",
    "gc.auto=0",
    "maintenance.auto=false",
)

# Set for every call: no prompt, editor, askpass or pager program; local transport only.
_FIXED_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_OPTIONAL_LOCKS": "0",
    "GIT_ALLOW_PROTOCOL": "file",
    "GIT_ASKPASS": "",  # empty: neither core.askPass nor SSH_ASKPASS is consulted
    "GIT_EDITOR": ":",  # git's own "no editor"
    "GIT_SEQUENCE_EDITOR": ":",
    "GIT_PAGER": "cat",
    "GIT_NO_REPLACE_OBJECTS": "1",
}

# A push or fetch to the user's own remote (`network=True`): their usual transports too.
_NETWORK_ENV = {"GIT_ALLOW_PROTOCOL": "file:git:ssh:http:https"}

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
_NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device"
_NEARLY_FULL = 256 << 10  # bytes free below which a failed write is put down to a full disk


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


def no_space(exc: BaseException, where: str | Path | None = None) -> bool:
    """Whether `exc` (an OSError or a GitError) failed for a full disk: it says so, or (git
    often reports only "unable to write file") the file system of `where` is full now."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if not isinstance(exc, GitError):
        return False
    if _NO_SPACE.lower() in exc.stderr.lower():
        return True
    if where is None:
        return False
    try:
        return shutil.disk_usage(where).free < _NEARLY_FULL
    except OSError:
        return False


def git_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for git: `env` as given, or os.environ without repo-redirecting vars;
    either way with the fixed safety variables set."""
    if env is None:
        out = {k: v for k, v in os.environ.items() if k not in _REDIRECT_VARS}
    else:
        out = dict(env)
    out.update(_FIXED_ENV)
    return out


def run_git(
    args: Sequence[str],
    cwd: str | Path,
    *,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    task_id: str | None = None,
    input: str | None = None,
    errors: str = "replace",
    network: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run `git <args>` in `cwd` with the invariants above; text output captured.

    With `check`, a failure raises `GitError` carrying the command and git's stderr. `input`
    goes to git's stdin (closed otherwise); `errors="surrogateescape"` keeps file names that
    are not UTF-8 intact for callers that hand them back to git or the file system.
    `network=True` (a push or fetch the user asked for, to their own remote): the transports
    a user's remote uses (ssh, https, git) and their credential helper are allowed; every
    other invariant above holds.
    """
    cmd = ["git"]
    for item in SAFE_GIT_CONFIG:
        if not (network and item.startswith("credential.")):
            cmd += ["-c", item]
    cmd += list(args)
    try:
        r = subprocess.run(
            cmd,
            cwd=cwd,
            env={**git_env(env), **(_NETWORK_ENV if network else {})},
            capture_output=True,
            text=True,
            input=input,
            stdin=subprocess.DEVNULL if input is None else None,
            encoding="utf-8",
            errors=errors,
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
