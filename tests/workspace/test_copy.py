"""Copy workspaces (outside git) integrate back three-way: real files, real demo-agent processes."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from ralphnb.loop.core import Loop
from ralphnb.queue.store import Queue, init
from ralphnb.runners.command import Command
from ralphnb.workspace.copy import integrate_copy, plan_copy, user_state
from ralphnb.workspace.workspaces import Workspaces

F1 = {"sha256": "1" * 64, "size": 1, "x": False}
F2 = {"sha256": "2" * 64, "size": 2, "x": False}
F3 = {"sha256": "3" * 64, "size": 3, "x": False}


@pytest.fixture(autouse=True)
def fast_env(monkeypatch):
    monkeypatch.setenv("RALPHNB_DEMO_SPEED", "0.05")


# ------------------------------------------------------------------ the pure decision


def test_plan_applies_where_the_user_kept_the_base():
    base = {"edit": F1, "gone": F1, "keep": F1}
    ours = {"edit": F2, "keep": F1, "new": F3}
    theirs = {"edit": F1, "gone": F1}  # "new" still absent for the user
    plan = plan_copy(base, ours, theirs)
    assert plan.apply == {"edit": F2, "gone": None, "new": F3}
    assert plan.conflicts == [] and plan.same == []


def test_plan_conflicts_where_both_changed_differently():
    base = {"a": F1, "b": F1, "c": F1}
    ours = {"a": F2, "c": F2, "added": F2}  # b deleted by the agent
    theirs = {"a": F3, "b": F3, "c": None, "added": F3}
    plan = plan_copy(base, ours, theirs)
    assert plan.conflicts == ["a", "added", "b", "c"] and plan.apply == {}


def test_plan_identical_edits_on_both_sides_are_fine():
    base = {"a": F1, "d": F1}
    ours = {"a": F2, "new": F3}
    theirs = {"a": F2, "new": F3, "d": None}
    plan = plan_copy(base, ours, theirs)
    assert plan.same == ["a", "d", "new"] and plan.apply == {} and plan.conflicts == []


def test_plan_ignores_paths_the_agent_did_not_touch():
    plan = plan_copy({"a": F1}, {"a": F1}, {"a": F3})  # only the user changed it
    assert plan.apply == {} and plan.conflicts == [] and plan.same == []
    exec_bit = dict(F1, x=True)  # a mode change alone is a change
    assert plan_copy({"a": F1}, {"a": exec_bit}, {"a": F1}).apply == {"a": exec_bit}


# ------------------------------------------------------------------ real files, no loop


def plain_dir(tmp_path: Path) -> Path:
    d = tmp_path / "plain"
    (d / "pkg").mkdir(parents=True)
    (d / "a.txt").write_text("a\n")
    (d / "b.txt").write_text("b\n")
    (d / "pkg" / "mod.py").write_text("x = 1\n")
    (d / "old.txt").write_text("old\n")
    return d


def test_manifest_lives_beside_the_workspace_and_goes_with_it(tmp_path):
    d = plain_dir(tmp_path)
    wss = Workspaces(d)
    assert not wss.is_git
    ws = wss.create("RQ-0001")
    m = wss.manifest_path("RQ-0001")
    assert m.is_file() and not m.is_relative_to(ws.path)
    files = json.loads(m.read_text())["files"]
    assert set(files) == {"a.txt", "b.txt", "pkg/mod.py", "old.txt"}
    assert files["a.txt"]["size"] == 2 and len(files["a.txt"]["sha256"]) == 64
    wss.remove(ws)
    assert not m.exists() and wss.manifest("RQ-0001") is None


def test_copy_back_applies_edits_additions_deletions_and_skips_excluded(tmp_path):
    d = plain_dir(tmp_path)
    (d / "tool.sh").write_text("echo\n")
    wss = Workspaces(d)
    ws = wss.create("RQ-0001")
    (ws.path / "a.txt").write_text("a by agent\n")
    (ws.path / "new" / "deep").mkdir(parents=True)
    (ws.path / "new" / "deep" / "n.txt").write_text("new\n")
    (ws.path / "pkg" / "mod.py").unlink()  # pkg/ ends up empty: removed as git would
    (ws.path / "tool.sh").chmod(0o755)
    for junk in (".venv", "node_modules", "__pycache__", ".ralph", ".git"):
        (ws.path / junk).mkdir(exist_ok=True)
        (ws.path / junk / "junk").write_text("no\n")
    (d / "b.txt").write_text("b by user\n")  # the user's own edit elsewhere stays
    res = integrate_copy(d, ws.path, wss.manifest("RQ-0001"))
    assert res.status == "integrated", res
    assert res.paths == ["pkg/mod.py", "a.txt", "new/deep/n.txt", "tool.sh"]
    assert (d / "a.txt").read_text() == "a by agent\n"
    assert (d / "new" / "deep" / "n.txt").read_text() == "new\n"
    assert not (d / "pkg").exists()
    assert os.access(d / "tool.sh", os.X_OK)
    assert (d / "b.txt").read_text() == "b by user\n"
    for junk in (".venv", "node_modules", "__pycache__", ".ralph", ".git"):
        assert not (d / junk).exists(), junk
    assert not [p for p in d.rglob("*") if "ralphnb-tmp" in p.name]
    # a second run finds the user's files already as the agent left them
    assert integrate_copy(d, ws.path, wss.manifest("RQ-0001")).status == "noop"


def test_one_conflict_means_nothing_is_applied(tmp_path):
    d = plain_dir(tmp_path)
    wss = Workspaces(d)
    ws = wss.create("RQ-0001")
    (ws.path / "a.txt").write_text("a by agent\n")
    (ws.path / "b.txt").write_text("b by agent\n")
    (ws.path / "old.txt").unlink()
    (d / "b.txt").write_text("b by user\n")
    res = integrate_copy(d, ws.path, wss.manifest("RQ-0001"))
    assert res.status == "conflict" and res.paths == ["b.txt"]
    assert (d / "a.txt").read_text() == "a\n" and (d / "old.txt").exists()
    assert (d / "b.txt").read_text() == "b by user\n"
    assert (ws.path / "b.txt").read_text() == "b by agent\n"


def test_symlinked_parent_in_the_users_tree_is_never_written_through(tmp_path):
    d = plain_dir(tmp_path)
    wss = Workspaces(d)
    ws = wss.create("RQ-0001")
    (ws.path / "out").mkdir()
    (ws.path / "out" / "f.txt").write_text("agent\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (d / "out").symlink_to(elsewhere)
    assert user_state(d, "out/f.txt") == {"blocked": "out"}
    res = integrate_copy(d, ws.path, wss.manifest("RQ-0001"))
    assert res.status == "conflict" and res.paths == ["out/f.txt"]
    assert list(elsewhere.iterdir()) == []


def test_without_a_manifest_nothing_is_guessed(tmp_path):
    d = plain_dir(tmp_path)
    ws = Workspaces(d).create("RQ-0001")
    (ws.path / "a.txt").write_text("agent\n")
    res = integrate_copy(d, ws.path, None)
    assert res.status == "conflict" and "no manifest" in res.message
    assert (d / "a.txt").read_text() == "a\n"


def test_a_manifest_naming_paths_outside_the_tree_is_refused(tmp_path):
    d = plain_dir(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("a\n")  # same bytes as the manifest entry: would count as untouched
    wss = Workspaces(d)
    ws = wss.create("RQ-0001")
    manifest = wss.manifest("RQ-0001")
    # an edited manifest "had" ../victim.txt, which the workspace no longer has: a deletion
    manifest["files"]["../victim.txt"] = manifest["files"]["a.txt"]
    res = integrate_copy(d, ws.path, manifest)
    assert res.status == "conflict" and res.paths == ["../victim.txt"]
    assert victim.read_text() == "a\n"


# ------------------------------------------------------------------ the Loop, real agents


def plain_queue(tmp_path: Path, tasks: list[dict]) -> Path:
    """A directory outside git with `f.txt`, `old.txt` and a `.ralph/` queue of tasks."""
    d = tmp_path / "plain"
    d.mkdir()
    (d / "f.txt").write_text("line one\nline two\n")
    (d / "old.txt").write_text("stale\n")
    q = init(d)
    for t in tasks:
        t = dict(t)
        q.add(t.pop("title"), **t)
    return d


def line1(title: str, content: str) -> dict:
    return {
        "title": title,
        "custom_fields": {"demo.file": "f.txt", "demo.line": "1", "demo.content": content},
    }


def test_loop_copy_edit_lands_in_the_users_directory(tmp_path):
    d = plain_queue(
        tmp_path,
        [
            line1("Edit", "by agent"),
            {"title": "Add", "custom_fields": {"demo.file": "sub/new.txt", "demo.content": "new"}},
        ],
    )
    loop = Loop(d, runner="demo", parallel=2)
    assert not loop.workspaces.is_git and loop.workspaces.mode == "copy"
    df = loop.run()
    last = df.drop_duplicates("task_id", keep="last").set_index("task_id")
    assert set(last.status) == {"integrated"}, df[["worker_id", "status", "error"]]
    assert (d / "f.txt").read_text() == "by agent\nline two\n"
    assert (d / "sub" / "new.txt").read_text() == "new\n"
    assert Queue(d).tasks == [] and len(Queue(d).done) == 2
    root = loop.workspaces.root
    assert loop.workspaces.existing() == []
    assert not list((root / ".ralphnb-meta").glob("*.manifest.json"))
    assert "copied back" in last.loc["RQ-0001", "last_message"]


def test_loop_copy_user_edit_during_the_run_is_a_conflict(tmp_path):
    d = plain_queue(tmp_path, [line1("Edit", "by agent")])
    loop = Loop(d, runner="demo")

    def user_edits(ev) -> None:
        if ev.kind == "started":
            (d / "f.txt").write_text("by user\n")

    loop.subscribe(user_edits)
    df = loop.run()
    row = df.iloc[-1]
    assert row.status == "conflict" and "f.txt" in row.error, row.error
    assert (d / "f.txt").read_text() == "by user\n"
    ws = loop.workspaces.get("RQ-0001")
    assert ws is not None and (ws.path / "f.txt").read_text() == "by agent\nline two\n"
    assert loop.workspaces.manifest("RQ-0001") is not None
    t = Queue(d).get("RQ-0001")
    assert t.status == "todo" and "merge conflict in f.txt" in t.notes[-1]


def test_loop_copy_deletion_by_the_agent_is_applied(tmp_path):
    d = plain_queue(tmp_path, [{"title": "Remove the stale file"}])
    agent = Command(
        [
            sys.executable,
            "-c",
            "import os; os.remove('old.txt'); print('<promise>COMPLETE</promise>')",
        ]
    )
    df = Loop(d, runner=agent).run()
    assert df.status.iloc[-1] == "integrated", df[["status", "error"]]
    assert not (d / "old.txt").exists()
    assert (d / "f.txt").read_text() == "line one\nline two\n"
    assert [t.id for t in Queue(d).done] == ["RQ-0001"]


def test_loop_recovers_a_copy_task_done_but_not_copied_back(tmp_path):
    d = plain_queue(tmp_path, [{"title": "Finished before a crash"}])
    ws = Workspaces(d, copy_exclude=(".ralph",)).create("RQ-0001")
    (ws.path / "f.txt").write_text("recovered\n")
    Queue(d).complete("RQ-0001", archive=False)  # the agent said done; the loop then died
    df = Loop(d, runner="demo").run()
    assert df.status.iloc[-1] == "integrated", df[["status", "error"]]
    assert (d / "f.txt").read_text() == "recovered\n"
    assert [t.id for t in Queue(d).done] == ["RQ-0001"] and not ws.path.exists()


def test_copy_back_drops_ralph_and_names_what_was_dropped(tmp_path):
    d = plain_dir(tmp_path)
    (d / ".ralph").mkdir()
    (d / ".ralph" / "config.jsonc").write_text('{"version": 1}\n')
    wss = Workspaces(d, root=tmp_path / "ws")
    ws = wss.create("RQ-0001")
    (ws.path / ".ralph" / "config.jsonc").write_text('{"queue": {"id_prefix": "PWN"}}\n')
    (ws.path / ".ralph" / "new.jsonc").write_text("{}\n")
    (ws.path / "a.txt").write_text("agent\n")
    res = integrate_copy(d, ws.path, wss.manifest("RQ-0001"))
    assert res.status == "integrated", res.message
    assert res.dropped == [".ralph/config.jsonc", ".ralph/new.jsonc"]
    assert (d / ".ralph" / "config.jsonc").read_text() == '{"version": 1}\n'
    assert not (d / ".ralph" / "new.jsonc").exists() and (d / "a.txt").read_text() == "agent\n"


def test_copy_back_refuses_symlinks_pointing_outside_the_tree(tmp_path):
    d = plain_dir(tmp_path)
    wss = Workspaces(d, root=tmp_path / "ws")
    ws = wss.create("RQ-0001")
    os.symlink("/etc/passwd", ws.path / "abs")
    os.symlink("../../../escape", ws.path / "pkg" / "up")
    os.symlink("mod.py", ws.path / "pkg" / "fine")
    (ws.path / "a.txt").write_text("agent\n")
    res = integrate_copy(d, ws.path, wss.manifest("RQ-0001"))
    assert res.status == "conflict" and res.paths == ["abs", "pkg/up"], res
    assert "outside" in res.message
    assert (d / "a.txt").read_text() == "a\n" and not os.path.lexists(d / "abs")
