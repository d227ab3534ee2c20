"""`ralphnb sweep`: variants named runner[:model], the summary and winners printed, `--merge`."""

from __future__ import annotations

import json

from ralphnb.queue.store import Queue
from tests.cli.ralphnb_process import run_cli
from tests.cli.test_loop_cmds import env, make_repo  # noqa: F401 - the fixture


def test_sweep_prints_the_summary_and_merges_the_winners(tmp_path, env):  # noqa: F811
    repo = make_repo(tmp_path, [{}, {}])
    r = run_cli(["sweep", "demo", "demo:demo-agent-2", "--merge", "--parallel", "4"], repo, env)
    assert r.returncode == 0, r.stderr
    assert "pass_rate" in r.stdout and "demo-demo-agent-2" in r.stdout
    assert "RQ-0001 -> demo" in r.stdout and "integrated" in r.stdout
    assert (repo / "t1.txt").exists() and (repo / "t2.txt").exists()
    assert Queue(repo).tasks == []


def test_sweep_json_gives_one_record_per_run_and_fails_without_a_passing_run(tmp_path, env):  # noqa: F811
    repo = make_repo(tmp_path, [{"demo.finish": "none"}])
    r = run_cli(["sweep", "demo", "--repeats", "2", "--json"], repo, env)
    assert r.returncode == 1, r.stderr
    rows = json.loads(r.stdout)
    assert [(x["task_id"], x["repeat"], x["passed"]) for x in rows] == [
        ("RQ-0001", 1, False),
        ("RQ-0001", 2, False),
    ]
    assert [t.status for t in Queue(repo).tasks] == ["todo"]
