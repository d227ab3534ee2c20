"""What one attempt of a task is started with: its prompt file, command, environment and spec.

Owns: `phase_command` (writes the prompt of the phase run and asks the runner for its command,
continuing a session where asked and the runner can), `worker_env` (the filtered environment
with the `RALPHNB_*` variables an agent reads) and `worker_spec` (the executor's `WorkerSpec`).
Never: spawns, waits or emits events (the driver does). Invariant: a prompt file is written
whole or not at all (a full disk leaves none, and the error names it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import RunnerError
from ..runners.base import CommandSpec, Runner
from ..workers.executors import WorkerSpec
from ..workers.process import build_env
from .context import DriverSettings
from .failures import with_file
from .phases import Handoffs, Step, TaskPhases
from .review import with_feedback


def write_prompt(path: Path, text: str) -> None:
    """Write a prompt file; on an error (a full disk) none is left and the error names it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise with_file(exc, path) from None


def phase_command(
    runner: Runner,
    task: Mapping[str, Any],
    step: Step,
    tp: TaskPhases,
    handoffs: Handoffs,
    settings: DriverSettings,
    *,
    resume: str | None,
    feedback: str | None = None,
    workspace: Path,
    iteration: int,
    attempt: int,
) -> tuple[CommandSpec, str]:
    """(the command of one phase run, a note when session `resume` could not be continued and a
    fresh session gets the failure instead). The prompt goes to the run directory's
    `prompts/<task>/<iteration>.md`; a reviewer's `feedback` ends it (`review.with_feedback`)."""
    prompt_file = settings.run_dir / "prompts" / str(task["id"]) / f"{iteration}.md"
    where = {"workspace": workspace, "prompt_file": prompt_file, "iteration": iteration}
    args = {
        "attempt": attempt,
        "workspace": workspace,
        "completion_promise": settings.completion_promise,
        "template": settings.prompt_template,
        "iteration": iteration,
    }
    note = ""
    if resume is not None and runner.supports_resume:
        text = handoffs.prompt(task, step, tp, resumed=True, **args)
        write_prompt(prompt_file, with_feedback(text, feedback))
        try:
            return runner.resume_command(task, session_id=resume, **where), ""
        except RunnerError as exc:  # this CLI cannot: a fresh session gets the failure
            note = f"session {resume} not continued ({exc}); a fresh session gets the failure"
    text = handoffs.prompt(task, step, tp, resumed=False, **args)
    write_prompt(prompt_file, with_feedback(text, feedback))
    return runner.command(task, **where), note


def worker_env(
    settings: DriverSettings,
    workspace: str | Path,
    *,
    worker_id: str,
    task_id: str,
    iteration: int,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The worker's filtered environment: `extra` (the runner's, the phase's) and the
    `RALPHNB_*` variables, with this interpreter's directory first on PATH."""
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    return build_env(
        {
            **(extra or {}),
            "PATH": path,
            "RALPHNB_REPO": str(settings.repo),
            "RALPHNB_WORKER": worker_id,
            "RALPHNB_TASK_ID": task_id,
            "RALPHNB_ITERATION": str(iteration),
            "RALPHNB_RUN_DIR": str(settings.run_dir),
            "RALPHNB_WORKSPACE": str(workspace),
        }
    )


def worker_spec(
    settings: DriverSettings,
    cmd: CommandSpec,
    *,
    worker_id: str,
    task_id: str,
    iteration: int,
    cwd: str | Path,
    env: dict[str, str],
    log: Path,
    task: dict[str, Any],
) -> WorkerSpec:
    """The executor's spec of one attempt."""
    return WorkerSpec(
        worker_id=worker_id,
        task_id=task_id,
        iteration=iteration,
        argv=tuple(cmd.argv),
        cwd=str(cwd),
        env=env,
        log_path=str(log),
        stdin_path=str(cmd.stdin_path) if cmd.stdin_path else None,
        registry_path=str(settings.run_dir / "workers"),
        task=task,
        grace=settings.grace,
        max_log_bytes=settings.max_log_bytes,
    )


__all__ = ["phase_command", "worker_env", "worker_spec", "write_prompt"]
