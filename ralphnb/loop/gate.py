"""The CI gate: which check runs after the agent says its task is done, and what a failure tells
the agent on its next attempt.

Owns: `gate_check` (the `check=` argument, else ralph's `agent.ci_gate` where configuration sets
it; `{"enabled": false}` turns it off), `GateResult` (one run: ok, exit code, duration, the tail
of its output), `run_gate` (times `check.run_check_full`), `first_lines` (what a row shows) and
`failure_report` (the text handed back to the agent, as ralph's continue-session hands a CI
failure back to the same session).
Invariants: ralph's built-in default gate (`make ci`) never runs unasked: only a value a user set
(global or project config, a profile, the task) counts; the report holds at most `REPORT_LINES`
lines of output; everything but `run_gate` is pure.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..runners.phase_prompts import GATE_FAILED
from .check import CheckRun, CheckType, run_check_full

#: Lines of a failing gate's output handed back to the agent (the tail: where errors are).
REPORT_LINES = 60
#: Lines of it a row shows.
ROW_LINES = 3


def gate_check(check: CheckType, config: Any | None) -> CheckType:
    """The check a run uses: `check` when given, else `agent.ci_gate.argv` of `config` (a
    resolved `ralphnb.Config`) when a user set the gate and did not disable it, else None."""
    if check is not None or config is None:
        return check
    source = config.source("agent.ci_gate")
    gate = config.agent.ci_gate
    if source in (None, "default") or gate is None or gate.enabled is False:
        return None
    return list(gate.argv) if gate.argv else None


@dataclass(frozen=True)
class GateResult:
    """One run of the gate and how long it took (seconds)."""

    run: CheckRun
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.run.ok

    def event_data(self) -> dict[str, Any]:
        """The `check` event's data (the row's gate columns, and its status when it failed)."""
        data: dict[str, Any] = {
            "ok": self.ok,
            "exit_code": self.run.exit_code,
            "duration_s": round(self.duration_s, 3),
            "command": self.run.command,
        }
        if not self.ok:
            data["error"] = f"check failed: {first_lines(self.run)}"
        return data


def run_gate(
    check: CheckType,
    workspace: Path,
    env: dict[str, str],
    *,
    started: Callable[[subprocess.Popen], None] | None = None,
) -> GateResult:
    """Run the gate in the workspace and time it."""
    t0 = time.monotonic()
    res = run_check_full(check, workspace, env, started=started)
    return GateResult(res, time.monotonic() - t0)


def _tail(text: str, n: int) -> list[str]:
    return [ln.rstrip() for ln in text.strip().splitlines() if ln.strip()][-n:]


def first_lines(run: CheckRun, n: int = ROW_LINES) -> str:
    """The command, its exit code and the first `n` lines of the end of its output, on one line
    (a row's error text)."""
    head = f"`{run.command}` exited {run.exit_code}" if run.exit_code is not None else run.command
    lines = _tail(run.output, REPORT_LINES)[:n]
    return "; ".join([head, *lines]) if lines else head


def failure_report(task_id: str, run: CheckRun, *, resumed: bool) -> str:
    """What the agent is told after its claim of done failed the gate: the command, its exit
    code and the last `REPORT_LINES` lines of its output, and what to do next. `resumed`: the
    same session continues (it knows the task); else this follows the task's full prompt."""
    code = "" if run.exit_code is None else f" (exit code {run.exit_code})"
    out = "\n".join(_tail(run.output, REPORT_LINES)) or "(no output)"
    where = (
        "You said the task was done, but"
        if resumed
        else "A previous attempt at this task said it was done, but"
    )
    return (
        f"## {GATE_FAILED}: {task_id}\n\n"
        f"{where} the CI gate `{run.command}` failed{code}. The end of its output:\n\n"
        f"```text\n{out}\n```\n\n"
        f"Find and fix the cause in this workspace, run `{run.command}` yourself until it "
        "passes, commit the fix, and only then mark the task done again (or print the "
        "completion promise). Do not weaken or skip the gate.\n"
    )


__all__ = ["GATE_FAILED", "GateResult", "failure_report", "first_lines", "gate_check", "run_gate"]
