"""The worker table: events are the only mutator; frames are typed snapshots."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pandas as pd

from ralphnb.loop import report as render
from ralphnb.loop.events import Event
from ralphnb.loop.table import COLUMNS, STATUSES, WorkerTable, build_frame

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def _events(wid: str = "RQ-0001#1", rc: int | None = 0, reason: str | None = None) -> list[Event]:
    tid = wid.split("#")[0]
    return [
        Event("queued", tid, wid, T0, {"title": "Do it", "iteration": int(wid.split("#")[1])}),
        Event("starting", tid, wid, T0, {"workspace": "/w", "branch": "ralph/RQ-0001"}),
        Event("started", tid, wid, T0, {"pid": 123, "started_at": "2026-01-02T03:04:05.123456Z"}),
        Event("output", tid, wid, T0, {"type": "session", "session_id": "s1"}),
        Event("output", tid, wid, T0, {"type": "message", "text": "hello\nworld"}),
        Event(
            "output",
            tid,
            wid,
            T0,
            {"type": "result", "turns": 3, "tokens_in": 10, "tokens_out": 20, "cost_usd": 0.5},
        ),
        Event(
            "exited",
            tid,
            wid,
            T0,
            {
                "pid": 123,
                "returncode": rc,
                "signal": None if rc is not None else 9,
                "reason": reason,
                "started_at": "2026-01-02T03:04:05.123456Z",
                "ended_at": "2026-01-02T03:04:07.623456Z",
            },
        ),
    ]


def test_events_build_a_typed_record():
    t = WorkerTable()
    for ev in _events():
        t.apply(ev)
    df = t.df()
    assert list(df.columns) == list(COLUMNS)
    row = df.iloc[0]
    assert row.status == "succeeded"
    assert row.pid == 123 and row.exit_code == 0 and pd.isna(row.signal)
    assert row.turns == 3 and row.tokens_out == 20 and row.cost_usd == 0.5
    assert row.session_id == "s1" and row.last_message == "hello world"
    assert row.elapsed_s == 2.5
    assert str(df.started_at.dtype) == "datetime64[us, UTC]"
    assert df.started_at.iloc[0] == pd.Timestamp(T0)
    assert isinstance(df.status.dtype, pd.CategoricalDtype)
    assert list(df.status.cat.categories) == list(STATUSES)
    for name in ("pid", "exit_code", "signal", "iteration", "turns", "tokens_in", "tokens_out"):
        assert str(df[name].dtype) == "Int64", name
    for name in ("elapsed_s", "cpu_percent", "rss_mb", "cost_usd"):
        assert str(df[name].dtype) == "float64", name


def test_exit_reasons_map_to_states():
    cases = [
        (0, None, "succeeded"),
        (3, None, "failed"),
        (None, "kill", "killed"),
        (None, "stop", "stopped"),
        (None, "timeout", "timed_out"),
    ]
    for rc, reason, want in cases:
        t = WorkerTable()
        for ev in _events(rc=rc, reason=reason):
            t.apply(ev)
        assert t.df().status.iloc[0] == want


def test_held_frame_does_not_change_and_keeps_timezone():
    t = WorkerTable()
    evs = _events()
    for ev in evs[:3]:
        t.apply(ev)
    held = t.df()
    copy = held.copy(deep=True)
    for ev in evs[3:]:
        t.apply(ev)
    t.apply(Event("integrated", "RQ-0001", "RQ-0001#1", T0 + timedelta(seconds=5)))
    pd.testing.assert_frame_equal(held, copy)
    assert held.status.iloc[0] == "running"
    assert t.df().status.iloc[0] == "integrated"
    assert str(held.started_at.dtype) == "datetime64[us, UTC]"


def test_empty_frame_has_all_columns_and_dtypes():
    df = build_frame([])
    assert list(df.columns) == list(COLUMNS) and len(df) == 0
    assert str(df.ended_at.dtype) == "datetime64[us, UTC]"
    assert str(df.pid.dtype) == "Int64"


def test_live_sample_only_touches_the_copy():
    t = WorkerTable()
    for ev in _events()[:3]:
        t.apply(ev)
    df = t.df(sample=lambda r: {"cpu_percent": 12.5, "rss_mb": 40.0}, now=T0 + timedelta(seconds=4))
    assert df.cpu_percent.iloc[0] == 12.5 and df.elapsed_s.iloc[0] == 4.0
    assert t.records()[0]["cpu_percent"] is None


def test_concurrent_apply_and_df_are_consistent():
    t = WorkerTable()
    n = 200

    def writer(k: int) -> None:
        for i in range(n):
            for ev in _events(f"RQ-{k:04d}#{i + 1}"):
                t.apply(ev)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(1, 4)]
    for th in threads:
        th.start()
    frames = []
    while any(th.is_alive() for th in threads):
        frames.append(t.df())
    for th in threads:
        th.join()
    assert len(t.df()) == 3 * n
    assert all(str(f.started_at.dtype) == "datetime64[us, UTC]" for f in frames)


def test_text_table_has_counts_then_one_line_per_attempt():
    t = WorkerTable()
    attempts = (_events("RQ-0001#1", 1), _events("RQ-0001#2"), _events("RQ-0002#1", None, "kill"))
    for ev in (ev for evs in attempts for ev in evs):
        t.apply(ev)
    recs = t.records()
    lines = render.attempts_table(recs).splitlines()
    # counts are of tasks (their latest attempt), in status order; cost is of every attempt
    assert lines[0] == "succeeded 1 · killed 1 | cost $1.500"
    assert lines[1].split()[:4] == ["task", "it", "status", "pid"]
    assert [ln.split()[:4] for ln in lines[2:]] == [
        ["RQ-0001", "1", "failed", "123"],
        ["RQ-0001", "2", "succeeded", "123"],
        ["RQ-0002", "1", "killed", "123"],
    ]
    assert all("2.5s" in ln and "0.500" in ln and "Do it" in ln for ln in lines[2:])
    assert lines[3].endswith("hello world")
    assert render.attempt_line(recs[1]) == lines[3]  # the CLI's per-change line is a row
    # one row per task, same layout: the dashboard's text/plain
    assert render.text_table(recs).splitlines() == [lines[0], lines[1], lines[3], lines[4]]
    assert render.attempts_table([]) == "no workers yet | cost $0.000"


def test_status_list_is_defined_once():
    assert STATUSES is render.STATUSES
