"""The claude runner end to end with the real Claude Code CLI and a scripted model on loopback:
the command the runner builds, spawned as a ralphnb Worker, parsed by the runner's parser."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from ralphnb.demo import create_sample_repo
from ralphnb.queue.store import Queue
from ralphnb.runners import build_prompt
from ralphnb.testing.model_server import ScriptedAnthropicServer, error, text
from ralphnb.workers.process import Worker, build_env
from tests.runners.claude_fixtures import (
    ERROR_SCRIPT,
    PROMISE,
    WRITE_SCRIPT,
    WRITTEN,
    claude_runner,
    done_script,
    require_claude,
)

pytestmark = pytest.mark.claude


@pytest.fixture
def claude_exe() -> str:
    return require_claude()


TASK = {
    "id": "RQ-0042",
    "title": "Write hello.txt",
    "status": "doing",
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:00Z",
}


def run_attempt(
    runner,
    tmp_path: Path,
    *,
    timeout: float = 60.0,
    task: dict = TASK,
    ws: Path | None = None,
    env: dict | None = None,
):
    ws = ws or tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    prompt = tmp_path / "prompt.md"
    prompt.write_text(build_prompt(task, workspace=ws, completion_promise=PROMISE, iteration=1))
    spec = runner.command(task, workspace=ws, prompt_file=prompt, iteration=1)
    parser = runner.parser()
    events: list[dict] = []
    lock = threading.Lock()

    def on_line(line: str) -> None:
        with lock:
            events.extend(parser.feed(line))

    w = Worker(
        spec.argv,
        cwd=ws,
        env=build_env({**spec.env, **(env or {})}),
        log_path=tmp_path / "attempt.log",
        worker_id="w1",
        task_id=task["id"],
        on_line=on_line,
        stdin_path=spec.stdin_path,
    )
    t0 = time.monotonic()
    w.start()
    info = w.wait(timeout=timeout)
    if info is None:
        w.kill()
        pytest.fail(f"claude did not finish in {timeout}s; log tail: {w.tail(20)}")
    return ws, info, events, parser, time.monotonic() - t0, w


def test_real_claude_writes_file_and_reports_session_turns_cost(tmp_path, claude_exe):
    with ScriptedAnthropicServer(WRITE_SCRIPT) as srv:
        runner = claude_runner(srv, tmp_path / "home", exe=claude_exe)
        ws, info, events, parser, _, w = run_attempt(runner, tmp_path)
        first = srv.message_requests[0]
    assert info.returncode == 0, w.tail(30)
    assert (ws / "hello.txt").read_text() == WRITTEN
    # the prompt went in on stdin: the model saw the task block
    assert "RQ-0042" in str(first["messages"]) and "```json" in str(first["messages"])
    assert srv.turns_used == 2
    sessions = [e for e in events if e["type"] == "session"]
    assert len(sessions) == 1
    assert [e["name"] for e in events if e["type"] == "tool"] == ["Write"]
    (result,) = [e for e in events if e["type"] == "result"]
    assert result["session_id"] == sessions[0]["session_id"]
    assert result["turns"] == 2 and result["is_error"] is False
    assert result["cost_usd"] is not None and result["cost_usd"] > 0
    assert result["tokens_in"] > 0 and result["tokens_out"] > 0
    assert PROMISE in result["text"]
    assert parser.summary()["session_id"] == result["session_id"]
    assert not [e for e in events if e["type"] in ("error", "text")]


@pytest.mark.parametrize(
    "script,words",
    [
        (ERROR_SCRIPT, ["400", "scripted bad request"]),
        ([error(401, "invalid x-api-key")], ["401", "API key"]),
    ],
    ids=["400", "401"],
)
def test_real_claude_api_error_is_clear_and_quick(tmp_path, claude_exe, script, words):
    with ScriptedAnthropicServer(script) as srv:
        runner = claude_runner(srv, tmp_path / "home", exe=claude_exe)
        ws, info, events, parser, elapsed, w = run_attempt(runner, tmp_path)
    assert info.returncode == 1, w.tail(30)
    assert elapsed < 30
    why = runner.diagnose(info.returncode, parser)
    assert why.startswith("claude runner: `claude` exited with code 1: ")
    assert words[-1] in why and "ANTHROPIC_API_KEY" in why
    (result,) = [e for e in events if e["type"] == "result"]
    assert result["is_error"] is True
    (err,) = [e for e in events if e["type"] == "error"]
    assert all(word in err["message"] for word in words), err
    assert not (ws / "hello.txt").exists()


def test_real_claude_overload_retries_are_announced_then_fail(tmp_path, claude_exe):
    with ScriptedAnthropicServer([error(529, "Overloaded")] * 5) as srv:
        runner = claude_runner(srv, tmp_path / "home", exe=claude_exe, max_retries=1)
        _, info, events, _, _, w = run_attempt(runner, tmp_path)
        assert srv.turns_used == 2  # the first call and one retry
    assert info.returncode == 1, w.tail(30)
    retries = [e for e in events if e["type"] == "retry"]
    assert [(r["attempt"], r["max_retries"]) for r in retries] == [(1, 1)]
    assert "529" in retries[0]["error"]
    assert [e for e in events if e["type"] == "result"][0]["is_error"] is True


GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
}


@pytest.mark.slow
def test_real_claude_commits_and_marks_done_in_the_users_queue(tmp_path, claude_exe):
    repo = create_sample_repo(tmp_path / "repo", n_tasks=2)
    ws = tmp_path / "ws"
    subprocess.run(
        ["git", "worktree", "add", "-q", "-b", "ralph/RQ-0001", str(ws)],
        cwd=repo,
        check=True,
        env={**os.environ, **GIT_ENV},
    )
    task = Queue(repo).start("RQ-0001").to_dict()
    worker_env = {
        **GIT_ENV,
        "RALPHNB_REPO": str(repo),
        "RALPHNB_WORKER": "w1",
        "RALPHNB_TASK_ID": "RQ-0001",
        "RALPHNB_ITERATION": "1",
    }
    with ScriptedAnthropicServer(done_script("RQ-0001", task["title"])) as srv:
        runner = claude_runner(srv, tmp_path / "home", exe=claude_exe)
        _, info, events, parser, _, w = run_attempt(
            runner, tmp_path, task=task, ws=ws, env=worker_env
        )
    assert info.returncode == 0, w.tail(30)
    log = subprocess.run(
        ["git", "log", "-1", "--format=%s", "--", "hello.txt"],
        cwd=ws,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert log == "RQ-0001: Add a greeting module"
    assert Queue(repo).get("RQ-0001").status == "done"  # the user's queue, not the workspace's
    assert not [e for e in events if e["type"] == "error"]  # no permission denials
    assert parser.summary()["turns"] == 4


@pytest.mark.slow
def test_real_claude_resumes_a_session(tmp_path, claude_exe):
    ws = tmp_path / "ws"
    ws.mkdir()
    prompt = tmp_path / "p.md"
    with ScriptedAnthropicServer([text("first answer"), text("second answer")]) as srv:
        runner = claude_runner(srv, tmp_path / "home", exe=claude_exe)
        sid = None
        for i, words in enumerate(["first prompt", "second prompt"], start=1):
            prompt.write_text(words)
            spec = runner.command(
                TASK, workspace=ws, prompt_file=prompt, iteration=i, session_id=sid
            )
            with open(spec.stdin_path) as fin:
                p = subprocess.run(
                    spec.argv,
                    cwd=ws,
                    env=build_env(spec.env),
                    stdin=fin,
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
            assert p.returncode == 0, p.stderr
            parser = runner.parser()
            for line in p.stdout.splitlines():
                parser.feed(line)
            assert sid is None or parser.session_id == sid
            sid = parser.session_id
        assert parser.last_message == "second answer"
        history = srv.message_requests[-1]["messages"]
        assert "first prompt" in json.dumps(history) and "first answer" in json.dumps(history)
