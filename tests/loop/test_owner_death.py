"""Workers die with the process that owns their loop, whatever killed it (SIGKILL included),
and a restarted Jupyter kernel leaves no agent running (real processes, a real kernel).

Figures before the lifeline: a SIGKILLed or SIGTERMed loop process left 8 of 8 agent processes
running (2 agents, 2 children each, 2 shims) in 4 of 4 tries each; a kernel restart left 8 of 8
in 4 of 4 tries. After: 0 survivors within grace + 1 s, in 5 of 5 tries each.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from ralphnb.loop.core import Loop
from ralphnb.queue.jsonio import read_jsonc
from ralphnb.queue.store import Queue, init
from tests.conftest import git, require_module

GRACE = 0.5

# Started in the owner (a plain process or a kernel): prints the pids of both agents' shims,
# the agents and their children once all of them run, as one JSON line.
START = """
import json, sys, time
import psutil
from ralphnb.loop.core import Loop
loop = Loop({repo!r}, runner="demo", parallel=2, grace={grace!r}).start()
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    df = loop.df
    if len(df) == 2 and set(df.status) == {{"running"}}:
        pids = [int(p) for p in df.pid]
        kids = [c.pid for p in pids for c in psutil.Process(p).children(recursive=True)]
        if len(kids) >= 2 * 3:  # each agent and its two children
            break
    time.sleep(0.05)
print(json.dumps({{"pids": pids + kids, "workspaces": list(df.workspace)}}), flush=True)
"""


def hanging_repo(tmp_path: Path) -> Path:
    """Two tasks whose demo agent starts two children and then works forever, silently for its
    first 25 s (a long duration): an agent that prints after its owner died dies of the broken
    pipe by itself, which is not what these tests are about (real agents think quietly)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    q = init(repo)
    for n in (1, 2):
        fields = {"demo.hang": "1", "demo.duration": "2000", "demo.children": "2"}
        fields["demo.file"] = f"h{n}.txt"
        q.add(f"Hang {n}", custom_fields={**fields, "demo.content": "finished work"})
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        git(repo, *args)
    return repo


def alive(pids: list[int]) -> list[int]:
    out = []
    for p in pids:
        try:
            if psutil.Process(p).status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            continue
    return out


def wait_gone(pids: list[int], within: float, since: float) -> list[int]:
    """The pids still alive `within` seconds after the monotonic time `since`."""
    while (left := alive(pids)) and time.monotonic() < since + within:
        time.sleep(0.02)
    return left


def kill_all(pids: list[int]) -> None:
    """A failing test must not leave agents running for the next one."""
    for p in alive(pids):
        try:
            psutil.Process(p).kill()
        except psutil.Error:
            pass


def leave_work(workspaces: list[str]) -> None:
    """Work in progress that the agents left (uncommitted), as a real agent would."""
    for ws in workspaces:
        (Path(ws) / f"partial-{Path(ws).name}.txt").write_text("work in progress\n")


def finish_the_work(repo: Path) -> None:
    """A new Loop, once the hang is taken out of the tasks, finishes them: nothing lost, nothing
    done twice, and the work left in the workspaces merged with the rest."""
    q = Queue(repo)
    assert {t.status for t in q.tasks} <= {"doing", "todo"}  # open, not lost, not done
    for t in q.tasks:
        cf = t.custom_fields or {}
        fields = {k: v for k, v in cf.items() if k not in ("demo.hang", "demo.duration")}
        q.update(t.id, custom_fields=fields)
    df = Loop(repo, runner="demo", parallel=2, grace=GRACE).run()
    assert set(df.drop_duplicates("task_id", keep="last").status) == {"integrated"}, df
    done = read_jsonc(repo / ".ralph" / "done.jsonc")["tasks"]
    assert sorted(t["id"] for t in done) == ["RQ-0001", "RQ-0002"]
    assert read_jsonc(repo / ".ralph" / "queue.jsonc")["tasks"] == []
    log = git(repo, "log", "--format=%s")
    assert log.count("Merge ralph/RQ-0001:") <= 1 and log.count("Merge ralph/RQ-0002:") <= 1, log
    assert (repo / "h1.txt").read_text() == (repo / "h2.txt").read_text() == "finished work\n"
    for tid in ("RQ-0001", "RQ-0002"):  # the work left in the workspaces, resumed and merged
        assert (repo / f"partial-{tid}.txt").read_text() == "work in progress\n"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_stop_within_grace_when_the_loops_process_dies(tmp_path, sig, fast_demo):
    repo = hanging_repo(tmp_path)
    code = START.format(repo=str(repo), grace=GRACE) + "time.sleep(600)\n"
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        seen = json.loads(owner.stdout.readline())
        pids = seen["pids"]
        assert len(alive(pids)) == 8
        leave_work(seen["workspaces"])
        t0 = time.monotonic()
        os.kill(owner.pid, sig)
        owner.wait(10)
        survivors = wait_gone(pids, GRACE + 1.0, since=t0)
    finally:
        owner.kill()
        kill_all(pids)
    assert survivors == [], f"{len(survivors)} of {len(pids)} agent processes outlived the loop"
    # the work done so far stays in the workspaces, for the next loop to resume and merge
    assert all(len(list(Path(ws).glob("partial-*.txt"))) == 1 for ws in seen["workspaces"])
    finish_the_work(repo)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_restarted_jupyter_kernel_leaves_no_agent_running(tmp_path, fast_demo):
    manager = require_module("jupyter_client.manager")
    repo = hanging_repo(tmp_path)
    km = manager.KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(tmp_path))
    pids: list[int] = []
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        out: list[str] = []

        def hook(msg: dict) -> None:
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                out.append("\n".join(msg["content"]["traceback"]))

        reply = kc.execute_interactive(
            START.format(repo=str(repo), grace=GRACE), output_hook=hook, timeout=90
        )
        assert reply["content"]["status"] == "ok", "".join(out)
        seen = json.loads("".join(out))
        pids = seen["pids"]
        assert len(alive(pids)) == 8
        leave_work(seen["workspaces"])
        kc.stop_channels()
        t0 = time.monotonic()
        km.restart_kernel(now=True)
        survivors = wait_gone(pids, GRACE + 1.0, since=t0)
    finally:
        km.shutdown_kernel(now=True)
        kill_all(pids)
    assert survivors == [], f"{len(survivors)} of {len(pids)} agent processes outlived the kernel"
    finish_the_work(repo)
