"""Runners: one adapter per agent CLI — argv, environment, prompt delivery, stream parsing.

Owns: the package's public names; runner names are resolved in `names`; every runner's
stream becomes one transcript model (`transcript`, through `StreamParser.transcribe`).
Runners: claude, codex, gemini, opencode, pi, kimi, cursor, command, demo. Scripted model
servers to run the real CLIs against offline are in `ralphnb.testing`.
"""

from __future__ import annotations

from .base import CommandSpec, Runner, StreamParser, TextParser
from .claude import Claude, ClaudeStreamParser
from .codex import Codex, CodexStreamParser
from .command import Command
from .cursor import Cursor, CursorStreamParser
from .demo import Demo
from .gemini import Gemini, GeminiStreamParser
from .kimi import Kimi, KimiStreamParser
from .names import RUNNERS, get_runner, runner_from_config
from .opencode import Opencode, OpencodeStreamParser
from .pi import Pi, PiStreamParser
from .prompt import build_prompt, iterations_for_task, runner_for_task, task_from_prompt

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
    "Kimi",
    "KimiStreamParser",
    "Opencode",
    "OpencodeStreamParser",
    "Pi",
    "PiStreamParser",
    "Runner",
    "StreamParser",
    "TextParser",
    "build_prompt",
    "get_runner",
    "iterations_for_task",
    "runner_for_task",
    "runner_from_config",
    "task_from_prompt",
]
