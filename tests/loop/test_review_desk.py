"""`ReviewDesk` and the review texts, with real threads: a verdict reaches the waiting driver."""

from __future__ import annotations

import threading

import pytest

from ralphnb._time import utcnow
from ralphnb.errors import RalphError
from ralphnb.loop.review import (
    ReviewDesk,
    Verdict,
    Waiting,
    awaits_review_note,
    with_feedback,
)


def _item(task_id: str = "RQ-0001") -> Waiting:
    return Waiting(task_id, f"{task_id}#1", "t", "/ws", "ralph/" + task_id, None, None, utcnow())


def _waiter(desk: ReviewDesk, stop: threading.Event, got: list) -> threading.Thread:
    th = threading.Thread(target=lambda: got.append(desk.wait(_item(), stop.is_set)))
    th.start()
    with desk.cond:
        assert desk.cond.wait_for(lambda: desk.count() == 1, timeout=5)
    return th


def test_a_verdict_reaches_the_waiting_driver_and_accept_waits_until_settled():
    desk, stop, got = ReviewDesk(threading.Condition()), threading.Event(), []
    th = _waiter(desk, stop, got)
    assert [w.task_id for w in desk.waiting()] == ["RQ-0001"]
    done = threading.Event()

    def accept() -> None:
        desk.decide("RQ-0001", Verdict("accept"), wait=10)
        done.set()

    threading.Thread(target=accept).start()
    th.join(5)
    assert got == [Verdict("accept")] and desk.count() == 0
    assert not done.wait(0.2)  # the merge is still being carried out
    desk.settled("RQ-0001")
    assert done.wait(5)


def test_a_stop_ends_the_wait_with_no_verdict():
    desk, stop, got = ReviewDesk(threading.Condition()), threading.Event(), []
    th = _waiter(desk, stop, got)
    stop.set()
    with desk.cond:
        desk.cond.notify_all()
    th.join(5)
    assert got == [None] and desk.waiting() == []


def test_a_task_that_does_not_wait_gets_no_verdict_and_the_error_lists_who_waits():
    desk, stop, got = ReviewDesk(threading.Condition()), threading.Event(), []
    th = _waiter(desk, stop, got)
    with pytest.raises(RalphError, match=r"RQ-0002 does not wait.*RQ-0001"):
        desk.decide("RQ-0002", Verdict("accept"))
    with pytest.raises(RalphError, match="unknown review decision"):
        desk.decide("RQ-0001", Verdict("merge"))
    desk.decide("RQ-0001", Verdict("discard", "no"))
    with pytest.raises(RalphError):  # one verdict per wait
        desk.decide("RQ-0001", Verdict("accept"))
    th.join(5)
    assert got == [Verdict("discard", "no")]


def test_feedback_goes_at_the_end_of_the_prompt_and_none_changes_nothing():
    assert with_feedback("prompt\n", None) == "prompt\n"
    text = with_feedback("prompt\n", "  use a dataclass ")
    assert text.startswith("prompt\n") and text.rstrip().endswith("</review-feedback>")
    assert "\nuse a dataclass\n" in text


def test_the_note_of_a_stopped_review_says_where_the_work_is():
    note = awaits_review_note("/w/RQ-0001", "ralph/RQ-0001")
    assert "awaited review" in note and "/w/RQ-0001" in note and "ralph/RQ-0001" in note
