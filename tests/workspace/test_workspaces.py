"""Real-git tests of ralphnb.workspace: isolation, id safety, leftovers, hooks never run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ralphnb.errors import WorkspaceError
from ralphnb.workspace.git import GitError, run_git
from ralphnb.workspace.workspaces import Workspace, Workspaces

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch, tmp_path):
    for k, v in {
        "GIT_AUTHOR_NAME": "T",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "T",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": str(tmp_path / "no-global-config"),
        "GIT_CONFIG_NOSYSTEM": "1",
    }.items():
        monkeypatch.setenv(k, v)


def git(cwd: Path, *args: str) -> str:
    return run_git(list(args), cwd).stdout


def make_repo(tmp_path: Path, n_files: int = 5) -> Path:
    repo = tmp_path / "proj"
    (repo / "src").mkdir(parents=True)
    for i in range(n_files):
        (repo / "src" / f"f{i}.py").write_text(f"x = {i}\n")
    (repo / ".gitignore").write_text(".env\n.venv/\nnode_modules/\n__pycache__/\nsecrets/\n")
    (repo / ".env.example").write_text("KEY=\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "init")
    (repo / ".env").write_text("KEY=secret\n")
    (repo / ".env.local").write_text("untracked, not ignored\n")
    (repo / "secrets").mkdir()
    (repo / "secrets" / "token").write_text("tok\n")
    (repo / ".venv" / "lib").mkdir(parents=True)
    (repo / ".venv" / "lib" / "big").write_text("venv\n")
    (repo / "node_modules").mkdir()
    (repo / "node_modules" / "m.js").write_text("m\n")
    return repo


def make_dirty(repo: Path) -> None:
    (repo / "src" / "f0.py").write_text("x = 'stashed'\n")
    git(repo, "stash", "-q")
    (repo / "src" / "f1.py").write_text("x = 'staged'\n")
    git(repo, "add", "src/f1.py")
    (repo / "src" / "f2.py").write_text("x = 'unstaged'\n")
    (repo / "notes.txt").write_text("untracked\n")


def snapshot(repo: Path) -> dict:
    files = {}
    for p in sorted(repo.rglob("*")):
        if p.is_file() and ".git" not in p.relative_to(repo).parts:
            files[str(p.relative_to(repo))] = p.read_bytes()
    return {
        "status": git(repo, "status", "--porcelain=v1", "--untracked-files=all"),
        "head": git(repo, "rev-parse", "HEAD"),
        "branch": git(repo, "symbolic-ref", "HEAD"),
        "stash": git(repo, "stash", "list", "--format=%H %s"),
        "index": (repo / ".git" / "index").read_bytes(),
        "files": files,
    }


def test_worktree_from_dirty_checkout_leaves_checkout_untouched(tmp_path):
    repo = make_repo(tmp_path)
    make_dirty(repo)
    before = snapshot(repo)
    assert "M  src/f1.py" in before["status"] and " M src/f2.py" in before["status"]
    wss = Workspaces(repo, copy_ignored=["secrets"])
    ws = wss.create("RQ-0001")
    assert ws.kind == "worktree" and ws.branch == "ralph/RQ-0001"
    assert ws.path == tmp_path / ".workspaces" / "proj" / "RQ-0001"
    assert ws.base == before["head"].strip()
    assert git(ws.path, "rev-parse", "HEAD").strip() == ws.base
    assert (ws.path / "src" / "f1.py").read_text() == "x = 1\n"  # committed, not staged
    assert not (ws.path / "notes.txt").exists()
    assert (ws.path / ".env").read_text() == "KEY=secret\n"
    assert (ws.path / "secrets" / "token").read_text() == "tok\n"
    assert not (ws.path / ".env.local").exists()  # not ignored: would be committed
    assert not (ws.path / ".venv").exists() and not (ws.path / "node_modules").exists()
    assert git(ws.path, "status", "--porcelain") == ""  # copies are ignored there too
    (ws.path / "src" / "new.py").write_text("agent work\n")
    assert snapshot(repo) == before
    wss.remove(ws)
    wss.remove(ws)  # idempotent
    wss.remove("RQ-0001", delete_branch=True)
    assert not ws.path.exists()
    assert snapshot(repo) == before
    assert "RQ-0001" not in git(repo, "worktree", "list") + git(repo, "branch", "--list")


def test_clone_mode_is_separate_and_branch_syncs_back(tmp_path):
    repo = make_repo(tmp_path)
    make_dirty(repo)
    before = snapshot(repo)
    wss = Workspaces(repo, mode="clone")
    ws = wss.create("RQ-0002")
    assert ws.kind == "clone" and (ws.path / ".git").is_dir()
    assert git(ws.path, "symbolic-ref", "--short", "HEAD").strip() == "ralph/RQ-0002"
    for obj in (ws.path / ".git" / "objects").rglob("*"):
        if obj.is_file():
            assert obj.stat().st_nlink == 1, obj  # copied, never hardlinked to the user's
    (ws.path / ".git" / "hooks" / "post-merge").write_text("#!/bin/sh\ntouch /tmp/x\n")
    (ws.path / "src" / "agent.py").write_text("work\n")
    git(ws.path, "add", "-A")
    git(ws.path, "commit", "-q", "-m", "agent")
    head = git(ws.path, "rev-parse", "HEAD").strip()
    assert "ralph/RQ-0002" not in git(repo, "branch", "--list")
    assert wss.sync_branch(ws) == head
    assert git(repo, "rev-parse", "ralph/RQ-0002").strip() == head
    assert snapshot(repo) == before
    wss.remove(ws, delete_branch=True)
    assert not ws.path.exists() and snapshot(repo) == before


def test_copy_mode_outside_git_skips_build_outputs(tmp_path):
    d = tmp_path / "plain"
    (d / "pkg" / "__pycache__").mkdir(parents=True)
    (d / "pkg" / "a.py").write_text("a\n")
    (d / "pkg" / "__pycache__" / "a.pyc").write_bytes(b"\0")
    (d / ".venv").mkdir()
    (d / "node_modules").mkdir()
    (d / ".env").write_text("K=1\n")
    (d / ".ralph" / "lock").mkdir(parents=True)
    (d / ".ralph" / "queue.jsonc").write_text("{}\n")
    wss = Workspaces(d)
    assert not wss.is_git and wss.mode == "copy"
    ws = wss.create("RQ-0003")
    assert ws.kind == "copy" and ws.branch is None and ws.base is None
    assert (ws.path / "pkg" / "a.py").read_text() == "a\n" and (ws.path / ".env").exists()
    assert (ws.path / ".ralph" / "queue.jsonc").exists()
    for gone in ("pkg/__pycache__", ".venv", "node_modules", ".ralph/lock"):
        assert not (ws.path / gone).exists(), gone
    assert [w.task_id for w in wss.existing()] == ["RQ-0003"]
    files = wss.manifest("RQ-0003")["files"]  # what was copied, and nothing else
    assert "pkg/a.py" in files and ".env" in files
    assert not [f for f in files if f.startswith((".venv", "node_modules", "pkg/__pycache__"))]
    assert not any(p.name.endswith(".manifest.json") for p in ws.path.rglob("*"))
    wss.remove("RQ-0003")
    assert not ws.path.exists() and wss.existing() == []
    assert wss.manifest("RQ-0003") is None
    with pytest.raises(WorkspaceError, match="needs a git repository"):
        Workspaces(d, mode="worktree")


@pytest.mark.parametrize("bad", ["../evil", "RQ-0001/../../x", "rq-1", "", "RQ-1\n", "/etc"])
def test_bad_task_ids_are_refused_before_any_path_or_branch(tmp_path, bad):
    repo = make_repo(tmp_path)
    wss = Workspaces(repo)
    with pytest.raises(WorkspaceError, match="refusing workspace"):
        wss.create(bad)
    assert not wss.root.exists()
    assert git(repo, "branch", "--list", "ralph/*") == ""


def test_root_inside_checkout_is_refused(tmp_path):
    repo = make_repo(tmp_path)
    with pytest.raises(WorkspaceError, match="inside the checkout"):
        Workspaces(repo, root=repo / "ws")


def test_leftover_workspace_is_reported_never_overwritten(tmp_path):
    repo = make_repo(tmp_path)
    wss = Workspaces(repo)
    ws = wss.create("RQ-0004")
    (ws.path / "src" / "work.py").write_text("unsaved agent work\n")
    again = Workspaces(repo)  # a later run
    assert [w.task_id for w in again.existing()] == ["RQ-0004"]
    with pytest.raises(WorkspaceError, match=r"already exists.*reuse=True.*remove"):
        again.create("RQ-0004")
    assert (ws.path / "src" / "work.py").read_text() == "unsaved agent work\n"
    reused = again.create("RQ-0004", reuse=True)
    assert reused == Workspace("RQ-0004", ws.path, "worktree", "ralph/RQ-0004", ws.base)
    # directory gone but branch left over: also refused unless reused
    git(ws.path, "add", "-A")
    git(ws.path, "commit", "-q", "-m", "agent commit")
    tip = git(ws.path, "rev-parse", "HEAD").strip()
    again.remove("RQ-0004")
    with pytest.raises(WorkspaceError, match="branch ralph/RQ-0004 already exists"):
        again.create("RQ-0004")
    assert not ws.path.exists()
    cont = again.create("RQ-0004", reuse=True)
    assert git(cont.path, "rev-parse", "HEAD").strip() == tip and cont.base == ws.base
    again.remove(cont, delete_branch=True)
    assert again.create("RQ-0004").base == ws.base  # fresh start after delete_branch


def test_directory_deleted_by_hand_stale_registration_is_pruned(tmp_path):
    repo = make_repo(tmp_path)
    wss = Workspaces(repo)
    ws = wss.create("RQ-0005")
    shutil.rmtree(ws.path)  # the user deleted the directory; git still lists the worktree
    assert "RQ-0005" in git(repo, "worktree", "list")
    assert wss.get("RQ-0005") is None
    again = wss.create("RQ-0005", reuse=True)  # the branch is still there: continue on it
    assert again.path.is_dir() and again.branch == "ralph/RQ-0005"
    wss.remove("RQ-0005", delete_branch=True)
    assert git(repo, "worktree", "list").count("\n") == 1


def test_planted_hooks_and_fsmonitor_never_run(tmp_path):
    repo = make_repo(tmp_path)
    marker = tmp_path / "hook-ran"
    hook = repo / ".git" / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\necho hook >> {marker}\n")
    hook.chmod(0o755)
    fsmon = tmp_path / "fsmonitor.sh"
    fsmon.write_text(f"#!/bin/sh\necho fsmonitor >> {marker}\n")
    fsmon.chmod(0o755)
    subprocess.run(["git", "config", "core.fsmonitor", str(fsmon)], cwd=repo, check=True)
    # control: plain git does run the planted programs
    subprocess.run(
        ["git", "worktree", "add", "-q", str(tmp_path / "ctl"), "HEAD"],
        cwd=repo,
        check=True,
        capture_output=True,
    )
    subprocess.run(["git", "status"], cwd=repo, check=True, capture_output=True)
    assert "hook" in marker.read_text() and "fsmonitor" in marker.read_text()
    marker.unlink()
    wss = Workspaces(repo, mode="worktree")
    ws = wss.create("RQ-0006")
    run_git(["status"], repo)
    wss.remove(ws, delete_branch=True)
    clone = Workspaces(repo, mode="clone").create("RQ-0007")
    assert clone.path.is_dir()
    assert not marker.exists()


def test_run_git_errors_carry_stderr(tmp_path):
    repo = make_repo(tmp_path)
    with pytest.raises(GitError, match="no-such-rev") as exc:
        run_git(["rev-parse", "--verify", "no-such-rev"], repo)
    assert exc.value.returncode != 0 and exc.value.git_args[0] == "rev-parse"
    assert run_git(["rev-parse", "--verify", "no-such-rev"], repo, check=False).returncode != 0


def test_git_env_does_not_follow_redirects_or_prompt(tmp_path, monkeypatch):
    repo = make_repo(tmp_path)
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    assert run_git(["rev-parse", "--show-toplevel"], repo).stdout.strip() == str(repo)
    env = run_git(["var", "GIT_EDITOR"], repo, check=False)
    assert env is not None
    from ralphnb.workspace.git import git_env

    e = git_env()
    assert e["GIT_TERMINAL_PROMPT"] == "0" and "GIT_DIR" not in e


def test_detached_head_targets_its_commit_and_explicit_target(tmp_path):
    repo = make_repo(tmp_path)
    first = git(repo, "rev-parse", "HEAD").strip()
    (repo / "src" / "f0.py").write_text("x = 'v2'\n")
    git(repo, "commit", "-qam", "v2")
    git(repo, "branch", "old", first)
    ws = Workspaces(repo, target_branch="old").create("RQ-0008")
    assert ws.base == first
    git(repo, "checkout", "-q", "--detach", first)
    wss = Workspaces(repo, root=tmp_path / "other-root")
    assert wss.target_branch is None
    assert wss.create("RQ-0009").base == first
    assert os.path.commonpath([wss.root, tmp_path]) == str(tmp_path)


@pytest.mark.parametrize("where", ["bare", ".git", ".git/hooks"])
def test_a_bare_repository_or_a_git_directory_is_refused_in_one_line(tmp_path, where):
    if where == "bare":
        target = tmp_path / "bare.git"
        git(tmp_path, "init", "-q", "--bare", str(target))
    else:
        target = make_repo(tmp_path) / where
    with pytest.raises(WorkspaceError) as exc:
        Workspaces(target, root=tmp_path / "ws")
    msg = str(exc.value)
    assert str(target) in msg and "checkout" in msg and "\n" not in msg
    assert not (tmp_path / "ws").exists()


def test_created_branches_are_recorded_and_only_those_are_ever_deleted(tmp_path):
    repo = make_repo(tmp_path)
    git(repo, "branch", "ralph/RQ-0003")  # made by the user (or by ralph), not by ralphnb
    wss = Workspaces(repo)
    wss.create("RQ-0001")
    wss.create("RQ-0002")
    wss.create("RQ-0003", reuse=True)  # continues on the user's branch
    assert wss.created_branches() == {"RQ-0001": "ralph/RQ-0001", "RQ-0002": "ralph/RQ-0002"}
    wss.remove("RQ-0002")  # the workspace goes, the branch stays: still recorded, on disk
    assert Workspaces(repo).created_branches() == {
        "RQ-0001": "ralph/RQ-0001",
        "RQ-0002": "ralph/RQ-0002",
    }
    wss.remove("RQ-0002", delete_branch=True)
    wss.remove("RQ-0003", delete_branch=True)
    branches = git(repo, "branch", "--format=%(refname:short)").split()
    assert "ralph/RQ-0002" not in branches
    assert "ralph/RQ-0003" in branches  # never ralphnb's to delete
    assert wss.created_branches() == {"RQ-0001": "ralph/RQ-0001"}
    with pytest.raises(WorkspaceError, match="git branch -D ralph/RQ-0003"):
        wss.create("RQ-0003")  # a leftover branch ralphnb did not make: says how to delete it


@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MiB tmpfs (root only; skipped with the reason elsewhere)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("mode", ["worktree", "clone"])
def test_a_full_disk_is_reported_as_such_and_leaves_no_branch(tmp_path, small_disk, mode):
    repo = make_repo(tmp_path)
    (repo / "big.bin").write_bytes(os.urandom(3 << 20))  # more than the disk holds
    git(repo, "add", "big.bin")
    git(repo, "commit", "-q", "-m", "big")
    wss = Workspaces(repo, mode=mode, root=small_disk / "ws")
    for _ in range(2):  # the retry says the same, never "a branch ... already exists"
        with pytest.raises(WorkspaceError) as exc:
            wss.create("RQ-0002")
        msg = str(exc.value)
        assert "no space left on device" in msg and str(small_disk / "ws") in msg, msg
        assert "already exists" not in msg
        assert "ralph/RQ-0002" not in git(repo, "branch", "--format=%(refname:short)")
        assert not (small_disk / "ws" / "RQ-0002").exists()
    assert wss.created_branches() == {}
    roomy = Workspaces(repo, mode=mode, root=tmp_path / "roomy")
    assert roomy.create("RQ-0002").path.is_dir()  # with room, the same task id works
