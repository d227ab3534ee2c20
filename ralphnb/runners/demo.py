"""The `demo` runner: ralphnb's own deterministic agent (`python -m ralphnb.demo.agent`).

Owns: the argv for the demo agent program (this interpreter, so no PATH lookup can fail) and its
environment (`RALPHNB_DEMO_*` pass through; `speed=` sets `RALPHNB_DEMO_SPEED`; `PYTHONPATH`
points at this copy of ralphnb so the agent and its `ralphnb task done` use the same code).
The agent writes Claude Code stream-json, so its parser is the Claude parser; like Claude Code,
it continues a session with `--resume=<id>`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, ClassVar

from .base import CommandSpec, Runner, task_dict
from .claude import ClaudeStreamParser

_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


class Demo(Runner):
    """The built-in demo agent. `speed`: multiplier for its timings (0.1 = ten times faster)."""

    name: ClassVar[str] = "demo"
    env_passthrough = ("RALPHNB_DEMO_*",)
    failure_hint = "The demo agent does what its task's demo.* fields say; see the log."

    def __init__(
        self,
        executable=None,
        model=None,
        extra_args=(),
        env=None,
        *,  # noqa: ANN001
        speed: float | None = None,
    ) -> None:
        super().__init__(executable, model, extra_args, env)
        self.speed = speed

    def display_command(self) -> str:
        return "python -m ralphnb.demo.agent"

    def resolve_executable(self) -> str:
        return self.executable or sys.executable

    def command(
        self,
        task: Any,
        *,
        workspace: Path,
        prompt_file: Path,
        iteration: int,
        session_id: str | None = None,
    ) -> CommandSpec:
        task_dict(task)
        argv = [
            self.resolve_executable(),
            "-m",
            "ralphnb.demo.agent",
            "--prompt-file",
            str(prompt_file),
        ]
        if self.model:
            argv += self._flag("--model", "model", self.model)
        argv += self._flag("--resume", "session id", session_id)
        env = self.passthrough_env()
        pp = os.environ.get("PYTHONPATH")
        env["PYTHONPATH"] = _PACKAGE_PARENT + (os.pathsep + pp if pp else "")
        if self.speed is not None:
            env["RALPHNB_DEMO_SPEED"] = str(float(self.speed))
        env.update(self.env)
        return CommandSpec(argv=argv + self.extra_args, env=env)

    def parser(self) -> ClaudeStreamParser:
        return ClaudeStreamParser()
