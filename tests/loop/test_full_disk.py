"""A full disk: the loop finishes, releases the repository, leaves no temp file and no task
`doing` it could put back, and says which file could not be written (a real 2 MiB tmpfs).

Seen before the fix (4 of 4 tries): with 8 KB free, `wait()` never returned and the repository
stayed locked; a disk filling while workers ran left driver threads dead, tasks `doing` and
`loop.json.tmp` behind."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ralphnb.errors import RalphError
from ralphnb.loop.control import live_run
from ralphnb.loop.core import Loop
from ralphnb.loop.runs import runs_root
from ralphnb.queue.store import Queue
from ralphnb.runners import Command
from tests.conftest import demo, make_repo

pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("fast_demo"),
    # a driver thread that dies with a traceback is a failure, not a warning
    pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning"),
]

NO_SPACE = "no space left on device"


@contextlib.contextmanager
def tmpfs(where: Path, size: str = "2m"):
    """A real small filesystem mounted at `where` (root only; skipped with the reason else)."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path, leave: int) -> None:
    """Fill `disk` until only about `leave` bytes are free."""
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    with open(disk / f"filler-{uuid.uuid4().hex}", "wb") as f, contextlib.suppress(OSError):
        f.write(b"\0" * max(0, free - leave))


def temp_files(disk: Path) -> list[str]:
    """Temp files of ralphnb's atomic writes (and the old `loop.json.tmp`) left on `disk`."""
    return [
        str(p.relative_to(disk))
        for p in disk.rglob("*")
        if p.name.endswith(".tmp") or "ralphnb-tmp" in p.name
    ]


def assert_released(repo: Path) -> None:
    assert live_run(repo) is None
    lock = runs_root(repo).parent / "loop.lock"
    if lock.exists():  # no other holder: this process's loop let go (taken without a write)
        with open(lock) as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def assert_nothing_doing_unless_said(repo: Path, loop: Loop) -> None:
    """No task is left `doing`, except one whose row says it could not be put back."""
    said = " ".join(str(e) for e in loop.df.error.dropna())
    for t in Queue(repo).tasks:
        if t.status == "doing":
            assert f"could not put {t.id} back" in said and NO_SPACE in said, said


def test_eight_kb_free_when_the_loop_starts(tmp_path):
    with tmpfs(tmp_path / "disk") as disk:
        repo = make_repo(disk, [demo("a"), demo("b")])
        fill(disk, 8 * 1024)
        loop = Loop(repo, runner="demo", parallel=2, max_wall_time=60)
        assert loop.start().wait(90), "the loop never finished"
        assert loop.error and NO_SPACE in loop.error and str(disk) in loop.error, loop.error
        assert loop.halt_reason == loop.error and loop.events[-1].kind == "loop_finished"
        assert {t.status for t in Queue(repo).tasks} == {"todo"}
        assert_released(repo)
        assert temp_files(disk) == []


def test_no_space_at_all_the_loop_does_not_start(tmp_path):
    with tmpfs(tmp_path / "disk") as disk:
        repo = make_repo(disk, [demo("a")])
        fill(disk, 0)
        loop = Loop(repo, runner="demo")
        with pytest.raises(RalphError) as err:
            loop.start()
        assert NO_SPACE in str(err.value) and str(repo) in str(err.value), err.value
        assert "\n" not in str(err.value)
        assert_released(repo)
        assert temp_files(disk) == []


AGENT = """
import sys, time
time.sleep(0.3)
with open("big.bin", "wb") as fh:  # more than the disk holds
    for _ in range(64):
        fh.write(b"x" * 65536)
print("<promise>COMPLETE</promise>")
"""


def test_the_disk_fills_while_workers_run(tmp_path):
    with tmpfs(tmp_path / "disk") as disk:
        repo = make_repo(disk, [{"title": "a"}, {"title": "b"}, {"title": "c"}])
        loop = Loop(
            repo, runner=Command([sys.executable, "-c", AGENT]), parallel=2, max_wall_time=60
        )
        assert loop.start().wait(90), "the loop never finished"
        df = loop.df
        assert loop.error and NO_SPACE in loop.error and str(disk) in loop.error, loop.error
        assert loop.halt_reason
        assert not (df.status == "running").any()
        assert_nothing_doing_unless_said(repo, loop)
        assert_released(repo)
        assert temp_files(disk) == []
