"""A detached loop outlives a real Jupyter kernel and is reattached from the restarted one:
the same workers still running, the table complete, stop and kill working, the loop finishing
with nothing lost and nothing done twice (real kernel, real processes, real git)."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from ralphnb.loop.runs import Run
from ralphnb.queue.jsonio import read_jsonc
from tests.conftest import demo, git, make_repo, require_module

HANG = {"hang": "1", "duration": "2000"}

START = """
import json, time, ralphnb
loop = ralphnb.Loop({repo!r}, runner="demo", parallel=2, grace=0.5, detach=True).start()
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    recs = loop.snapshot(sample=False)
    live = {{r["task_id"]: r["pid"] for r in recs if r["status"] == "running"}}
    if len(live) == 2:
        break
    time.sleep(0.05)
print(json.dumps({{"run_dir": str(loop.run_dir), "pid": loop.pid, "workers": live}}), flush=True)
"""

REATTACH = """
import json, ralphnb
loop = ralphnb.attach({repo!r})
kinds = []
loop.subscribe(lambda ev: kinds.append(ev.kind))
before = {{r["task_id"]: r["pid"] for r in loop.snapshot(sample=False) if r["status"] == "running"}}
rows_before = [r["worker_id"] for r in loop.snapshot(sample=False)]
loop.stop("RQ-0001")
loop.kill("RQ-0002")
ok = loop.wait(120)
rows = [[r.worker_id, r.status] for r in loop.df.itertuples()]
print(json.dumps({{"before": before, "rows_before": rows_before, "ok": ok, "rows": rows,
                  "kinds": kinds}}), flush=True)
"""


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def execute(kc, code: str) -> dict:
    out: list[str] = []

    def hook(msg: dict) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(msg["content"]["traceback"]))

    reply = kc.execute_interactive(code, output_hook=hook, timeout=150)
    assert reply["content"]["status"] == "ok", "".join(out)
    return json.loads("".join(out))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_detached_loop_survives_a_kernel_restart_and_is_reattached(tmp_path, fast_demo):
    manager = require_module("jupyter_client.manager")
    tasks = [demo("hang a", **HANG), demo("hang b", **HANG), demo("quick c"), demo("quick d")]
    repo = make_repo(tmp_path, tasks)
    km = manager.KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(tmp_path))
    started: dict = {}
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        started = execute(kc, START.format(repo=str(repo)))
        assert sorted(started["workers"]) == ["RQ-0001", "RQ-0002"]
        kc.stop_channels()
        km.restart_kernel(now=True)  # the kernel that started the loop is gone
        time.sleep(1.0)
        assert alive(started["pid"]), "the detached loop died with the kernel"
        assert all(alive(p) for p in started["workers"].values()), "its workers died"
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        seen = execute(kc, REATTACH.format(repo=str(repo)))
        kc.stop_channels()
    finally:
        km.shutdown_kernel(now=True)
        for pid in [started.get("pid"), *started.get("workers", {}).values()]:
            if pid and alive(pid):
                psutil.Process(pid).kill()
    assert seen["before"] == started["workers"]  # the same workers, still running
    assert seen["rows_before"] == ["RQ-0001#1", "RQ-0002#1"]  # the table from before, complete
    assert seen["ok"]
    assert seen["rows"] == [
        ["RQ-0001#1", "stopped"],
        ["RQ-0002#1", "killed"],
        ["RQ-0003#1", "integrated"],
        ["RQ-0004#1", "integrated"],
    ]
    assert seen["kinds"][-1] == "loop_finished"
    assert not any(alive(p) for p in started["workers"].values())
    run = Run.load(Path(started["run_dir"]))  # the journal: every attempt once
    assert [[r["worker_id"], r["status"]] for r in run.records.values()] == seen["rows"]
    starts = Counter(e.worker_id for e in run.events if e.kind == "started")
    assert starts == Counter({"RQ-0001#1": 1, "RQ-0002#1": 1, "RQ-0003#1": 1, "RQ-0004#1": 1})
    done = read_jsonc(repo / ".ralph" / "done.jsonc")["tasks"]
    assert sorted(t["id"] for t in done) == ["RQ-0003", "RQ-0004"]
    queue = read_jsonc(repo / ".ralph" / "queue.jsonc")["tasks"]
    assert {t["id"]: t["status"] for t in queue} == {"RQ-0001": "todo", "RQ-0002": "todo"}
    log = git(repo, "log", "--format=%s").splitlines()  # each task's work committed once
    assert log.count("RQ-0003: quick c") == 1 and log.count("RQ-0004: quick d") == 1, log
    assert not [s for s in log if "RQ-0001" in s or "RQ-0002" in s], log
    assert (repo / "quick_c.txt").read_text() == "quick c\n"
    deadline = time.monotonic() + 10
    while alive(started["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(started["pid"]), "the detached process did not exit after finishing"
