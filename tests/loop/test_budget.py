"""The one live budget: counted from the table's live costs, changed while a loop runs; reaching
it starts no new attempt, `on_budget="stop"` stops the running ones, raising it lets the loop go
on without a restart."""

from __future__ import annotations

import threading
import time

import pytest

from ralphnb.loop.budget import Budget, spent_of
from ralphnb.loop.control import live_run, send_control
from ralphnb.loop.core import Loop
from ralphnb.loop.events import Event
from ralphnb.queue.store import Queue
from tests.conftest import demo, make_repo

pytestmark = pytest.mark.usefixtures("fast_demo")


def _wait_for(pred, timeout=60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_budget_counts_live_costs_marks_estimates_and_calls_back_on_set():
    recs = [{"worker_id": "A#1", "cost_usd": 0.5}, {"worker_id": "B#1", "cost_usd": None}]
    seen = []
    b = Budget(1.0, lambda: [dict(r) for r in recs], on_change=seen.append)
    assert (b.spent, b.left, b.reached(), b.estimated) == (0.5, 0.5, False, False)
    recs[1]["cost_usd"] = 0.75  # a running attempt's cost, as its parser reports it
    b.observe(Event("output", "B", "B#1", data={"type": "result", "cost_estimated": True}))
    assert b.reached() and b.left == 0.0 and b.estimated
    assert "partly estimated" in b.reason() and "max_cost_usd $1.00" in b.reason()
    b.set(5)
    assert seen == [b] and not b.reached() and b.left == pytest.approx(3.75)
    b.set(None)
    assert b.left is None and b.reason() is None
    assert spent_of([]) == 0.0
    with pytest.raises(ValueError):
        Budget(1.0, list, on_budget="explode")


def test_budget_is_thread_safe_under_concurrent_sets():
    b = Budget(0.0, list)
    threads = [threading.Thread(target=b.set, args=(float(i),)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert b.limit in {float(i) for i in range(50)}


def test_a_started_loop_waits_at_its_budget_and_goes_on_when_raised(tmp_path):
    repo = make_repo(tmp_path, [demo("B1"), demo("B2"), demo("B3")])
    loop = Loop(repo, runner="demo", parallel=1, max_cost_usd=0.001).start()
    try:
        reached = lambda: any(e.kind == "budget_reached" for e in loop.events)  # noqa: E731
        assert _wait_for(lambda: reached() and loop.progress[0] == 1)
        time.sleep(0.5)
        assert not loop.finished and len(loop.df) == 1 and loop.budget.reached()
        ev = next(e for e in loop.events if e.kind == "budget_reached")
        assert ev.data["waiting"] and "budget reached" in ev.data["reason"]
        assert loop.halt_reason is None  # held, not halted
        # raised from another process, through the run's control socket
        address = live_run(repo)[1]["control"]
        assert send_control(address, {"op": "budget"})["budget"]["limit"] == 0.001
        reply = send_control(address, {"op": "budget", "limit": 100.0})
        assert reply["budget"]["limit"] == 100.0 and loop.budget.limit == 100.0
        assert "error" in send_control(address, {"op": "budget", "limit": -1})
        assert loop.wait(120)
    finally:
        loop.stop_all()
    kinds = [e.kind for e in loop.events]
    assert "budget_set" in kinds and "budget_raised" in kinds
    assert loop.progress == (3, 3) and Queue(repo).tasks == []


def test_on_budget_stop_stops_the_running_workers(tmp_path):
    tasks = [demo("S1", duration="1"), demo("S2", duration="200")]
    repo = make_repo(tmp_path, tasks)
    loop = Loop(repo, runner="demo", parallel=2, max_cost_usd=0.001, on_budget="stop")
    loop.run()
    df = loop.df.set_index("task_id")
    assert df.loc["RQ-0001", "status"] == "integrated"
    assert df.loc["RQ-0002", "status"] == "stopped"
    assert "budget reached" in loop.halt_reason
