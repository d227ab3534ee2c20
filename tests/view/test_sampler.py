"""What the view reads from a loop: throttled CPU/RSS sampling, progress, elapsed time, logs."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from ralphnb.view.sampler import Sampler, header, log_text, loop_elapsed, progress
from tests.view.fake_loop import FakeLoop


def test_cpu_and_memory_are_sampled_at_most_once_a_second() -> None:
    loop = FakeLoop(3)
    sampler = Sampler(loop)
    sampler.records()
    assert loop.sampled == 1  # the first read samples
    loop.records["RQ-0001"]["cpu_percent"] = 77.0  # a later sample would show this
    for _ in range(5):
        recs = sampler.records()
    assert loop.sampled == 1  # reads within the second reuse the figures...
    assert recs[0]["cpu_percent"] == 1.0
    sampler.next_at = 0.0  # ...until a second has passed
    recs = sampler.records()
    assert loop.sampled == 2 and recs[0]["cpu_percent"] == 77.0
    assert 0.9 <= sampler.next_at - time.monotonic() <= 1.0
    assert sampler.samples == 2 and sampler.took_total >= sampler.took > 0


def test_figures_are_carried_over_only_for_live_workers() -> None:
    loop = FakeLoop(2)
    sampler = Sampler(loop)
    sampler.records()
    loop.records["RQ-0002"].update(ended_at=datetime.now(UTC), cpu_percent=0.0, rss_mb=None)
    recs = {r["task_id"]: r for r in sampler.records()}
    assert loop.sampled == 1
    assert recs["RQ-0001"]["rss_mb"] == 20.0  # live: the last sampled figure
    assert recs["RQ-0002"]["cpu_percent"] == 0.0 and recs["RQ-0002"]["rss_mb"] is None


def test_progress_and_elapsed_come_from_the_loop_else_from_its_records() -> None:
    now = datetime.now(UTC)
    loop = FakeLoop(2)
    loop.records["RQ-0001"].update(status="integrated", started_at=now - timedelta(seconds=9))
    recs = loop.snapshot()
    assert progress(loop, recs) == (1, 2)  # integrated tasks among those seen
    assert loop_elapsed(loop, recs, now) == 9.0  # since the first worker started
    loop.progress = (3, 7)
    loop.started_at, loop.ended_at = now - timedelta(seconds=60), now - timedelta(seconds=20)
    assert progress(loop, recs) == (3, 7)
    assert loop_elapsed(loop, recs, now) == 40.0
    assert "3/7" in header(loop, recs, now)
    assert progress(FakeLoop(0), []) is None and loop_elapsed(FakeLoop(0), [], now) is None


def test_log_text_is_the_tail_or_the_reason_there_is_none() -> None:
    loop = FakeLoop(1)
    assert log_text(loop, "RQ-0001", n=2) == "RQ-0001 line 98\nRQ-0001 line 99"

    def missing(task_id: str) -> list[str]:
        raise KeyError(task_id)

    loop.logs = missing  # type: ignore[method-assign]
    assert log_text(loop, "RQ-0009") == "(no log: 'RQ-0009')"
