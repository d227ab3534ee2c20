"""The check command: stoppable, and nothing of it left running."""

from __future__ import annotations

import sys
import time

import pytest

from ralphnb.loop.core import Loop
from ralphnb.queue.store import Queue
from tests.conftest import demo, make_repo

pytestmark = pytest.mark.usefixtures("fast_demo")


def test_stop_reaches_a_hanging_check(tmp_path):
    """A check that hangs (a stuck test suite) is killed by stop(): the loop does not wait on
    it forever, nothing of it is left running, and the task goes back to todo."""
    import psutil

    repo = make_repo(tmp_path, [demo("one")])
    marker = tmp_path / "check-pid"
    check = [
        sys.executable,
        "-c",
        "import os, sys, time\n"
        f"open({str(marker)!r}, 'w').write(str(os.getpid()))\ntime.sleep(120)",
    ]
    loop = Loop(repo, runner="demo", check=check).start()
    for _ in range(600):  # the check writes its pid once it runs
        if marker.exists() and marker.read_text():
            break
        time.sleep(0.05)
    pid = int(marker.read_text())
    loop.stop("RQ-0001")
    assert loop.wait(10), loop.snapshot()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert Queue(repo).get("RQ-0001").status == "todo"
    assert "stopped by the user" in Queue(repo).get("RQ-0001").notes[-1]
