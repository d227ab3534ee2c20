"""Run.load replays a journal through the same apply as the live table."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from ralphnb.errors import RalphError
from ralphnb.loop.events import Event, Journal
from ralphnb.loop.runs import Run
from ralphnb.loop.table import WorkerTable


def test_replay_equals_live_table(tmp_path):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    events = [
        Event("loop_started", data={"parallel": 2}, time=t0),
        Event("queued", "RQ-0001", "RQ-0001#1", t0, {"title": "A", "iteration": 1}),
        Event("started", "RQ-0001", "RQ-0001#1", t0, {"pid": 5}),
        Event("output", "RQ-0001", "RQ-0001#1", t0, {"type": "result", "cost_usd": 0.25}),
        Event(
            "exited",
            "RQ-0001",
            "RQ-0001#1",
            t0,
            {"returncode": 0, "signal": None, "ended_at": "2026-01-01T00:00:01Z"},
        ),
        Event("integrated", "RQ-0001", "RQ-0001#1", t0, {"commit": "abc"}),
        Event("queued", "RQ-0002", "RQ-0002#1", t0, {"title": "B", "iteration": 1}),
        Event("conflict", "RQ-0002", "RQ-0002#1", t0, {"error": "conflict in a.txt"}),
    ]
    live = WorkerTable()
    j = Journal(tmp_path / "events.jsonl")
    for ev in events:
        live.apply(ev)
        j.append(ev)
    j.close()
    with open(tmp_path / "events.jsonl", "a") as fh:
        fh.write('{"kind": "exited", "torn')  # a crash mid-line
    run = Run.load(tmp_path)
    pd.testing.assert_frame_equal(run.df, live.df())
    assert list(run.df.status) == ["integrated", "conflict"]
    assert Run.load(tmp_path / "events.jsonl").df.shape == run.df.shape
    lines = repr(run).splitlines()  # the same text table as repr(loop) and `ralphnb status`
    assert lines[0] == f"Run({run.run_id})"
    assert lines[1] == "integrated 1 · conflict 1 | cost $0.250"
    assert lines[3].split()[:4] == ["RQ-0001", "1", "integrated", "5"]
    assert lines[4].split()[:3] == ["RQ-0002", "1", "conflict"]
    assert lines[4].endswith("conflict in a.txt")


def test_missing_journal_is_a_clear_error(tmp_path):
    with pytest.raises(RalphError, match="no run journal"):
        Run.load(tmp_path)
