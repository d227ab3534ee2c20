"""The stuck decision as pure functions: signals from facts and "now", the reason, CPU over a
minute, the workspace stamp, and the activity an attempt's output feeds."""

from __future__ import annotations

import os

from ralphnb.loop.stuck import (
    Activity,
    Signals,
    cpu_average,
    signals,
    stuck_reason,
    workspace_stamp,
)
from ralphnb.runners.transcript import Entry


def sig(out: float, files: float, repeats: int = 0) -> Signals:
    return Signals(out, files, None, repeats, 0)


def test_silent_and_idle_past_stuck_after_is_stuck():
    assert stuck_reason(sig(601, 700), stuck_after=600) == "no output and no file change for 601 s"


def test_output_or_a_file_change_within_stuck_after_is_not_stuck():
    assert stuck_reason(sig(5, 10_000), stuck_after=600) is None  # prints, edits nothing
    assert stuck_reason(sig(10_000, 5), stuck_after=600) is None  # quiet, but edits files


def test_the_same_tool_call_repeat_limit_times_is_stuck_whatever_the_output():
    assert stuck_reason(sig(0, 0, repeats=5), stuck_after=600, repeat_limit=5) == (
        "the same tool call 5 times in a row"
    )
    assert stuck_reason(sig(0, 0, repeats=4), stuck_after=600, repeat_limit=5) is None
    assert stuck_reason(sig(0, 0, repeats=99), stuck_after=600, repeat_limit=0) is None


def test_signals_count_silence_from_the_start_when_nothing_happened_yet():
    s = signals((100.0, None, None, 0, 0), 130.0, None)
    assert (s.idle_output_s, s.idle_files_s) == (30.0, 30.0)
    s = signals((100.0, 125.0, 110.0, 2, 3), 130.0, 12.5)
    assert s.columns() == {
        "idle_output_s": 5.0,
        "idle_files_s": 20.0,
        "cpu_1m": 12.5,
        "repeat_calls": 2,
        "turns_no_change": 3,
    }


def test_activity_counts_identical_calls_in_a_row_and_turns_since_a_change():
    a = Activity(started=0.0)
    read = Entry("tool_call", tool="Read", args='{"file_path": "a"}')
    for n in range(3):
        a.saw([read], turns=n + 1, now=float(n))
    assert a.facts()[3] == 3 and a.facts()[4] == 3
    a.saw([Entry("tool_call", tool="Read", args='{"file_path": "b"}')], turns=4, now=4.0)
    assert a.facts()[3] == 1  # other arguments: a new run
    a.files_changed(5.0)
    a.saw([Entry("message", text="hi")], turns=6, now=6.0)
    assert a.facts() == (0.0, 6.0, 5.0, 1, 2)


def test_cpu_average_keeps_the_last_minute():
    samples = [(0.0, 100.0), (50.0, 10.0), (100.0, 20.0)]
    assert cpu_average(samples, 100.0) == 15.0
    assert cpu_average([], 100.0) is None


def test_workspace_stamp_changes_with_a_write_and_ignores_git(tmp_path):
    (tmp_path / "a.txt").write_text("one")
    (tmp_path / ".git").mkdir()
    before = workspace_stamp(tmp_path)
    (tmp_path / ".git" / "index").write_text("x" * 100)
    assert workspace_stamp(tmp_path) == before
    (tmp_path / "a.txt").write_text("one two")
    assert workspace_stamp(tmp_path) != before
    later = workspace_stamp(tmp_path)
    os.remove(tmp_path / "a.txt")
    assert workspace_stamp(tmp_path)[0] == later[0] - 1
