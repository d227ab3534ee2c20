"""The CI gate with the real Claude Code CLI against the scripted model server: a gate that fails
once sends its failure back into the same Claude session (`--resume`), which fixes the work."""

from __future__ import annotations

import json
import sys

import pytest

from ralphnb.loop.core import Loop
from ralphnb.runners.phase_prompts import GATE_FAILED
from ralphnb.testing.model_server import ScriptedAnthropicServer, text, tool_use
from tests.conftest import git, make_repo
from tests.runners.claude_fixtures import PROMISE, claude_runner, require_claude

pytestmark = [pytest.mark.claude, pytest.mark.slow]

GATE = [
    sys.executable,
    "-c",
    "import sys; t = open('hello.txt').read().strip(); "
    "sys.exit(0) if t == 'fixed' else sys.exit('gate: hello.txt says ' + t)",
]

SCRIPT = [
    tool_use("Write", {"file_path": "hello.txt", "content": "broken\n"}),
    text(f"Wrote hello.txt. {PROMISE}"),
    tool_use("Write", {"file_path": "hello.txt", "content": "fixed\n"}),
    text(f"Fixed hello.txt. {PROMISE}"),
]


def test_real_claude_resumes_its_session_after_a_failed_gate(tmp_path):
    exe = require_claude()
    repo = make_repo(tmp_path, [{"title": "Write hello.txt"}])
    with ScriptedAnthropicServer(SCRIPT) as srv:
        runner = claude_runner(srv, tmp_path / "home", exe=exe)
        df = Loop(repo, runner=runner, check=GATE, max_iterations=2).run()
        requests = srv.message_requests
    assert list(df["status"]) == ["check_failed", "integrated"], df[["status", "error"]]
    first, second = df.iloc[0], df.iloc[1]
    assert first["check_exit_code"] == 1 and "gate: hello.txt says broken" in first["error"]
    assert first["session_id"] and second["session_id"] == first["session_id"]
    history = json.dumps(requests[-1]["messages"])
    # the second attempt's conversation holds the first one and the gate's failure report
    assert "broken" in history and GATE_FAILED in history
    assert "gate: hello.txt says broken" in history
    assert git(repo, "show", "main:hello.txt") == "fixed\n"
