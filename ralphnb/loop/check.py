"""The check command run in a workspace after an agent says its task is done.

Owns: running it (`run_check`: an argv list, a command string split like a shell would split it
but never run by one, or a Python callable given the workspace) in its own session, and
`kill_check`, which ends it and everything it started; `CheckRun` is what one run gave (its exit
code, the tail of its output). Invariants: no shell; a stop reaches a check at any moment; the
output kept is bounded (`MAX_OUTPUT` characters, the tail).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Characters of a check's output kept (its tail): enough for a failing test's report.
MAX_OUTPUT = 8000

CheckType = Sequence[str] | str | Callable[[Path], bool] | None


@dataclass(frozen=True)
class CheckRun:
    """One run of the check: `ok`, the command as text, its exit code (None for a callable or
    a command that could not start) and the tail of its output (stdout and stderr together)."""

    ok: bool
    command: str = ""
    exit_code: int | None = None
    output: str = ""

    @property
    def message(self) -> str:
        """One line: the command, its exit code and the last of its output."""
        if self.exit_code is None:
            return self.output
        tail = " ".join(self.output.split())[-300:]
        return f"`{self.command}` exited {self.exit_code}: {tail}"


def run_check(
    check: CheckType,
    workspace: Path,
    env: dict[str, str],
    *,
    started: Callable[[subprocess.Popen], None] | None = None,
) -> tuple[bool, str]:
    """Run the user's check in the workspace: (ok, one line on how it failed)."""
    res = run_check_full(check, workspace, env, started=started)
    return res.ok, "" if res.ok else res.message


def run_check_full(
    check: CheckType,
    workspace: Path,
    env: dict[str, str],
    *,
    started: Callable[[subprocess.Popen], None] | None = None,
) -> CheckRun:
    """Run the user's check in the workspace: argv list, shell-free string, or callable.
    A command runs in its own session; `started(proc)` lets the caller kill its group."""
    if check is None:
        return CheckRun(True)
    if callable(check):
        name = getattr(check, "__name__", type(check).__name__)
        try:
            ok = bool(check(workspace))
        except Exception as exc:
            return CheckRun(False, name, None, f"{type(exc).__name__}: {exc}")
        return CheckRun(ok, name, None, "" if ok else f"{name}({workspace}) returned False")
    argv = shlex.split(check) if isinstance(check, str) else [str(a) for a in check]
    command = shlex.join(argv)
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
        return CheckRun(False, command, None, f"{argv[0]!r} could not run: {exc}")
    with proc:
        if started is not None:
            started(proc)
        out, _ = proc.communicate()
    return CheckRun(proc.returncode == 0, command, proc.returncode, out[-MAX_OUTPUT:])


def kill_check(proc: subprocess.Popen | None) -> None:
    """Kill a running check's whole process group (it is not the agent: no grace needed)."""
    if proc is not None and proc.poll() is None:  # not reaped yet: its pid is still its own
        try:
            os.killpg(proc.pid, 9)
        except OSError:
            pass
