"""Runners: one adapter per agent CLI — argv, environment, prompt delivery, stream parsing.

Owns: the registry of runner names (`get_runner`) and the package's public names.
Runners: claude, codex, gemini, opencode, cursor, command, demo.
"""

from __future__ import annotations

from typing import Any

from ..errors import RunnerError
from .base import CommandSpec, Runner, StreamParser, TextParser
from .claude import Claude, ClaudeStreamParser
from .codex import Codex, CodexStreamParser
from .command import Command
from .cursor import Cursor, CursorStreamParser
from .demo import Demo
from .gemini import Gemini, GeminiStreamParser
from .opencode import Opencode, OpencodeStreamParser
from .prompt import build_prompt, iterations_for_task, runner_for_task, task_from_prompt

RUNNERS: dict[str, type[Runner]] = {
    "claude": Claude,
    "codex": Codex,
    "gemini": Gemini,
    "opencode": Opencode,
    "cursor": Cursor,
    "cursor-agent": Cursor,
    "demo": Demo,
}


def get_runner(name_or_obj: Any) -> Runner:
    """A runner object from a name ("claude", "demo", ...), a Runner class, or a Runner."""
    if isinstance(name_or_obj, Runner):
        return name_or_obj
    if isinstance(name_or_obj, type) and issubclass(name_or_obj, Runner):
        return name_or_obj()
    if isinstance(name_or_obj, str):
        cls = RUNNERS.get(name_or_obj.strip().lower())
        if cls is not None:
            return cls()
        known = ", ".join(sorted(set(RUNNERS) - {"cursor-agent"}))
        raise RunnerError(
            f"unknown runner {name_or_obj!r}; known runners: {known}, or pass "
            "ralphnb.Command([...]) to run any program",
            runner=name_or_obj,
        )
    raise RunnerError(f"runner must be a name or a Runner object, not {type(name_or_obj).__name__}")


__all__ = [
    "RUNNERS",
    "Claude",
    "ClaudeStreamParser",
    "Codex",
    "CodexStreamParser",
    "Command",
    "CommandSpec",
    "Cursor",
    "CursorStreamParser",
    "Demo",
    "Gemini",
    "GeminiStreamParser",
    "Opencode",
    "OpencodeStreamParser",
    "Runner",
    "StreamParser",
    "TextParser",
    "build_prompt",
    "get_runner",
    "iterations_for_task",
    "runner_for_task",
    "task_from_prompt",
]
