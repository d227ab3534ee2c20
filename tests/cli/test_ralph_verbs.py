"""ralph's command names, flags and output formats in `ralphnb`: each test cites the ralph file
(repository fitchmultz/ralph) its format or rule comes from."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ralphnb.cli.main import main
from ralphnb.queue.store import Queue, init
from tests.cli.ralphnb_process import run_cli


@pytest.fixture
def repo(tmp_path: Path, monkeypatch) -> Path:
    for k in list(os.environ):
        if k.startswith("RALPHNB_"):
            monkeypatch.delenv(k)
    root = tmp_path / "r"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    q = init(root)
    q.add("one", tags=["Rust"], scope=["crates/ralph"])
    q.add("two", depends_on=["RQ-0001"], tags=["cli"])
    q.add("three", status="draft")
    return root


def _out(capsys, *argv: str) -> str:
    assert main([*argv]) == 0
    return capsys.readouterr().out


def test_list_filters_and_formats_as_ralph(repo: Path, capsys):
    """cli/queue/list.rs + outpututil.rs `format_task_compact`/`format_task_detailed`: tab-
    separated rows; --status/--tag/--scope repeatable, tags exact and case-insensitive, scope a
    substring; --limit; --format json is the array of tasks; --include-done appends done."""
    r = f"--repo={repo}"
    assert _out(capsys, "queue", "list", r).splitlines() == [
        "RQ-0001\ttodo\tmedium\tone",
        "RQ-0002\ttodo\tmedium\ttwo",
        "RQ-0003\tdraft\tmedium\tthree",
    ]
    assert _out(capsys, "queue", "list", r, "--tag", "rust", "--tag", "CLI").count("\n") == 2
    assert _out(capsys, "queue", "list", r, "--scope", "RALPH").startswith("RQ-0001\t")
    out = _out(capsys, "queue", "list", r, "--status", "draft", "--status", "todo", "--limit", "1")
    assert out == "RQ-0001\ttodo\tmedium\tone\n"
    long_row = _out(capsys, "queue", "list", r, "--format", "long", "--limit", "1").rstrip("\n")
    assert long_row.split("\t")[4:6] == ["Rust", "crates/ralph"]
    assert len(long_row.split("\t")) == 9
    Queue(repo).complete("RQ-0001")
    assert [t["id"] for t in json.loads(_out(capsys, "queue", "list", r, "--format", "json"))] == [
        "RQ-0002",
        "RQ-0003",
    ]
    ids = [
        ln.split("\t")[0] for ln in _out(capsys, "queue", "list", r, "--include-done").splitlines()
    ]
    assert ids == ["RQ-0002", "RQ-0003", "RQ-0001"]
    assert _out(capsys, "queue", "list", r, "--all", "--json").count('"id"') == 3  # old alias


def test_show_next_and_nothing_runnable_as_ralph(repo: Path):
    """cli/queue/show.rs: JSON by default (serde pretty, no final newline), --format compact;
    cli/queue/next.rs: the id, --with-title adds a tab and the title; with nothing runnable it
    prints the next free id and exits 0."""
    r = run_cli(["queue", "show", "RQ-0002"], repo)
    assert r.returncode == 0 and not r.stdout.endswith("\n")
    assert json.loads(r.stdout) == Queue(repo).get("RQ-0002").to_dict()
    assert r.stdout.startswith('{\n  "id": "RQ-0002",\n  "status": "todo",')
    r = run_cli(["queue", "show", "RQ-0002", "--format", "compact"], repo)
    assert r.stdout == "RQ-0002\ttodo\tmedium\ttwo\n"
    assert run_cli(["queue", "next"], repo).stdout == "RQ-0001\n"
    assert run_cli(["queue", "next", "--with-title"], repo).stdout == "RQ-0001\tone\n"
    q = Queue(repo)
    q.complete("RQ-0001")
    q.reject("RQ-0002")
    r = run_cli(["queue", "next"], repo)
    # RQ-0003 is a draft, not runnable: ralph prints the id a new task would get
    assert (r.returncode, r.stdout) == (0, "RQ-0004\n")
    q.set_status("RQ-0003", "doing")
    assert run_cli(["queue", "next"], repo).stdout == "RQ-0003\n"
    r = run_cli(["queue", "show", "RQ-0042"], repo)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "RQ-0042" in r.stderr


def test_task_lifecycle_verbs_as_ralph(repo: Path, capsys):
    """cli/task/args/lifecycle.rs and task/status.rs, schedule.rs, args/edit.rs with
    queue/operations/edit/parsing.rs: repeatable --note; status of several ids; edit splits
    lists on commas; ready only promotes a draft; schedule takes a UTC time or --clear."""
    r = f"--repo={repo}"
    assert "RQ-0001 started" in _out(capsys, "task", "start", "RQ-0001", r)
    out = _out(capsys, "task", "edit", "tags", "a, b,,c", "RQ-0001", "RQ-0002", r)
    assert out.splitlines() == ["Task RQ-0001 updated: tags.", "Task RQ-0002 updated: tags."]
    q = Queue(repo)
    assert q.get("RQ-0002").tags == ["a", "b", "c"]
    _out(capsys, "task", "edit", "custom_fields", "owner=ann, size=3", "RQ-0002", r)
    assert Queue(repo).get("RQ-0002").custom_fields == {"owner": "ann", "size": "3"}
    _out(capsys, "task", "edit", "description", "", "RQ-0002", r)
    assert Queue(repo).get("RQ-0002").description is None
    assert _out(capsys, "task", "schedule", "RQ-0002", "2030-01-01T09:00:00Z", r) == (
        "Task RQ-0002 scheduled for 2030-01-01T09:00:00Z.\n"
    )
    assert "scheduling cleared" in _out(capsys, "task", "schedule", "RQ-0002", "--clear", r)
    assert Queue(repo).get("RQ-0002").scheduled_start is None
    assert main(["task", "ready", "RQ-0002", r]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RQ-0002 is todo, not draft" in err
    assert "draft -> todo" in _out(capsys, "task", "ready", "RQ-0003", "--note", "go", r)
    _out(capsys, "task", "done", "RQ-0001", "--note", "a", "--note", "b", r)
    assert Queue(repo).get("RQ-0001").notes == ["a", "b"]
    out = _out(capsys, "task", "status", "rejected", "RQ-0002", "RQ-0003", "--note", "no", r)
    assert out.splitlines() == [
        "Successfully marked 2 tasks as rejected and archived:",
        "  ✓ RQ-0002",
        "  ✓ RQ-0003",
    ]
    assert [t.id for t in Queue(repo).done] == ["RQ-0001", "RQ-0002", "RQ-0003"]
    assert main(["task", "edit", "estimated_minutes", "soon", "RQ-0001", r]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RQ-0001: estimated_minutes" in err


def test_graph_archive_repair_validate_commands(repo: Path, capsys):
    """cli/queue/graph.rs (tree, --task, --format json/dot), archive.rs and repair.rs messages;
    `queue validate` prints ralph's warnings (queue/validation) and still succeeds."""
    r = f"--repo={repo}"
    tree = _out(capsys, "queue", "graph", r)
    assert tree.startswith("Task Dependency Graph\n") and "* RQ-0002: two [⏳]" in tree
    assert "   └─ * RQ-0001: one [⏳]" in tree
    assert _out(capsys, "queue", "graph", "--task", "RQ-0002", r).startswith(
        "Dependency tree for RQ-0002: two\n"
    )
    assert (
        json.loads(_out(capsys, "queue", "graph", "-f", "json", r))["summary"]["total_tasks"] == 3
    )
    assert _out(capsys, "queue", "graph", "--format", "dot", r).startswith("digraph dependencies {")
    q = Queue(repo)
    q.complete("RQ-0001", archive=False)
    q.update("RQ-0003", status="rejected")
    assert _out(capsys, "queue", "archive", r) == "Archived 2 terminal task(s) (done/rejected).\n"
    assert _out(capsys, "queue", "archive", r) == "No terminal tasks (done/rejected) to archive.\n"
    # ralph's full repair fills empty tags/scope/evidence/plan/request with its placeholders
    assert _out(capsys, "queue", "repair", "--dry-run", r).splitlines() == [
        "Repair report:",
        "  Fixed missing fields in 3 task(s)",
        "Dry run: no changes written to disk.",
    ]
    assert _out(capsys, "queue", "repair", r).endswith("Repaired queue written to disk.\n")
    assert Queue(repo).get("RQ-0002").evidence == ["None provided"]
    assert _out(capsys, "queue", "repair", r) == "No issues found. Queue is healthy.\n"
    Queue(repo).add("dup of a rejected one", depends_on=["RQ-0003"])
    assert main(["queue", "validate", r]) == 0
    cap = capsys.readouterr()
    assert "depends on rejected task RQ-0003" in cap.err and "(2 warnings)" in cap.out


def test_doctor_and_config_show(repo: Path, tmp_path: Path):
    """commands/doctor/output.rs: one OK/WARN/FAIL line per check, ralph's closing line, exit
    non-zero on a failure; `config show` names each value's source."""
    (repo / ".ralph" / "config.jsonc").write_text('{"agent": {"runner": "demo", "model": "m"}}')
    (repo / ".ralph" / "trust.jsonc").write_text('{"allow_project_commands": true}')
    r = run_cli(["doctor"], repo)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("OK git: git version")
    assert any(ln.startswith("OK runner demo: ") for ln in lines)
    assert "OK queue lock: free" in lines and lines[-1] == "Doctor check passed. System is ready."
    show = run_cli(["config", "show"], repo).stdout.splitlines()
    assert (
        'agent.runner = "demo"  (project)' in show and 'queue.id_prefix = "RQ"  (default)' in show
    )
    data = json.loads(run_cli(["config", "show", "--json"], repo).stdout)
    assert data["config"]["agent"]["model"] == "m" and data["sources"]["agent.model"] == "project"
    stale = repo.parent / ".workspaces" / repo.name / "RQ-0001"
    stale.mkdir(parents=True)
    Queue(repo).complete("RQ-0001")
    (repo / ".ralph" / "config.jsonc").write_text(
        '{"agent": {"runner": "codex", "codex_bin": "/nope/codex"}}'
    )
    (repo / ".ralph" / "queue.jsonc").write_text('{"version": 1, "tasks": [{"id": "RQ-1"}]}')
    r = run_cli(["doctor"], repo)
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert any(ln.startswith("FAIL queue: ") and "queue.jsonc" in ln for ln in lines)
    assert any(ln.startswith("FAIL runner: ") and "/nope/codex" in ln for ln in lines)
    assert lines[-1] == "FAIL Doctor found 2 issue(s)."
