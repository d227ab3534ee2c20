"""The index lock ralphnb takes in a user's checkout: git's protocol, and never a lock left for
ever by a loop that was killed while holding it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ralphnb.workspace.sealed import index_lock


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_lock_left_by_a_killed_ralphnb_is_cleared(tmp_path: Path):
    index = tmp_path / "index"
    lock = tmp_path / "index.lock"
    lock.write_text(f"ralphnb index lock pid={_dead_pid()} start=1.0\n")
    with index_lock(index) as locked:
        assert locked
        assert f"pid={os.getpid()}" in lock.read_text()
    assert not lock.exists()


def test_a_lock_of_git_or_of_a_live_owner_is_respected(tmp_path: Path):
    index = tmp_path / "index"
    lock = tmp_path / "index.lock"
    lock.write_bytes(b"DIRC\x00\x00\x00\x02")  # git writing the new index
    with index_lock(index) as locked:
        assert not locked
    assert lock.read_bytes() == b"DIRC\x00\x00\x00\x02"
    lock.unlink()
    with index_lock(index) as outer, index_lock(index) as inner:
        assert outer and not inner  # this live process holds it
