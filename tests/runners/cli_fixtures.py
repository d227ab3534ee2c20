"""Running the real agent CLIs (Codex, Gemini, opencode, pi, kimi) against scripted servers.

`cli_executable(name)` finds a CLI: env `RALPHNB_<NAME>`, else where `make test` installs it
(`.tools/node_modules/.bin/<name>`, `.tools/kimi/bin/kimi`); `require_cli(name)` skips when it
is absent locally and fails under CI (which installs them all). `KITS[name]` knows, for each
CLI, its scripted server, how its model writes `hello.txt`, runs a shell command, and how to
build a runner pointed at a server with a fresh HOME and TMPDIR and no API retries.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ralphnb.runners import Codex, Gemini, Kimi, Opencode, Pi
from ralphnb.runners.base import Runner
from ralphnb.testing import (
    ScriptedChatServer,
    ScriptedGeminiServer,
    ScriptedResponsesServer,
    ScriptedServer,
    tool_use,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS = REPO_ROOT / ".tools"
PROMISE = "<promise>COMPLETE</promise>"
WRITTEN = "hello from the scripted model\n"
KEY_VAR = "RALPHNB_TEST_MODEL_KEY"
KEY = "test-key-0123456789"
PRICE = (1.0, 2.0)  # USD per million tokens, for the cost the runner reports or estimates

LOCATIONS = {
    "codex": TOOLS / "node_modules" / ".bin" / "codex",
    "gemini": TOOLS / "node_modules" / ".bin" / "gemini",
    "opencode": TOOLS / "node_modules" / ".bin" / "opencode",
    "pi": TOOLS / "node_modules" / ".bin" / "pi",
    "kimi": TOOLS / "kimi" / "bin" / "kimi",
}
KIMI_NOTE = (
    "kimi-cli 1.51.0 needs Python >= 3.12 (newer than 3.12.1); `make test` installs it into "
    ".tools/kimi when it finds one (python3.13, python3.12 or a pyenv version)"
)


def cli_executable(name: str) -> str | None:
    env = os.environ.get(f"RALPHNB_{name.upper()}")
    path = Path(env) if env else LOCATIONS[name]
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def require_cli(name: str) -> str:
    exe = cli_executable(name)
    if exe is None:
        msg = (
            f"the {name} CLI is not installed: run `make test` (it installs it into .tools/) "
            f"or set RALPHNB_{name.upper()} to its path"
        )
        if name == "kimi":
            msg += f"; {KIMI_NOTE}"
        if os.environ.get("CI"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return exe


def fresh_env(tmp: Path) -> dict[str, str]:
    """A new HOME and TMPDIR for one CLI run, and the scripted endpoint's key."""
    home, tmpdir = tmp / "home", tmp / "tmp"
    home.mkdir(parents=True, exist_ok=True)
    tmpdir.mkdir(parents=True, exist_ok=True)
    return {"HOME": str(home), "TMPDIR": str(tmpdir), KEY_VAR: KEY}


@dataclass(frozen=True)
class Kit:
    """How one CLI is driven in tests."""

    name: str
    server: Callable[..., ScriptedServer]
    write: Callable[[], dict[str, Any]]  # a turn that writes hello.txt with WRITTEN
    shell: Callable[[str], dict[str, Any]]  # a turn that runs a shell command
    make: Callable[..., Runner]  # (server, tmp, exe, **options) -> runner

    def runner(self, server: ScriptedServer, tmp: Path, **options: Any) -> Runner:
        return self.make(server, tmp, require_cli(self.name), **options)


def _common(server: ScriptedServer, tmp: Path, exe: str) -> dict[str, Any]:
    return {
        "executable": exe,
        "base_url": getattr(server, "base_url", server.url),
        "api_key_env": KEY_VAR,
        "home": str(tmp / "homes"),
        "price": PRICE,
        "env": fresh_env(tmp),
    }


def _codex(server: ScriptedServer, tmp: Path, exe: str, **options: Any) -> Runner:
    return Codex(model="mock-model", max_retries=0, **_common(server, tmp, exe), **options)


def _gemini(server: ScriptedServer, tmp: Path, exe: str, **options: Any) -> Runner:
    common = {**_common(server, tmp, exe), "base_url": server.url}
    return Gemini(model="gemini-2.5-flash", max_retries=0, **common, **options)


def _opencode(server: ScriptedServer, tmp: Path, exe: str, **options: Any) -> Runner:
    return Opencode(model="mock-model", **_common(server, tmp, exe), **options)


def _pi(server: ScriptedServer, tmp: Path, exe: str, **options: Any) -> Runner:
    return Pi(model="mock-model", max_retries=0, **_common(server, tmp, exe), **options)


def _kimi(server: ScriptedServer, tmp: Path, exe: str, **options: Any) -> Runner:
    return Kimi(model="mock-model", max_retries=1, **_common(server, tmp, exe), **options)


KITS: dict[str, Kit] = {
    "codex": Kit(
        "codex",
        ScriptedResponsesServer,
        lambda: tool_use("exec_command", {"cmd": f"printf %s {shlex.quote(WRITTEN)} > hello.txt"}),
        lambda cmd: tool_use("exec_command", {"cmd": cmd}),
        _codex,
    ),
    "gemini": Kit(
        "gemini",
        ScriptedGeminiServer,
        lambda: tool_use("write_file", {"file_path": "hello.txt", "content": WRITTEN}),
        lambda cmd: tool_use("run_shell_command", {"command": cmd}),
        _gemini,
    ),
    "opencode": Kit(
        "opencode",
        ScriptedChatServer,
        lambda: tool_use("write", {"filePath": "hello.txt", "content": WRITTEN}),
        lambda cmd: tool_use("bash", {"command": cmd, "description": "Run a command"}),
        _opencode,
    ),
    "pi": Kit(
        "pi",
        ScriptedChatServer,
        lambda: tool_use("write", {"path": "hello.txt", "content": WRITTEN}),
        lambda cmd: tool_use("bash", {"command": cmd}),
        _pi,
    ),
    "kimi": Kit(
        "kimi",
        ScriptedChatServer,
        lambda: tool_use("WriteFile", {"path": "hello.txt", "content": WRITTEN}),
        lambda cmd: tool_use("Shell", {"command": cmd}),
        _kimi,
    ),
}

#: What each runner needs to be allowed to run `ralphnb task done` (opt-in where it is broader).
DONE_OPTIONS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "codex": lambda repo: {"writable_dirs": [repo / ".ralph"]},
    "gemini": lambda repo: {},
    "opencode": lambda repo: {},
    "pi": lambda repo: {"tools": ("read", "write", "edit", "bash")},
    "kimi": lambda repo: {"shell": True},
}


def cli_params() -> list[Any]:
    """`pytest.param(name, marks=<the CLI's marker>)` for every CLI with a kit."""
    return [pytest.param(name, marks=getattr(pytest.mark, name), id=name) for name in KITS]
