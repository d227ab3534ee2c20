"""Validation exactly as strict as ralph: one test per rule, each showing both sides.

Each test names ralph's source file the rule comes from (repository fitchmultz/ralph); errors
are refused with one line naming the file, the task, the field and why, and warnings are what
`Queue.validate()` returns.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from ralphnb.errors import QueueError
from ralphnb.queue.store import Queue, Validation

_n = itertools.count()
T0 = "2026-01-01T00:00:00Z"


def _task(tid: str, **kw) -> dict:
    return {"id": tid, "title": f"task {tid}", "created_at": T0, "updated_at": T0, **kw}


def _done(tid: str, status: str = "done", **kw) -> dict:
    return _task(tid, **{"status": status, "completed_at": T0, **kw})


def _queue(tmp_path: Path, tasks: list, done: list = (), config: dict | None = None) -> Queue:
    repo = tmp_path / f"repo{next(_n)}"
    (repo / ".ralph").mkdir(parents=True)
    if config is not None:
        (repo / ".ralph" / "config.jsonc").write_text(json.dumps({"version": 2, **config}))
    (repo / ".ralph" / "queue.jsonc").write_text(json.dumps({"version": 1, "tasks": tasks}))
    (repo / ".ralph" / "done.jsonc").write_text(json.dumps({"version": 1, "tasks": list(done)}))
    return Queue(repo)


def accepted(tmp_path: Path, tasks: list, done: list = (), **kw) -> Validation:
    return _queue(tmp_path, tasks, done, **kw).validate()


def refused(tmp_path: Path, tasks: list, done: list = (), *, field: str, **kw) -> QueueError:
    """The error `validate()` raises: one line naming the file, the field (and the task)."""
    q = _queue(tmp_path, tasks, done, **kw)
    with pytest.raises(QueueError) as info:
        q.validate()
    err = info.value
    assert "\n" not in str(err) and err.path in (q.queue_path, q.done_path)
    assert str(err.path) in str(err) and err.field == field, (err.field, str(err))
    if err.task_id is not None:
        assert f"task {err.task_id}" in str(err)
    return err


# --- one file: crates/ralph/src/queue/validation/queue_files.rs ------------------------------


def test_queue_version_must_be_1(tmp_path: Path):
    # queue_files.rs validate_queue: "Ralph requires version 1"
    q = _queue(tmp_path, [_task("RQ-0001")])
    assert q.validate() == 1
    q.queue_path.write_text(json.dumps({"version": 2, "tasks": []}))
    with pytest.raises(QueueError, match="version 1") as e:
        q.validate()
    assert e.value.field == "version"


def test_duplicate_id_in_one_file_is_refused_unless_a_rejected_task(tmp_path: Path):
    # queue_files.rs validate_queue: rejected tasks are skipped by the duplicate check
    assert accepted(tmp_path, [_task("RQ-0001"), _done("RQ-0001", "rejected")]) == 2
    err = refused(tmp_path, [_task("RQ-0001"), _task("RQ-0001")], field="id")
    assert err.task_id == "RQ-0001" and "duplicate" in str(err)


def test_done_file_holds_only_done_or_rejected_tasks(tmp_path: Path):
    # queue_files.rs validate_done_terminal_status
    assert accepted(tmp_path, [], [_done("RQ-0001"), _done("RQ-0002", "rejected")]) == 2
    err = refused(tmp_path, [], [_task("RQ-0001", status="doing")], field="status")
    assert "done.jsonc" in str(err)


def test_duplicate_id_across_queue_and_done_is_refused_unless_rejected(tmp_path: Path):
    # queue_files.rs validate_cross_file_duplicates
    assert accepted(tmp_path, [_task("RQ-0001")], [_done("RQ-0001", "rejected", title="old")])
    err = refused(tmp_path, [_task("RQ-0001")], [_done("RQ-0001", title="other")], field="id")
    assert "duplicate" in str(err)


# --- one task: crates/ralph/src/queue/validation/task_fields.rs ------------------------------


def test_id_prefix_must_match_the_configuration(tmp_path: Path):
    # task_fields.rs validate_task_id: "Mismatched task ID prefix"
    assert accepted(tmp_path, [_task("XY-0001")], config={"queue": {"id_prefix": "XY"}})
    err = refused(tmp_path, [_task("XY-0001")], field="id")
    assert "'XY'" in str(err) and "'RQ'" in str(err) and err.task_id == "XY-0001"


def test_id_width_must_match_the_configuration(tmp_path: Path):
    # task_fields.rs validate_task_id: "Invalid task ID width"
    assert accepted(tmp_path, [_task("RQ-12")], config={"queue": {"id_width": 2}})
    err = refused(tmp_path, [_task("RQ-12")], field="id")
    assert "2 digits" in str(err) and "RQ-0001" in str(err)
    refused(tmp_path, [_task("RQ-00012")], field="id")


def test_id_needs_a_dash_and_a_digit_suffix(tmp_path: Path):
    # task_fields.rs validate_task_id: missing '-', non-digit suffix; required field `id`
    assert accepted(tmp_path, [_task("RQ-0001")])
    assert "no '-'" in str(refused(tmp_path, [_task("RQ0001")], field="id"))
    assert "non-digits" in str(refused(tmp_path, [_task("RQ-00a1")], field="id"))
    refused(tmp_path, [_task("")], field="id")
    refused(tmp_path, [{"title": "x", "created_at": T0, "updated_at": T0}], field="id")


def test_title_must_not_be_blank(tmp_path: Path):
    # task_fields.rs validate_task_required_fields: "Missing task title" (trimmed)
    assert accepted(tmp_path, [_task("RQ-0001", title=" x ")])
    refused(tmp_path, [_task("RQ-0001", title=" \t ")], field="title")


def test_tags_scope_evidence_plan_items_must_not_be_blank_but_notes_may(tmp_path: Path):
    # task_fields.rs ensure_list_valid runs on tags, scope, evidence and plan only
    assert accepted(tmp_path, [_task("RQ-0001", tags=["a"], notes=["", " "])])
    for key in ("tags", "scope", "evidence", "plan"):
        err = refused(tmp_path, [_task("RQ-0001", **{key: ["ok", "  "]})], field=key)
        assert "item 1" in str(err)


def test_custom_field_key_must_not_be_blank_or_contain_whitespace(tmp_path: Path):
    # task_fields.rs: "Empty custom field key" / "Custom field keys must not contain whitespace"
    assert accepted(tmp_path, [_task("RQ-0001", custom_fields={" padded ": "ok", "a_b": "1"})])
    err = refused(
        tmp_path, [_task("RQ-0001", custom_fields={"my key": "v"})], field="custom_fields"
    )
    assert "'my key'" in str(err)
    refused(tmp_path, [_task("RQ-0001", custom_fields={" ": "v"})], field="custom_fields")


def test_created_at_and_updated_at_are_required(tmp_path: Path):
    # task_fields.rs: "Missing created_at" / "Missing updated_at" (null is missing too)
    assert accepted(tmp_path, [_task("RQ-0001")])
    for key in ("created_at", "updated_at"):
        refused(tmp_path, [_task("RQ-0001", **{key: None})], field=key)
        task = _task("RQ-0001")
        del task[key]
        refused(tmp_path, [task], field=key)


def test_timestamps_must_be_rfc3339_in_utc(tmp_path: Path):
    # task_fields.rs validate_rfc3339 (timeutil.rs parse_rfc3339: trimmed, offset must be UTC)
    good = ["2026-01-01T00:00:00Z", "2024-02-29T23:59:59.123456789z", " 2026-01-01t00:00:00+00:00 "]
    assert accepted(tmp_path, [_task(f"RQ-000{i}", updated_at=v) for i, v in enumerate(good, 1)])
    for bad in ("2026-01-01", "2026-02-30T00:00:00Z", "2026-01-01T00:00:00+02:00", ""):
        refused(tmp_path, [_task("RQ-0001", updated_at=bad)], field="updated_at")
    refused(tmp_path, [_done("RQ-0001", completed_at="yesterday")], field="completed_at")


def test_done_or_rejected_task_needs_completed_at(tmp_path: Path):
    # task_fields.rs: "Missing completed_at" for Done / Rejected
    assert accepted(tmp_path, [_done("RQ-0001"), _task("RQ-0002", status="doing")])
    for status in ("done", "rejected"):
        refused(tmp_path, [_task("RQ-0001", status=status)], field="completed_at")


def test_agent_iterations_must_be_at_least_1(tmp_path: Path):
    # task_fields.rs validate_task_agent_fields: "must specify iterations >= 1"
    assert accepted(tmp_path, [_task("RQ-0001", agent={"iterations": 1})])
    refused(tmp_path, [_task("RQ-0001", agent={"iterations": 0})], field="agent.iterations")
    refused(tmp_path, [_task("RQ-0001", agent={"iterations": 256})], field="agent.iterations")


def test_agent_phases_must_be_1_2_or_3(tmp_path: Path):
    # task_fields.rs validate_task_agent_fields: "must specify phases in [1, 2, 3]"
    assert accepted(tmp_path, [_task("RQ-0001", agent={"phases": 3})])
    err = refused(tmp_path, [_task("RQ-0001", agent={"phases": 7})], field="agent.phases")
    assert "[1, 2, 3]" in str(err)


# --- what serde refuses reading ralph's Task: crates/ralph/src/contracts/task/types.rs --------


def test_unknown_keys_are_refused_in_a_task_and_its_agent(tmp_path: Path):
    # types.rs: Task and TaskAgent are #[serde(deny_unknown_fields)]
    assert accepted(tmp_path, [_task("RQ-0001", agent={"runner": "pi", "model": "m"})])
    refused(tmp_path, [_task("RQ-0001", colour="red")], field="colour")
    refused(tmp_path, [_task("RQ-0001", agent={"colour": "red"})], field="agent.colour")


def test_status_and_priority_are_ralphs_enums(tmp_path: Path):
    # types.rs TaskStatus; priority.rs TaskPriority (snake_case)
    assert accepted(tmp_path, [_task("RQ-0001", status="draft", priority="critical")])
    refused(tmp_path, [_task("RQ-0001", status="Todo")], field="status")
    refused(tmp_path, [_task("RQ-0001", priority="urgent")], field="priority")


def test_null_is_refused_where_ralphs_field_is_not_optional(tmp_path: Path):
    # types.rs: Vec/enum/HashMap fields take a default when absent but do not accept null
    ok = _task("RQ-0001", description=None, agent=None, parent_id=None, estimated_minutes=None)
    assert accepted(tmp_path, [ok])
    for key in ("tags", "notes", "depends_on", "status", "priority", "custom_fields"):
        refused(tmp_path, [_task("RQ-0001", **{key: None})], field=key)


def test_custom_field_values_must_be_strings_numbers_or_booleans(tmp_path: Path):
    # serde_helpers.rs deserialize_custom_fields: null, arrays and objects are refused
    assert accepted(tmp_path, [_task("RQ-0001", custom_fields={"n": 1, "b": True, "s": "x"})])
    for bad in (None, [1], {"k": 1}):
        refused(tmp_path, [_task("RQ-0001", custom_fields={"k": bad})], field="custom_fields")


def test_minutes_are_whole_numbers_that_fit_ralphs_u32(tmp_path: Path):
    # types.rs estimated_minutes / actual_minutes: Option<u32>
    assert accepted(tmp_path, [_task("RQ-0001", estimated_minutes=0, actual_minutes=2**32 - 1)])
    for bad in (-1, 2**32, 1.5, "5"):
        refused(tmp_path, [_task("RQ-0001", estimated_minutes=bad)], field="estimated_minutes")


def test_agent_block_values_are_ralphs_types(tmp_path: Path):
    # types.rs TaskAgent; contracts/model.rs ModelEffort; contracts/runner.rs patch enums;
    # contracts/config/phase.rs PhaseOverrides
    agent = {
        "runner": "acme.plugin",
        "model_effort": "xhigh",
        "followup_reasoning_effort": "low",
        "runner_cli": {"approval_mode": "safe", "sandbox": None},
        "phase_overrides": {"phase1": {"runner": "claude", "reasoning_effort": "high"}},
    }
    assert accepted(tmp_path, [_task("RQ-0001", agent=agent)])
    for bad, field in (
        ({"runner": " "}, "agent.runner"),
        ({"model_effort": None}, "agent.model_effort"),
        ({"runner_cli": {"approval_mode": "always"}}, "agent.runner_cli.approval_mode"),
        ({"phase_overrides": {"phase4": {}}}, "agent.phase_overrides.phase4"),
        ({"phase_overrides": {"phase1": {"model": ""}}}, "agent.phase_overrides.phase1.model"),
    ):
        refused(tmp_path, [_task("RQ-0001", agent=bad)], field=field)


# --- links: crates/ralph/src/queue/validation/{dependency_graph,relationships,parent}.rs ----


def test_depends_on_itself_is_refused(tmp_path: Path):
    # dependency_graph.rs build_dependency_graph: "Self-dependency detected"
    assert accepted(tmp_path, [_task("RQ-0001"), _task("RQ-0002", depends_on=["RQ-0001"])])
    err = refused(tmp_path, [_task("RQ-0001", depends_on=["RQ-0001"])], field="depends_on")
    assert "itself" in str(err)


def test_depends_on_a_missing_task_is_refused(tmp_path: Path):
    # dependency_graph.rs build_dependency_graph: "Invalid dependency ... non-existent task"
    assert accepted(tmp_path, [_task("RQ-0002", depends_on=["RQ-0001"])], [_done("RQ-0001")])
    err = refused(tmp_path, [_task("RQ-0002", depends_on=["RQ-0009"])], field="depends_on")
    assert "RQ-0009" in str(err)


def test_dependency_cycle_is_refused(tmp_path: Path):
    # dependency_graph.rs ensure_acyclic: "Circular dependency detected"
    chain = [_task("RQ-0001"), _task("RQ-0002", depends_on=["RQ-0001"])]
    assert accepted(tmp_path, chain)
    cycle = [_task("RQ-0001", depends_on=["RQ-0002"]), _task("RQ-0002", depends_on=["RQ-0001"])]
    assert "cycle" in str(refused(tmp_path, cycle, field="depends_on"))


def test_blocks_naming_itself_or_a_missing_task_is_refused(tmp_path: Path):
    # relationships.rs validate_blocks: "Self-blocking detected" / "blocks non-existent task"
    assert accepted(tmp_path, [_task("RQ-0001", blocks=["RQ-0002"]), _task("RQ-0002")])
    refused(tmp_path, [_task("RQ-0001", blocks=["RQ-0001"])], field="blocks")
    err = refused(tmp_path, [_task("RQ-0001", blocks=["RQ-0007"])], field="blocks")
    assert "RQ-0007" in str(err)


def test_blocks_cycle_is_refused(tmp_path: Path):
    # relationships.rs ensure_blocks_acyclic: "Circular blocking detected"
    pair = [_task("RQ-0001", blocks=["RQ-0002"]), _task("RQ-0002", blocks=["RQ-0001"])]
    assert accepted(tmp_path, [_task("RQ-0001", blocks=["RQ-0002"]), _task("RQ-0002")])
    assert "blocking cycle" in str(refused(tmp_path, pair, field="blocks"))


def test_relates_to_naming_itself_or_a_missing_task_is_refused(tmp_path: Path):
    # relationships.rs validate_relates_to: "Self-reference in relates_to" / non-existent task
    assert accepted(tmp_path, [_task("RQ-0001", relates_to=["RQ-0002"])], [_done("RQ-0002")])
    refused(tmp_path, [_task("RQ-0001", relates_to=["RQ-0001"])], field="relates_to")
    refused(tmp_path, [_task("RQ-0001", relates_to=["RQ-0003"])], field="relates_to")


def test_duplicates_naming_itself_or_a_missing_task_is_refused(tmp_path: Path):
    # relationships.rs validate_duplicates: "Self-duplication detected" / non-existent task
    assert accepted(tmp_path, [_task("RQ-0001"), _task("RQ-0002", duplicates="RQ-0001")])
    refused(tmp_path, [_task("RQ-0001", duplicates="RQ-0001")], field="duplicates")
    refused(tmp_path, [_task("RQ-0001", duplicates="RQ-0005")], field="duplicates")


def test_parent_cycle_is_refused(tmp_path: Path):
    # parent.rs validate_parent_ids: "Circular parent chain detected" (two or more tasks)
    assert accepted(tmp_path, [_task("RQ-0001"), _task("RQ-0002", parent_id="RQ-0001")])
    pair = [_task("RQ-0001", parent_id="RQ-0002"), _task("RQ-0002", parent_id="RQ-0001")]
    assert "parent cycle" in str(refused(tmp_path, pair, field="parent_id"))


def test_blank_link_entries_are_ignored_as_ralph_does(tmp_path: Path):
    # dependency_graph.rs / relationships.rs / parent.rs: ids are trimmed; empty ones skipped
    tasks = [
        _task("RQ-0001", depends_on=["", " "], blocks=[""], relates_to=[" "], parent_id=" "),
        _task("RQ-0002", depends_on=[" RQ-0001 "]),
    ]
    assert accepted(tmp_path, tasks) == 2
    q = _queue(tmp_path, tasks)
    assert [t.id for t in q.runnable()] == ["RQ-0001"]  # the padded link still holds RQ-0002


# --- warnings: the same files, ValidationWarning --------------------------------------------


def _messages(v: Validation) -> list[str]:
    return [f"{w.task_id}: {w.message}" for w in v.warnings]


def test_warning_for_a_dependency_on_a_rejected_task(tmp_path: Path):
    # dependency_graph.rs build_dependency_graph: "depends on rejected task"
    v = accepted(tmp_path, [_task("RQ-0002", depends_on=["RQ-0001"])], [_done("RQ-0001")])
    assert not any("rejected" in m for m in _messages(v))
    v = accepted(
        tmp_path, [_task("RQ-0002", depends_on=["RQ-0001"])], [_done("RQ-0001", "rejected")]
    )
    assert "RQ-0002: depends on rejected task RQ-0001" in _messages(v)[0]
    assert str(v.warnings[0]).startswith(str(v.warnings[0].path))


def test_warning_for_a_dependency_chain_deeper_than_configured(tmp_path: Path):
    # dependency_graph.rs warn_on_dependency_depth (queue.max_dependency_depth, default 10)
    chain = [_done("RQ-0001")] + [
        _done(f"RQ-000{i}", depends_on=[f"RQ-000{i - 1}"]) for i in range(2, 5)
    ]
    tasks = [_task("RQ-0005", depends_on=["RQ-0004"])]
    assert not accepted(tmp_path, tasks, chain).warnings  # depth 4 <= 10
    v = accepted(tmp_path, tasks, chain, config={"queue": {"max_dependency_depth": 3}})
    assert _messages(v) == [
        "RQ-0005: has a dependency chain 4 deep, more than queue.max_dependency_depth (3)"
    ]


def test_warning_for_a_blocked_dependency_chain(tmp_path: Path):
    # dependency_graph.rs warn_on_blocked_chains: every path ends at an unfinished/rejected task
    assert not accepted(
        tmp_path, [_task("RQ-0002", depends_on=["RQ-0001"])], [_done("RQ-0001")]
    ).warnings
    v = accepted(tmp_path, [_task("RQ-0001"), _task("RQ-0002", depends_on=["RQ-0001"])])
    assert _messages(v) == [
        "RQ-0002: is blocked: every dependency path ends at an unfinished or rejected task "
        "(RQ-0001)"
    ]


def test_warning_for_a_duplicate_of_a_finished_task(tmp_path: Path):
    # relationships.rs validate_duplicates: "duplicates ... which is already done/rejected"
    assert not accepted(
        tmp_path, [_task("RQ-0001"), _task("RQ-0002", duplicates="RQ-0001")]
    ).warnings
    v = accepted(tmp_path, [_task("RQ-0002", duplicates="RQ-0001")], [_done("RQ-0001")])
    assert _messages(v) == ["RQ-0002: duplicates RQ-0001, which is already done"]


def test_warning_for_a_task_that_is_its_own_parent(tmp_path: Path):
    # parent.rs validate_parent_ids: self-parent is a warning, not an error
    assert not accepted(
        tmp_path, [_task("RQ-0001"), _task("RQ-0002", parent_id="RQ-0001")]
    ).warnings
    v = accepted(tmp_path, [_task("RQ-0001", parent_id="RQ-0001")])
    assert _messages(v) == ["RQ-0001: is its own parent; remove parent_id or name another task"]


def test_warning_for_a_parent_that_does_not_exist(tmp_path: Path):
    # parent.rs validate_parent_ids: missing parent is a warning, not an error
    v = accepted(tmp_path, [_task("RQ-0002", parent_id="RQ-0001")])
    assert _messages(v) == ["RQ-0002: has parent RQ-0001, which is in neither queue nor done file"]


def test_validate_still_counts_tasks_and_queue_writes_refuse_what_ralph_refuses(tmp_path: Path):
    q = _queue(tmp_path, [_task("RQ-0001")], [_done("RQ-0002")])
    v = q.validate()
    assert v == 2 and v.tasks == 2 and v.warnings == () and f"{v}" == "2"
    before = q.queue_path.read_bytes()
    for call in (
        lambda: q.update("RQ-0001", blocks=["RQ-0404"]),
        lambda: q.update("RQ-0001", relates_to=["RQ-0001"]),
        lambda: q.update("RQ-0001", custom_fields={"a b": "c"}),
        lambda: q.update("RQ-0001", agent={"phases": 7}),
        lambda: q.add("x", agent={"iterations": 0}),
        lambda: q.add("x", parent_id="RQ-0003", duplicates="RQ-0003"),
    ):
        with pytest.raises(QueueError):
            call()
    assert q.queue_path.read_bytes() == before
