"""ralphnb writes the bytes ralph would write: ralph's field order, omissions, layout and ending.

ralph serialises its `Task` struct with serde_json::to_string_pretty (crates/ralph/src/queue/
save.rs; field order and skip rules in crates/ralph/src/contracts/task/types.rs).
"""

from __future__ import annotations

import difflib
import json
import shutil
from pathlib import Path

import jsonschema
import orjson

import ralphnb
from ralphnb.queue.jsonio import loads_jsonc
from ralphnb.queue.ralphjson import canonicalize, dumps_queue_file, ryu_text
from ralphnb.queue.rules import FIELDS
from ralphnb.queue.store import Queue


def _ralph_repo(tmp_path: Path, fixtures: Path) -> Queue:
    repo = tmp_path / "repo"
    repo.mkdir()
    q = ralphnb.init(repo)
    shutil.copy(fixtures / "done.jsonc", q.done_path)
    return q


def _changed_lines(before: bytes, after: bytes) -> list[int]:
    """0-based line numbers of `before` that a diff to `after` removes or inserts before."""
    a, b = before.decode().splitlines(), after.decode().splitlines()
    out = []
    for tag, i1, i2, _, _ in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag != "equal":
            out.extend(range(i1, max(i2, i1 + 1)))
    return out


def _task_lines(raw: bytes, task_id: str) -> range:
    """The lines of `raw` (a pretty task file) holding the task `task_id`."""
    lines = raw.decode().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln == f'      "id": "{task_id}",') - 1
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("    }"))
    return range(start, end + 1)


def test_ralphs_done_file_saved_unchanged_is_identical_bytes(ralph_fixtures: Path):
    raw = (ralph_fixtures / "done.jsonc").read_bytes()
    doc = loads_jsonc(raw)
    assert not raw.endswith(b"\n")  # ralph writes no final newline
    tasks = list(doc["tasks"])
    assert all(a is b for a, b in zip(canonicalize(tasks), doc["tasks"], strict=True))
    assert dumps_queue_file(doc) == raw


def test_changing_one_task_of_ralphs_file_changes_only_that_tasks_lines(
    tmp_path: Path, ralph_fixtures: Path
):
    q = _ralph_repo(tmp_path, ralph_fixtures)
    before = q.done_path.read_bytes()
    target = q.done[10].id
    q.add_note(target, "checked again")
    after = q.done_path.read_bytes()
    changed = _changed_lines(before, after)
    assert changed and set(changed) <= set(_task_lines(before, target))
    # the rest of the file is ralph's bytes exactly
    untouched = json.loads(before)["tasks"]
    assert [t for t in json.loads(after)["tasks"] if t["id"] != target] == [
        t for t in untouched if t["id"] != target
    ]


def test_a_task_moved_into_ralphs_done_file_only_appends(tmp_path: Path, ralph_fixtures: Path):
    q = _ralph_repo(tmp_path, ralph_fixtures)
    before = q.done_path.read_bytes()
    new = q.add("new work", tags=["x"], description="d")
    q.complete(new.id, "finished")
    after = q.done_path.read_bytes()
    diff = [
        ln
        for ln in difflib.unified_diff(before.decode().splitlines(), after.decode().splitlines())
        if ln[:1] in "+-" and not ln.startswith(("+++", "---"))
    ]
    assert all(ln.startswith("+") for ln in diff[1:]) and diff[0] == "+    },"
    assert not after.endswith(b"\n")


def test_fields_are_written_in_ralphs_struct_order_with_parent_id_last(queue_repo: Queue):
    q = queue_repo
    a = q.add("parent")
    b = q.add(
        "child",
        parent_id=a.id,
        custom_fields={"k": "v"},
        duplicates=None,
        scheduled_start="2026-01-01T00:00:00Z",
        estimated_minutes=5,
        depends_on=[a.id],
    )
    q.start(b.id)
    q.update(b.id, status="done")  # completed_at is set now, after started_at was
    t = json.loads(q.queue_path.read_bytes())["tasks"][1]
    assert list(t) == [k for k in FIELDS if k in t]
    assert list(t)[-1] == "parent_id" and list(t)[-2] == "custom_fields"
    assert list(t).index("completed_at") < list(t).index("started_at")
    assert list(t).index("estimated_minutes") < list(t).index("scheduled_start")


def test_null_optional_fields_are_left_out_and_defaults_written_out(queue_repo: Queue):
    q = queue_repo
    hand = {
        "id": "RQ-0001",
        "title": "written by hand",
        "description": None,
        "parent_id": None,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    }
    q.queue_path.write_text(json.dumps({"tasks": [hand], "version": 1}, indent=4) + "\n")
    q.add("second")
    written = q.queue_path.read_bytes()
    first = json.loads(written)["tasks"][0]
    assert list(first) == [
        "id",
        "status",
        "title",
        "priority",
        "tags",
        "scope",
        "evidence",
        "plan",
        "notes",
        "created_at",
        "updated_at",
        "depends_on",
        "blocks",
        "relates_to",
        "custom_fields",
    ]
    assert first["status"] == "todo" and first["tags"] == [] and first["custom_fields"] == {}
    assert written.startswith(b'{\n  "version": 1,\n  "tasks": [\n    {\n      "id"')


def test_custom_field_values_are_written_as_the_strings_ralph_keeps(queue_repo: Queue):
    # contracts/task/serde_helpers.rs: numbers and booleans are coerced to strings on load
    q = queue_repo
    t = q.add("x", custom_fields={"n": 3, "f": 1.0, "big": 1e16, "tiny": 1e-7, "ok": True})
    assert t.to_dict()["custom_fields"] == {
        "n": "3",
        "f": "1.0",
        "big": "1e16",
        "tiny": "1e-7",
        "ok": "true",
    }
    assert json.loads(q.queue_path.read_bytes())["tasks"][0]["custom_fields"]["f"] == "1.0"


def test_floats_are_formatted_as_rusts_ryu_does():
    cases = {
        1.0: "1.0",
        100.0: "100.0",
        1e15: "1000000000000000.0",
        1e16: "1e16",
        0.1: "0.1",
        1e-5: "0.00001",
        1e-6: "1e-6",
        1.5e-7: "1.5e-7",
        -2.5: "-2.5",
        123.456: "123.456",
        1.2345678901234568e20: "1.2345678901234568e20",
    }
    assert {x: ryu_text(x) for x in cases} == cases


def test_agent_block_is_written_as_ralphs_task_agent(queue_repo: Queue):
    q = queue_repo
    q.add(
        "x",
        agent={
            "phase_overrides": {"phase2": {"model": " m ", "runner": "Claude"}, "phase1": None},
            "runner_cli": {"sandbox": "enabled"},
            "model_effort": "default",
            "iterations": 2,
            "runner": " Codex ",
        },
    )
    raw = q.queue_path.read_bytes()
    agent = json.loads(raw)["tasks"][0]["agent"]
    assert agent == {
        "runner": "codex",
        "iterations": 2,
        "runner_cli": {
            "output_format": None,
            "verbosity": None,
            "approval_mode": None,
            "sandbox": "enabled",
            "plan_mode": None,
            "unsupported_option_policy": None,
        },
        "phase_overrides": {"phase2": {"runner": "claude", "model": "m"}},
    }
    assert list(agent) == ["runner", "iterations", "runner_cli", "phase_overrides"]
    assert list(agent["runner_cli"])[0] == "output_format"
    assert list(agent["phase_overrides"]["phase2"]) == ["runner", "model"]


def test_layout_is_two_space_indent_without_final_newline(tmp_path: Path):
    q = ralphnb.init(tmp_path)
    assert q.queue_path.read_bytes() == b'{\n  "version": 1,\n  "tasks": []\n}'
    q.add("é \u2028 \x01 tab\t")
    raw = q.queue_path.read_bytes()
    assert raw == orjson.dumps(json.loads(raw), option=orjson.OPT_INDENT_2)
    assert "é".encode() in raw and b"\\u0001" in raw and b"\\t" in raw  # serde_json's escapes


def test_new_timestamps_have_ralphs_nine_fraction_digits(queue_repo: Queue):
    t = queue_repo.add("x")
    q = queue_repo.complete(t.id)
    for stamp in (t.created_at, q.updated_at, q.completed_at):
        date, _, frac = stamp.partition(".")
        assert len(frac) == 10 and frac.endswith("Z") and frac[:-1].isdigit(), stamp
    assert q.updated_at == q.completed_at  # one instant per change, as ralph stamps it


def test_written_files_still_validate_against_ralphs_schema(tmp_path: Path, ralph_fixtures: Path):
    q = _ralph_repo(tmp_path, ralph_fixtures)
    schema = json.loads((ralph_fixtures / "queue.schema.json").read_text())
    a = q.add("a", agent={"runner": "pi", "runner_cli": {"verbosity": "quiet"}})
    q.add("b", depends_on=[a.id], custom_fields={"n": 2})
    q.complete(a.id)
    for path in (q.queue_path, q.done_path):
        jsonschema.validate(json.loads(path.read_bytes()), schema)
