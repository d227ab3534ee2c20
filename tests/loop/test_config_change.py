"""An agent that writes the repository's git config (a filter whose command the user's own git
would run): the row says what changed, nothing is merged until the config is restored, then the
task integrates. In worktree mode the config is shared with the worktree; in clone mode the agent
reaches the user's repository through RALPHNB_REPO."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from ralphnb.loop.core import Loop
from ralphnb.queue.store import Queue
from ralphnb.runners import Command
from tests.conftest import git, make_repo

pytestmark = pytest.mark.slow

AGENT = """
import os, subprocess
where = os.environ["RALPHNB_REPO"]
subprocess.run(["git", "-C", where, "config", "--local", "filter.x.clean", "touch planted"],
               check=True)
with open("work.txt", "w") as fh:
    fh.write("the agent's work\\n")
print("<promise>COMPLETE</promise>")
"""


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.parametrize("mode", ["worktree", "clone"])
def test_a_changed_git_config_holds_the_merge_until_it_is_restored(tmp_path, mode):
    repo = make_repo(tmp_path, [{"title": "plant a filter"}])
    main = git(repo, "rev-parse", "main").strip()
    runner = Command([sys.executable, "-c", AGENT])
    loop = Loop(repo, runner=runner, workspace_mode=mode, max_iterations=1).start()
    try:
        wait_for(lambda: len(loop.df) and "restore" in str(loop.df.error.iloc[-1]))
        row = loop.df.iloc[-1]
        assert row.status == "integrating", row.to_dict()
        assert "git config" in row.error and "filter.x.clean" in row.error, row.error
        assert "restore" in row.error and "stop" in row.error, row.error
        assert "touch planted" not in row.error  # keys are named, values never shown
        noted = [e.data["error"] for e in loop.events if e.kind == "status" and "error" in e.data]
        assert any("filter.x.clean" in n and "while the agent ran" in n for n in noted), noted
        time.sleep(2.5)  # a retry or more: still held
        assert loop.running and loop.df.iloc[-1].status == "integrating"
        assert git(repo, "rev-parse", "main").strip() == main  # nothing merged
        assert Queue(repo).get("RQ-0001").status == "done"  # done, not yet archived
        subprocess.run(["git", "-C", str(repo), "config", "--local", "--unset", "filter.x.clean"])
        assert loop.wait(60)
    finally:
        loop.stop_all()
        loop.wait(30)
    assert loop.df.iloc[-1].status == "integrated"
    assert git(repo, "show", "main:work.txt") == "the agent's work\n"
    assert [t.id for t in Queue(repo).done] == ["RQ-0001"]


def test_a_task_stopped_while_its_config_is_changed_goes_back_unmerged(tmp_path):
    repo = make_repo(tmp_path, [{"title": "plant a filter"}])
    main = git(repo, "rev-parse", "main").strip()
    loop = Loop(repo, runner=Command([sys.executable, "-c", AGENT]), max_iterations=1).start()
    wait_for(lambda: len(loop.df) and "restore" in str(loop.df.error.iloc[-1]))
    assert "filter.x.clean" in loop.df.error.iloc[-1]
    loop.stop("RQ-0001")
    assert loop.wait(60)
    assert git(repo, "rev-parse", "main").strip() == main
    task = Queue(repo).get("RQ-0001")
    assert task.status == "todo" and "git config" in task.notes[-1], task.notes
