"""The dashboard of an attached loop (a detached loop in its own process) updates live and its
buttons act on the loop's real workers (widgets in plain Python; the browser case is in
test_browser.py)."""

from __future__ import annotations

import time
from typing import Any

import psutil
import pytest

from ralphnb.loop.attached import attach
from ralphnb.loop.core import Loop
from ralphnb.view import widgets
from tests.conftest import demo, make_repo

HANG = {"hang": "1", "duration": "2000", "children": "2"}


def _until(pred: Any, timeout: float) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if got := pred():
            return got
        time.sleep(0.05)
    return None


def _tree(pid: int) -> list[int]:
    try:
        return [pid] + [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
def test_dashboard_of_an_attached_loop_kills_a_worker_and_follows_the_loop(tmp_path, fast_demo):
    repo = make_repo(tmp_path, [demo("a", **HANG), demo("b", **HANG)])
    owner = Loop(repo, runner="demo", parallel=2, grace=0.5, detach=True).start()
    loop = attach(repo)  # as a second notebook would
    dash = loop.dashboard()
    try:

        def pids() -> dict[str, int] | None:
            live = {r["task_id"]: r["pid"] for r in loop.snapshot() if r["status"] == "running"}
            return live if len(live) == 2 else None

        running = _until(pids, 60)
        assert running
        assert _until(lambda: len(_tree(running["RQ-0001"])) >= 4, 20)  # shim, agent, 2 kids
        assert _until(lambda: {"RQ-0001", "RQ-0002"} <= set(dash._rows), 5)
        tree = _tree(running["RQ-0001"])
        row = dash._rows["RQ-0001"]
        assert row.kill.tooltip == "Kill RQ-0001" and not row.kill.disabled
        t0 = time.monotonic()
        row.kill.click()
        assert time.monotonic() - t0 < 0.5  # the handler returned at once
        assert _until(lambda: 'data-task="RQ-0001" data-status="killed"' in dash.table.value, 15)
        assert not [p for p in tree if _alive(p)]
        assert all(_alive(p) for p in _tree(running["RQ-0002"]))  # the other one runs on
        assert 'data-task="RQ-0002" data-status="running"' in dash.table.value
        dash.stop_all_button.click()
        assert loop.wait(60) and owner.wait(10)
        assert dash.join(5) and not dash.alive  # the dashboard saw the loop finish
        assert 'data-task="RQ-0002" data-status="stopped"' in dash.table.value
        assert "killed" in widgets.mimebundle(loop)["text/plain"]
    finally:
        owner.stop_all()
        owner.wait(30)
        dash.close()
