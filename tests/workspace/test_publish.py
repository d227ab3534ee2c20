"""Publishing: mode off keeps the work on the task branch; commit_and_push pushes the target to
a real local bare remote, merging a remote that moved, and reports a remote that refuses."""

from __future__ import annotations

import stat
from pathlib import Path

from ralphnb.workspace.integrate import integrate_workspace
from ralphnb.workspace.publish import (
    PushPolicy,
    backoff_s,
    push_report,
    push_target,
    remote_moved,
)
from ralphnb.workspace.workspaces import Workspaces
from tests.conftest import git, make_repo

FAST = PushPolicy(attempts=5, backoff_ms=(0,))


def with_remote(tmp_path: Path) -> tuple[Path, Path]:
    """A repo on `main` tracking `origin/main` of a bare repository; (repo, bare)."""
    repo = make_repo(tmp_path, [])
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "-u", "origin", "main")
    return repo, bare


def commit_file(repo: Path, name: str, text: str) -> str:
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", f"add {name}")
    return git(repo, "rev-parse", "HEAD").strip()


def other_clone_pushes(tmp_path: Path, bare: Path, name: str) -> str:
    """Someone else pushes a commit to the remote's main meanwhile."""
    other = tmp_path / f"other-{name}"
    git(tmp_path, "clone", "-q", str(bare), str(other))
    return commit_file(other, name, "theirs\n") and git(other, "push", "-q", "origin", "main")


def remote_main(bare: Path) -> str:
    return git(bare, "rev-parse", "refs/heads/main").strip()


def test_backoff_follows_ralphs_schedule_and_repeats_its_last_value():
    policy = PushPolicy(backoff_ms=(500, 2000, 5000, 10000))
    assert [backoff_s(policy, i) for i in range(6)] == [0.5, 2.0, 5.0, 10.0, 10.0, 10.0]
    assert backoff_s(PushPolicy(backoff_ms=()), 3) == 0.0


def test_remote_moved_tells_a_stale_push_from_a_refusal():
    assert remote_moved(" ! [rejected]        main -> main (fetch first)")
    assert remote_moved("! refs/heads/main:refs/heads/main [rejected] (non-fast-forward)")
    assert not remote_moved(" ! [remote rejected] main -> main (pre-receive hook declined)")
    assert not remote_moved("fatal: could not read from remote repository")


def test_push_sends_the_target_to_its_upstream(tmp_path):
    repo, bare = with_remote(tmp_path)
    head = commit_file(repo, "mine.txt", "mine\n")
    res = push_target(repo, "main", policy=FAST)
    assert (res.status, res.attempts, res.remote, res.branch) == ("pushed", 1, "origin", "main")
    assert remote_main(bare) == head
    assert push_report(res) == {"published": "pushed", "message": "pushed main to origin/main"}


def test_push_rejected_because_the_remote_moved_fetches_merges_and_retries(tmp_path):
    repo, bare = with_remote(tmp_path)
    other_clone_pushes(tmp_path, bare, "theirs.txt")
    mine = commit_file(repo, "mine.txt", "mine\n")
    res = push_target(repo, "main", policy=FAST)
    assert res.status == "pushed" and res.attempts == 2, res
    tip = remote_main(bare)
    assert tip == git(repo, "rev-parse", "main").strip()
    files = git(bare, "ls-tree", "--name-only", tip).split()
    assert {"mine.txt", "theirs.txt"} <= set(files)
    assert git(repo, "merge-base", "--is-ancestor", mine, tip) == ""
    # the checkout followed its branch: the remote's file is in the user's working tree
    assert (repo / "theirs.txt").read_text() == "theirs\n"
    assert git(repo, "status", "--porcelain").strip() == ""


def test_a_remote_that_always_refuses_is_reported_and_the_work_stays_on_the_target(tmp_path):
    repo, bare = with_remote(tmp_path)
    hook = bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'pushes are closed today' >&2\nexit 1\n")
    hook.chmod(hook.stat().st_mode | stat.S_IEXEC)
    before = remote_main(bare)
    mine = commit_file(repo, "mine.txt", "mine\n")
    res = push_target(repo, "main", policy=FAST)
    assert res.status == "failed" and res.attempts == 1, res  # retrying cannot help
    assert "refused" in res.message and "pre-receive" in res.message
    assert remote_main(bare) == before
    assert git(repo, "rev-parse", "main").strip() == mine
    report = push_report(res)
    assert report["published"] == "push_failed"
    assert "stays merged on the target branch, unpushed" in report["error"]


def test_push_without_an_upstream_says_how_to_set_one(tmp_path):
    repo = make_repo(tmp_path, [])
    res = push_target(repo, "main", policy=FAST)
    assert res.status == "failed" and "no upstream" in res.message
    assert "git branch -u origin/main" in res.message


def test_a_stop_between_tries_ends_the_push(tmp_path):
    repo, bare = with_remote(tmp_path)
    other_clone_pushes(tmp_path, bare, "theirs.txt")
    commit_file(repo, "mine.txt", "mine\n")
    res = push_target(repo, "main", policy=PushPolicy(5, (60_000,)), should_stop=lambda: True)
    assert res.status == "stopped" and res.attempts == 1


def test_publish_off_commits_on_the_task_branch_and_merges_nothing(tmp_path):
    repo = make_repo(tmp_path, [])
    main_before = git(repo, "rev-parse", "main").strip()
    wss = Workspaces(repo)
    ws = wss.create("RQ-0001")
    (ws.path / "work.txt").write_text("done\n")
    res = integrate_workspace(
        wss, ws, task_id="RQ-0001", title="Work", target="main", queue_files=(), publish="off"
    )
    assert res.status == "kept", res
    assert "branch ralph/RQ-0001" in res.message and "not merged" in res.message
    assert git(repo, "rev-parse", "main").strip() == main_before
    assert git(repo, "show", "ralph/RQ-0001:work.txt") == "done\n"
    assert res.commit == git(repo, "rev-parse", "ralph/RQ-0001").strip()
    # the branch is the user's now: removing the workspace (as after the task) keeps it
    wss.remove(ws, delete_branch=True)
    assert not ws.path.exists()
    assert git(repo, "rev-parse", "ralph/RQ-0001").strip() == res.commit
    assert "RQ-0001" not in wss.created_branches()
