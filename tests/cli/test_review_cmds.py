"""`ralphnb run --review` and `ralphnb review/accept/discard/requeue`, as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from ralphnb.queue.store import Queue
from tests.cli.test_loop_cmds import make_repo, ralphnb
from tests.conftest import git


@pytest.fixture
def env(monkeypatch) -> dict[str, str]:
    """The demo agent fast, and a fixed git identity, for this test and its subprocesses."""
    e = dict(os.environ, RALPHNB_DEMO_SPEED="0.05")
    for who in ("AUTHOR", "COMMITTER"):
        e[f"GIT_{who}_NAME"], e[f"GIT_{who}_EMAIL"] = "Test", "t@example.invalid"
    monkeypatch.setenv("RALPHNB_DEMO_SPEED", "0.05")
    return e


def _waiting(repo, env) -> list[str]:
    r = ralphnb("review", "--repo", str(repo), "--json", env=env)
    return [w["task_id"] for w in json.loads(r.stdout)] if r.returncode == 0 else []


def _until(pred, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


@pytest.mark.slow
def test_a_person_reviews_a_running_loop_from_another_terminal(tmp_path, env):
    repo = make_repo(tmp_path, [{}, {}])
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ralphnb",
            "run",
            "--runner",
            "demo",
            "--repo",
            str(repo),
            "--parallel",
            "1",
            "--review",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _until(lambda: _waiting(repo, env) == ["RQ-0001", "RQ-0002"])
        listing = ralphnb("review", "--repo", str(repo), env=env)
        assert "RQ-0001" in listing.stdout and "1 file, +1 -0" in listing.stdout
        r = ralphnb("requeue", "RQ-0001", "--feedback", "more", "--repo", str(repo), env=env)
        assert r.returncode == 0 and "requeued" in r.stdout, r.stderr
        _until(lambda: _waiting(repo, env) == ["RQ-0002", "RQ-0001"])
        r = ralphnb("discard", "RQ-0002", "--note", "no", "--repo", str(repo), env=env)
        assert r.returncode == 0, r.stderr
        r = ralphnb("accept", "RQ-0001", "--repo", str(repo), env=env)
        assert r.returncode == 0 and "accepted" in r.stdout, r.stderr
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert "t1.txt" in git(repo, "ls-tree", "--name-only", "main")
    assert "t2.txt" not in git(repo, "ls-tree", "--name-only", "main")
    q = Queue(repo)
    assert [t.id for t in q.done] == ["RQ-0001"]
    assert q.get("RQ-0002").status == "todo" and "no" in q.get("RQ-0002").notes[-1]


def test_review_commands_need_a_running_loop(tmp_path, env):
    repo = make_repo(tmp_path, [{}])
    r = ralphnb("accept", "RQ-0001", "--repo", str(repo), env=env)
    assert r.returncode == 1 and "no loop is running" in r.stderr
    r = ralphnb("requeue", "RQ-0001", "--repo", str(repo), env=env)
    assert r.returncode == 2 and "--feedback" in r.stderr
