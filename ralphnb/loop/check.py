"""The check command run in a workspace after an agent says its task is done.

Owns: running it (`run_check`: an argv list, a command string split like a shell would split it
but never run by one, or a Python callable given the workspace) in its own session, and
`kill_check`, which ends it and everything it started. Invariants: no shell; a stop reaches a
check at any moment.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

CheckType = Sequence[str] | str | Callable[[Path], bool] | None


def run_check(
    check: CheckType,
    workspace: Path,
    env: dict[str, str],
    *,
    started: Callable[[subprocess.Popen], None] | None = None,
) -> tuple[bool, str]:
    """Run the user's check in the workspace: argv list, shell-free string, or callable.
    A command runs in its own session; `started(proc)` lets the caller kill its group."""
    if check is None:
        return True, ""
    if callable(check):
        try:
            return bool(check(workspace)), ""
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
    argv = shlex.split(check) if isinstance(check, str) else [str(a) for a in check]
    try:
        proc = subprocess.Popen(
            argv,
            cwd=workspace,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except OSError as exc:
        return False, f"{argv[0]!r} could not run: {exc}"
    with proc:
        if started is not None:
            started(proc)
        out, _ = proc.communicate()
    tail = " ".join(out.split())[-300:]
    return proc.returncode == 0, f"`{shlex.join(argv)}` exited {proc.returncode}: {tail}"


def kill_check(proc: subprocess.Popen | None) -> None:
    """Kill a running check's whole process group (it is not the agent: no grace needed)."""
    if proc is not None and proc.poll() is None:  # not reaped yet: its pid is still its own
        try:
            os.killpg(proc.pid, 9)
        except OSError:
            pass
