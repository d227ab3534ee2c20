"""Stuck workers with real processes: the demo agent goes silent, loops on one tool call, or
works slowly but steadily; the loop's stuck watch flags, stops or requeues the first two and
never the third. Also the transcript of a real attempt, rebuilt from its log."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from ralphnb.errors import RalphError
from ralphnb.loop.core import Loop
from ralphnb.loop.runs import Run
from ralphnb.queue.store import Queue
from tests.conftest import demo, make_repo

pytestmark = [pytest.mark.usefixtures("fast_demo"), pytest.mark.slow]


def stuck_events(loop: Loop) -> list:
    return [e for e in loop.events if e.kind == "stuck"]


def test_silent_worker_is_flagged_then_stopped_and_put_back_with_the_reason(tmp_path):
    repo = make_repo(tmp_path, [demo("Quiet", silent="1")])
    loop = Loop(repo, runner="demo", stuck_after=1.0, on_stuck="stop", grace=0.3)
    df = loop.run()
    (ev,) = stuck_events(loop)
    assert ev.data["stuck"] is True and ev.data["action"] == "stop"
    assert ev.data["reason"].startswith("no output and no file change for")
    assert ev.data["idle_output_s"] >= 1.0 and ev.data["idle_files_s"] >= 1.0
    row = df.iloc[0]
    assert row.status == "stopped" and bool(row.stuck) and row.error.startswith("stuck: no output")
    pd.testing.assert_frame_equal(Run.load(loop.run_dir).df, df)
    task = Queue(repo).get("RQ-0001")
    assert task.status == "todo" and "stopped: stuck: no output" in task.notes[-1]


def test_worker_looping_on_one_tool_call_is_requeued_as_a_new_attempt(tmp_path):
    repo = make_repo(tmp_path, [demo("Loopy", repeat="1", step="0.05")])
    loop = Loop(
        repo, runner="demo", stuck_after=10, on_stuck="requeue", repeat_limit=4,
        max_iterations=2, grace=0.3,
    )  # fmt: skip
    df = loop.run()
    evs = stuck_events(loop)
    assert [e.worker_id for e in evs] == ["RQ-0001#1", "RQ-0001#2"]
    assert all(e.data["reason"].startswith("the same tool call") for e in evs)
    assert evs[0].data["repeat_calls"] >= 4
    assert list(df.status) == ["stopped", "stopped"] and df.stuck.all()
    assert "requeued" in df.error[0] or "stuck" in df.error[0]
    assert Queue(repo).get("RQ-0001").status == "todo"


def test_slow_but_steady_worker_is_never_flagged_and_its_signals_are_in_df(tmp_path):
    # a step every 2 s, several samples apart (one each 1.5 s), each well under `stuck_after`,
    # which also leaves room for a Python program's start on a loaded machine
    repo = make_repo(tmp_path, [demo("Steady", steady="5", step="2.0")])
    loop = Loop(repo, runner="demo", stuck_after=15.0, on_stuck="stop").start()
    seen = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not loop.finished:
        df = loop.df
        if len(df) and df.status[0] == "running" and pd.notna(df.idle_output_s[0]):
            seen = df.iloc[0]
        time.sleep(0.2)
    assert loop.wait(30)
    assert stuck_events(loop) == []
    assert loop.df.status[0] == "integrated" and not loop.df.stuck[0]
    assert seen is not None and seen.idle_output_s < 15.0 and seen.repeat_calls <= 1
    for col in ("idle_files_s", "cpu_1m", "turns_no_change"):
        assert col in loop.df.columns


def test_transcript_of_a_finished_attempt_is_rebuilt_from_its_log(tmp_path):
    repo = make_repo(tmp_path, [demo("Hello")])
    loop = Loop(repo, runner="demo", stuck_after=None)
    loop.run()
    t = loop.transcript("RQ-0001")
    assert t.task_id == "RQ-0001" and t.attempt == 1 and not t.live
    calls = [e for e in t.entries if e.kind == "tool_call"]
    assert [c.tool for c in calls] == ["Write", "Bash", "Bash"]
    assert '"file_path": "Hello.txt"' in calls[0].args
    assert any(e.kind == "tool_result" and e.call_id == calls[0].call_id for e in t.entries)
    assert t.df.kind.value_counts()["tool_call"] == 3
    html = t._repr_html_()
    assert "RQ-0001 attempt 1: " in html and "<details" in html
    assert loop.transcript("RQ-0001", attempt=1).entries == t.entries
    with pytest.raises(RalphError, match="no attempt 3"):
        loop.transcript("RQ-0001", attempt=3)


def test_live_transcript_grows_while_the_agent_works(tmp_path):
    repo = make_repo(tmp_path, [demo("Steady", steady="6", step="0.3")])
    loop = Loop(repo, runner="demo", stuck_after=None).start()
    counts = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not loop.finished:
        try:
            t = loop.transcript("RQ-0001")
        except RalphError:  # no attempt yet
            time.sleep(0.05)
            continue
        if t.live:
            counts.append(len(t.entries))
        time.sleep(0.3)
    assert loop.wait(30)
    assert len(set(counts)) >= 3 and counts == sorted(counts)
    assert len(loop.transcript("RQ-0001").entries) >= counts[-1]


def test_on_stuck_must_be_flag_stop_or_requeue(tmp_path):
    repo = make_repo(tmp_path, [demo("X")])
    with pytest.raises(ValueError, match="on_stuck"):
        Loop(repo, runner="demo", on_stuck="explode")
