"""Phases, passes and the CI gate that talks back, with the demo agent as a real process that
records what it was given (RALPHNB_DEMO_RECORD): the phase prompts, the plan handed on, the
gate's failure text and the resume flag of the attempt after it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ralphnb.errors import RalphError, RunnerError
from ralphnb.loop.core import Loop
from ralphnb.loop.phases import PHASES, Handoffs, Step, pick_count, steps, task_phases
from ralphnb.queue.store import Queue
from ralphnb.runners import Command, Demo
from ralphnb.runners.phase_prompts import GATE_FAILED, render
from tests.conftest import demo, make_repo

pytestmark = pytest.mark.usefixtures("fast_demo")

#: A gate that passes once the demo file holds the line "fixed".
FIXED_GATE = [
    sys.executable,
    "-c",
    "import sys; t = open('demo/out.txt').read(); "
    "sys.exit(0) if 'fixed' in t else sys.exit('gate: the file says ' + t.strip())",
]


@pytest.fixture
def record(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "record.jsonl"
    monkeypatch.setenv("RALPHNB_DEMO_RECORD", str(path))
    return path


def runs(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _config(repo: Path, cfg: dict, *, trust: bool = False) -> None:
    (repo / ".ralph" / "config.jsonc").write_text(json.dumps(cfg))
    if trust:
        (repo / ".ralph" / "trust.jsonc").write_text('{"allow_project_commands": true}')


# ------------------------------------------------------------------ pure parts


def test_steps_run_every_phase_of_every_pass_and_judge_only_the_last():
    assert [(s.phase, s.pass_no, s.judged) for s in steps(3, 1)] == [
        ("plan", 1, False),
        ("implement", 1, False),
        ("review", 1, True),
    ]
    two = steps(1, 2)
    assert [(s.phase, s.judged) for s in two] == [("implement", False), ("implement", True)]
    assert PHASES[2] == ("plan", "implement")


def test_a_tasks_count_wins_over_the_argument_which_wins_over_configuration():
    assert pick_count(2, 3, 1, 3) == 2
    assert pick_count(None, 3, 1, 3) == 3
    assert pick_count(None, None, 2, 3) == 2
    assert pick_count(None, None, None, 3) == 1
    assert pick_count(True, None, None, 3) == 1  # a bool is not a count


def test_an_unknown_placeholder_in_an_override_is_an_error_naming_the_file():
    assert render("{{TASK_ID}} {{REPOPROMPT_BLOCK}}", {"TASK_ID": "RQ-1"}, where="f") == "RQ-1\n"
    with pytest.raises(RunnerError, match=r"my\.md: unknown placeholder\(s\) \{\{NOPE\}\}"):
        render("{{NOPE}}", {"TASK_ID": "RQ-1"}, where="my.md")


def test_a_runner_without_resume_gets_no_session_and_a_fresh_prompt(tmp_path):
    h = Handoffs(tmp_path, "RQ-0001", session_id="s1")
    from ralphnb.loop.check import CheckRun

    h.gate_failure = CheckRun(False, "make ci", 2, "E: boom\n")
    judged = Step("implement", 1, True)
    assert h.resume_session(Demo(), judged) == "s1"
    runner = Command(["x"])
    runner.supports_resume = False  # type: ignore[misc]
    assert h.resume_session(runner, judged) is None
    assert h.resume_session(Demo(), Step("plan", 1, False)) is None


def test_phase_overrides_choose_each_phases_model(tmp_path):
    repo = make_repo(tmp_path, [demo("one")])
    _config(repo, {"agent": {"phase_overrides": {"phase1": {"model": "planner-1"}}}})
    task = Queue(repo).get("RQ-0001").to_dict()
    tp = task_phases(repo, task, runner=Demo(), phases=2, passes=None, max_iterations=3)
    assert tp.phases == 2 and tp.passes == 1
    assert tp.runners["plan"].model == "planner-1" and tp.runners["implement"].model is None


def test_loop_refuses_a_phase_count_ralph_does_not_have(tmp_path):
    repo = make_repo(tmp_path, [demo("one")])
    with pytest.raises(RalphError, match="phases must be 1, 2 or 3"):
        Loop(repo, runner="demo", phases=4)


# ------------------------------------------------------------------ real runs


def test_three_phases_plan_implement_review_each_its_own_row(tmp_path, record):
    repo = make_repo(tmp_path, [demo("one", file="demo/out.txt")])
    loop = Loop(repo, runner="demo", phases=3)
    df = loop.run()
    assert list(df["phase"]) == ["plan", "implement", "review"], df
    assert list(df["status"])[-1] == "integrated"
    assert df["pid"].notna().all() and df["session_id"].nunique() == 3  # own processes
    got = runs(record)
    assert [r["phase"] for r in got] == ["plan", "implement", "review"]
    plan_prompt, impl_prompt, review_prompt = (r["prompt"] for r in got)
    assert (
        "phase 1 of 3 -- plan only" in plan_prompt and ".ralph/cache/plans/RQ-0001" in plan_prompt
    )
    assert "Do not mark the task done" in plan_prompt  # the plan phase never finishes
    plan = (repo / ".ralph" / "cache" / "plans" / "RQ-0001.md").read_text()
    assert plan.startswith("# Plan for RQ-0001") and plan.strip() in impl_prompt  # handed on
    assert "do NOT mark the task done" in impl_prompt  # a review follows
    assert "ready for review" in review_prompt  # phase 2's summary reaches the review
    assert Queue(repo).done[-1].id == "RQ-0001"


def test_a_failed_gate_goes_back_to_the_same_session_which_fixes_it(tmp_path, record):
    task = demo("one", file="demo/out.txt", content="broken")
    task["custom_fields"]["demo.fix"] = "fixed"
    repo = make_repo(tmp_path, [task])
    df = Loop(repo, runner="demo", check=FIXED_GATE, max_iterations=3).run()
    first, second = df.iloc[0], df.iloc[1]
    assert first["status"] == "check_failed" and first["check_exit_code"] == 1
    assert first["check_s"] > 0 and "gate: the file says broken" in first["error"]
    assert second["status"] == "integrated" and second["check_exit_code"] == 0
    got = runs(record)
    assert got[0]["resumed"] is None
    assert f"--resume={got[0]['session_id']}" in got[1]["argv"]  # the same session continues
    assert got[1]["session_id"] == got[0]["session_id"]
    assert GATE_FAILED in got[1]["prompt"] and "gate: the file says broken" in got[1]["prompt"]
    assert "```json" not in got[1]["prompt"]  # a resumed session already has the task
    assert (repo / "demo" / "out.txt").read_text() == "broken\nfixed\n"


def test_without_resume_a_fresh_session_gets_the_task_and_the_failure(tmp_path, record):
    task = demo("one", file="demo/out.txt", content="broken")
    task["custom_fields"]["demo.fix"] = "fixed"
    repo = make_repo(tmp_path, [task])
    runner = Command(
        ["{python}", "-m", "ralphnb.demo.agent", "--prompt-file", "{prompt_file}"],
        parser="claude",
        env_passthrough=["RALPHNB_DEMO_*", "PYTHONPATH"],
    )
    runner.supports_resume = False  # type: ignore[misc]
    df = Loop(repo, runner=runner, check=FIXED_GATE, max_iterations=2).run()
    assert list(df["status"]) == ["check_failed", "integrated"], df
    second = runs(record)[1]
    assert second["resumed"] is None and "--resume" not in " ".join(second["argv"])
    assert "```json" in second["prompt"] and GATE_FAILED in second["prompt"]
    assert "A previous attempt at this task said it was done" in second["prompt"]


def test_a_gate_that_keeps_failing_fails_the_task_after_max_iterations(tmp_path, record):
    repo = make_repo(tmp_path, [demo("one", file="demo/out.txt", content="broken")])
    df = Loop(repo, runner="demo", check=FIXED_GATE, max_iterations=2).run()
    assert list(df["status"]) == ["check_failed", "failed"], df
    assert "not complete after 2 iteration(s): check failed" in df.iloc[-1]["error"]
    assert Queue(repo).get("RQ-0001").status == "todo"


def test_passes_run_n_times_and_only_the_last_completes(tmp_path, record):
    task = demo("one", file="demo/out.txt")
    task["agent"] = {"iterations": 2}  # ralph's meaning: two fixed passes
    repo = make_repo(tmp_path, [task])
    df = Loop(repo, runner="demo", max_iterations=1).run()
    assert list(df["status"]) == ["succeeded", "integrated"], df
    first, last = (r["prompt"] for r in runs(record))
    assert "pass 1 of 2" in first and "This is not the last pass" in first
    assert "pass 2 of 2" in last and "not the last pass" not in last
    assert (repo / "demo" / "out.txt").read_text().count("one") == 2  # both passes worked


def test_configuration_sets_phases_gate_and_prompt_overrides(tmp_path, record):
    repo = make_repo(tmp_path, [demo("one", file="demo/out.txt")])
    gate = [sys.executable, "-c", "open('demo/out.txt')"]
    _config(repo, {"agent": {"phases": 2, "ci_gate": {"enabled": True, "argv": gate}}}, trust=True)
    prompts = repo / ".ralph" / "prompts"
    prompts.mkdir()
    (prompts / "worker_phase1.md").write_text(
        "OUR PLAN PROMPT for {{TASK_ID}} ({{TOTAL_PHASES}} phases) -> {{PLAN_PATH}}\n"
        "{{BASE_WORKER_PROMPT}}\n"
    )
    loop = Loop(repo, runner="demo")
    assert loop.check == gate
    df = loop.run()
    assert list(df["phase"]) == ["plan", "implement"] and df.iloc[-1]["status"] == "integrated"
    assert df.iloc[-1]["check_exit_code"] == 0
    plan_prompt = runs(record)[0]["prompt"]
    assert plan_prompt.startswith("OUR PLAN PROMPT for RQ-0001 (2 phases) -> ")


def test_a_disabled_gate_and_ralphs_default_gate_never_run(tmp_path):
    from ralphnb.loop.gate import gate_check
    from ralphnb.queue.config import resolve_config

    repo = make_repo(tmp_path, [demo("one")])
    assert gate_check(None, resolve_config(repo, warn=False)) is None  # not `make ci` unasked
    _config(repo, {"agent": {"ci_gate": {"enabled": False, "argv": ["x"]}}}, trust=True)
    assert gate_check(None, resolve_config(repo, warn=False)) is None
    assert gate_check(["y"], resolve_config(repo, warn=False)) == ["y"]  # the argument wins


def test_configured_runner_is_built_with_its_bin(tmp_path):
    repo = make_repo(tmp_path, [demo("one")])
    _config(repo, {"agent": {"runner": "pi", "pi_bin": "/opt/pi/bin/pi"}}, trust=True)
    loop = Loop(repo)
    assert loop.runner.name == "pi" and loop.runner.executable == "/opt/pi/bin/pi"


def test_a_failed_gate_marks_its_row_with_exit_code_duration_and_first_lines():
    from ralphnb.loop.check import CheckRun
    from ralphnb.loop.events import Event
    from ralphnb.loop.gate import GateResult
    from ralphnb.loop.table import WorkerTable

    table = WorkerTable()
    table.apply(Event("queued", "RQ-0001", "RQ-0001#3", data={"iteration": 3, "phase": "review"}))
    out = "".join(f"line {i}\n" for i in range(100))
    gate = GateResult(CheckRun(False, "make ci", 2, out), 1.25)
    table.apply(Event("check", "RQ-0001", "RQ-0001#3", data=gate.event_data()))
    row = table.df().iloc[0]
    assert (row["phase"], row["status"], row["check_exit_code"]) == ("review", "check_failed", 2)
    assert row["check_s"] == 1.25
    assert row["error"] == "check failed: `make ci` exited 2; line 40; line 41; line 42"


def test_a_plan_phase_that_wrote_no_file_hands_on_its_reply_or_fails(tmp_path):
    from types import SimpleNamespace

    repo, ws = tmp_path / "repo", tmp_path / "ws"
    h = Handoffs(repo, "RQ-0001", why_again="earlier failure")
    assert h.take("plan", ws, SimpleNamespace(last_message="1. do it")) == ""
    assert h.plan_text == "1. do it" and h.why_again == ""
    assert (repo / ".ralph" / "cache" / "plans" / "RQ-0001.md").read_text() == "1. do it\n"
    error = h.take("plan", ws, SimpleNamespace(last_message=None))
    assert error.startswith("the plan phase wrote no plan to ") and "RQ-0001.md" in error
