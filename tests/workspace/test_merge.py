"""Integration back into the target branch, with real git repositories."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ralphnb.workspace.merge import checked_out_at, commit_bookkeeping, integrate, rev
from tests.conftest import git
from tests.conftest import make_repo as make_queue_repo

pytestmark = pytest.mark.usefixtures("fast_demo")


def sh(*args: str, cwd: Path) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


def make_repo(tmp_path: Path, *, track_queue: bool = False) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    sh("git", "init", "-q", "-b", "main", cwd=repo)
    (repo / "a.txt").write_text("one\ntwo\nthree\n")
    (repo / "b.txt").write_text("bee\n")
    (repo / ".ralph").mkdir()
    (repo / ".ralph" / "queue.jsonc").write_text('{"version": 1, "tasks": []}\n')
    if not track_queue:
        (repo / ".gitignore").write_text(".ralph/\n")
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-q", "-m", "init", cwd=repo)
    return repo


def worktree(repo: Path, tid: str) -> Path:
    ws = repo.parent / "ws" / tid
    sh("git", "worktree", "add", "-q", "-b", f"ralph/{tid}", str(ws), "main", cwd=repo)
    return ws


def status(repo: Path) -> tuple[str, str, str]:
    return (
        sh("git", "status", "--porcelain=v1", "-uall", cwd=repo),
        sh("git", "diff", cwd=repo),
        sh("git", "diff", "--cached", cwd=repo),
    )


def test_uncommitted_work_is_committed_and_merged_leaving_user_changes(tmp_path):
    repo = make_repo(tmp_path)
    ws = worktree(repo, "RQ-0001")
    (ws / "new.txt").write_text("agent\n")  # left uncommitted by the agent
    # the user's own work in progress: unstaged, staged and untracked, in other files
    (repo / "b.txt").write_text("bee edited\n")
    (repo / "staged.txt").write_text("staged\n")
    sh("git", "add", "staged.txt", cwd=repo)
    (repo / "scratch.txt").write_text("untracked\n")
    before = status(repo)
    res = integrate(
        repo, ws, branch="ralph/RQ-0001", target="main", task_id="RQ-0001", title="Add new"
    )
    assert res.status == "integrated", res.message
    assert rev(repo, "main") == res.commit
    assert (repo / "new.txt").read_text() == "agent\n"
    log = sh("git", "log", "--format=%s", "main", cwd=repo)
    assert "RQ-0001: Add new" in log
    after = status(repo)
    assert after == before
    assert (repo / "b.txt").read_text() == "bee edited\n"


def test_same_line_edits_one_integrates_other_conflicts(tmp_path):
    repo = make_repo(tmp_path)
    w1, w2 = worktree(repo, "RQ-0001"), worktree(repo, "RQ-0002")
    (w1 / "a.txt").write_text("one\nTWO by 1\nthree\n")
    (w2 / "a.txt").write_text("one\nTWO by 2\nthree\n")
    r1 = integrate(repo, w1, branch="ralph/RQ-0001", target="main", task_id="RQ-0001", title="x")
    head = rev(repo, "main")
    r2 = integrate(repo, w2, branch="ralph/RQ-0002", target="main", task_id="RQ-0002", title="y")
    assert r1.status == "integrated"
    assert r2.status == "conflict" and r2.paths == ["a.txt"]
    assert rev(repo, "main") == head
    assert "TWO by 1" in (repo / "a.txt").read_text()
    assert "<<<<<<<" not in (repo / "a.txt").read_text()
    assert status(repo)[0] == ""


def test_dirty_file_in_the_way_blocks_then_integrates(tmp_path):
    repo = make_repo(tmp_path)
    ws = worktree(repo, "RQ-0001")
    (ws / "b.txt").write_text("agent's bee\n")
    (repo / "b.txt").write_text("user's bee\n")
    head = rev(repo, "main")
    res = integrate(repo, ws, branch="ralph/RQ-0001", target="main", task_id="RQ-0001", title="t")
    assert res.status == "blocked" and "uncommitted" in res.message
    assert rev(repo, "main") == head
    assert (repo / "b.txt").read_text() == "user's bee\n"
    sh("git", "checkout", "--", "b.txt", cwd=repo)
    res = integrate(repo, ws, branch="ralph/RQ-0001", target="main", task_id="RQ-0001", title="t")
    assert res.status == "integrated"
    assert (repo / "b.txt").read_text() == "agent's bee\n"


def test_target_not_checked_out_moves_by_compare_and_swap(tmp_path):
    repo = make_repo(tmp_path)
    sh("git", "branch", "release", cwd=repo)
    ws = repo.parent / "ws" / "RQ-0001"
    sh("git", "worktree", "add", "-q", "-b", "ralph/RQ-0001", str(ws), "release", cwd=repo)
    (ws / "c.txt").write_text("c\n")
    (repo / "a.txt").write_text("user dirty\n")
    assert checked_out_at(repo, "release") is None
    res = integrate(
        repo, ws, branch="ralph/RQ-0001", target="release", task_id="RQ-0001", title="c"
    )
    assert res.status == "integrated"
    assert sh("git", "show", "release:c.txt", cwd=repo) == "c\n"
    assert not (repo / "c.txt").exists()
    assert (repo / "a.txt").read_text() == "user dirty\n"
    again = integrate(
        repo, ws, branch="ralph/RQ-0001", target="release", task_id="RQ-0001", title="c"
    )
    assert again.status == "noop"


def test_branch_edits_of_queue_files_are_not_merged(tmp_path):
    repo = make_repo(tmp_path, track_queue=True)
    ws = worktree(repo, "RQ-0001")
    (ws / ".ralph" / "queue.jsonc").write_text('{"version": 1, "tasks": [{"broken": 1}]}\n')
    (ws / ".ralph" / "done.jsonc").write_text('{"version": 1, "tasks": []}\n')
    (ws / "x.txt").write_text("x\n")
    # meanwhile the loop changed the user's queue file and committed it
    (repo / ".ralph" / "queue.jsonc").write_text('{"version": 1, "tasks": ["mine"]}\n')
    assert commit_bookkeeping(repo, "ralphnb: queue") is not None
    res = integrate(repo, ws, branch="ralph/RQ-0001", target="main", task_id="RQ-0001", title="x")
    assert res.status == "integrated"
    assert sh("git", "show", "main:.ralph/queue.jsonc", cwd=repo) == (
        '{"version": 1, "tasks": ["mine"]}\n'
    )
    names = sh("git", "ls-tree", "-r", "--name-only", "main", cwd=repo).split()
    assert ".ralph/done.jsonc" not in names and "x.txt" in names


def test_bookkeeping_commit_leaves_user_index_and_tree(tmp_path):
    repo = make_repo(tmp_path, track_queue=True)
    (repo / "staged.txt").write_text("s\n")
    sh("git", "add", "staged.txt", cwd=repo)
    (repo / "b.txt").write_text("unstaged\n")
    (repo / ".ralph" / "queue.jsonc").write_text('{"version": 1, "tasks": [1]}\n')
    (repo / ".ralph" / "done.jsonc").write_text('{"version": 1, "tasks": [2]}\n')
    c = commit_bookkeeping(repo, "ralphnb: bookkeeping")
    assert c is not None
    files = sh("git", "show", "--name-only", "--format=", c, cwd=repo).split()
    assert sorted(files) == [".ralph/done.jsonc", ".ralph/queue.jsonc"]
    st = sh("git", "status", "--porcelain=v1", cwd=repo)
    assert "A  staged.txt" in st and " M b.txt" in st and ".ralph" not in st
    assert commit_bookkeeping(repo, "again") is None


def test_integration_ignores_git_dir_and_index_from_the_callers_env(tmp_path, monkeypatch):
    repo = make_queue_repo(tmp_path, [])
    ws = tmp_path / "ws"
    git(repo, "worktree", "add", "-q", "-b", "ralph/RQ-0001", str(ws), "main")
    (ws / "agent.txt").write_text("agent\n")
    head = git(repo, "rev-parse", "HEAD")
    # e.g. a notebook started from a git hook or `git rebase --exec`: GIT_DIR is the user's repo
    monkeypatch.setenv("GIT_DIR", str(repo / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(repo / ".git" / "index"))
    res = integrate(
        repo, ws, branch="ralph/RQ-0001", target="main", task_id="RQ-0001", title="Add agent file"
    )
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_INDEX_FILE")
    assert res.status == "integrated", res.message
    log = git(repo, "log", "--format=%s", "main")
    assert log.splitlines()[:1] == ["RQ-0001: Add agent file"]
    assert git(repo, "show", "main:agent.txt") == "agent\n"
    assert git(repo, "rev-parse", "HEAD~1") == head  # one commit, on the task's branch
    assert git(repo, "status", "--porcelain") == ""  # the user's index was not staged into


def test_a_target_the_user_moved_meanwhile_is_reported_as_such_not_as_dirty_files(tmp_path):
    from ralphnb.workspace.merge import merge_branch, move_branch

    repo = make_queue_repo(tmp_path, [])
    c1 = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "branch", "ralph/RQ-0001")
    ws = tmp_path / "ws"
    git(repo, "worktree", "add", "-q", str(ws), "ralph/RQ-0001")
    (ws / "g.txt").write_text("agent\n")
    git(ws, "add", "g.txt")
    git(ws, "commit", "-qm", "agent")
    c3 = git(ws, "rev-parse", "HEAD").strip()
    (repo / "f.txt").write_text("user\n")
    git(repo, "commit", "-qam", "the user's commit, made while the merge was computed")
    user = git(repo, "rev-parse", "HEAD").strip()
    res = move_branch(repo, "main", c1, c3)
    assert res.status == "blocked" and "moved meanwhile" in res.message, res.message
    assert git(repo, "rev-parse", "HEAD").strip() == user
    res = merge_branch(repo, "ralph/RQ-0001", "main", message="Merge")  # the retry
    assert res.status == "integrated", res.message
    assert git(repo, "rev-parse", "main^1").strip() == user
    assert (repo / "g.txt").read_text() == "agent\n"


def test_target_being_rebased_in_the_checkout_is_not_moved_behind_its_back(tmp_path):
    import subprocess

    from ralphnb.workspace.merge import move_branch

    repo = make_queue_repo(tmp_path, [])
    git(repo, "checkout", "-q", "-b", "other")
    (repo / "f.txt").write_text("other\n")
    git(repo, "commit", "-qam", "other")
    git(repo, "checkout", "-q", "main")
    (repo / "f.txt").write_text("mine\n")
    git(repo, "commit", "-qam", "mine")
    old = git(repo, "rev-parse", "HEAD").strip()
    r = subprocess.run(["git", "rebase", "other"], cwd=repo, capture_output=True, text=True)
    assert r.returncode != 0  # stopped on the conflict: HEAD detached, main mid-rebase
    new = git(repo, "commit-tree", "-p", old, "-m", "agent", f"{old}^{{tree}}").strip()
    res = move_branch(repo, "main", old, new)
    assert res.status == "blocked" and "rebase of main is in progress" in res.message
    assert git(repo, "rev-parse", "refs/heads/main").strip() == old


def test_nothing_under_ralph_is_merged_and_the_result_names_what_was_dropped(tmp_path):
    repo = make_repo(tmp_path, track_queue=True)
    (repo / ".ralph" / "config.jsonc").write_text('{"version": 1}\n')
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "config", cwd=repo)
    ws = worktree(repo, "RQ-0001")
    evil = '{"queue": {"file": ".ralph/evil_queue.jsonc", "id_prefix": "PWN"}}\n'
    (ws / ".ralph" / "config.jsonc").write_text(evil)
    (ws / ".ralph" / "evil_queue.jsonc").write_text('{"version": 1, "tasks": []}\n')
    (ws / "x.txt").write_text("x\n")
    res = integrate(repo, ws, branch="ralph/RQ-0001", target="main", task_id="RQ-0001", title="x")
    assert res.status == "integrated", res.message
    assert res.dropped == [".ralph/config.jsonc", ".ralph/evil_queue.jsonc"]
    assert (repo / ".ralph" / "config.jsonc").read_text() == '{"version": 1}\n'
    assert not (repo / ".ralph" / "evil_queue.jsonc").exists()
    assert (repo / "x.txt").read_text() == "x\n"
    names = sh("git", "ls-tree", "-r", "--name-only", "main", cwd=repo).split()
    assert ".ralph/evil_queue.jsonc" not in names
    assert sh("git", "show", "main:.ralph/config.jsonc", cwd=repo) == '{"version": 1}\n'


def test_a_branch_that_only_touched_ralph_is_a_noop_naming_the_dropped_paths(tmp_path):
    from ralphnb.workspace.merge import merge_branch

    repo = make_repo(tmp_path, track_queue=True)
    ws = worktree(repo, "RQ-0001")
    (ws / ".ralph" / "queue.jsonc").write_text('{"version": 1, "tasks": ["agent"]}\n')
    sh("git", "commit", "-qam", "the agent commits its own queue edit", cwd=ws)
    head = rev(repo, "main")
    res = merge_branch(repo, "ralph/RQ-0001", "main", message="Merge")  # recovery's path
    assert res.status == "noop" and res.dropped == [".ralph/queue.jsonc"], res
    assert rev(repo, "main") == head


def test_queue_files_moved_by_config_are_kept_out_too(tmp_path):
    repo = make_repo(tmp_path, track_queue=True)
    (repo / "tasks").mkdir()
    (repo / "tasks" / "queue.jsonc").write_text('{"version": 1, "tasks": []}\n')
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "queue elsewhere", cwd=repo)
    ws = worktree(repo, "RQ-0001")
    (ws / "tasks" / "queue.jsonc").write_text('{"version": 1, "tasks": ["agent"]}\n')
    (ws / "y.txt").write_text("y\n")
    res = integrate(
        repo,
        ws,
        branch="ralph/RQ-0001",
        target="main",
        task_id="RQ-0001",
        title="y",
        bookkeeping=("tasks/queue.jsonc", "tasks/done.jsonc"),
    )
    assert res.status == "integrated" and res.dropped == ["tasks/queue.jsonc"], res
    assert (repo / "tasks" / "queue.jsonc").read_text() == '{"version": 1, "tasks": []}\n'


def test_symlinks_pointing_outside_the_repository_are_refused_as_a_conflict(tmp_path):
    import os

    repo = make_repo(tmp_path)
    ws = worktree(repo, "RQ-0001")
    (ws / "sub").mkdir()
    os.symlink("/etc/passwd", ws / "abs")
    os.symlink("../../outside", ws / "up")
    os.symlink("../../x", ws / "sub" / "up2")
    os.symlink(".git/config", ws / "into-git")
    os.symlink("a.txt", ws / "fine")
    os.symlink("../b.txt", ws / "sub" / "fine2")
    head = rev(repo, "main")
    res = integrate(repo, ws, branch="ralph/RQ-0001", target="main", task_id="RQ-0001", title="l")
    assert res.status == "conflict", res
    assert res.paths == ["abs", "into-git", "sub/up2", "up"]
    assert "outside the repository" in res.message and "sub/up2" in res.message
    assert rev(repo, "main") == head and not os.path.lexists(repo / "abs")
    for p in ("abs", "up", "sub/up2", "into-git"):
        os.unlink(ws / p)
    sh("git", "rm", "-q", "--cached", "abs", "up", "sub/up2", "into-git", cwd=ws)
    res = integrate(repo, ws, branch="ralph/RQ-0001", target="main", task_id="RQ-0001", title="l")
    assert res.status == "integrated", res
    assert os.readlink(repo / "sub" / "fine2") == "../b.txt"
