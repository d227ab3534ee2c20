"""Loop(publish=...): a real loop with the demo agent publishes as ralph's git_publish_mode says,
to a real local bare remote."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from ralphnb.errors import RalphError
from ralphnb.loop.core import Loop
from ralphnb.loop.publishing import pick_publish
from ralphnb.queue.store import Queue
from ralphnb.workspace.publish import PushPolicy
from tests.conftest import demo, git, make_repo
from tests.workspace.test_publish import commit_file, other_clone_pushes, remote_main


def repo_with_remote(tmp_path: Path, *titles: str) -> tuple[Path, Path]:
    repo = make_repo(tmp_path, [demo(t) for t in titles])
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "-u", "origin", "main")
    return repo, bare


def configure(repo: Path, text: str) -> None:
    (repo / ".ralph" / "config.jsonc").write_text(text)


def test_the_mode_is_the_argument_else_a_configured_value_else_commit():
    assert pick_publish("off", "commit_and_push", "project") == "off"
    assert pick_publish(None, "commit_and_push", "project") == "commit_and_push"
    assert pick_publish(None, "commit_and_push", "profile:power-user") == "commit_and_push"
    assert pick_publish(None, "off", "default") == "commit"  # ralph's built-in default
    assert pick_publish(None, None, None) == "commit"


def test_loop_reads_the_mode_and_push_policy_from_configuration(tmp_path):
    repo, _ = repo_with_remote(tmp_path, "A")
    assert Loop(repo, runner="demo").publish == "commit"  # nothing configured: as before
    configure(
        repo,
        '{"agent": {"git_publish_mode": "commit_and_push"},'
        ' "parallel": {"max_push_attempts": 3, "push_backoff_ms": [10, 20]}}',
    )
    loop = Loop(repo, runner="demo")
    assert (loop.publish, loop.push_policy) == ("commit_and_push", PushPolicy(3, (10, 20)))
    assert Loop(repo, runner="demo", publish="commit").publish == "commit"
    with pytest.raises(RalphError, match="publish='sideways'"):
        Loop(repo, runner="demo", publish="sideways")


@pytest.mark.slow
def test_commit_never_pushes(tmp_path, fast_demo):
    repo, bare = repo_with_remote(tmp_path, "Alpha")
    before = remote_main(bare)
    df = Loop(repo, runner="demo").run()
    assert df.iloc[-1]["status"] == "integrated"
    assert (repo / "Alpha.txt").exists()
    assert remote_main(bare) == before


@pytest.mark.slow
def test_commit_and_push_merges_a_remote_that_moved_and_pushes(tmp_path, fast_demo):
    repo, bare = repo_with_remote(tmp_path, "Alpha")
    configure(repo, '{"parallel": {"push_backoff_ms": [50]}}')
    other_clone_pushes(tmp_path, bare, "theirs.txt")  # the remote moved since the last fetch
    loop = Loop(repo, runner="demo", publish="commit_and_push")
    df = loop.run()
    row = df.iloc[-1]
    assert row["status"] == "integrated" and row["last_message"] == "pushed main to origin/main"
    assert pd_isna(row["error"])
    tip = remote_main(bare)
    assert tip == git(repo, "rev-parse", "main").strip()
    assert {"Alpha.txt", "theirs.txt"} <= set(git(bare, "ls-tree", "--name-only", tip).split())
    published = [e.data["published"] for e in loop.events if "published" in e.data]
    assert published == ["pushed"]


@pytest.mark.slow
def test_a_refusing_remote_is_reported_and_the_work_stays_merged(tmp_path, fast_demo):
    repo, bare = repo_with_remote(tmp_path, "Alpha")
    hook = bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(hook.stat().st_mode | stat.S_IEXEC)
    before = remote_main(bare)
    loop = Loop(repo, runner="demo", publish="commit_and_push")
    df = loop.run()
    row = df.iloc[-1]
    assert row["status"] == "integrated"
    assert "refused" in row["error"] and "unpushed" in row["error"]
    assert remote_main(bare) == before
    assert (repo / "Alpha.txt").exists()  # merged into the target all the same
    assert [t.id for t in Queue(repo).done] == ["RQ-0001"]
    assert [e.data["published"] for e in loop.events if "published" in e.data] == ["push_failed"]


@pytest.mark.slow
def test_off_completes_the_task_and_leaves_the_work_on_its_branch(tmp_path, fast_demo):
    repo, bare = repo_with_remote(tmp_path, "Alpha")
    main_before = git(repo, "rev-parse", "main").strip()
    configure(repo, '{"agent": {"git_publish_mode": "off"}}')
    loop = Loop(repo, runner="demo")
    assert loop.publish == "off"
    df = loop.run()
    row = df.iloc[-1]
    assert row["status"] == "integrated"
    assert "the work is on branch ralph/RQ-0001, not merged" in row["last_message"]
    assert git(repo, "rev-parse", "main").strip() == main_before
    assert not (repo / "Alpha.txt").exists()
    assert git(repo, "show", "ralph/RQ-0001:Alpha.txt").strip() == "Alpha"
    assert [t.id for t in Queue(repo).done] == ["RQ-0001"]
    # a later loop's clean-up of archived tasks leaves the user's branch alone
    commit_file(repo, "later.txt", "x\n")
    Loop(repo, runner="demo").run()
    assert git(repo, "show", "ralph/RQ-0001:Alpha.txt").strip() == "Alpha"


def test_off_outside_git_is_refused_up_front(tmp_path):
    from ralphnb.queue.store import init

    init(tmp_path / "plain").add("A")
    with pytest.raises(RalphError, match="needs a git repository"):
        Loop(tmp_path / "plain", runner="demo", publish="off")


def pd_isna(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def test_parallel_workers_and_workspace_root_come_from_configuration(tmp_path):
    """ralph's `parallel.workers` and `parallel.workspace_root` are the Loop's defaults; an
    argument wins; with neither set, 2 workers and ralphnb's own place."""
    repo, _ = repo_with_remote(tmp_path, "A")
    plain = Loop(repo, runner="demo")
    assert plain.parallel == 2 and plain.workspaces.root != tmp_path / "ws"
    ws = tmp_path / "ws"
    configure(repo, json.dumps({"parallel": {"workers": 3, "workspace_root": str(ws)}}))
    loop = Loop(repo, runner="demo")
    assert loop.parallel == 3
    assert loop.workspaces.root == ws.resolve()
    assert Loop(repo, runner="demo", parallel=1).parallel == 1
