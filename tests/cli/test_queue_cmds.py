"""The `ralphnb` command's queue and task subcommands, run as real processes where it matters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ralphnb.cli.main import main
from ralphnb.queue.store import Queue


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None):
    full = {k: v for k, v in os.environ.items() if not k.startswith("RALPHNB_")}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "ralphnb", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def clean_env(monkeypatch):
    for k in list(os.environ):
        if k.startswith("RALPHNB_"):
            monkeypatch.delenv(k)


def test_init_add_list_next_done_from_a_subdirectory(tmp_path: Path):
    repo = tmp_path / "repo"
    (repo / "src" / "deep").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    r = _run(["init"], repo / "src")  # from a subdirectory: the git toplevel
    assert r.returncode == 0, r.stderr
    assert (repo / ".ralph" / "queue.jsonc").is_file()
    sub = repo / "src" / "deep"
    assert _run(["task", "add", "first", "--tag", "a", "--priority", "high"], sub).returncode == 0
    r = _run(["task", "add", "second", "--depends-on", "RQ-0001", "--json"], sub)
    assert json.loads(r.stdout)["depends_on"] == ["RQ-0001"]
    r = _run(["queue", "list"], sub)
    assert r.stdout.splitlines()[0].split()[:4] == ["RQ-0001", "todo", "high", "first"]
    assert json.loads(_run(["queue", "next", "--json"], sub).stdout)["id"] == "RQ-0001"
    r = _run(["task", "done", "RQ-0001", "--note", "did it"], sub)
    assert r.returncode == 0 and "RQ-0001" in r.stdout
    q = Queue(repo)
    assert [t.id for t in q.done] == ["RQ-0001"] and q.done[0].notes == ["did it"]
    assert _run(["queue", "next"], sub).stdout.split()[0] == "RQ-0002"
    r = _run(["queue", "list", "--all", "--json"], sub)
    assert [t["id"] for t in json.loads(r.stdout)] == ["RQ-0002", "RQ-0001"]


def test_worker_task_done_uses_ralphnb_repo_and_leaves_task_for_the_loop(tmp_path: Path):
    repo = tmp_path / "repo"
    repo.mkdir()
    assert _run(["init"], repo).returncode == 0
    assert _run(["task", "add", "work"], repo).returncode == 0
    workspace = tmp_path / "ws"  # a worker's workspace with its own copy of .ralph/
    (workspace / ".ralph").mkdir(parents=True)
    (workspace / ".ralph" / "queue.jsonc").write_text('{"version": 1, "tasks": []}')
    env = {"RALPHNB_REPO": str(repo), "RALPHNB_WORKER": "w1"}
    r = _run(["task", "done", "RQ-0001", "--json"], workspace, env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "done"
    q = Queue(repo)
    assert [t.status for t in q.tasks] == ["done"] and q.done == []  # archive=False
    r = _run(["task", "done", "RQ-0001"], workspace, {"RALPHNB_REPO": str(repo)})
    assert r.returncode == 0 and Queue(repo).tasks == []  # outside a worker: archived


def test_errors_are_one_line_with_nonzero_exit(tmp_path: Path):
    repo = tmp_path / "repo"
    repo.mkdir()
    r = _run(["queue", "list"], repo)
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert r.stderr.startswith("ralphnb: error:") and "init" in r.stderr
    _run(["init"], repo)
    r = _run(["task", "done", "RQ-0042"], repo)
    assert r.returncode == 1 and "RQ-0042" in r.stderr and r.stderr.count("\n") == 1
    (repo / ".ralph" / "queue.jsonc").write_text('{"version": 1,\n "tasks": [,]}')
    r = _run(["queue", "validate"], repo)
    assert r.returncode == 1 and ":2:" in r.stderr and r.stderr.count("\n") == 1


def test_show_validate_reject_in_process(tmp_path: Path, capsys, clean_env):
    repo = tmp_path / "r"
    repo.mkdir()
    assert main(["--repo", str(repo), "init"]) == 0
    assert main(["task", "add", "x", "--repo", str(repo), "--description", "why"]) == 0
    capsys.readouterr()
    assert main(["queue", "show", "RQ-0001", "--repo", str(repo)]) == 0
    out = capsys.readouterr().out
    assert "id: RQ-0001" in out and "description: why" in out
    assert main(["queue", "validate", "--json", "--repo", str(repo)]) == 0
    assert json.loads(capsys.readouterr().out) == {"valid": True, "tasks": 1}
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
    _run(["init"], repo)
    qfile = repo / ".ralph" / "queue.jsonc"
    qfile.write_text('{"version": 1, "tasks": [' + "[" * 100_000 + "]" * 100_000 + "]}")
    r = _run(["queue", "list"], repo)
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
        r = _run(args, repo)
        assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
        assert str(qfile) in r.stderr and words in r.stderr and "no queue here" not in r.stderr
