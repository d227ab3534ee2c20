"""Reusable pieces for running the real Claude Code CLI against the scripted model server.

`claude_executable()` finds the CLI (env RALPHNB_CLAUDE, else `.tools/node_modules/.bin/claude`
as `make test` installs it); `require_claude()` skips when it is absent locally and fails on CI.
`claude_runner(server, home)` is a `ralphnb.Claude` pointed at a `ScriptedAnthropicServer`
with an isolated HOME. Scripts: `WRITE_SCRIPT` (a Write tool_use, then a final text with the
promise), `ERROR_SCRIPT` (HTTP 400) and `done_script(id, title)` (write, commit, `ralphnb task
done`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ralphnb.runners import Claude
from ralphnb.testing.model_server import ScriptedAnthropicServer, error, text, tool_use

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMISE = "<promise>COMPLETE</promise>"
WRITTEN = "hello from the scripted model\n"

WRITE_SCRIPT = [
    tool_use(
        "Write", {"file_path": "hello.txt", "content": WRITTEN}, text_before="I'll write the file."
    ),
    text(f"Wrote hello.txt. {PROMISE}"),
]
ERROR_SCRIPT = [error(400, "scripted bad request")]


def done_script(task_id: str, title: str, *, file: str = "hello.txt") -> list[dict]:
    """Write a file, commit it as `<ID>: <title>`, run `ralphnb task done ID`, finish."""
    return [
        tool_use("Write", {"file_path": file, "content": WRITTEN}),
        tool_use(
            "Bash",
            {
                "command": f"git add {file} && git commit -q -m '{task_id}: {title}'",
                "description": "Commit the change",
            },
        ),
        tool_use(
            "Bash", {"command": f"ralphnb task done {task_id}", "description": "Mark the task done"}
        ),
        text(f"{task_id} is done."),
    ]


def claude_executable() -> str | None:
    env = os.environ.get("RALPHNB_CLAUDE")
    if env:
        return env if os.path.isfile(env) and os.access(env, os.X_OK) else None
    local = REPO_ROOT / ".tools" / "node_modules" / ".bin" / "claude"
    return str(local) if local.exists() and os.access(local, os.X_OK) else None


def require_claude() -> str:
    exe = claude_executable()
    if exe is None:
        msg = (
            "Claude Code CLI not found: run `make test` (it installs it into .tools/) or set "
            "RALPHNB_CLAUDE to its path"
        )
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return exe


def claude_runner(
    server: ScriptedAnthropicServer, home: Path, *, exe: str | None = None, **options: object
) -> Claude:
    """A Claude runner that talks to `server`, with HOME (its config and sessions) in `home`.

    As root Claude Code refuses to bypass permissions; `acceptEdits` lets Write work."""
    home.mkdir(parents=True, exist_ok=True)
    env = {**server.env(), "HOME": str(home)}
    options.setdefault("permission_mode", "acceptEdits")
    return Claude(executable=exe or require_claude(), env=env, **options)  # type: ignore[arg-type]
