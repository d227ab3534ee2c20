"""Resume: the pure choice of the session to continue, and real loops that resume a task whose
agent was killed mid-run (or start it fresh: resume off, or the session too old)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import ralphnb.loop.resume as resume_mod
from ralphnb.loop.core import Loop
from ralphnb.loop.resume import PastAttempt, pick_resume
from ralphnb.runners.command import Command
from tests.conftest import git, make_repo

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
WS = "/ws/RQ-0001"


def rec(
    status: str,
    *,
    session: str | None = "s-1",
    ended_h: float | None = 1.0,
    it: int = 1,
    workspace: str = WS,
    started_h: float = 2.0,
) -> dict:
    return {
        "worker_id": f"RQ-0001#{it}",
        "task_id": "RQ-0001",
        "iteration": it,
        "status": status,
        "session_id": session,
        "workspace": workspace,
        "started_at": NOW - timedelta(hours=started_h),
        "ended_at": None if ended_h is None else NOW - timedelta(hours=ended_h),
    }


def pick(*attempts: PastAttempt, hours: float = 24):
    return pick_resume(attempts, workspace=WS, now=NOW, timeout_hours=hours)


@pytest.mark.parametrize("status", ["stopped", "killed", "timed_out"])
def test_an_interrupted_attempt_with_a_session_is_resumed(status):
    point = pick(PastAttempt("run-1", rec(status)))
    assert point is not None
    assert (point.session_id, point.worker_id, point.run_id, point.status) == (
        "s-1",
        "RQ-0001#1",
        "run-1",
        status,
    )
    assert "resuming session s-1 of RQ-0001#1" in point.describe()


def test_an_attempt_lost_with_its_loop_is_resumed_but_not_one_whose_loop_lives():
    live = rec("running", ended_h=None)
    assert pick(PastAttempt("run-1", live, loop_alive=False)).status == "lost"
    assert pick(PastAttempt("run-1", live, loop_alive=True)) is None


@pytest.mark.parametrize("status", ["failed", "succeeded", "integrated", "conflict"])
def test_an_attempt_that_ended_on_its_own_starts_fresh(status):
    assert pick(PastAttempt("run-1", rec(status))) is None


def test_a_session_older_than_the_timeout_starts_fresh():
    assert pick(PastAttempt("run-1", rec("killed", ended_h=25))) is None
    assert pick(PastAttempt("run-1", rec("killed", ended_h=25)), hours=48) is not None
    lost = rec("running", ended_h=None, started_h=30)  # no end: its start counts
    assert pick(PastAttempt("run-1", lost)) is None


def test_no_session_or_another_workspace_starts_fresh():
    assert pick(PastAttempt("run-1", rec("killed", session=None))) is None
    assert pick(PastAttempt("run-1", rec("killed", workspace="/elsewhere"))) is None
    assert pick() is None


def test_only_the_latest_attempt_counts():
    killed = PastAttempt("run-1", rec("killed", it=1))
    failed_later = PastAttempt("run-1", rec("failed", it=2, started_h=1.5))
    assert pick(killed, failed_later) is None
    killed_in_a_later_run = PastAttempt("run-2", rec("killed", it=1, session="s-2"))
    assert pick(failed_later, killed_in_a_later_run).session_id == "s-2"


# -------------------------------------------------------------- real loops, real processes

AGENT = textwrap.dedent(
    """
    import json, os, pathlib, sys, time, uuid
    args = sys.argv[1:]
    session = args[args.index("--session") + 1]
    ws = pathlib.Path.cwd()
    log = pathlib.Path(os.environ["AGENT_LOG"])
    n = len(list(log.glob("*.json"))) + 1
    record = {"argv": args, "first_there": (ws / "first.txt").exists()}
    (log / f"{n}.json").write_text(json.dumps(record))
    sid = session or f"sess-{uuid.uuid4().hex[:8]}"
    print(json.dumps({"type": "system", "subtype": "init", "session_id": sid}), flush=True)
    if not (ws / "first.txt").exists():  # the first attempt: works, then hangs until killed
        (ws / "first.txt").write_text("from the first attempt\\n")
        time.sleep(600)
    (ws / "second.txt").write_text("finished\\n")
    print("<promise>COMPLETE</promise>", flush=True)
    """
)


def agent(tmp_path: Path) -> tuple[Command, Path]:
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    log = tmp_path / "agent-log"
    log.mkdir()
    argv = [sys.executable, str(script), "--session", "{session_id}"]
    return Command(argv, parser="claude", env={"AGENT_LOG": str(log)}), log


def calls(log: Path) -> list[dict]:
    return [
        json.loads(p.read_text()) for p in sorted(log.glob("*.json"), key=lambda p: int(p.stem))
    ]


def first_run_killed(tmp_path: Path) -> tuple[Path, Command, Path, str]:
    """A loop whose agent wrote first.txt, then was killed mid-run; (repo, runner, log, sid)."""
    repo = make_repo(tmp_path, [{"title": "Resumable"}])
    runner, log = agent(tmp_path)
    loop = Loop(repo, runner=runner, parallel=1).start()
    deadline = time.monotonic() + 60
    ws = repo.parent / ".workspaces" / "repo" / "RQ-0001"
    while time.monotonic() < deadline:
        df = loop.df
        if (ws / "first.txt").exists() and len(df) and df["session_id"].notna().any():
            break
        time.sleep(0.1)
    else:
        loop.stop_all()
        pytest.fail("the first attempt never got going")
    loop.kill("RQ-0001")
    assert loop.wait(60)
    row = loop.df.iloc[-1]
    assert row["status"] == "killed"
    return repo, runner, log, str(row["session_id"])


@pytest.mark.slow
def test_a_killed_task_resumes_its_session_in_its_kept_workspace(tmp_path):
    repo, runner, log, sid = first_run_killed(tmp_path)
    loop = Loop(repo, runner=runner, parallel=1)
    df = loop.run()
    second = calls(log)[-1]
    assert second["argv"] == ["--session", sid]  # the resumed session
    assert second["first_there"]  # the first attempt's files were still there
    assert df.iloc[-1]["status"] == "integrated"
    events = [e for e in loop.events if e.kind == "status" and e.data.get("resumed")]
    assert events and events[0].data["resumed"] == "RQ-0001#1"
    assert f"resuming session {sid}" in events[0].data["message"]
    assert (repo / "first.txt").exists() and (repo / "second.txt").exists()
    assert "first.txt" in git(repo, "ls-tree", "--name-only", "main")


@pytest.mark.slow
def test_resume_false_starts_a_fresh_session(tmp_path):
    repo, runner, log, sid = first_run_killed(tmp_path)
    Loop(repo, runner=runner, parallel=1, resume=False).run()
    assert calls(log)[-1]["argv"] == ["--session", ""]


@pytest.mark.slow
def test_a_loop_whose_killed_session_is_older_than_the_timeout_starts_fresh(tmp_path, monkeypatch):
    repo, runner, log, sid = first_run_killed(tmp_path)
    (repo / ".ralph" / "config.jsonc").write_text('{"agent": {"session_timeout_hours": 2}}')
    later = datetime.now(UTC) + timedelta(hours=3)
    monkeypatch.setattr(resume_mod, "utcnow", lambda: later)
    loop = Loop(repo, runner=runner, parallel=1)
    assert loop.resume_hours == 2.0
    loop.run()
    assert calls(log)[-1]["argv"] == ["--session", ""]


LOOP_SCRIPT = """
import sys
from ralphnb.loop.core import Loop
from ralphnb.runners.command import Command
argv = [sys.executable, sys.argv[2], "--session", "{session_id}"]
Loop(sys.argv[1], runner=Command(argv, parser="claude", env={"AGENT_LOG": sys.argv[3]})).run()
"""


@pytest.mark.slow
def test_a_task_lost_with_its_loop_process_resumes_in_the_next_loop(tmp_path):
    repo = make_repo(tmp_path, [{"title": "Resumable"}])
    runner, log = agent(tmp_path)
    ws = repo.parent / ".workspaces" / "repo" / "RQ-0001"
    script = tmp_path / "agent.py"
    proc = subprocess.Popen(
        [sys.executable, "-c", LOOP_SCRIPT, str(repo), str(script), str(log)],
        env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2])),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (ws / "first.txt").exists():
        time.sleep(0.1)
    time.sleep(0.5)  # the agent's session line reaches the journal
    proc.send_signal(signal.SIGKILL)  # the loop dies; its agent hangs on in its own session
    proc.wait(10)
    first = calls(log)[0]
    assert first["argv"] == ["--session", ""]
    loop = Loop(repo, runner=runner, parallel=1)
    loop.run()
    second = calls(log)[-1]
    assert second["argv"][0] == "--session" and second["argv"][1].startswith("sess-")
    assert second["first_there"]
    resumed = [e for e in loop.events if e.data.get("resumed")]
    assert resumed and "(lost, run" in resumed[0].data["message"]
    assert (repo / "second.txt").exists()
