"""The queue operations behind ralph's commands: `queue graph`, `queue archive`, `queue repair`,
`task status`/`ready`. Each test names the ralph file its rule or format comes from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ralphnb.errors import QueueError
from ralphnb.queue.store import Queue, init

T0 = "2026-01-01T00:00:00Z"


def _task(tid: str, title: str, status: str = "todo", **kw) -> dict:
    t = {"id": tid, "status": status, "title": title, "created_at": T0, "updated_at": T0, **kw}
    if status in ("done", "rejected"):
        t.setdefault("completed_at", T0)
    return t


def _repo(tmp_path: Path, open_tasks: list[dict], done: list[dict] = ()) -> Queue:
    q = init(tmp_path)
    q.queue_path.write_text(json.dumps({"version": 1, "tasks": open_tasks}, indent=2))
    q.done_path.write_text(json.dumps({"version": 1, "tasks": list(done)}, indent=2))
    return q


CHAIN = [
    _task("RQ-0002", "two", depends_on=["RQ-0001"]),
    _task("RQ-0003", "three", depends_on=["RQ-0002"]),
    _task("RQ-0004", "four"),
]


def test_graph_draws_ralphs_tree(tmp_path: Path):
    """Format of crates/ralph/src/cli/queue/graph.rs (`render_full_tree`): summary, the chains
    from each root (a task nothing depends on) with `*` on the critical path, the legend; done
    tasks hidden unless asked for. Counts from queue/graph/algorithms.rs."""
    q = _repo(tmp_path, CHAIN, [_task("RQ-0001", "one", "done")])
    assert str(q.graph()) == (
        "Task Dependency Graph\n\nSummary:\n  Total tasks: 4\n  Ready to run: 2\n  Blocked: 1\n"
        "  Critical path length: 3\n\nDependency Chains:\n\n"
        "* RQ-0003: three [⏳]\n   └─ * RQ-0002: two [⏳]\n\n  RQ-0004: four [⏳]\n\n"
        "Legend:\n  * = on critical path\n  ⏳ = todo, 🔄 = doing, ✅ = done, ❌ = rejected"
    )
    full = q.graph(include_done=True)
    assert "      └─ * RQ-0001: one [✅]" in full.tree().splitlines()
    assert full._repr_html_().startswith("<pre>Task Dependency Graph")
    doc = full.to_dict()
    assert doc["summary"] == {"total_tasks": 4, "runnable_tasks": 2, "blocked_tasks": 1}
    assert doc["critical_paths"] == [
        {"path": ["RQ-0003", "RQ-0002", "RQ-0001"], "length": 3, "blocked": True}
    ]
    up = q.graph().task_tree("RQ-0003")
    assert up.splitlines()[:4] == [
        "Dependency tree for RQ-0003: three",
        "",
        "Tasks this task depends on (upstream):",
        "* RQ-0003: three [⏳]",
    ]
    assert up.endswith(
        "Critical path from this task: 3 tasks\n  Status: BLOCKED (incomplete dependencies)"
    )
    down = q.graph().task_tree("RQ-0002", reverse=True).splitlines()
    assert down[2:] == [
        "Tasks blocked by this task (downstream):",
        "* RQ-0002: two [⏳]",
        "└─ * RQ-0003: three [⏳]",
        "",
        "Critical path from this task: 2 tasks",
        "  Status: BLOCKED (incomplete dependencies)",
    ]
    assert "digraph dependencies {" in q.graph().dot()
    assert '  "RQ-0003" -> "RQ-0002" [color=red, penwidth=2];' in q.graph().dot()


def test_archive_moves_every_terminal_task_in_one_write(tmp_path: Path):
    """crates/ralph/src/queue/operations/archive.rs: every done/rejected task of the queue moves
    to the end of done, in order, stamped `updated_at` (completed_at kept); others stay."""
    q = _repo(
        tmp_path,
        [_task("RQ-0001", "a", "done"), _task("RQ-0002", "b"), _task("RQ-0003", "c", "rejected")],
        [_task("RQ-0009", "old", "done")],
    )
    assert q.archive_terminal() == ["RQ-0001", "RQ-0003"]
    assert [t.id for t in q.tasks] == ["RQ-0002"]
    assert [t.id for t in q.done] == ["RQ-0009", "RQ-0001", "RQ-0003"]
    moved = q.get("RQ-0001")
    assert moved.completed_at == T0 and moved.updated_at != T0
    assert q.get("RQ-0009").updated_at == T0
    before = q.queue_path.read_bytes()
    assert q.archive_terminal() == [] and q.queue_path.read_bytes() == before


def test_repair_does_what_ralphs_repair_does(tmp_path: Path):
    """crates/ralph/src/queue/repair/planning.rs (full scope) and relationships.rs: placeholders
    for empty fields, timestamps missing/unparsable -> now and offsets -> UTC, a duplicate id
    gets the next number and links naming it follow; dry run writes nothing."""
    bad = [
        _task("RQ-0001", "a"),
        _task("RQ-0001", " ", created_at="2026-01-18T12:00:00-05:00"),
        _task("RQ-0002", "c", depends_on=["RQ-0001"], updated_at="yesterday"),
    ]
    q = _repo(tmp_path, bad)
    with pytest.raises(QueueError):
        q.validate()
    raw = q.queue_path.read_bytes()
    report = q.repair(dry_run=True)
    assert q.queue_path.read_bytes() == raw
    assert report.remapped_ids == [("RQ-0001", "RQ-0003")]
    assert report.lines(dry_run=True)[-1] == "Dry run: no changes written to disk."
    q.repair()
    tasks = {t.id: t for t in q.tasks}
    assert list(tasks) == ["RQ-0001", "RQ-0003", "RQ-0002"]
    fixed = tasks["RQ-0003"]
    assert fixed.title == "Untitled" and fixed.tags == ["untagged"] and fixed.scope == ["unknown"]
    assert fixed.evidence == ["None provided"] and fixed.plan == ["To be determined"]
    assert fixed.request == "Imported task"
    assert fixed.created_at == "2026-01-18T17:00:00.000000000Z"
    assert tasks["RQ-0002"].depends_on == ["RQ-0003"]  # ralph remaps by the old id
    assert tasks["RQ-0002"].updated_at.endswith("Z") and tasks["RQ-0002"].updated_at != "yesterday"
    assert q.validate() == 3
    assert q.repair().lines(dry_run=False) == ["No issues found. Queue is healthy."]


def test_status_and_ready_as_ralphs_task_verbs(tmp_path: Path):
    """crates/ralph/src/cli/task/status.rs: `ready` promotes only a draft; `status` done/
    rejected completes and archives, another status is set in place; notes are appended."""
    q = _repo(tmp_path, [_task("RQ-0001", "a", "draft"), _task("RQ-0002", "b")])
    with pytest.raises(QueueError, match="RQ-0002 is todo, not draft"):
        q.set_status("RQ-0002", "todo", only_from="draft")
    t = q.set_status("RQ-0001", "todo", ["ok", "go"], only_from="draft")
    assert t.status == "todo" and t.notes == ["ok", "go"]
    t = q.set_status("RQ-0002", "doing")
    assert t.status == "doing" and t.started_at
    t = q.set_status("RQ-0002", "done", "shipped")
    assert t.file == "done" and t.notes == ["shipped"] and t.completed_at
