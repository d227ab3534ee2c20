"""`Command(argv)`: run any program as the agent, with placeholders filled per argv element.

Owns: placeholder substitution — `{prompt_file}`, `{prompt}`, `{task_id}`, `{workspace}`,
`{iteration}`, `{session_id}`; `{python}` as the program means this interpreter — done element
by element on a list (a string template is split with `shlex` *before* substitution), so task
text can never be reinterpreted by a shell. Other braces (e.g. JSON in an argument) stay as
they are.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from ..errors import RunnerError
from .base import CommandSpec, Runner, StreamParser, TextParser, task_dict
from .names import get_runner

PLACEHOLDERS = ("prompt_file", "prompt", "task_id", "workspace", "iteration", "session_id")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")


def substitute(argv: Iterable[str], values: Mapping[str, str]) -> list[str]:
    """Fill `{name}` placeholders in each element; unknown braces stay untouched."""
    return [_PLACEHOLDER.sub(lambda m: values[m.group(1)], str(a)) for a in argv]


class Command(Runner):
    """Any command as a runner: `ralphnb.Command(["my-agent", "--task", "{task_id}",
    "--prompt-file", "{prompt_file}"])`.

    `parser`: "text" (default: each line a text event), a runner name whose stream format the
    command speaks ("claude", "codex", "gemini", "opencode", "cursor"), or a callable returning
    a `StreamParser`. `stdin_prompt=True` feeds the prompt file on stdin.
    """

    name: ClassVar[str] = "command"

    def __init__(
        self,
        argv: str | Iterable[str],
        *,
        env: Mapping[str, str] | None = None,
        parser: str | Callable[[], StreamParser] = "text",
        stdin_prompt: bool = False,
        name: str | None = None,
        env_passthrough: Iterable[str] = (),
    ) -> None:
        args = shlex.split(argv) if isinstance(argv, str) else [str(a) for a in argv]
        if not args:
            raise RunnerError("command runner: argv is empty", runner="command", command=[])
        if args[0] == "{python}":  # this interpreter, e.g. for a Python script as the agent
            args[0] = sys.executable
        super().__init__(executable=args[0], env=env)
        self.argv_template = args
        self.stdin_prompt = stdin_prompt
        self._parser = parser
        if name:
            self.name = name  # type: ignore[misc]
        self.extra_passthrough = tuple(env_passthrough)

    def __repr__(self) -> str:
        return f"Command({self.argv_template!r})"

    def passthrough_patterns(self) -> tuple[str, ...]:
        return self.extra_passthrough

    def command(
        self,
        task: Any,
        *,
        workspace: Path,
        prompt_file: Path,
        iteration: int,
        session_id: str | None = None,
    ) -> CommandSpec:
        t = task_dict(task)
        values = {
            "prompt_file": str(prompt_file),
            "task_id": str(t.get("id", "")),
            "workspace": str(workspace),
            "iteration": str(iteration),
            "session_id": session_id or "",
            "prompt": "",
        }
        if any("{prompt}" in a for a in self.argv_template):
            values["prompt"] = self._read_prompt(Path(prompt_file))
        argv = substitute(self.argv_template, values)
        argv[0] = self.resolve_executable()
        return CommandSpec(
            argv=argv,
            env=self.base_env(),
            stdin_path=Path(prompt_file) if self.stdin_prompt else None,
        )

    def parser(self) -> StreamParser:
        p = self._parser
        if callable(p):
            return p()
        if p in (None, "text"):
            return TextParser()
        return get_runner(str(p)).parser()
