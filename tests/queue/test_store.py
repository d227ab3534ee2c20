"""Queue model, ralph compatibility, validation, selection, mutations and the DataFrame."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pandas as pd
import pytest

import ralphnb
from ralphnb.errors import QueueError
from ralphnb.queue.rules import FIELDS, next_id, runnable_tasks, select_next
from ralphnb.queue.store import Queue, init


def _schema(fixtures: Path) -> dict:
    return json.loads((fixtures / "queue.schema.json").read_text())


def _write(path: Path, tasks: list[dict]) -> None:
    path.write_text(json.dumps({"version": 1, "tasks": tasks}, indent=2))


def _task(tid: str, **kw) -> dict:
    return {
        "id": tid,
        "title": f"task {tid}",
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        **kw,
    }


def test_ralph_done_file_loads_and_round_trips_json_equal(ralph_done_repo: Queue, ralph_fixtures):
    q = ralph_done_repo
    original = json.loads((ralph_fixtures / "done.jsonc").read_text())
    assert len(q.done) == 73 and q.tasks == []
    t = q.done[0]
    assert t.id == "RQ-0002" and t.status == "done" and t.file == "done"
    assert t.to_dict() == original["tasks"][0]
    assert isinstance(t.evidence, list) and t.custom_fields == {}
    # Modify another task (add, start, complete it): every ralph task stays JSON-equal.
    new = q.add("a new task", tags=["x"])
    assert new.id == "RQ-0074"
    q.start(new.id)
    q.complete(new.id, "finished")
    saved = json.loads(q.done_path.read_text())
    assert saved["tasks"][:73] == original["tasks"]
    assert [list(t) for t in saved["tasks"][:73]] == [list(t) for t in original["tasks"]]
    assert saved["tasks"][73]["id"] == "RQ-0074"


def test_every_written_file_validates_against_ralph_schema(ralph_done_repo: Queue, ralph_fixtures):
    q = ralph_done_repo
    schema = _schema(ralph_fixtures)
    a = q.add(
        "one",
        priority="high",
        tags=["t"],
        scope=["src/"],
        description="d",
        estimated_minutes=5,
        custom_fields={"k": "v"},
        scheduled_start="2026-01-01T00:00:00Z",
    )
    b = q.add("two", depends_on=[a.id], plan=["step"])
    q.start(a.id)
    q.update(b.id, notes=["n"], agent={"runner": "claude", "model": "x"})
    q.complete(a.id, "ok", archive=False)
    q.archive(a.id)
    q.reject(b.id, "no")
    q.add("three", request="r", parent_id=a.id, relates_to=[b.id])
    for p in (q.queue_path, q.done_path):
        jsonschema.validate(json.loads(p.read_text()), schema)
    # and the fields ralph's own writer uses come in ralph's order
    t = json.loads(q.queue_path.read_text())["tasks"][0]
    assert list(t) == [k for k in FIELDS if k in t]


def test_task_exposes_every_field_with_defaults(queue_repo: Queue):
    t = queue_repo.add("x")
    for name in FIELDS:
        getattr(t, name)
    assert t.status == "todo" and t.priority == "medium" and t.depends_on == []
    assert t.started_at is None and t.agent is None and t.estimated_minutes is None
    with pytest.raises(AttributeError):
        t.nonexistent  # noqa: B018
    t.tags.append("mutating a copy")
    assert queue_repo.get(t.id).tags == []


def test_jsonc_queue_with_comments_is_read_and_written_back_plain(queue_repo: Queue):
    q = queue_repo
    q.queue_path.write_text(
        '{\n  // my queue\n  "version": 1,\n  "tasks": [\n'
        '    {"id": "RQ-0001", "title": "a // b", /* inline */'
        ' "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",'
        ' "tags": ["x",],},\n  ],\n}\n'
    )
    assert q.get("RQ-0001").title == "a // b"
    q.add("second")
    text = q.queue_path.read_text()
    assert "//" not in text.replace("a // b", "") and "/*" not in text
    assert [t["id"] for t in json.loads(text)["tasks"]] == ["RQ-0001", "RQ-0002"]


def test_hand_edit_between_operations_survives(queue_repo: Queue):
    q = queue_repo
    a = q.add("first")
    assert q.tasks[0].title == "first"  # a cached read
    doc = json.loads(q.queue_path.read_text())
    doc["tasks"][0]["title"] = "edited by hand"
    doc["tasks"][0]["notes"] = ["a human note"]
    doc["tasks"].append(_task("RQ-0010"))
    q.queue_path.write_text(json.dumps(doc, indent=4))
    assert q.get(a.id).title == "edited by hand"  # reads see the edit at once
    b = q.add("second")  # the loop's change is applied on top of the edit
    assert b.id == "RQ-0011"
    q.start(a.id)
    final = {t.id: t for t in Queue(q.repo).tasks}
    assert final[a.id].title == "edited by hand" and final[a.id].notes == ["a human note"]
    assert final[a.id].status == "doing" and set(final) == {a.id, "RQ-0010", b.id}


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        ('{"version": 1, "tasks": [\n  {"id": "RQ-0001",\n  "title" "x"}]}', "queue.jsonc:3:11"),
        ([_task("RQ-0001", colour="red")], "'colour'"),
        ([_task("RQ-0001"), _task("RQ-0001")], "duplicate"),
        ([_task("RQ-0001", depends_on=["RQ-0009"])], "RQ-0009"),
        ([_task("RQ-0001", depends_on=["RQ-0001"])], "itself"),
        (
            [_task("RQ-0001", depends_on=["RQ-0002"]), _task("RQ-0002", depends_on=["RQ-0001"])],
            "cycle",
        ),
        ([_task("RQ-0001", created_at="2026-01-01 10:00")], "'created_at'"),
        ([_task("RQ-0001", updated_at="2026-01-01T00:00:00+02:00")], "'updated_at'"),
        ([_task("TASK_1")], "TASK_1"),
        ([_task("RQ-0001", status="finished")], "'status'"),
        ([_task("RQ-0001", tags=["ok", ""])], "'tags'"),
        ([_task("RQ-0001", custom_fields={"k": {"nested": 1}})], "'custom_fields'"),
        ([{"id": "RQ-0001", "title": "no stamps"}], "'created_at'"),
        ([_task("RQ-0001", agent={"runner": "claude", "colour": "red"})], "'colour'"),
    ],
)
def test_bad_input_raises_clear_error_and_leaves_files_unchanged(
    queue_repo: Queue, content, expect
):
    q = queue_repo
    if isinstance(content, str):
        q.queue_path.write_text(content)
    else:
        _write(q.queue_path, content)
    _write(q.done_path, [_task("RQ-0100", status="done", completed_at="2026-01-02T00:00:00Z")])
    before = (q.queue_path.read_bytes(), q.done_path.read_bytes())
    for op in (
        q.validate,
        lambda: q.add("new"),
        lambda: q.update("RQ-0001", title="t"),
        lambda: q.complete("RQ-0001"),
        lambda: q.next(),
    ):
        with pytest.raises(QueueError) as e:
            op()
        assert expect in str(e.value)
        assert "queue.jsonc" in str(e.value)
    assert (q.queue_path.read_bytes(), q.done_path.read_bytes()) == before
    assert not (q.ralph_dir / "lock").exists()


def test_bad_changes_are_refused_without_writing(queue_repo: Queue):
    q = queue_repo
    a = q.add("a")
    before = q.queue_path.read_bytes()
    bad_calls = [
        lambda: q.add("b", depends_on=["RQ-0042"]),
        lambda: q.add("b", colour="red"),
        lambda: q.update(a.id, depends_on=[a.id]),
        lambda: q.update(a.id, scheduled_start="tomorrow"),
        lambda: q.update(a.id, status="paused"),
        lambda: q.update(a.id, id="RQ-0002"),
        lambda: q.get("RQ-0099"),
        lambda: q.complete("RQ-0099"),
        lambda: q.archive(a.id),
    ]
    for call in bad_calls:
        with pytest.raises(QueueError) as e:
            call()
        assert e.value.field or e.value.task_id
    assert q.queue_path.read_bytes() == before


def test_error_names_file_task_and_field(queue_repo: Queue):
    _write(queue_repo.queue_path, [_task("RQ-0007", priority="urgent")])
    with pytest.raises(QueueError) as e:
        queue_repo.validate()
    err = e.value
    assert err.path == queue_repo.queue_path and err.task_id == "RQ-0007"
    assert err.field == "priority"
    assert str(queue_repo.queue_path) in str(err) and "RQ-0007" in str(err)


def test_selection_rule_is_ralphs():
    now = datetime(2026, 6, 1, tzinfo=UTC)
    done = [_task("RQ-0001", status="done", completed_at="2026-01-02T00:00:00Z")]
    tasks = [
        _task("RQ-0002", depends_on=["RQ-0003"]),  # waits for a todo
        _task("RQ-0003", scheduled_start="2026-07-01T00:00:00Z"),  # not yet
        _task("RQ-0004", status="draft"),
        _task("RQ-0005", depends_on=["RQ-0001"], priority="low"),  # deps done: runnable
        _task("RQ-0006", priority="critical"),
    ]
    assert select_next(tasks, done, now=now)["id"] == "RQ-0005"  # file order, not priority
    assert [t["id"] for t in runnable_tasks(tasks, done, now=now)] == ["RQ-0005", "RQ-0006"]
    assert select_next(tasks, done, exclude=["RQ-0005"], now=now)["id"] == "RQ-0006"
    later = datetime(2026, 8, 1, tzinfo=UTC)
    assert [t["id"] for t in runnable_tasks(tasks, done, now=later)] == [
        "RQ-0003",
        "RQ-0005",
        "RQ-0006",
    ]
    tasks.append(_task("RQ-0007", status="doing"))
    assert select_next(tasks, done, now=now)["id"] == "RQ-0007"  # doing comes first
    blocker = [_task("RQ-0008", blocks=["RQ-0009"]), _task("RQ-0009")]
    assert select_next(blocker[1:] + blocker[:1], [], now=now)["id"] == "RQ-0008"
    assert select_next([], [], now=now) is None


def test_next_id_ignores_rejected_and_never_reuses():
    done = [_task("RQ-0003", status="done"), _task("RQ-0009", status="rejected")]
    assert next_id([_task("RQ-0001")], done) == "RQ-0004"
    assert next_id([], [_task("RQ-0004", status="rejected"), _task("RQ-0003")]) == "RQ-0005"
    assert next_id([], []) == "RQ-0001"


def test_lifecycle_start_complete_archive_reject(queue_repo: Queue):
    q = queue_repo
    a, b, c = q.add("a"), q.add("b", depends_on=["RQ-0001"]), q.add("c")
    assert q.next().id == a.id
    s = q.start(a.id)
    assert s.status == "doing" and s.started_at
    d = q.complete(a.id, "merged", archive=False)  # a worker says done before merge
    assert d.status == "done" and d.completed_at and d.notes == ["merged"] and d.file == "queue"
    assert [t.id for t in q.tasks] == [a.id, b.id, c.id] and q.done == []
    assert q.next().id == b.id  # a done task in the queue satisfies dependencies
    arch = q.archive(a.id)
    assert arch.file == "done" and [t.id for t in q.done] == [a.id]
    r = q.reject(c.id, "not needed")
    assert r.status == "rejected" and r.completed_at and r.file == "done"
    assert [t.id for t in q.tasks] == [b.id]
    with pytest.raises(QueueError):
        q.start(a.id)
    u = q.update(b.id, title="renamed", priority="high", description=None)
    assert u.title == "renamed" and u.priority == "high"
    assert q.add_note(b.id, "n1").notes == ["n1"]


def test_interrupted_move_is_healed(queue_repo: Queue):
    """A crash after done.jsonc was written but before queue.jsonc leaves the task in both."""
    q = queue_repo
    a = q.add("a")
    q.add("b")
    moved = dict(q.get(a.id).to_dict(), status="done", completed_at="2026-01-02T00:00:00Z")
    _write(q.done_path, [moved])
    assert [t.id for t in q.tasks] == ["RQ-0002"]  # the reader sees the move finished
    q.add("c")
    assert [t["id"] for t in json.loads(q.queue_path.read_text())["tasks"]] == [
        "RQ-0002",
        "RQ-0003",
    ]


def test_dataframe_has_typed_columns(ralph_done_repo: Queue):
    q = ralph_done_repo
    q.add("open one", estimated_minutes=3)
    df = q.df
    assert len(df) == 74 and list(df["file"].unique()) == ["queue", "done"]
    assert isinstance(df["status"].dtype, pd.CategoricalDtype)
    assert df["priority"].cat.ordered and list(df["priority"].cat.categories)[0] == "critical"
    for col in ("created_at", "updated_at", "completed_at", "started_at", "scheduled_start"):
        assert str(df[col].dtype) == "datetime64[us, UTC]", col
    assert str(df["estimated_minutes"].dtype) == "Int64"
    assert df.loc[df["id"] == "RQ-0074", "estimated_minutes"].iloc[0] == 3
    assert df["completed_at"].isna().sum() == 1
    assert (df.loc[df["file"] == "done", "status"] == "done").all()
    assert isinstance(df["tags"].iloc[1], list)


def test_init_is_idempotent_and_gitignores_lock_and_cache(tmp_path: Path):
    repo = tmp_path / "r"
    repo.mkdir()
    (repo / ".gitignore").write_text("node_modules")
    q = ralphnb.init(repo)
    q.add("keep me")
    ralphnb.init(repo)
    assert [t.title for t in Queue(repo).tasks] == ["keep me"]
    lines = (repo / ".gitignore").read_text().splitlines()
    assert lines == ["node_modules", ".ralph/lock/", ".ralph/cache/"]
    with pytest.raises(QueueError, match="init"):
        Queue(tmp_path)


def test_missing_done_file_is_an_empty_archive(queue_repo: Queue):
    queue_repo.done_path.unlink()
    t = queue_repo.add("a")
    assert queue_repo.done == []
    queue_repo.complete(t.id)
    assert [x.id for x in queue_repo.done] == [t.id]


def test_same_size_edit_with_unchanged_mtime_is_still_seen(queue_repo: Queue):
    """The parse cache is keyed on the file's bytes, not on stat data an edit can leave equal."""
    q = queue_repo
    a = q.add("aaaa")
    q.add("bbbb")
    assert q.get(a.id).title == "aaaa"  # cached now
    st = q.queue_path.stat()
    raw = q.queue_path.read_bytes()
    with open(q.queue_path, "r+b") as f:  # in place: same inode, same size
        f.write(raw.replace(b'"aaaa"', b'"zzzz"'))
    os.utime(q.queue_path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert q.queue_path.stat().st_size == st.st_size
    assert q.get(a.id).title == "zzzz"
    q.start("RQ-0002")
    assert json.loads(q.queue_path.read_text())["tasks"][0]["title"] == "zzzz"


def test_tasks_pickle_and_queue_runnable_honours_exclude(queue_repo: Queue):
    import pickle

    q = queue_repo
    a, b = q.add("a"), q.add("b")
    c = q.add("c", scheduled_start="2999-01-01T00:00:00Z")
    assert [t.id for t in q.runnable()] == [a.id, b.id]
    assert q.next(exclude=[a.id]).id == b.id and q.next(exclude=[a.id, b.id]) is None
    later = datetime(3000, 1, 1, tzinfo=UTC)
    assert [t.id for t in q.runnable(now=later)] == [a.id, b.id, c.id]
    t = pickle.loads(pickle.dumps(q.get(a.id)))  # tasks travel to executors intact
    assert t == q.get(a.id) and t.file == "queue" and t.title == "a"


@pytest.mark.parametrize("title", ["", "   ", None])
def test_add_with_a_blank_title_names_the_title_not_a_task_that_never_existed(
    queue_repo: Queue, title
):
    queue_repo.add("first")
    before = queue_repo.queue_path.read_bytes()
    with pytest.raises(QueueError) as info:
        queue_repo.add(title)
    assert info.value.field == "title" and info.value.task_id is None
    assert "RQ-0002" not in str(info.value)
    assert queue_repo.queue_path.read_bytes() == before


def test_init_keeps_a_gitignore_that_is_not_utf8_byte_for_byte(tmp_path: Path):
    repo = tmp_path / "r"
    repo.mkdir()
    (repo / ".gitignore").write_bytes(b"caf\xe9/\n*.log")  # latin-1, no final newline
    ralphnb.init(repo)
    assert (repo / ".gitignore").read_bytes() == b"caf\xe9/\n*.log\n.ralph/lock/\n.ralph/cache/\n"
    ralphnb.init(repo)  # idempotent
    assert (repo / ".gitignore").read_bytes().count(b".ralph/lock/") == 1


def test_init_writes_through_a_symlinked_gitignore(tmp_path: Path):
    repo = tmp_path / "r"
    repo.mkdir()
    shared = tmp_path / "shared-ignore"
    shared.write_text("*.log\n")
    (repo / ".gitignore").symlink_to(shared)
    ralphnb.init(repo)
    assert (repo / ".gitignore").is_symlink()
    assert shared.read_text() == "*.log\n.ralph/lock/\n.ralph/cache/\n"


def test_a_deeply_nested_queue_is_a_queue_error_not_a_recursion_error(queue_repo: Queue):
    deep = "[" * 50_000 + "]" * 50_000
    queue_repo.queue_path.write_text('{"version": 1, "tasks": [' + deep + "]}")
    with pytest.raises(QueueError, match="nested"):
        Queue(queue_repo.repo).validate()


def test_init_refuses_a_bare_repository_and_a_git_directory(tmp_path: Path):
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)
    for path in (bare, checkout / ".git", checkout / ".git" / "hooks"):
        with pytest.raises(QueueError, match="git directory") as err:
            init(path)
        assert str(path) in str(err.value)
        assert not (path / ".ralph").exists()


def test_validate_computes_link_warnings_only_when_they_are_read(tmp_path: Path, monkeypatch):
    import ralphnb.queue.store as store

    q = init(tmp_path)
    _write(q.queue_path, [_task("RQ-0001", duplicates="RQ-0002"), _task("RQ-0002")])
    _write(q.done_path, [])
    calls = []
    real = store.link_warnings
    monkeypatch.setattr(store, "link_warnings", lambda *a, **k: calls.append(1) or real(*a, **k))
    v = q.validate()
    assert v == 2 and calls == []  # errors checked, warnings not yet computed
    assert v.warnings == () and v.warnings == () and calls == [1]  # computed once, on read
    _write(
        q.queue_path,
        [
            _task("RQ-0001", depends_on=["RQ-0002"]),
            _task("RQ-0002", status="rejected", completed_at="2026-01-01T00:00:00Z"),
        ],
    )
    w = q.validate().warnings
    assert w[0].task_id == "RQ-0001" and "rejected task RQ-0002" in w[0].message
