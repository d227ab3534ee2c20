"""Runner objects: exact argv, environment pass-through, prompt delivery, missing CLIs,
task-controlled values, `Command` placeholders, prompts and a task's `agent` field."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

import ralphnb
from ralphnb.errors import RunnerError
from ralphnb.runners import (
    Claude,
    Codex,
    Command,
    Cursor,
    Demo,
    Gemini,
    Opencode,
    build_prompt,
    get_runner,
    iterations_for_task,
    runner_for_task,
    task_from_prompt,
)
from ralphnb.runners.base import path_with_ralphnb
from ralphnb.runners.claude import DEFAULT_ALLOWED_TOOLS

ALLOWED = "--allowedTools=" + ",".join(DEFAULT_ALLOWED_TOOLS)
TASK = {"id": "RQ-0007", "title": "Fix the parser", "status": "todo"}
PROMISE = "<promise>COMPLETE</promise>"


def fake_cli(tmp_path: Path, name: str) -> str:
    p = tmp_path / "bin" / name
    p.parent.mkdir(exist_ok=True)
    p.write_text("#!/bin/sh\nexit 0\n")
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return str(p)


@pytest.fixture
def ws(tmp_path: Path) -> tuple[Path, Path]:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    prompt = tmp_path / "prompt.md"
    prompt.write_text("Do the task\n")
    return workspace, prompt


def test_claude_argv_prompt_on_stdin_and_api_env(tmp_path, ws, monkeypatch):
    workspace, prompt = ws
    exe = fake_cli(tmp_path, "claude")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-other")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    r = Claude(
        executable=exe,
        model="sonnet",
        permission_mode="acceptEdits",
        env={"EXTRA": "1"},
        extra_args=["--max-budget-usd", "1"],
    )
    spec = r.command(TASK, workspace=workspace, prompt_file=prompt, iteration=1)
    assert spec.argv == [
        exe,
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--model=sonnet",
        "--permission-mode=acceptEdits",
        ALLOWED,
        "--max-budget-usd",
        "1",
    ]
    assert spec.stdin_path == prompt
    assert spec.env["ANTHROPIC_API_KEY"] == "sk-test"
    assert spec.env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9"
    assert spec.env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert spec.env["EXTRA"] == "1"
    assert "OPENAI_API_KEY" not in spec.env and "AWS_SECRET_ACCESS_KEY" not in spec.env


def test_claude_resume_and_no_bypass_by_default(tmp_path, ws):
    workspace, prompt = ws
    exe = fake_cli(tmp_path, "claude")
    spec = Claude(executable=exe).command(
        TASK, workspace=workspace, prompt_file=prompt, iteration=2, session_id="0bf51e4f-af97-4eb6"
    )
    assert spec.argv == [
        exe,
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        ALLOWED,
        "--resume=0bf51e4f-af97-4eb6",
    ]
    assert not any("dangerously" in a or "bypass" in a for a in spec.argv)
    assert "Bash(ralphnb task done:*)" in ALLOWED and "Bash(git commit:*)" in ALLOWED
    bare = Claude(executable=exe, allowed_tools=()).command(
        TASK, workspace=workspace, prompt_file=prompt, iteration=1
    )
    assert bare.argv == [exe, "-p", "--output-format", "stream-json", "--verbose"]
    opted = Claude(executable=exe, bypass_permissions=True).command(
        TASK, workspace=workspace, prompt_file=prompt, iteration=1
    )
    assert "--permission-mode=bypassPermissions" in opted.argv


def test_codex_argv(tmp_path, ws, monkeypatch):
    workspace, prompt = ws
    exe = fake_cli(tmp_path, "codex")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-o")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-a")
    spec = Codex(executable=exe, model="gpt-5.3-codex").command(
        TASK, workspace=workspace, prompt_file=prompt, iteration=1
    )
    assert spec.argv == [
        exe,
        "exec",
        "--json",
        "--model=gpt-5.3-codex",
        "--sandbox=workspace-write",
        "--skip-git-repo-check",
        "-",
    ]
    assert spec.stdin_path == prompt
    assert spec.env["OPENAI_API_KEY"] == "sk-o" and "ANTHROPIC_API_KEY" not in spec.env
    (workspace / ".git").mkdir()
    spec = Codex(executable=exe, bypass_permissions=True, effort="high").command(
        TASK, workspace=workspace, prompt_file=prompt, iteration=2, session_id="th_1"
    )
    assert spec.argv == [
        exe,
        "exec",
        "--json",
        "--dangerously-bypass-approvals-and-sandbox",
        "-c",
        "model_reasoning_effort=high",
        "resume",
        "th_1",
        "-",
    ]


def test_gemini_opencode_cursor_argv(tmp_path, ws, monkeypatch):
    workspace, prompt = ws
    monkeypatch.setenv("GEMINI_API_KEY", "g")
    monkeypatch.setenv("CURSOR_API_KEY", "c")
    g = fake_cli(tmp_path, "gemini")
    spec = Gemini(executable=g, model="gemini-2.5-pro").command(
        TASK, workspace=workspace, prompt_file=prompt, iteration=1
    )
    assert spec.argv == [
        g,
        "--output-format",
        "stream-json",
        "--model=gemini-2.5-pro",
        "--prompt=Carry out the task described above.",
    ]
    assert spec.stdin_path == prompt and spec.env["GEMINI_API_KEY"] == "g"
    assert spec.env["GEMINI_CLI_TRUST_WORKSPACE"] == "true"
    assert (
        "--approval-mode=auto_edit"
        in Gemini(executable=g, approval_mode="auto_edit")
        .command(TASK, workspace=workspace, prompt_file=prompt, iteration=1)
        .argv
    )
    assert "CURSOR_API_KEY" not in spec.env

    o = fake_cli(tmp_path, "opencode")
    spec = Opencode(executable=o, model="anthropic/claude-sonnet-4").command(
        TASK, workspace=workspace, prompt_file=prompt, iteration=1, session_id="ses_1"
    )
    assert spec.argv == [
        o,
        "run",
        "--format",
        "json",
        "--model=anthropic/claude-sonnet-4",
        "--session=ses_1",
        "Carry out the task given on standard input.",
    ]
    assert spec.stdin_path == prompt

    c = fake_cli(tmp_path, "cursor-agent")
    prompt.write_text("--force is not a flag here")
    spec = Cursor(executable=c).command(TASK, workspace=workspace, prompt_file=prompt, iteration=1)
    assert spec.argv == [
        c,
        "--print",
        "--output-format",
        "stream-json",
        "--trust",
        "--",
        "--force is not a flag here",
    ]
    forced = Cursor(executable=c, bypass_permissions=True, trust=False, model="gpt-5").command(
        TASK, workspace=workspace, prompt_file=prompt, iteration=2, session_id="c6b62c6f"
    )
    assert forced.argv == [
        c,
        "--print",
        "--output-format",
        "stream-json",
        "--model=gpt-5",
        "--resume=c6b62c6f",
        "--force",
        "--",
        "--force is not a flag here",
    ]
    assert spec.stdin_path is None and spec.env["CURSOR_API_KEY"] == "c"


def test_missing_cli_names_runner_executable_and_install(tmp_path, ws, monkeypatch):
    workspace, prompt = ws
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    for cls, exe, hint in [
        (Claude, "claude", "@anthropic-ai/claude-code"),
        (Codex, "codex", "@openai/codex"),
        (Gemini, "gemini", "@google/gemini-cli"),
        (Opencode, "opencode", "opencode-ai"),
        (Cursor, "cursor-agent", "cursor.com/install"),
    ]:
        with pytest.raises(RunnerError) as ei:
            cls().command(TASK, workspace=workspace, prompt_file=prompt, iteration=1)
        msg = str(ei.value)
        assert cls.name in msg and exe in msg and hint in msg
        assert ei.value.runner == cls.name
    with pytest.raises(RunnerError, match="no-such-agent"):
        Command(["no-such-agent", "{prompt_file}"]).command(
            TASK, workspace=workspace, prompt_file=prompt, iteration=1
        )


@pytest.mark.parametrize("bad", ["--dangerously-skip-permissions", "a b", "x;rm -rf /", "-m"])
def test_task_controlled_values_cannot_become_flags(tmp_path, ws, bad):
    workspace, prompt = ws
    exe = fake_cli(tmp_path, "claude")
    task = {**TASK, "agent": {"model": bad}}
    runner = runner_for_task(Claude(executable=exe), task)
    with pytest.raises(RunnerError, match="not allowed"):
        runner.command(task, workspace=workspace, prompt_file=prompt, iteration=1)
    with pytest.raises(RunnerError):
        Claude(executable=exe).command(
            TASK, workspace=workspace, prompt_file=prompt, iteration=1, session_id=bad
        )


def test_command_placeholders_per_element_no_shell(tmp_path, ws):
    workspace, prompt = ws
    prompt.write_text("say $(whoami) `id` {task_id}")
    task = {"id": "RQ-0001", "title": "t; rm -rf ~"}
    r = Command(
        [
            "{python}",
            "agent.py",
            "--file={prompt_file}",
            "{task_id}",
            "{workspace}",
            "it-{iteration}",
            "{prompt}",
            '{"json": true}',
            "{unknown}",
        ]
    )
    spec = r.command(task, workspace=workspace, prompt_file=prompt, iteration=3)
    assert spec.argv == [
        sys.executable,
        "agent.py",
        f"--file={prompt}",
        "RQ-0001",
        str(workspace),
        "it-3",
        "say $(whoami) `id` {task_id}",
        '{"json": true}',
        "{unknown}",
    ]
    assert spec.stdin_path is None
    s = Command("{python} -c 'print(1)' {task_id}", stdin_prompt=True).command(
        task, workspace=workspace, prompt_file=prompt, iteration=1
    )
    assert s.argv == [sys.executable, "-c", "print(1)", "RQ-0001"]
    assert s.stdin_path == prompt


def test_command_parser_choice():
    assert type(Command(["x"]).parser()).__name__ == "TextParser"
    assert type(Command(["x"], parser="claude").parser()).__name__ == "ClaudeStreamParser"
    assert Command(["x"]).parser().feed("hello\n") == [{"type": "text", "text": "hello"}]


def test_demo_runner_runs_this_interpreter(ws, monkeypatch):
    workspace, prompt = ws
    monkeypatch.setenv("RALPHNB_DEMO_SPEED", "0.5")
    spec = Demo().command(TASK, workspace=workspace, prompt_file=prompt, iteration=1)
    assert spec.argv == [sys.executable, "-m", "ralphnb.demo.agent", "--prompt-file", str(prompt)]
    assert spec.env["RALPHNB_DEMO_SPEED"] == "0.5"
    assert Path(spec.env["PYTHONPATH"].split(os.pathsep)[0], "ralphnb", "demo").is_dir()
    assert (
        Demo(speed=0)
        .command(TASK, workspace=workspace, prompt_file=prompt, iteration=1)
        .env["RALPHNB_DEMO_SPEED"]
        == "0.0"
    )


def test_get_runner_names_objects_and_errors():
    assert isinstance(get_runner("claude"), Claude)
    assert isinstance(get_runner("demo"), Demo)
    assert isinstance(get_runner("cursor-agent"), Cursor)
    r = Codex(model="m")
    assert get_runner(r) is r
    assert isinstance(get_runner(Gemini), Gemini)
    with pytest.raises(RunnerError, match="unknown runner 'kimi'.*claude.*Command"):
        get_runner("kimi")
    for name in ("Claude", "Codex", "Gemini", "Opencode", "Cursor", "Command", "Demo"):
        assert getattr(ralphnb, name).__module__.startswith("ralphnb.runners")


def test_runner_for_task_honours_agent_field():
    base = Demo()
    assert runner_for_task(base, TASK) is base
    t = {
        **TASK,
        "agent": {"runner": "codex", "model": "gpt-5.4", "model_effort": "high", "iterations": 4},
    }
    r = runner_for_task(base, t)
    assert isinstance(r, Codex) and r.model == "gpt-5.4" and r.effort == "high"
    only_model = runner_for_task(
        Claude(model="opus", permission_mode="acceptEdits"), {**TASK, "agent": {"model": "sonnet"}}
    )
    assert isinstance(only_model, Claude) and only_model.model == "sonnet"
    assert only_model.permission_mode == "acceptEdits"
    assert iterations_for_task(t, 5) == 4
    assert iterations_for_task(TASK, 5) == 5
    assert iterations_for_task({**TASK, "agent": {"iterations": None}}, 2) == 2
    with pytest.raises(RunnerError, match="pi"):
        runner_for_task(base, {**TASK, "agent": {"runner": "pi"}})


def test_build_prompt_default_has_task_json_and_instructions(tmp_path):
    task = {**TASK, "title": "Quote ``` and {braces}", "custom_fields": {"demo.file": "a"}}
    p = build_prompt(task, workspace=tmp_path, completion_promise=PROMISE, iteration=2)
    assert task_from_prompt(p) == task
    assert "ralphnb task done RQ-0007" in p and PROMISE in p and str(tmp_path) in p
    assert "commit" in p and "iteration 2" in p


def test_build_prompt_templates(tmp_path):
    dollar = build_prompt(
        TASK,
        workspace=tmp_path,
        completion_promise=PROMISE,
        template='{"json": 1} $task_id ${title} $done_command',
    )
    assert dollar == '{"json": 1} RQ-0007 Fix the parser ralphnb task done RQ-0007'
    fmt = build_prompt(
        TASK,
        workspace=tmp_path,
        completion_promise=PROMISE,
        template="{task_id}: {title} -> {completion_promise}\n{task_json}",
    )
    assert fmt.startswith("RQ-0007: Fix the parser -> " + PROMISE)
    assert task_from_prompt("```json\n" + fmt.split("\n", 1)[1] + "\n```") == TASK
    with pytest.raises(RunnerError, match="nope"):
        build_prompt(TASK, workspace=tmp_path, completion_promise=PROMISE, template="{nope}")


def test_path_gets_ralphnb_scripts_dir_only_when_needed(tmp_path):
    bindir = os.path.dirname(sys.executable)
    if not os.path.exists(os.path.join(bindir, "ralphnb")):
        pytest.skip("ralphnb is not installed beside this interpreter")
    fixed = path_with_ralphnb({"PATH": str(tmp_path)})
    assert fixed == {"PATH": bindir + os.pathsep + str(tmp_path)}
    assert path_with_ralphnb({"PATH": bindir}) == {}


def test_diagnose_names_runner_command_and_what_to_do():
    from ralphnb.runners import ClaudeStreamParser

    assert Claude().diagnose(0, ClaudeStreamParser()) is None
    msg = Claude().diagnose(3, ClaudeStreamParser(), "line1\nfatal: no credentials\n")
    assert msg.startswith("claude runner: `claude` exited with code 3 before starting a session")
    assert "fatal: no credentials" in msg and "ANTHROPIC_API_KEY" in msg
    p = ClaudeStreamParser()
    p.feed(
        '{"type":"result","is_error":true,"result":"API Error: 401 Invalid API key",'
        '"session_id":"s1","num_turns":1}'
    )
    msg = Claude().diagnose(1, p)
    assert "exited with code 1: API Error: 401 Invalid API key" in msg
    assert "killed by signal 9" in Codex().diagnose(None, signal=9)
    assert "OPENAI_API_KEY" in Codex().diagnose(1)
    assert Demo().diagnose(2).startswith("demo runner: `python -m ralphnb.demo.agent` exited")
    assert Command(["my-agent"]).diagnose(1).startswith("command runner: `my-agent`")


def test_command_passes_only_the_variables_it_names(tmp_path, ws, monkeypatch):
    workspace, prompt = ws
    monkeypatch.setenv("MY_AGENT_KEY", "k1")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k2")
    exe = fake_cli(tmp_path, "my-agent")
    plain = Command([exe]).command(TASK, workspace=workspace, prompt_file=prompt, iteration=1)
    assert "MY_AGENT_KEY" not in plain.env and "ANTHROPIC_API_KEY" not in plain.env
    named = Command([exe], env_passthrough=["MY_AGENT_*"], env={"X": "1"}).command(
        TASK, workspace=workspace, prompt_file=prompt, iteration=1
    )
    assert named.env["MY_AGENT_KEY"] == "k1" and named.env["X"] == "1"
    assert "ANTHROPIC_API_KEY" not in named.env
