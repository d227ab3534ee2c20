"""Which repository a command acts on: --repo, env, the nearest .ralph/ upwards, git, the cwd."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ralphnb.cli.common import find_repo


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository whose `project/` holds a ralph queue; cwd deep inside `project/`."""
    monkeypatch.delenv("RALPHNB_REPO", raising=False)
    subprocess.run(["git", "init", "-q", str(tmp_path / "top")], check=True)
    project = tmp_path / "top" / "project"
    (project / ".ralph").mkdir(parents=True)
    (project / ".ralph" / "queue.jsonc").write_text('{"version": 1, "tasks": []}')
    (project / "src" / "deep").mkdir(parents=True)
    monkeypatch.chdir(project / "src" / "deep")
    return tmp_path


def test_the_nearest_directory_upwards_with_a_queue(tree: Path) -> None:
    assert find_repo() == tree / "top" / "project"


def test_a_config_file_alone_marks_the_repository(tree: Path) -> None:
    (tree / "top" / "project" / ".ralph" / "queue.jsonc").unlink()
    (tree / "top" / "project" / ".ralph" / "config.jsonc").write_text("{}")
    assert find_repo() == tree / "top" / "project"


def test_explicit_repo_wins_then_the_environment(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RALPHNB_REPO", str(tree / "from-env"))
    assert find_repo() == tree / "from-env"
    assert find_repo(str(tree / "given")) == tree / "given"


def test_init_and_no_queue_fall_back_to_the_git_toplevel_else_the_cwd(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert find_repo(for_init=True) == tree / "top"  # init never looks for an existing queue
    outside = tree / "plain"
    outside.mkdir()
    monkeypatch.chdir(outside)
    assert find_repo() == outside
