"""Shared pytest fixtures: ralph reference files and a fresh queue repository."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


FIXTURES = REPO_ROOT / "tests" / "fixtures" / "ralph"


def ralph_fixtures_dir() -> Path:
    """ralph's reference files: the copy in tests/fixtures/ralph, or $RALPHNB_FIXTURES.

    The copy is ralph's published JSON Schemas and a real done file written by ralph; setting
    RALPHNB_FIXTURES checks compatibility against another set (e.g. a newer ralph release).
    """
    override = os.environ.get("RALPHNB_FIXTURES")
    return Path(override) if override else FIXTURES


@pytest.fixture
def ralph_fixtures() -> Path:
    """Directory with ralph's `queue.schema.json` and real `done.jsonc`."""
    found = ralph_fixtures_dir()
    assert (found / "done.jsonc").is_file(), f"ralph fixtures missing in {found}"
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


def require_module(name: str):
    """Import an optional dependency: skip without it locally, fail under CI (CI runs all)."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is needed by these tests and CI installs it: {exc}", pytrace=False)
        pytest.skip(
            f"{name} is not installed ({exc}); `make test` installs it", allow_module_level=True
        )


@pytest.fixture(autouse=True)
def no_global_ralph_config(monkeypatch, tmp_path_factory):
    """ralph's global config (`$XDG_CONFIG_HOME/ralph/config.jsonc`) is read by the queue and the
    loop: a developer's own must not change what a test sees, so each test gets an empty one."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))


@pytest.fixture(autouse=True)
def git_identity(monkeypatch):
    """Every test commits as a fixed identity: never rely on the machine's global git config."""
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "test@example.invalid")


@pytest.fixture
def fast_demo(monkeypatch):
    """The demo agent at 1/20 of its realistic timing."""
    monkeypatch.setenv("RALPHNB_DEMO_SPEED", "0.05")


def git(cwd, *args: str) -> str:
    """Run git in `cwd` and return its stdout (raises on failure)."""
    import subprocess

    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def make_repo(tmp_path: Path, tasks: list[dict], *, track_queue: bool = False) -> Path:
    """A git repo on `main` with a file `f.txt` and the given tasks (title + fields); the
    queue files are git-ignored unless `track_queue`."""
    from ralphnb.queue.store import init

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "f.txt").write_text("line one\nline two\n")
    q = init(repo)
    for t in tasks:
        t = dict(t)
        q.add(t.pop("title"), **t)
    git(repo, "init", "-q", "-b", "main")
    if not track_queue:
        with open(repo / ".gitignore", "a") as fh:
            fh.write(".ralph/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "init")
    return repo


def demo(title: str, **cf: str) -> dict:
    """Task fields asking the demo agent to write `<title>.txt` (plus any `demo.*` options)."""
    fields = {"demo.file": f"{title.replace(' ', '_')}.txt", "demo.content": title}
    fields.update({f"demo.{k}": v for k, v in cf.items()})
    return {"title": title, "custom_fields": fields}


def new_cluster():
    """A 2-worker LocalCluster of processes, one thread each, as the Dask tests use."""
    distributed = require_module("distributed")
    return distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )


@pytest.fixture(scope="module")
def client():
    """A Dask client on a fresh LocalCluster shared by one test module."""
    distributed = require_module("distributed")
    with new_cluster() as cluster, distributed.Client(cluster) as c:
        yield c
