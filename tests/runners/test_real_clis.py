"""Every runner with its real CLI (Codex, Gemini CLI, opencode, pi, kimi), offline, through the
public `ralphnb.Loop` on a real git repository; and each runner's session resume.

Each CLI gets a fresh HOME and TMPDIR, API retries off, and a scripted model server of its
protocol on 127.0.0.1 (`tests/runners/cli_fixtures.py`).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

import ralphnb
from ralphnb.runners import build_prompt
from ralphnb.testing import error, text
from ralphnb.workers.process import build_env
from tests.conftest import git, make_repo
from tests.runners.cli_fixtures import DONE_OPTIONS, KITS, PROMISE, WRITTEN, cli_params

pytestmark = pytest.mark.slow


def run_loop(repo: Path, runner: ralphnb.runners.Runner) -> tuple[object, float]:
    loop = ralphnb.Loop(repo, runner=runner, parallel=1, max_iterations=1, max_wall_time=240)
    t0 = time.monotonic()
    df = loop.run()
    return df, time.monotonic() - t0


def on_main(repo: Path, path: str) -> str:
    return git(repo, "show", f"main:{path}")


@pytest.mark.parametrize("cli", cli_params())
def test_file_lands_on_target_branch_and_df_has_session_turns_tokens_cost(tmp_path, cli):
    kit = KITS[cli]
    repo = make_repo(tmp_path, [{"title": "Write hello.txt"}])
    script = [kit.write(), text(f"Wrote hello.txt. {PROMISE}")]
    with kit.server(script) as srv:
        runner = kit.runner(srv, tmp_path)  # its least-privilege defaults
        df, _ = run_loop(repo, runner)
    assert on_main(repo, "hello.txt") == WRITTEN
    (row,) = df.to_dict("records")
    assert row["status"] == "integrated", row
    assert row["session_id"] and row["turns"] >= 1, row
    assert row["tokens_in"] > 0 and row["tokens_out"] > 0, row
    assert row["cost_usd"] > 0, row  # reported by the CLI, or estimated from the given price
    assert PROMISE in row["last_message"] or row["last_message"], row
    assert ralphnb.Queue(repo).get("RQ-0001").status == "done"
    assert srv.turns_used == 2


@pytest.mark.parametrize("cli", cli_params())
def test_ralphnb_task_done_run_by_the_agent_completes_the_task(tmp_path, cli):
    kit = KITS[cli]
    repo = make_repo(tmp_path, [{"title": "Write hello.txt"}])
    script = [kit.write(), kit.shell("ralphnb task done RQ-0001"), text("Finished.")]
    with kit.server(script) as srv:
        runner = kit.runner(srv, tmp_path, **DONE_OPTIONS[cli](repo))
        df, _ = run_loop(repo, runner)
    (row,) = df.to_dict("records")
    assert row["status"] == "integrated", row  # no promise: only the queue's `done` completes
    assert on_main(repo, "hello.txt") == WRITTEN
    assert srv.turns_used == 3


@pytest.mark.parametrize("cli", cli_params())
def test_http_400_fails_the_attempt_with_a_clear_error_in_seconds(tmp_path, cli):
    kit = KITS[cli]
    repo = make_repo(tmp_path, [{"title": "Write hello.txt"}])
    with kit.server([error(400, "scripted bad request")]) as srv:
        df, elapsed = run_loop(repo, kit.runner(srv, tmp_path))
    (row,) = df.to_dict("records")
    assert row["status"] != "integrated", row
    assert "scripted bad request" in row["error"], row
    if cli != "codex":  # codex passes on the error body, not the status
        assert "400" in row["error"], row
    assert f"{cli} runner: " in row["error"], row
    assert elapsed < 60, elapsed
    task = ralphnb.Queue(repo).get("RQ-0001")
    assert task.status == "todo" and "scripted bad request" in task.notes[-1]


@pytest.mark.parametrize("cli", cli_params())
def test_resume_command_continues_the_same_session(tmp_path, cli):
    kit = KITS[cli]
    ws = tmp_path / "ws"
    ws.mkdir()
    task = {"id": "RQ-0007", "title": "Answer twice"}
    prompt = tmp_path / "prompt.md"
    with kit.server([text("first answer"), text("second answer")]) as srv:
        runner = kit.runner(srv, tmp_path)
        sid = None
        for i, words in enumerate(["first prompt", "the CI gate failed: fix it"], start=1):
            prompt.write_text(build_prompt(task, workspace=ws, completion_promise=PROMISE) + words)
            if sid is None:
                spec = runner.command(task, workspace=ws, prompt_file=prompt, iteration=i)
            else:
                spec = runner.resume_command(
                    task, workspace=ws, prompt_file=prompt, iteration=i, session_id=sid
                )
            with open(spec.stdin_path) as fin:
                p = subprocess.run(
                    spec.argv,
                    cwd=ws,
                    env=build_env(spec.env),
                    stdin=fin,
                    capture_output=True,
                    text=True,
                    timeout=180,
                )
            assert p.returncode == 0, p.stderr[-2000:]
            parser = runner.parser()
            for line in p.stdout.splitlines():
                parser.feed(line)
            assert parser.session_id, p.stdout[-2000:]
            assert sid is None or parser.session_id == sid
            sid = parser.session_id
        history = json.dumps(srv.message_requests[-1])
    assert parser.last_message == "second answer"
    assert "first answer" in history and "the CI gate failed" in history


@pytest.mark.parametrize("cli", cli_params())
def test_a_failed_ci_gate_resumes_the_same_session_through_the_loop(tmp_path, cli):
    """The gate fails once (it marks that it ran); its report goes back into the session the
    agent worked in, which answers it, and the second gate run passes."""
    import sys

    from ralphnb.runners.phase_prompts import GATE_FAILED

    kit = KITS[cli]
    repo = make_repo(tmp_path, [{"title": "Write hello.txt"}])
    ran = tmp_path / "gate-ran"
    gate = [
        sys.executable,
        "-c",
        f"import pathlib, sys; p = pathlib.Path({str(ran)!r}); first = not p.exists(); "
        "p.touch(); sys.exit('gate: first run fails on purpose' if first else 0)",
    ]
    script = [kit.write(), text(f"Wrote hello.txt. {PROMISE}"), text(f"Gate fixed. {PROMISE}")]
    with kit.server(script) as srv:
        runner = kit.runner(srv, tmp_path)
        loop = ralphnb.Loop(repo, runner=runner, parallel=1, max_iterations=2, check=gate)
        df = loop.run()
        history = json.dumps(srv.message_requests[-1])
    assert list(df["status"]) == ["check_failed", "integrated"], df[["status", "error"]]
    assert df["check_exit_code"].tolist() == [1, 0]
    assert df.iloc[1]["session_id"] == df.iloc[0]["session_id"]  # the same session continues
    assert "Wrote hello.txt" in history and GATE_FAILED in history  # the earlier conversation
    assert "gate: first run fails on purpose" in history
    assert on_main(repo, "hello.txt") == WRITTEN
