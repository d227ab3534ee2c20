"""`Loop(executor=DaskExecutor(client))` on a real LocalCluster: the demo agent end to end,
stop and kill from the Loop API reaching the remote tree, a Dask worker SIGKILLed mid-task
(the loop retries on its policy), and a cluster closed under a running loop (tasks back to
todo, no orphans)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import git, new_cluster, require_module

distributed = require_module("distributed")

from ralphnb.demo.sample import create_sample_repo  # noqa: E402
from ralphnb.loop.core import Loop  # noqa: E402
from ralphnb.queue.store import Queue  # noqa: E402
from ralphnb.workers.dask.executor import DaskExecutor  # noqa: E402

pytestmark = pytest.mark.slow


def agent_procs(repo: Path) -> list[psutil.Process]:
    """Every live (non-zombie) process started for this repo's workers: its environment names
    a workspace beside the repo (RALPHNB_REPO itself points at a stub on the Dask worker)."""
    prefix = str(repo.parent)
    out = []
    for p in psutil.process_iter():
        try:
            if p.status() == psutil.STATUS_ZOMBIE:
                continue
            if p.environ().get("RALPHNB_WORKSPACE", "").startswith(prefix):
                out.append(p)
        except psutil.Error:
            continue
    return out


def wait_for(pred, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def running_rows(loop: Loop, n: int):
    df = loop.df
    rows = df[(df.status == "running") & df.pid.notna()]
    return len(rows) >= n


def test_demo_agent_end_to_end_through_dask(client, tmp_path):
    repo = create_sample_repo(tmp_path / "repo", n_tasks=4, duration=0.4)
    loop = Loop(repo, runner="demo", parallel=2, executor=DaskExecutor(client))
    df = loop.run()
    q = Queue(repo)
    assert q.tasks == [] and sorted(t.id for t in q.done) == [f"RQ-000{i}" for i in range(1, 5)]
    assert all(t.status == "done" for t in q.done)
    final = df.groupby("task_id").tail(1)
    assert set(final.status) == {"integrated"}, df[["task_id", "status"]]
    assert df.pid.notna().all() and (df.exit_code == 0).all()
    assert df.session_id.notna().all() and (df.turns > 0).all()  # parsed stream came back
    assert len(df[df.task_id == "RQ-0004"]) == 2  # the task that needs two iterations
    # merged into the user's branch, by the client
    assert "Hello from ralphnb" in git(repo, "show", "HEAD:src/greeting.py")
    assert "CONTRIBUTING.md" in git(repo, "ls-tree", "--name-only", "HEAD")
    assert agent_procs(repo) == []


def test_stop_and_kill_from_the_loop_reach_the_remote_tree(client, tmp_path):
    repo = create_sample_repo(tmp_path / "repo", n_tasks=2, duration=1.0, git=True)
    q = Queue(repo)
    q.update("RQ-0001", custom_fields={"demo.hang": "1", "demo.children": "2"})
    q.update(
        "RQ-0002", custom_fields={"demo.hang": "1", "demo.ignore_sigint": "1", "demo.children": "2"}
    )
    ex = DaskExecutor(client)
    loop = Loop(repo, runner="demo", parallel=2, executor=ex, grace=0.5).start()
    try:
        wait_for(lambda: running_rows(loop, 2), what="two running workers")
        assert {h.address for h in ex.running} == set(client.scheduler_info()["workers"])
        wait_for(lambda: len(agent_procs(repo)) >= 6, what="agents and their children")

        def live() -> bool:  # parsed output, resources and log tails flow back while running
            df = loop.df
            return bool(df.session_id.notna().all() and (df.rss_mb > 0).all())

        wait_for(live, what="live session ids and resource figures")
        assert any('"subtype": "init"' in line for line in loop.logs("RQ-0001"))
        assert (loop.df.status == "running").all()
        t0 = time.monotonic()
        loop.stop("RQ-0001")  # honours SIGINT
        stop_s = time.monotonic() - t0
        t0 = time.monotonic()
        loop.kill("RQ-0002")  # ignores SIGINT, has children
        kill_s = time.monotonic() - t0
        assert loop.wait(30)
    finally:
        loop.stop_all()
        loop.wait(30)
    df = loop.df.set_index("task_id")
    assert df.loc["RQ-0001", "status"] == "stopped" and df.loc["RQ-0002", "status"] == "killed"
    assert df.loc["RQ-0002", "signal"] == signal.SIGKILL
    assert stop_s < 3.0 and kill_s < 3.0
    assert agent_procs(repo) == []  # no survivor anywhere, children included
    for t in Queue(repo).tasks:
        assert t.status == "todo" and any("by the user" in n for n in t.notes)


def test_dask_worker_sigkilled_mid_task_is_retried_by_the_loop(tmp_path):
    repo = create_sample_repo(tmp_path / "repo", n_tasks=1, duration=3.0)
    with new_cluster() as cluster, distributed.Client(cluster) as c:
        ex = DaskExecutor(c)
        loop = Loop(repo, runner="demo", parallel=1, max_iterations=3, executor=ex).start()
        try:
            wait_for(lambda: running_rows(loop, 1), what="a running worker")
            owner = ex.running[0].address
            first_pids = [p.pid for p in agent_procs(repo)]
            os.kill(c.run(os.getpid, workers=[owner])[owner], signal.SIGKILL)
            assert loop.wait(60)
        finally:
            loop.stop_all()
            loop.wait(30)
        df = loop.df
    assert list(df.iteration) == [1, 2] and list(df.status) == ["failed", "integrated"]
    assert df.signal.iloc[0] == signal.SIGKILL
    lost = [e for e in loop.events if e.kind == "exited" and e.data.get("reason") == "lost"]
    assert len(lost) == 1  # the exit event says why
    ends = [e for e in loop.events if e.kind == "iteration_end" and e.data.get("iteration", 1) == 1]
    assert any("removed from the cluster" in (e.data.get("reason") or "") for e in ends), ends
    assert (
        any("was removed from the cluster" in line for line in loop.logs("RQ-0001", 500))
        or "removed from the cluster" in Path(df.log_path.iloc[0]).read_text()
    )
    assert [t.id for t in Queue(repo).done] == ["RQ-0001"]
    assert not any(
        psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in first_pids
    )


def test_cluster_closed_under_a_running_loop_leaves_no_task_doing_and_no_orphan(tmp_path):
    repo = create_sample_repo(tmp_path / "repo", n_tasks=3, duration=30)
    cluster = new_cluster()
    c = distributed.Client(cluster)
    loop = Loop(repo, runner="demo", parallel=2, max_iterations=2, executor=DaskExecutor(c))
    loop.start()
    try:
        wait_for(lambda: running_rows(loop, 2), what="two running workers")
        cluster.close()
        assert loop.wait(60), loop
    finally:
        loop.stop_all()
        loop.wait(30)
        c.close()
    assert agent_procs(repo) == []
    tasks = Queue(repo).tasks
    assert len(tasks) == 3 and all(t.status == "todo" for t in tasks)  # none left doing
    assert "failed" in set(loop.df.status)


def test_ship_mode_works_in_a_copy_on_the_worker_and_merges_back(client, tmp_path):
    """workspace="ship": no shared filesystem assumed; the agent edits a copy on the Dask
    worker, the tree comes back, the loop commits and merges it on the client."""
    import json

    repo = create_sample_repo(tmp_path / "repo", n_tasks=3, duration=0.2)
    loop = Loop(repo, runner="demo", parallel=2, executor=DaskExecutor(client, workspace="ship"))
    df = loop.run()
    assert set(df.groupby("task_id").tail(1).status) == {"integrated"}, df[["task_id", "status"]]
    assert sorted(t.id for t in Queue(repo).done) == ["RQ-0001", "RQ-0002", "RQ-0003"]
    assert "Hello from ralphnb" in git(repo, "show", "HEAD:src/greeting.py")
    assert "greeting.py" in git(repo, "show", "HEAD:docs/greeting.md")
    for log_path, ws in zip(df.log_path, df.workspace, strict=True):
        init = json.loads(Path(log_path).read_text().splitlines()[0])  # written by the client
        assert init["subtype"] == "init" and init["cwd"] != ws  # it ran somewhere else
        assert not Path(init["cwd"]).exists()  # and that copy was cleaned up
