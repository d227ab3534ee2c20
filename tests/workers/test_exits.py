"""Tests of workers.exits: what an ExitInfo says follows from its fields alone."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ralphnb.workers.exits import ExitInfo
from ralphnb.workers.process import Worker, build_env

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def info(**kw) -> ExitInfo:
    fields = dict(
        pid=1,
        returncode=0,
        signal=None,
        started_at=T0,
        ended_at=T0 + timedelta(seconds=2.5),
        log_path=Path("a.log"),
        reason=None,
    )
    return ExitInfo(**{**fields, **kw})


def test_duration_and_ok_follow_from_the_fields():
    assert info().duration == 2.5 and info().ok
    assert not info(returncode=3).ok and not info(returncode=None, signal=9).ok


def test_a_local_worker_exit_carries_no_queue_marks(tmp_path):
    w = Worker(
        [sys.executable, "-c", "pass"],
        cwd=tmp_path,
        env=build_env(),
        log_path=tmp_path / "w.log",
        worker_id="w",
    )
    got = w.start().wait(20)
    assert got is not None and got.ok and got.queue_marks is None
