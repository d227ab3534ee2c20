"""Which agent a Loop runs: the argument, else ralph's `agent.runner`, else the demo agent in
the sample repository only, else one line saying how to choose -- before anything is written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ralphnb.demo.sample import create_sample_repo
from ralphnb.errors import QueueError, RalphError, RunnerError
from ralphnb.loop.choice import configured_runner
from ralphnb.loop.core import Loop
from ralphnb.queue.config import global_config_path
from tests.conftest import git, make_repo


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A user with no global ralph config (the machine's own must not decide these tests)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    return home


def tree(path: Path) -> dict[str, bytes]:
    """Every file under `path` with its bytes (the `.git` directory's refs included)."""
    out = {}
    for p in sorted(path.rglob("*")):
        if p.is_file() and "objects" not in p.parts:
            out[str(p.relative_to(path))] = p.read_bytes()
    return out


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_no_runner_in_an_ordinary_repo_raises_one_line_and_writes_nothing(tmp_path, home):
    repo = make_repo(tmp_path, [{"title": "Migrate the billing database to Postgres 17"}])
    before = tree(repo)
    with pytest.raises(RunnerError) as err:
        Loop(repo)
    msg = str(err.value)
    assert "\n" not in msg
    for how in ('runner="claude"', "--runner claude", "agent.runner", ".ralph/config.jsonc"):
        assert how in msg, msg
    # no run directory, no loop lock, no queue change, no branch, no workspace
    assert tree(repo) == before
    assert not (repo / ".ralph" / "cache").exists()
    assert not (tmp_path / ".workspaces").exists()
    assert git(repo, "branch", "--list", "ralph/*") == ""


def test_the_demo_agent_runs_by_name_or_in_the_sample_repo_only(tmp_path, home):
    sample = create_sample_repo(tmp_path / "sample", n_tasks=1)
    loop = Loop(sample)
    assert (loop.runner.name, loop.runner_source) == ("demo", "sample repository")
    repo = make_repo(tmp_path, [{"title": "a"}])
    loop = Loop(repo, runner="demo")
    assert (loop.runner.name, loop.runner_source) == ("demo", "argument")
    # a repository that merely looks like the sample (its README) is not the sample
    (repo / "README.md").write_text((sample / "README.md").read_text())
    with pytest.raises(RunnerError):
        Loop(repo)


def test_runner_from_the_project_config_wins_over_the_global_one(tmp_path, home):
    repo = make_repo(tmp_path, [{"title": "a"}])
    glob = write(home / ".config" / "ralph" / "config.jsonc", '{"agent": {"runner": "gemini"}}')
    assert Loop(repo).runner.name == "gemini"
    assert Loop(repo).runner_source == str(glob)
    project = write(
        repo / ".ralph" / "config.jsonc",
        '// ralph config\n{"version": 2, "agent": {"runner": "codex", "model": "m",},}\n',
    )
    loop = Loop(repo)
    assert (loop.runner.name, loop.runner_source) == ("codex", str(project))
    assert Loop(repo, runner="claude").runner.name == "claude"  # the argument wins


def test_global_config_follows_xdg_config_home(tmp_path, home, monkeypatch):
    repo = make_repo(tmp_path, [{"title": "a"}])
    xdg = tmp_path / "xdg"
    write(xdg / "ralph" / "config.jsonc", '{"agent": {"runner": "opencode"}}')
    write(home / ".config" / "ralph" / "config.jsonc", '{"agent": {"runner": "gemini"}}')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    assert global_config_path() == xdg / "ralph" / "config.jsonc"
    assert configured_runner(repo) == ("opencode", str(xdg / "ralph" / "config.jsonc"))
    monkeypatch.setenv("XDG_CONFIG_HOME", "")  # empty counts as unset
    assert global_config_path() == home / ".config" / "ralph" / "config.jsonc"


def test_a_config_without_a_runner_falls_through(tmp_path, home):
    repo = make_repo(tmp_path, [{"title": "a"}])
    write(repo / ".ralph" / "config.jsonc", '{"version": 2, "agent": {"runner": null}}')
    assert configured_runner(repo) is None
    write(home / ".config" / "ralph" / "config.jsonc", '{"agent": {"model": "x"}}')
    assert configured_runner(repo) is None
    with pytest.raises(RunnerError):
        Loop(repo)


def test_bad_configs_name_the_file_and_the_key(tmp_path, home):
    repo = make_repo(tmp_path, [{"title": "a"}])
    cfg = write(repo / ".ralph" / "config.jsonc", '{"agent": {"runner": 7}}')
    with pytest.raises(RalphError, match=r"config\.jsonc.*agent\.runner"):
        Loop(repo)
    write(cfg, '{"agent": {"runner": "nosuch"}}')  # not one of ralph's runners
    with pytest.raises(RalphError, match=r"config\.jsonc.*agent\.runner"):
        Loop(repo)
    write(cfg, '{"agent": {"runner": "codex"')
    with pytest.raises(QueueError, match=r"config\.jsonc:1"):
        Loop(repo)
    assert not (repo / ".ralph" / "cache").exists()


def test_a_tasks_own_agent_runner_still_overrides(tmp_path, home, monkeypatch):
    monkeypatch.setenv("RALPHNB_DEMO_SPEED", "0.05")
    repo = make_repo(
        tmp_path,
        [{"title": "a", "agent": {"runner": "demo"}, "custom_fields": {"demo.file": "a.txt"}}],
    )
    write(repo / ".ralph" / "config.jsonc", '{"agent": {"runner": "codex"}}')
    df = Loop(repo).run()  # codex is not installed here: only the task's demo agent can run
    assert list(df.status) == ["integrated"], df.error.tolist()
    assert os.path.exists(repo / "a.txt")


def test_a_broken_queue_is_an_error_of_the_constructor_not_of_the_run(tmp_path, home):
    repo = make_repo(tmp_path, [{"title": "a"}])
    (repo / ".ralph" / "queue.jsonc").write_text('{"version": 1,\n "tasks": [,]}')
    with pytest.raises(QueueError, match=r"queue\.jsonc:2:"):
        Loop(repo, runner="demo")
    assert not (repo / ".ralph" / "cache").exists()
