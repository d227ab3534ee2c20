"""Detecting that an agent changed the repository's git configuration (real git, real files)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ralphnb.workspace.repoconfig import config_fingerprint, describe_config_change
from ralphnb.workspace.workspaces import Workspaces


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


def make_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.txt").write_text("a\n")
    sh(repo, "git", "init", "-q", "-b", "main")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "init")
    return repo


def test_an_unchanged_config_has_the_same_fingerprint_and_no_change(tmp_path):
    repo = make_repo(tmp_path)
    before = config_fingerprint(repo)
    Workspaces(repo, root=tmp_path / "ws").create("RQ-0001")  # ralphnb's own bookkeeping
    assert config_fingerprint(repo) == before
    assert describe_config_change(repo, before) is None


def test_added_and_changed_keys_are_named_without_their_values(tmp_path):
    repo = make_repo(tmp_path)
    sh(repo, "git", "config", "user.name", "Someone")
    before = config_fingerprint(repo)
    sh(repo, "git", "config", "filter.x.clean", "/tmp/evil-program")
    sh(repo, "git", "config", "user.name", "Someone Else")
    sh(repo, "git", "config", "credential.helper", "store --file=/tmp/secret-token-123")
    msg = describe_config_change(repo, before)
    assert msg is not None
    assert "filter.x.clean" in msg and "credential.helper" in msg and "user.name" in msg
    assert "added" in msg and "changed" in msg
    assert "evil-program" not in msg and "secret-token" not in msg and "Someone" not in msg
    assert "\n" not in msg


def test_a_change_inside_an_included_file_is_seen(tmp_path):
    repo = make_repo(tmp_path)
    inc = tmp_path / "included.gitconfig"
    inc.write_text("[core]\n\tautocrlf = false\n")
    sh(repo, "git", "config", "include.path", str(inc))
    before = config_fingerprint(repo)
    inc.write_text("[core]\n\tautocrlf = false\n[gpg]\n\tprogram = /tmp/evil\n")
    msg = describe_config_change(repo, before)
    assert msg is not None and "gpg.program" in msg and "evil" not in msg


def test_a_linked_worktrees_own_config_and_planted_hooks_are_seen(tmp_path):
    repo = make_repo(tmp_path)
    ws = Workspaces(repo, root=tmp_path / "ws").create("RQ-0001")
    before = config_fingerprint(repo)
    # an agent turns on per-worktree config and writes its own worktree's config file
    sh(ws.path, "git", "config", "extensions.worktreeConfig", "true")
    sh(ws.path, "git", "config", "--worktree", "core.fsmonitor", "/tmp/evil")
    msg = describe_config_change(repo, before)
    assert msg is not None and "extensions.worktreeconfig" in msg.lower()
    assert "config.worktree" in msg
    before = config_fingerprint(repo)
    hook = repo / ".git" / "hooks" / "post-checkout"
    hook.write_text("#!/bin/sh\n")
    (repo / ".git" / "info").mkdir(exist_ok=True)
    (repo / ".git" / "info" / "attributes").write_text("* filter=x\n")
    msg = describe_config_change(repo, before)
    assert msg is not None and "post-checkout" in msg and "info/attributes" in msg


def test_an_unreadable_fingerprint_counts_as_a_change(tmp_path):
    repo = make_repo(tmp_path)
    assert describe_config_change(repo, "garbage") is not None
