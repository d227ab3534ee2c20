"""The `ralphnb` command's queue and task subcommands, run as real processes where it matters."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ralphnb.cli.main import main
from ralphnb.queue.store import Queue
from tests.cli.ralphnb_process import run_cli


@pytest.fixture
def clean_env(monkeypatch):
    for k in list(os.environ):
        if k.startswith("RALPHNB_"):
            monkeypatch.delenv(k)


def test_init_add_list_next_done_from_a_subdirectory(tmp_path: Path):
    repo = tmp_path / "repo"
    (repo / "src" / "deep").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    r = run_cli(["init"], repo / "src")  # from a subdirectory: the git toplevel
    assert r.returncode == 0, r.stderr
    assert (repo / ".ralph" / "queue.jsonc").is_file()
    sub = repo / "src" / "deep"
    r = run_cli(["task", "add", "first", "--tag", "a", "--priority", "high"], sub)
    assert r.returncode == 0, r.stderr
    r = run_cli(["task", "add", "second", "--depends-on", "RQ-0001", "--json"], sub)
    assert json.loads(r.stdout)["depends_on"] == ["RQ-0001"]
    r = run_cli(["queue", "list"], sub)
    assert r.stdout.splitlines()[0].split()[:4] == ["RQ-0001", "todo", "high", "first"]
    assert json.loads(run_cli(["queue", "next", "--json"], sub).stdout)["id"] == "RQ-0001"
    r = run_cli(["task", "done", "RQ-0001", "--note", "did it"], sub)
    assert r.returncode == 0 and "RQ-0001" in r.stdout
    q = Queue(repo)
    assert [t.id for t in q.done] == ["RQ-0001"] and q.done[0].notes == ["did it"]
    assert run_cli(["queue", "next"], sub).stdout.split()[0] == "RQ-0002"
    r = run_cli(["queue", "list", "--all", "--json"], sub)
    assert [t["id"] for t in json.loads(r.stdout)] == ["RQ-0002", "RQ-0001"]


def test_worker_task_done_uses_ralphnb_repo_and_leaves_task_for_the_loop(tmp_path: Path):
    repo = tmp_path / "repo"
    repo.mkdir()
    assert run_cli(["init"], repo).returncode == 0
    assert run_cli(["task", "add", "work"], repo).returncode == 0
    workspace = tmp_path / "ws"  # a worker's workspace with its own copy of .ralph/
    (workspace / ".ralph").mkdir(parents=True)
    (workspace / ".ralph" / "queue.jsonc").write_text('{"version": 1, "tasks": []}')
    env = {"RALPHNB_REPO": str(repo), "RALPHNB_WORKER": "w1"}
    r = run_cli(["task", "done", "RQ-0001", "--json"], workspace, env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "done"
    q = Queue(repo)
    assert [t.status for t in q.tasks] == ["done"] and q.done == []  # archive=False
    r = run_cli(["task", "done", "RQ-0001"], workspace, {"RALPHNB_REPO": str(repo)})
    assert r.returncode == 0 and Queue(repo).tasks == []  # outside a worker: archived


def test_show_validate_reject_in_process(tmp_path: Path, capsys, clean_env):
    repo = tmp_path / "r"
    repo.mkdir()
    assert main(["--repo", str(repo), "init"]) == 0
    assert main(["task", "add", "x", "--repo", str(repo), "--description", "why"]) == 0
    capsys.readouterr()
    assert main(["queue", "show", "RQ-0001", "--repo", str(repo)]) == 0
    shown = json.loads(capsys.readouterr().out)  # JSON by default, as ralph's `queue show`
    assert shown["id"] == "RQ-0001" and shown["description"] == "why"
    assert main(["queue", "validate", "--json", "--repo", str(repo)]) == 0
    assert json.loads(capsys.readouterr().out) == {"valid": True, "tasks": 1, "warnings": []}
    assert main(["task", "reject", "RQ-0001", "--note", "nope", "--repo", str(repo)]) == 0
    assert Queue(repo).done[0].status == "rejected"
    capsys.readouterr()
    assert main(["queue", "next", "--repo", str(repo), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) is None
    with pytest.raises(SystemExit) as e:
        main(["task", "add"])
    assert e.value.code == 2


def test_list_prints_one_line_per_task_even_for_multiline_or_dash_titles(
    tmp_path: Path, capsys, clean_env
):
    repo = tmp_path / "r"
    repo.mkdir()
    assert main(["--repo", str(repo), "init"]) == 0
    assert main(["task", "add", "--repo", str(repo), "--", "-rf --help"]) == 0
    assert main(["task", "add", "--repo", str(repo), "line one\nline two\ttabbed"]) == 0
    capsys.readouterr()
    assert main(["queue", "list", "--repo", str(repo)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("-rf --help")
    assert lines[1].endswith("line one line two tabbed")
    assert Queue(repo).get("RQ-0002").title == "line one\nline two\ttabbed"  # stored as given


def test_a_queue_nested_100000_deep_is_one_line_naming_the_file(tmp_path: Path):
    repo = tmp_path / "repo"
    repo.mkdir()
    run_cli(["init"], repo)
    qfile = repo / ".ralph" / "queue.jsonc"
    qfile.write_text('{"version": 1, "tasks": [' + "[" * 100_000 + "]" * 100_000 + "]}")
    r = run_cli(["queue", "list"], repo)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert str(qfile) in r.stderr and "nested" in r.stderr


@pytest.mark.parametrize("kind", ["directory", "fifo", "device"])
def test_a_queue_path_that_is_not_a_file_says_what_it_is(tmp_path: Path, kind: str):
    repo = tmp_path / "repo"
    (repo / ".ralph").mkdir(parents=True)
    qfile = repo / ".ralph" / "queue.jsonc"
    if kind == "directory":
        qfile.mkdir()
    elif kind == "fifo":
        os.mkfifo(qfile)
    else:
        qfile.symlink_to("/dev/zero")
    words = {"directory": "a directory", "fifo": "a FIFO", "device": "a character device"}[kind]
    for args in (["queue", "list"], ["init"]):
        r = run_cli(args, repo)
        assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
        assert str(qfile) in r.stderr and words in r.stderr and "no queue here" not in r.stderr
