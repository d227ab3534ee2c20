"""Runner objects: exact argv, environment pass-through, prompt delivery, missing CLIs,
task-controlled values, `Command` placeholders, prompts and a task's `agent` field."""

from __future__ import annotations

import json
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
    Kimi,
    Opencode,
    Pi,
    build_prompt,
    get_runner,
    iterations_for_task,
    runner_for_task,
    runner_from_config,
    task_from_prompt,
)
from ralphnb.runners.base import path_with_ralphnb
from ralphnb.runners.claude import DEFAULT_ALLOWED_TOOLS
from ralphnb.runners.codex import STARTUP_OFF
from ralphnb.runners.kimi import SHIM as KIMI_SHIM

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
    quiet = [*STARTUP_OFF, "-c", "allow_login_shell=false"]
    assert spec.argv == [
        exe,
        "exec",
        "--json",
        *quiet,
        "--model=gpt-5.3-codex",
        "-c",
        'sandbox_mode="workspace-write"',
        "--skip-git-repo-check",
        "-",
    ]
    assert "--disable" in quiet and "analytics.enabled=false" in quiet
    assert spec.stdin_path == prompt
    assert spec.env["OPENAI_API_KEY"] == "sk-o" and "ANTHROPIC_API_KEY" not in spec.env
    assert "CODEX_HOME" not in spec.env  # the user's own ~/.codex unless asked
    (workspace / ".git").mkdir()
    spec = Codex(executable=exe, bypass_permissions=True, effort="high").command(
        TASK, workspace=workspace, prompt_file=prompt, iteration=2, session_id="th_1"
    )
    assert spec.argv == [
        exe,
        "exec",
        "--json",
        *quiet,
        "--dangerously-bypass-approvals-and-sandbox",
        "-c",
        "model_reasoning_effort=high",
        "resume",
        "th_1",
        "-",
    ]


def test_codex_endpoint_is_config_flags_and_a_private_home(tmp_path, ws, monkeypatch):
    workspace, prompt = ws
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    exe = fake_cli(tmp_path, "codex")
    r = Codex(
        executable=exe,
        model="qwen",
        base_url="http://127.0.0.1:8000/v1",
        api_key_env="MY_KEY",
        max_retries=0,
        writable_dirs=[tmp_path / "repo" / ".ralph"],
    )
    monkeypatch.setenv("MY_KEY", "sk-mine")
    spec = r.command(TASK, workspace=workspace, prompt_file=prompt, iteration=1)
    provider = spec.argv[spec.argv.index("model_provider=ralphnb") + 2]
    assert provider == (
        'model_providers.ralphnb={name="ralphnb", base_url="http://127.0.0.1:8000/v1", '
        'wire_api="responses", env_key="MY_KEY", request_max_retries=0, stream_max_retries=0}'
    )
    roots = (
        f"sandbox_workspace_write.writable_roots={json.dumps([str(tmp_path / 'repo' / '.ralph')])}"
    )
    assert roots in spec.argv
    assert spec.env["MY_KEY"] == "sk-mine"  # passed through by name, never written anywhere
    home = Path(spec.env["CODEX_HOME"])
    assert home.is_dir() and not home.is_relative_to(tmp_path / "user")
    again = r.command(TASK, workspace=workspace, prompt_file=prompt, iteration=2)
    assert again.env["CODEX_HOME"] == str(home)  # a resume finds its session files
    assert not (tmp_path / "user").exists()
    with pytest.raises(RunnerError, match="variable name"):
        Codex(api_key_env="sk-the-key-itself")


def test_gemini_argv_auto_edit_policy_and_settings(tmp_path, ws, monkeypatch):
    workspace, prompt = ws
    monkeypatch.setenv("GEMINI_API_KEY", "g")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    g = fake_cli(tmp_path, "gemini")
    spec = Gemini(executable=g, model="gemini-2.5-pro").command(
        TASK, workspace=workspace, prompt_file=prompt, iteration=1
    )
    policy = next(a for a in spec.argv if a.startswith("--policy="))
    assert spec.argv == [
        g,
        "--output-format",
        "stream-json",
        "--model=gemini-2.5-pro",
        "--approval-mode=auto_edit",
        policy,
        "--prompt=Carry out the task described above.",
    ]
    rules = Path(policy.split("=", 1)[1]).read_text()
    assert '"ralphnb task done"' in rules and '"git commit"' in rules and "allow" in rules
    assert spec.stdin_path == prompt and spec.env["GEMINI_API_KEY"] == "g"
    assert spec.env["GEMINI_CLI_TRUST_WORKSPACE"] == "true"
    settings = json.loads(Path(spec.env["GEMINI_CLI_SYSTEM_SETTINGS_PATH"]).read_text())
    assert (
        Path(spec.env["GEMINI_CLI_SYSTEM_SETTINGS_PATH"]).parent == tmp_path / "cache" / "ralphnb"
    )
    assert settings["privacy"]["usageStatisticsEnabled"] is False
    assert settings["telemetry"]["enabled"] is False
    assert settings["general"]["enableAutoUpdate"] is False
    yolo = Gemini(executable=g, bypass_permissions=True).command(
        TASK, workspace=workspace, prompt_file=prompt, iteration=2, session_id="s-1"
    )
    assert "--approval-mode=yolo" in yolo.argv and "--resume=s-1" in yolo.argv
    assert not any(a.startswith("--policy") for a in yolo.argv)


def test_gemini_endpoint_writes_settings_into_the_private_home(tmp_path, ws, monkeypatch):
    workspace, prompt = ws
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("MY_GEMINI", "secret-value")
    g = fake_cli(tmp_path, "gemini")
    r = Gemini(
        executable=g,
        base_url="http://127.0.0.1:9000",
        api_key_env="MY_GEMINI",
        home=tmp_path / "homes",
        max_retries=0,
    )
    spec = r.command(TASK, workspace=workspace, prompt_file=prompt, iteration=1)
    home = Path(spec.env["GEMINI_CLI_HOME"])
    assert home.parent == tmp_path / "homes"
    settings = json.loads((home / ".gemini" / "settings.json").read_text())
    assert settings["security"]["auth"]["selectedType"] == "gemini-api-key"
    assert settings["general"]["maxAttempts"] == 1
    assert "secret-value" not in (home / ".gemini" / "settings.json").read_text()
    assert spec.env["GOOGLE_GEMINI_BASE_URL"] == "http://127.0.0.1:9000"
    assert spec.env["GEMINI_API_KEY"] == "secret-value"
    assert "GEMINI_CLI_SYSTEM_SETTINGS_PATH" not in spec.env
    assert not (tmp_path / "user").exists()


def test_opencode_argv_config_in_env_and_permissions(tmp_path, ws, monkeypatch):
    workspace, prompt = ws
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    o = fake_cli(tmp_path, "opencode")
    spec = Opencode(executable=o, model="anthropic/claude-sonnet-4").command(
        TASK, workspace=workspace, prompt_file=prompt, iteration=1, session_id="ses_1"
    )
    assert spec.argv == [
        o,
        "run",
        "--format",
        "json",
        "--title=RQ-0007",
        "--model=anthropic/claude-sonnet-4",
        "--session=ses_1",
        "Carry out the task given on standard input.",
    ]
    assert spec.stdin_path == prompt
    cfg = json.loads(spec.env["OPENCODE_CONFIG_CONTENT"])
    assert cfg["permission"]["edit"] == "allow" and cfg["permission"]["webfetch"] == "deny"
    assert cfg["permission"]["bash"]["*"] == "deny"
    assert cfg["permission"]["bash"]["ralphnb task done*"] == "allow"
    assert cfg["autoupdate"] is False and cfg["share"] == "disabled"
    assert spec.env["OPENCODE_PURE"] == "1" and spec.env["OPENCODE_DISABLE_AUTOUPDATE"] == "1"
    assert "XDG_CONFIG_HOME" not in spec.env
    own = Opencode(
        executable=o,
        model="qwen",
        base_url="http://127.0.0.1:8000/v1",
        api_key_env="MY_KEY",
        price=(0.5, 1.5),
        bypass_permissions=True,
        plugins=True,
    ).command(TASK, workspace=workspace, prompt_file=prompt, iteration=1)
    cfg = json.loads(own.env["OPENCODE_CONFIG_CONTENT"])
    provider = cfg["provider"]["ralphnb"]
    assert provider["options"] == {"baseURL": "http://127.0.0.1:8000/v1", "apiKey": "{env:MY_KEY}"}
    assert provider["models"]["qwen"]["cost"] == {"input": 0.5, "output": 1.5}
    assert cfg["model"] == "ralphnb/qwen" and cfg["permission"]["bash"] == "allow"
    assert "OPENCODE_PURE" not in own.env and "--model=qwen" not in own.argv
    assert Path(own.env["XDG_CONFIG_HOME"]).parent.is_dir()
    assert not (tmp_path / "user").exists()


def test_cursor_argv(tmp_path, ws, monkeypatch):
    workspace, prompt = ws
    monkeypatch.setenv("CURSOR_API_KEY", "c")
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


def test_pi_argv_tools_allow_list_and_private_models_json(tmp_path, ws, monkeypatch):
    workspace, prompt = ws
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    exe = fake_cli(tmp_path, "pi")
    spec = Pi(executable=exe, provider="anthropic", model="claude-sonnet-4-5").command(
        TASK, workspace=workspace, prompt_file=prompt, iteration=1
    )
    assert spec.argv == [
        exe,
        "-p",
        "--mode",
        "json",
        "--no-themes",
        "--tools",
        "read,write,edit",
        "--no-extensions",
        "--provider",
        "anthropic",
        "--model",
        "claude-sonnet-4-5",
        "Carry out the task given above.",
    ]
    assert spec.stdin_path == prompt and spec.env["PI_OFFLINE"] == "1"
    assert "PI_CODING_AGENT_DIR" not in spec.env
    own = Pi(
        executable=exe,
        model="qwen",
        base_url="http://127.0.0.1:8000/v1",
        api_key_env="MY_KEY",
        price=(1.0, 2.0),
        max_retries=0,
        bypass_permissions=True,
    )
    spec = own.resume_command(
        TASK, workspace=workspace, prompt_file=prompt, iteration=2, session_id="01a2-b3"
    )
    assert spec.argv[spec.argv.index("--tools") + 1] == "read,bash,edit,write,grep,find,ls"
    assert spec.argv[-3:] == ["--session", "01a2-b3", "Carry out the task given above."]
    assert spec.argv[spec.argv.index("--provider") + 1] == "ralphnb"
    agent_dir = Path(spec.env["PI_CODING_AGENT_DIR"])
    models = json.loads((agent_dir / "models.json").read_text())["providers"]["ralphnb"]
    assert models["baseUrl"] == "http://127.0.0.1:8000/v1" and models["apiKey"] == "MY_KEY"
    assert models["models"][0]["cost"]["input"] == 1.0
    retry = json.loads((agent_dir / "settings.json").read_text())["retry"]
    assert retry["enabled"] is False
    assert not (tmp_path / "user").exists()


def test_kimi_argv_runs_the_shim_with_file_tools_only(tmp_path, ws, monkeypatch):
    workspace, prompt = ws
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("MY_KEY", "sk-kimi-secret")
    exe = fake_cli(tmp_path, "kimi")
    spec = Kimi(executable=exe).command(TASK, workspace=workspace, prompt_file=prompt, iteration=1)
    assert spec.argv[:8] == [
        sys.executable,
        str(KIMI_SHIM),
        exe,
        "--print",
        "--input-format",
        "text",
        "--output-format",
        "stream-json",
    ]
    agent = Path(spec.argv[spec.argv.index("--agent-file") + 1]).read_text()
    assert "extend: default" in agent and "kimi_cli.tools.shell:Shell" in agent
    assert spec.stdin_path == prompt and "KIMI_SHARE_DIR" not in spec.env
    own = Kimi(
        executable=exe,
        model="kimi-k2",
        base_url="http://127.0.0.1:8000/v1",
        api_key_env="MY_KEY",
        shell=True,
        max_retries=0,
    ).resume_command(TASK, workspace=workspace, prompt_file=prompt, iteration=2, session_id="a-1")
    assert "--agent-file" not in own.argv
    cfg = json.loads(own.argv[own.argv.index("--config") + 1])
    assert cfg["telemetry"] is False
    assert cfg["providers"]["ralphnb"] == {
        "type": "openai_legacy",
        "base_url": "http://127.0.0.1:8000/v1",
        "api_key": "",
    }
    assert "sk-kimi-secret" not in " ".join(own.argv)
    assert own.env["OPENAI_API_KEY"] == "sk-kimi-secret"
    assert own.argv[-4:] == ["--max-retries-per-step", "1", "--session", "a-1"]
    assert Path(own.env["KIMI_SHARE_DIR"]).is_dir()
    assert Kimi().display_command() == "kimi"


def test_resume_command_needs_a_session_and_a_runner_that_can_resume(tmp_path, ws):
    workspace, prompt = ws
    exe = fake_cli(tmp_path, "claude")
    spec = Claude(executable=exe).resume_command(
        TASK, workspace=workspace, prompt_file=prompt, iteration=2, session_id="s1"
    )
    assert "--resume=s1" in spec.argv
    with pytest.raises(RunnerError, match="no session id"):
        Claude(executable=exe).resume_command(
            TASK, workspace=workspace, prompt_file=prompt, iteration=2, session_id=""
        )
    with pytest.raises(RunnerError, match="not allowed"):
        Claude(executable=exe).resume_command(
            TASK, workspace=workspace, prompt_file=prompt, iteration=2, session_id="--yolo"
        )


def test_missing_cli_names_runner_executable_and_install(tmp_path, ws, monkeypatch):
    workspace, prompt = ws
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    for cls, exe, hint in [
        (Claude, "claude", "@anthropic-ai/claude-code"),
        (Codex, "codex", "@openai/codex"),
        (Gemini, "gemini", "@google/gemini-cli"),
        (Opencode, "opencode", "opencode-ai"),
        (Cursor, "cursor-agent", "cursor.com/install"),
        (Pi, "pi", "@mariozechner/pi-coding-agent"),
        (Kimi, "kimi", "kimi-cli==1.51.0"),
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
    assert isinstance(get_runner("pi"), Pi) and isinstance(get_runner("kimi"), Kimi)
    with pytest.raises(RunnerError, match="unknown runner 'nope'.*kimi.*pi.*Command"):
        get_runner("nope")
    for name in (
        "Claude",
        "Codex",
        "Gemini",
        "Opencode",
        "Pi",
        "Kimi",
        "Cursor",
        "Command",
        "Demo",
    ):
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
    pi = runner_for_task(base, {**TASK, "agent": {"runner": "pi", "model": "glm-4.6"}})
    assert isinstance(pi, Pi) and pi.model == "glm-4.6"
    with pytest.raises(RunnerError, match="nope"):
        runner_for_task(base, {**TASK, "agent": {"runner": "nope"}})


def test_runner_from_ralph_config_uses_runner_model_and_bin():
    r = runner_from_config({"runner": "pi", "model": "m1", "pi_bin": "/opt/pi/bin/pi"})
    assert isinstance(r, Pi) and r.executable == "/opt/pi/bin/pi" and r.model == "m1"
    k = runner_from_config({"kimi_bin": "/x/kimi"}, default="kimi")
    assert isinstance(k, Kimi) and k.executable == "/x/kimi"
    assert isinstance(runner_from_config({"runner": "codex", "pi_bin": "/p"}), Codex)
    with pytest.raises(RunnerError, match="no runner configured"):
        runner_from_config({})


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
