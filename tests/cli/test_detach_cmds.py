"""`ralphnb run --detach`, `ralphnb status` and `ralphnb attach` on a loop in its own process
(the real command, real processes, the demo agent)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil

from ralphnb.loop.control import live_run
from ralphnb.loop.runs import Run, list_runs
from tests.cli.ralphnb_process import run_cli
from tests.conftest import demo, make_repo

FAST = {"RALPHNB_DEMO_SPEED": "0.05"}


def wait_running(repo, task_ids, timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = run_cli(["status", "--json"], repo, FAST)
        if r.returncode == 0:
            recs = {x["task_id"]: x for x in json.loads(r.stdout)["records"]}
            if all(recs.get(t, {}).get("status") == "running" for t in task_ids):
                return json.loads(r.stdout)
        time.sleep(0.2)
    raise AssertionError(f"{task_ids} not running within {timeout} s")


def test_run_detach_returns_and_status_attach_and_stop_reach_the_loop(tmp_path):
    repo = make_repo(tmp_path, [demo("hang", hang="1", duration="2000"), demo("quick")])
    started = run_cli(["run", "--detach", "--runner", "demo", "--parallel", "1"], repo, FAST)
    assert started.returncode == 0, started.stderr
    assert "running detached" in started.stdout and "ralphnb attach" in started.stdout
    run_dir, info = live_run(repo)
    try:
        status = wait_running(repo, ["RQ-0001"])
        assert status["head"].startswith(f"run {run_dir.name}: running (pid {info['pid']})")
        follower = subprocess.Popen(
            [sys.executable, "-m", "ralphnb", "attach"],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.0)  # attached and following before the loop moves on
        stopped = run_cli(["stop", "RQ-0001"], repo, FAST)
        assert stopped.returncode == 0, stopped.stderr
        out, err = follower.communicate(timeout=90)  # the quick task runs, then it finishes
        assert follower.returncode == 0, err
        assert "RQ-0002" in out and f"run {run_dir.name}: finished" in out
    finally:  # a failed test leaves no loop behind: SIGTERM stops a detached loop cleanly
        if psutil.pid_exists(info["pid"]):
            os.kill(info["pid"], signal.SIGTERM)
    recs = Run.load(list_runs(repo)[-1]).records.values()
    assert {r["task_id"]: r["status"] for r in recs} == {
        "RQ-0001": "stopped",
        "RQ-0002": "integrated",
    }
    assert "not running" in run_cli(["status"], repo, FAST).stdout


def test_attach_with_no_loop_running_is_a_one_line_error(tmp_path):
    repo = make_repo(tmp_path, [demo("one")])
    r = run_cli(["attach"], repo)
    assert r.returncode == 1
    assert r.stderr.startswith("ralphnb: error: no loop is running on")
