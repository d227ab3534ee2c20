"""The sample repository: a committed git repo whose queue validates against ralph's schema."""

from __future__ import annotations

import json

import jsonschema
import pytest

from ralphnb.demo import create_sample_repo
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
