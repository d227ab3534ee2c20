"""The sample repository: a committed git repo whose queue validates against ralph's schema."""

from __future__ import annotations

import json

import jsonschema
import pytest

from ralphnb.demo import create_sample_repo
from ralphnb.queue.ralphjson import canonical_task, dumps_queue_file
from ralphnb.queue.store import Queue
from tests.conftest import git


def test_sample_repo_is_valid_and_committed(tmp_path, ralph_fixtures):
    schema = json.loads((ralph_fixtures / "queue.schema.json").read_text())
    repo = create_sample_repo(tmp_path / "r", n_tasks=10, duration=0.5)
    doc = json.loads((repo / ".ralph/queue.jsonc").read_text())
    jsonschema.validate(doc, schema)
    tasks = doc["tasks"]
    assert len(tasks) == 10 and any(t.get("depends_on") for t in tasks)
    assert all(t["custom_fields"]["demo.duration"] == "0.5" for t in tasks)
    assert len({t["custom_fields"]["demo.file"] for t in tasks}) == 10
    assert git(repo, "status", "--porcelain").strip() == ""
    assert "queue.jsonc" in git(repo, "ls-files", ".ralph")
    assert Queue(repo).next().id == "RQ-0001"
    with pytest.raises(FileExistsError):
        create_sample_repo(repo)
    plain = create_sample_repo(tmp_path / "p", n_tasks=2, git=False)
    assert not (plain / ".git").exists() and len(Queue(plain).tasks) == 2


def test_sample_queue_file_is_what_ralph_writes(tmp_path):
    """ralph's queue/save.rs writes tasks in its `Task` struct order (contracts/task.rs), every
    list field and `custom_fields` present, timestamps with nine fractional digits (timeutil.rs),
    two-space indentation: the sample's file is those bytes, so a write through `Queue` of one
    task leaves every other task's lines untouched."""
    repo = create_sample_repo(tmp_path / "r", n_tasks=3, git=False)
    raw = (repo / ".ralph/queue.jsonc").read_bytes()
    doc = json.loads(raw)
    assert raw == dumps_queue_file(
        {"version": 1, "tasks": [canonical_task(t) for t in doc["tasks"]]}
    )
    first = doc["tasks"][0]
    assert list(first)[:5] == ["id", "status", "title", "priority", "tags"]
    assert first["created_at"].endswith("000Z") and len(first["created_at"]) == 30
    Queue(repo).update("RQ-0002", title="Renamed")
    after = (repo / ".ralph/queue.jsonc").read_bytes()
    changed = [a for a, b in zip(raw.splitlines(), after.splitlines(), strict=True) if a != b]
    assert len(changed) == 2 and all(b'"title"' in c or b'"updated_at"' in c for c in changed)
