"""Real-process tests of workers.resources and Worker.resources(): one scan per burst, figures."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from ralphnb.workers import resources
from ralphnb.workers.process import Worker, build_env, stop_all

CHILD = str(Path(__file__).resolve().parents[1] / "helpers" / "child.py")
pytestmark = pytest.mark.timeout(60)
ZEROS = {"cpu_percent": 0.0, "rss_mb": 0.0, "num_procs": 0}


@pytest.fixture(autouse=True)
def _no_leaks():
    yield
    stop_all(grace=0.0)


def start(tmp_path: Path, argv: list[str], name: str = "w1") -> Worker:
    """A worker whose agent printed `ready` (its children, if any, exist by then)."""
    ready = threading.Event()
    w = Worker(
        argv,
        cwd=tmp_path,
        env=build_env(),
        log_path=tmp_path / f"{name}.log",
        worker_id=name,
        on_line=lambda line: ready.set() if "ready" in line else None,
    )
    w.start()
    assert ready.wait(20), f"agent never got ready: {w.stderr_tail()}"
    return w


def test_worker_with_children_counts_them_and_their_memory(tmp_path):
    w = start(tmp_path, [sys.executable, CHILD, "fork", "3"])
    resources.invalidate()  # a snapshot from before the forks may be < WINDOW old
    res = w.resources()
    assert set(res) == {"cpu_percent", "rss_mb", "num_procs"}
    assert res["num_procs"] == 4  # the agent and its 3 children; the shim is left out
    assert res["rss_mb"] > 1.0


def test_burst_over_many_workers_scans_the_table_once(tmp_path):
    ws = [start(tmp_path, ["sh", "-c", "echo ready; exec sleep 600"], f"w{i}") for i in range(10)]
    resources.invalidate()
    before = resources.scan_count()
    figures = [w.resources() for _ in range(5) for w in ws]
    assert resources.scan_count() - before == 1
    assert len(figures) == 50
    assert all(f["num_procs"] == 1 and f["rss_mb"] > 0 for f in figures)


def test_snapshot_is_rescanned_after_the_window(tmp_path):
    w = start(tmp_path, ["sh", "-c", "echo ready; exec sleep 600"])
    w.resources()
    before = resources.scan_count()
    time.sleep(resources.WINDOW + 0.05)
    w.resources()
    assert resources.scan_count() - before == 1


def test_busy_child_shows_cpu_on_second_sample(tmp_path):
    w = start(tmp_path, ["sh", "-c", "echo ready; while :; do :; done"])
    resources.invalidate()
    first = w.resources()
    assert first["cpu_percent"] == 0.0 and first["num_procs"] == 1  # no previous sample yet
    time.sleep(resources.WINDOW + 0.25)
    second = w.resources()
    again = w.resources()  # same snapshot: the same figure, not a zero-length interval
    w.kill()
    assert second["cpu_percent"] > 0, second
    assert again["cpu_percent"] == second["cpu_percent"]


def test_dead_worker_returns_zeros(tmp_path):
    w = Worker(
        ["sh", "-c", "exit 3"],
        cwd=tmp_path,
        env=build_env(),
        log_path=tmp_path / "w.log",
        worker_id="w1",
    ).start()
    pid = w.pid
    assert w.wait(20) is not None
    assert w.resources() == ZEROS
    assert pid is not None and resources.tree_usage(pid) == ZEROS


def test_unknown_pid_returns_zeros_without_extra_scans():
    resources.snapshot()
    before = resources.scan_count()
    missing = 4_000_000  # above any pid_max: never in the table
    assert resources.tree_usage(missing, started=time.time() - 60) == ZEROS
    assert resources.scan_count() == before  # the snapshot is newer than the "process"


def test_reused_pid_starts_a_fresh_cpu_history():
    """Same pid, another start time: the old process's CPU sample must not be used."""
    pid = os.getpid()
    old = resources.Snapshot(
        taken=100.0, ppid={pid: 1}, start={pid: 5.0}, cpu={pid: 1.0}, rss={pid: 0}
    )
    new = resources.Snapshot(
        taken=101.0, ppid={pid: 1}, start={pid: 9.0}, cpu={pid: 50.0}, rss={pid: 0}
    )
    same = resources.Snapshot(
        taken=101.0, ppid={pid: 1}, start={pid: 5.0}, cpu={pid: 1.5}, rss={pid: 0}
    )
    with resources._lock:
        try:
            assert resources._percent(old, pid) == 0.0
            assert resources._percent(new, pid) == 0.0  # not (50 - 1) / 1 s = 4900 %
            assert resources._percent(same, pid) == pytest.approx(50.0)
        finally:
            resources._prev.pop((pid, 5.0), None)
            resources._prev.pop((pid, 9.0), None)


def test_concurrent_samplers_share_one_scan(tmp_path):
    w = start(tmp_path, ["sh", "-c", "echo ready; exec sleep 600"])
    resources.invalidate()
    before = resources.scan_count()
    out: list[dict] = []
    threads = [threading.Thread(target=lambda: out.append(w.resources())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert resources.scan_count() - before == 1
    assert [f["num_procs"] for f in out] == [1] * 8
