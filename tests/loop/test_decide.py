"""The loop's pure decisions (ralphnb.loop.decide): facts in, decision out; no repo, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ralphnb.loop.decide import Decision, decide, deps_merged, next_deadline, pick_tasks

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_decide_complete_retry_fail():
    assert (
        decide(
            iteration=1, max_iterations=3, marked_done=True, promise_seen=False, check_ok=None
        ).action
        == "complete"
    )
    d = decide(
        iteration=1,
        max_iterations=3,
        marked_done=False,
        promise_seen=True,
        check_ok=False,
        check_msg="pytest exited 1",
    )
    assert d.action == "retry" and "check failed" in d.reason
    d = decide(
        iteration=3,
        max_iterations=3,
        marked_done=False,
        promise_seen=False,
        check_ok=None,
        exit_msg="exit code 2",
    )
    assert d.action == "fail" and "after 3 iteration" in d.reason and "exit code 2" in d.reason


def test_decide_a_passing_check_completes_a_promised_task_with_no_reason():
    d = decide(iteration=2, max_iterations=2, marked_done=False, promise_seen=True, check_ok=True)
    assert d == Decision("complete")


def test_decide_a_failing_check_on_the_last_iteration_fails_naming_the_check():
    d = decide(
        iteration=2,
        max_iterations=2,
        marked_done=True,
        promise_seen=False,
        check_ok=False,
        check_msg="`pytest -q` exited 1: 1 failed",
    )
    assert d.action == "fail"
    assert "not complete after 2 iteration(s)" in d.reason and "`pytest -q` exited 1" in d.reason


def test_decide_an_exit_error_does_not_stop_a_claim_of_done_from_completing():
    """The agent's exit code is reported, but a done mark (checked) is what completes."""
    d = decide(
        iteration=1,
        max_iterations=3,
        marked_done=True,
        promise_seen=False,
        check_ok=None,
        exit_msg="exit code 1",
    )
    assert d.action == "complete"


def test_pick_respects_unmerged_deps_and_free_slots():
    runnable = [
        {"id": "RQ-0001"},
        {"id": "RQ-0002", "depends_on": ["RQ-0009"]},
        {"id": "RQ-0003", "depends_on": ["RQ-0008"]},
        {"id": "RQ-0004"},
    ]
    status = {"RQ-0009": "done", "RQ-0008": "rejected"}  # 0009 done but not yet archived
    assert not deps_merged(runnable[1], status) and deps_merged(runnable[2], status)
    got = pick_tasks(runnable, status, busy={"RQ-0001"}, free=2)
    assert [t["id"] for t in got] == ["RQ-0003", "RQ-0004"]


def test_a_dependency_no_longer_in_the_queue_counts_as_merged():
    assert deps_merged({"id": "RQ-0002", "depends_on": ["RQ-0001"]}, {"RQ-0002": "todo"})
    assert not deps_merged({"depends_on": ["RQ-0001"]}, {"RQ-0001": "doing"})


def test_pick_with_no_free_slot_starts_nothing():
    assert pick_tasks([{"id": "RQ-0001"}], {}, busy=set(), free=0) == []


def test_next_deadline_only_for_real_deadlines():
    assert next_deadline(NOW, wall_deadline=None, scheduled=[]) is None
    assert next_deadline(
        NOW, wall_deadline=NOW + timedelta(seconds=5), scheduled=[NOW + timedelta(seconds=2)]
    ) == pytest.approx(2.0)


def test_next_deadline_ignores_times_already_past():
    past = NOW - timedelta(seconds=1)
    assert next_deadline(NOW, wall_deadline=past, scheduled=[past]) is None
    soon = next_deadline(NOW, wall_deadline=None, scheduled=[NOW + timedelta(microseconds=10)])
    assert soon == pytest.approx(0.001)  # never a busy wait of zero seconds
