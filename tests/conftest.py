"""Shared pytest fixtures: ralph reference files and a fresh queue repository."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def ralph_fixtures_dir() -> Path | None:
    """ralph's reference files: `../shared/fixtures/ralph` beside the repo, or $RALPHNB_FIXTURES."""
    for candidate in (
        REPO_ROOT.parent / "shared" / "fixtures" / "ralph",
        Path(os.environ["RALPHNB_FIXTURES"]) if os.environ.get("RALPHNB_FIXTURES") else None,
    ):
        if candidate is not None and (candidate / "done.jsonc").is_file():
            return candidate
    return None


@pytest.fixture
def ralph_fixtures() -> Path:
    """Directory with ralph's `queue.schema.json` and real `done.jsonc` (skipped only off CI)."""
    found = ralph_fixtures_dir()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("ralph fixtures not found: set RALPHNB_FIXTURES to their directory")
        pytest.skip("ralph fixtures not found (set RALPHNB_FIXTURES)")
    return found


@pytest.fixture
def queue_repo(tmp_path: Path):
    """A fresh directory with `.ralph/` initialised; returns the `Queue`."""
    import ralphnb

    repo = tmp_path / "repo"
    repo.mkdir()
    return ralphnb.init(repo)


@pytest.fixture
def ralph_done_repo(tmp_path: Path, ralph_fixtures: Path):
    """A queue whose done.jsonc is a copy of ralph's real 73-task archive."""
    import ralphnb

    repo = tmp_path / "ralphrepo"
    repo.mkdir()
    q = ralphnb.init(repo)
    shutil.copy(ralph_fixtures / "done.jsonc", q.done_path)
    return q
