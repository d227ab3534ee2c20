"""A failed write, said in one line: which file, and "no space left on device"; the journal on
a device that is always full (`/dev/full`) fails without raising into the emitting thread."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from ralphnb.errors import WorkspaceError
from ralphnb.loop.events import Event, Journal
from ralphnb.loop.failures import describe, no_space, with_file
from ralphnb.workspace.git import GitError


def enospc(filename: str | None = None) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)


def test_a_full_disk_is_named_with_its_file():
    assert describe(enospc("/d/events.jsonl")) == "could not write /d/events.jsonl: " + (
        "no space left on device"
    )
    assert describe(with_file(enospc(), "/d/queue.jsonc")).startswith("could not write /d/queue")
    assert describe(enospc(), "/d/x") == "could not write /d/x: no space left on device"
    other = OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), "/d/runs")
    assert describe(other) == "/d/runs: Not a directory" and not no_space(other)


def test_a_full_disk_is_seen_through_the_errors_raised_from_it():
    try:
        try:
            raise enospc("/w/RQ-0001/f")
        except OSError as exc:
            raise WorkspaceError("the workspace of RQ-0001 could not be made") from exc
    except WorkspaceError as exc:
        assert no_space(exc)
        assert describe(exc).endswith("(no space left on device)")
    git = GitError(
        "git add failed", git_args=["add"], returncode=128, stderr="fatal: No space left on device"
    )
    assert no_space(git)
    assert not no_space(RuntimeError("boom"))


def test_the_journal_on_a_full_device_fails_once_and_never_raises():
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    journal = Journal("/dev/full")
    assert journal.append(Event("loop_started")) is False
    assert journal.failure == "could not write /dev/full: no space left on device"
    assert journal.append(Event("loop_finished")) is False  # no retry, no raise
    journal.close()
    journal.close()
    assert journal.append(Event("late")) is False


def test_the_journal_reads_back_what_it_wrote(tmp_path):
    journal = Journal(tmp_path / "events.jsonl")
    assert journal.append(Event("loop_started", data={"n": "é"}))
    journal.close()
    assert journal.append(Event("after close")) is True  # closed: nothing to report
    assert [e.kind for e in Journal.read(tmp_path / "events.jsonl")] == ["loop_started"]
