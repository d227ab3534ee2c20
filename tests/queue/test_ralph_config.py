"""ralph's configuration resolved as ralph resolves it: `ralphnb.config(repo)`.

Rules come from ralph's crates/ralph/src/config/ (resolution.rs: layer order and paths;
layer.rs: leaf-wise merge; trust.rs and validation/trust.rs: project commands need trust;
validation/*.rs: what a config may hold) and the published config.schema.json.
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import FrozenInstanceError
from pathlib import Path

import jsonschema
import pytest

import ralphnb
from ralphnb.errors import QueueError
from ralphnb.queue.config import (
    ConfigError,
    ConfigWarning,
    QueueSettings,
    global_config_path,
    load_queue_settings,
    read_layer,
)
from ralphnb.queue.config_model import DEFAULTS
from ralphnb.queue.store import Queue

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ralph"


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> Path:
    """An empty XDG_CONFIG_HOME: the global config is `<home>/ralph/config.jsonc`."""
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    return xdg


def _repo(tmp_path: Path, config: dict | str | None = None, *, trusted: bool = False) -> Path:
    repo = tmp_path / "repo"
    (repo / ".ralph").mkdir(parents=True, exist_ok=True)
    if config is not None:
        text = config if isinstance(config, str) else json.dumps(config)
        (repo / ".ralph" / "config.jsonc").write_text(text)
    if trusted:
        (repo / ".ralph" / "trust.jsonc").write_text('{"allow_project_commands": true}')
    return repo


def _global(home: Path, config: dict) -> Path:
    path = home / "ralph" / "config.jsonc"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config))
    return path


def _quiet(repo: Path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)
        return ralphnb.config(repo, **kw)


def test_ralphs_own_project_config_needs_trust_for_its_ci_gate(tmp_path: Path, home: Path):
    # validation/trust.rs: an untrusted project config setting agent.ci_gate is refused
    repo = _repo(tmp_path)
    shutil.copy(FIXTURES / "config.jsonc", repo / ".ralph" / "config.jsonc")
    with pytest.raises(ConfigError) as info:
        ralphnb.config(repo)
    err = info.value
    assert err.field == "agent.ci_gate" and err.path == repo / ".ralph" / "config.jsonc"
    assert "trust.jsonc" in str(err) and "allow_project_commands" in str(err)
    assert "\n" not in str(err)
    # the queue still opens: editing tasks runs no command
    assert load_queue_settings(repo) == QueueSettings()


def test_ralphs_own_project_config_resolves_once_trusted(tmp_path: Path, home: Path):
    repo = _repo(tmp_path, trusted=True)
    shutil.copy(FIXTURES / "config.jsonc", repo / ".ralph" / "config.jsonc")
    with pytest.warns(ConfigWarning) as caught:
        cfg = ralphnb.config(repo)
    assert cfg.trusted and cfg.files["project"] == repo / ".ralph" / "config.jsonc"
    assert (cfg.agent.runner, cfg.source("agent.runner")) == ("pi", "project")
    assert (cfg.agent.phases, cfg.source("agent.phases")) == (3, "project")
    assert cfg.agent.model == "openai-codex/gpt-5.5:high"
    assert cfg.agent.ci_gate.argv == ("make", "agent-ci") and cfg.agent.ci_gate.enabled
    assert cfg.source("agent.ci_gate") == "project"
    assert (cfg.agent.git_publish_mode, cfg.source("agent.git_publish_mode")) == (
        "commit_and_push",
        "project",
    )
    assert (cfg.agent.iterations, cfg.source("agent.iterations")) == (1, "default")
    assert cfg.queue.id_prefix == "RQ" and cfg.source("queue.id_prefix") == "default"
    keys = [w.split()[0] for w in cfg.warnings]
    assert keys == [
        "agent.runner",
        "agent.model",
        "agent.ci_gate",
        "agent.phases",
    ]  # agent.git_publish_mode is honoured: Loop(publish=...)
    assert [str(w.message) for w in caught] == list(cfg.warnings)  # one warning per key


def test_untrusted_project_may_not_set_binaries_plugin_runners_or_plugins(
    tmp_path: Path, home: Path
):
    # validation/agent.rs agent_has_execution_settings; validation/trust.rs layer check
    for config, key in (
        ({"agent": {"claude_bin": "/tmp/evil"}}, "agent.claude_bin"),
        ({"agent": {"runner": "acme.runner"}}, "agent.runner"),
        ({"plugins": {"plugins": {"x": {"enabled": True}}}}, "plugins.plugins"),
        ({"profiles": {"fast": {"ci_gate": {"argv": ["x"]}}}}, "profiles.fast.ci_gate"),
        (
            {"agent": {"phase_overrides": {"phase2": {"runner": "acme"}}}},
            "agent.phase_overrides.phase2.runner",
        ),
    ):
        repo = _repo(tmp_path, {"version": 2, **config})
        with pytest.raises(ConfigError) as info:
            ralphnb.config(repo)
        assert info.value.field == key
        (repo / ".ralph" / "trust.jsonc").write_text('{"allow_project_commands": true}')
        _quiet(repo)
        (repo / ".ralph" / "trust.jsonc").unlink()
    # a built-in runner runs nothing of the project's choosing; the global config is trusted
    assert _quiet(_repo(tmp_path, {"agent": {"runner": "Claude"}})).agent.runner == "claude"
    _global(home, {"agent": {"ci_gate": {"argv": ["make", "test"]}}})
    cfg = _quiet(_repo(tmp_path, {"agent": {"phases": 2}}))
    assert cfg.agent.ci_gate.argv == ("make", "test") and cfg.source("agent.ci_gate") == "global"


def test_layers_apply_in_ralphs_order_later_wins(tmp_path: Path, home: Path):
    # resolution.rs: defaults, global, project, then the profile; then the task and arguments
    gpath = _global(home, {"agent": {"runner": "codex", "model": "g", "phases": 2}})
    repo = _repo(
        tmp_path,
        {
            "agent": {"model": "p", "iterations": 3},
            "profiles": {"fast": {"phases": 1, "iterations": 4, "reasoning_effort": "low"}},
        },
    )
    task = {"id": "RQ-0001", "agent": {"iterations": 5, "model_effort": "high"}}
    cfg = _quiet(repo, profile="fast", task=task, runner="claude")
    got = {
        k: (getattr(cfg.agent, k), cfg.source(f"agent.{k}"))
        for k in ("runner", "model", "phases", "iterations", "reasoning_effort")
    }
    assert got == {
        "runner": ("claude", "argument"),
        "model": ("p", "project"),
        "phases": (1, "profile:fast"),
        "iterations": (5, "task"),
        "reasoning_effort": ("high", "task"),
    }
    assert cfg.profile == "fast" and cfg.files["global"] == gpath
    assert global_config_path({"HOME": "/h"}) == Path("/h/.config/ralph/config.jsonc")
    assert global_config_path({"XDG_CONFIG_HOME": "/x", "HOME": "/h"}) == Path(
        "/x/ralph/config.jsonc"
    )


def test_merge_is_leaf_wise_and_null_never_overrides(tmp_path: Path, home: Path):
    # layer.rs apply_layer / contracts merge_from: Some overrides, None keeps; lists replace
    _global(
        home,
        {
            "agent": {
                "ci_gate": {"argv": ["make", "check"]},
                "runner_cli": {"runners": {"codex": {"verbosity": "quiet"}}},
                "notification": {"timeout_ms": 2000},
                "instruction_files": None,
            },
            "parallel": {"push_backoff_ms": [1, 2, 3]},
        },
    )
    repo = _repo(
        tmp_path,
        {
            "agent": {
                "ci_gate": {"enabled": False},
                "runner_cli": {"runners": {"Codex": {"approval_mode": "safe"}}},
                "notification": {"enabled": False, "timeout_ms": None},
                "model": None,
            },
            "parallel": {"push_backoff_ms": [9]},
        },
        trusted=True,
    )
    cfg = _quiet(repo)
    assert cfg.agent.ci_gate.argv == ("make", "check") and cfg.agent.ci_gate.enabled is False
    codex = cfg.agent.runner_cli.runners["codex"]
    assert (codex.verbosity, codex.approval_mode, codex.sandbox) == ("quiet", "safe", "disabled")
    assert cfg.source("agent.runner_cli.runners.codex.sandbox") == "default"
    assert cfg.agent.notification.timeout_ms == 2000 and cfg.agent.notification.enabled is False
    assert cfg.agent.model == "gpt-5.4" and cfg.source("agent.model") == "default"
    assert cfg.parallel.push_backoff_ms == (9,)


def test_no_runner_named_anywhere_means_none_not_ralphs_default(tmp_path: Path, home: Path):
    cfg = _quiet(_repo(tmp_path, {"agent": {"phases": 1}}), profile="safe")
    assert cfg.agent.runner is None and cfg.source("agent.runner") is None
    assert cfg.agent.model == "gpt-5.4"  # other defaults are ralph's
    assert _quiet(_repo(tmp_path), runner=None).agent.runner is None  # None is "not given"
    assert _quiet(_repo(tmp_path), runner="gemini").source("agent.runner") == "argument"


def test_builtin_profiles_unknown_profiles_and_reserved_names(tmp_path: Path, home: Path):
    # contracts/config/profiles.rs: safe and power-user; config_rules.rs: reserved names
    cfg = _quiet(_repo(tmp_path), profile="power-user")
    assert cfg.agent.git_publish_mode == "commit_and_push"
    assert cfg.agent.runner_cli.defaults.approval_mode == "yolo"
    assert cfg.source("agent.claude_permission_mode") == "profile:power-user"
    with pytest.raises(ConfigError, match="power-user, safe"):
        _quiet(_repo(tmp_path), profile="turbo")
    repo = _repo(tmp_path, {"profiles": {"safe": {"phases": 1}}})
    with pytest.raises(ConfigError) as info:
        _quiet(repo)
    assert info.value.field == "profiles.safe"


def test_a_tasks_runner_cli_wins_over_configured_runner_options(tmp_path: Path, home: Path):
    # runner/settings: a task's runner_cli patch sits above defaults and per-runner options
    task = {"id": "RQ-0001", "agent": {"runner_cli": {"sandbox": "enabled"}}}
    cfg = _quiet(_repo(tmp_path), task=task)
    assert cfg.agent.runner_cli.defaults.sandbox == "enabled"
    assert cfg.agent.runner_cli.runners["codex"].sandbox == "enabled"
    assert cfg.source("agent.runner_cli.runners.codex.sandbox") == "task"
    with pytest.raises(ConfigError, match="agent.phases"):
        _quiet(_repo(tmp_path), task={"id": "RQ-0001", "agent": {"phases": 7}})


def test_a_task_id_reads_the_tasks_agent_block_from_the_queue(tmp_path: Path, home: Path):
    repo = tmp_path / "q"
    repo.mkdir()
    q = ralphnb.init(repo)
    t = q.add("x", agent={"runner": "opencode", "phases": 1})
    cfg = _quiet(repo, task=t.id)
    assert (cfg.agent.runner, cfg.agent.phases, cfg.source("agent.phases")) == (
        "opencode",
        1,
        "task",
    )
    assert _quiet(repo, task=q.get(t.id)).agent.runner == "opencode"


@pytest.mark.parametrize(
    ("config", "key", "allowed"),
    [
        ({"agent": {"phases": 7}}, "agent.phases", "1 to 3"),
        ({"agent": {"iterations": 0}}, "agent.iterations", "1 to 255"),
        ({"agent": {"runner": " "}}, "agent.runner", "runner id"),
        ({"agent": {"colour": "red"}}, "agent.colour", "unknown keys"),
        ({"agent": {"git_publish_mode": "push"}}, "agent.git_publish_mode", "commit_and_push"),
        ({"agent": {"webhook": {"retry_count": 11}}}, "agent.webhook.retry_count", "0 to 10"),
        ({"agent": {"notification": None}}, "agent.notification", "an object"),
        ({"version": 1}, "version", "2"),
        ({"queue": {"id_width": 0}}, "queue.id_width", "1 to 255"),
        ({"parallel": {"workers": 1}}, "parallel.workers", "2 to 255"),
        ({"parallel": {"workspace_root": "../ws"}}, "parallel.workspace_root", "'..'"),
        ({"queue": {"id_prefix": ""}}, "queue.id_prefix", "non-empty"),
        (
            {"queue": {"aging_thresholds": {"warning_days": 9, "stale_days": 3}}},
            "queue.aging_thresholds.warning_days",
            "fewer days than stale_days",
        ),
        ({"agent": {"instruction_files": [" "]}}, "agent.instruction_files", "non-empty"),
        ({"agent": {"instruction_files": ["NOPE.md"]}}, "agent.instruction_files", "exist"),
        (
            {"agent": {"webhook": {"enabled": True, "url": "http://hooks.example.com"}}},
            "agent.webhook.url",
            "allow_insecure_http",
        ),
        (
            {"agent": {"webhook": {"enabled": True, "url": "https://127.0.0.1/x"}}},
            "agent.webhook.url",
            "allow_private_targets",
        ),
        ({"agent": {"webhook": {"enabled": True}}}, "agent.webhook.url", "https://"),
        ({"agent": {"ci_gate": {"argv": ["sh", "-c", "make"]}}}, "agent.ci_gate.argv", "shell"),
        ({"agent": {"ci_gate": {"argv": []}}}, "agent.ci_gate.argv", "at least one"),
        ({"agent": {"ci_gate": {"argv": ["make", " "]}}}, "agent.ci_gate.argv", "non-empty"),
        ({"profiles": {"x": {"phases": 4}}}, "profiles.x.phases", "1 to 3"),
    ],
)
def test_a_bad_value_fails_with_one_line_naming_file_key_value_and_whats_allowed(
    tmp_path: Path, home: Path, config: dict, key: str, allowed: str
):
    repo = _repo(tmp_path, {"version": 2, **config} if "version" not in config else config)
    (repo / ".ralph" / "trust.jsonc").write_text('{"allow_project_commands": true}')
    with pytest.raises(ConfigError) as info:
        _quiet(repo)
    err, cfg = info.value, repo / ".ralph" / "config.jsonc"
    assert err.field == key and err.path == cfg and "\n" not in str(err)
    assert str(cfg) in str(err) and key in str(err) and allowed in str(err)
    assert isinstance(err, QueueError)  # the queue's error: one except clause catches both


def test_rules_across_keys_apply_to_the_merged_configuration(tmp_path: Path, home: Path):
    # validation/config_rules.rs runs on the merged config: a later layer can fix a value
    _global(home, {"queue": {"id_prefix": " "}, "agent": {"ci_gate": {"argv": ["sh", "-c"]}}})
    repo = _repo(tmp_path, {"queue": {"id_prefix": "TQ"}, "agent": {"ci_gate": {"argv": ["t"]}}})
    (repo / ".ralph" / "trust.jsonc").write_text('{"allow_project_commands": true}')
    assert _quiet(repo).queue.id_prefix == "TQ"
    (repo / ".ralph" / "config.jsonc").write_text("{}")
    with pytest.raises(ConfigError) as info:
        _quiet(repo)
    assert info.value.path == home / "ralph" / "config.jsonc"  # the file the bad value is in


def test_arguments_are_checked_like_a_config_file(tmp_path: Path, home: Path):
    repo = _repo(tmp_path)
    cfg = _quiet(repo, phases=2, parallel={"workers": 4}, agent={"model": "m"})
    assert (cfg.agent.phases, cfg.parallel.workers, cfg.agent.model) == (2, 4, "m")
    assert cfg.source("parallel.workers") == "argument"
    with pytest.raises(ConfigError, match="unknown argument 'colour'"):
        _quiet(repo, colour="red")
    with pytest.raises(ConfigError) as info:
        _quiet(repo, phases=9)
    assert info.value.field == "agent.phases" and "argument" in str(info.value)


def test_unhonoured_keys_are_warned_once_each_and_honoured_ones_never(tmp_path: Path, home: Path):
    _global(home, {"agent": {"webhook": {"secret": "s", "retry_count": 2}}})
    repo = _repo(tmp_path, {"queue": {"id_width": 3}, "loop": {"wait_when_empty": True}})
    with pytest.warns(ConfigWarning) as caught:
        cfg = ralphnb.config(repo, model="m")
    keys = [w.split()[0] for w in cfg.warnings]  # in the model's order
    assert keys == ["agent.model", "agent.webhook", "loop.wait_when_empty"]
    assert "(argument: " in cfg.warnings[0] and "(global: " in cfg.warnings[1]
    assert len(caught) == 3 and not any("queue.id_width" in str(w.message) for w in caught)


def test_the_configuration_is_a_plain_frozen_typed_object(tmp_path: Path, home: Path):
    repo = _repo(tmp_path, {"agent": {"instruction_files": ["AGENTS.md"]}})
    (repo / "AGENTS.md").write_text("Be careful.\n")
    cfg = _quiet(repo, runner="pi")
    with pytest.raises(FrozenInstanceError):
        cfg.agent.runner = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.agent.runner_cli.runners["x"] = None  # type: ignore[index]
    assert isinstance(cfg.parallel.push_backoff_ms, tuple)
    data = cfg.to_dict()
    assert json.loads(json.dumps(data)) == data and data["agent"]["runner"] == "pi"
    assert data["agent"]["instruction_files"] == ["AGENTS.md"]
    assert "sources" not in data and cfg.source("agent") == "argument"
    assert "config" in ralphnb.__all__ and "Config" in ralphnb.__all__
    assert isinstance(cfg, ralphnb.Config)


def test_instruction_files_must_exist_and_hold_text(tmp_path: Path, home: Path):
    # prompts: validate_instruction_file_paths (repo-relative, ~ expanded, UTF-8, not empty)
    repo = _repo(tmp_path, {"agent": {"instruction_files": ["AGENTS.md"]}})
    (repo / "AGENTS.md").write_text("Be careful.\n")
    assert _quiet(repo).agent.instruction_files == ("AGENTS.md",)
    (repo / "AGENTS.md").write_text("  \n")
    with pytest.raises(ConfigError, match="empty"):
        _quiet(repo)


def test_ralphs_defaults_are_its_published_defaults():
    schema = json.loads((FIXTURES / "config.schema.json").read_text())

    def set_values(x):
        if isinstance(x, dict):
            kept = {k: set_values(v) for k, v in x.items() if v is not None}
            return {k: v for k, v in kept.items() if v != {} or k == "plugins"}
        return x

    published = {k: v.get("default") for k, v in schema["properties"].items()}
    assert set_values(published) == DEFAULTS


@pytest.mark.parametrize(
    "config",
    [
        {"version": 2, "agent": {"runner": "pi", "phases": 3, "model": "x/y:high"}},
        {"agent": {"phases": 0}},
        {"agent": {"phases": 4}},
        {"agent": {"iterations": 256}},
        {"agent": {"reasoning_effort": "max"}},
        {"agent": {"ci_gate": {"argv": ["make"], "enabled": "yes"}}},
        {"agent": {"runner_cli": {"runners": {"codex": {"sandbox": "off"}}}}},
        {"agent": {"phase_overrides": {"phase1": {"reasoning_effort": "high"}, "phase4": {}}}},
        {"agent": {"webhook": {"events": ["task_created", "*"], "queue_capacity": 10}}},
        {"agent": {"webhook": {"events": ["task_done"]}}},
        {"agent": {"runner_retry": {"jitter_ratio": 1.5}}},
        {"queue": {"max_dependency_depth": 101}},
        {"queue": {"aging_thresholds": None, "file": None}},
        {"parallel": {"push_backoff_ms": [1, -1]}},
        {"loop": {"empty_poll_ms": 49}},
        {"plugins": {"plugins": {"p": {"enabled": True, "config": {"any": [1]}}}}},
        {"plugins": {"plugins": {"p": {"colour": 1}}}},
        {"profiles": {"fast": {"runner": "codex", "phases": 1}}},
        {"profiles": None},
        {"project_type": "docs"},
        {"project_type": "web"},
        {"colour": "red"},
    ],
)
def test_a_config_file_passes_if_and_only_if_ralphs_schema_accepts_it(tmp_path: Path, config: dict):
    schema = json.loads((FIXTURES / "config.schema.json").read_text())
    path = tmp_path / "config.jsonc"
    path.write_text(json.dumps(config))
    try:
        jsonschema.validate(config, schema)
        schema_ok = True
    except jsonschema.ValidationError:
        schema_ok = False
    try:
        read_layer(path)
        ours_ok = True
    except ConfigError:
        ours_ok = False
    assert ours_ok == schema_ok


def test_the_queue_takes_its_settings_from_the_global_config_too(tmp_path: Path, home: Path):
    _global(home, {"queue": {"id_prefix": "GL", "id_width": 3}})
    repo = tmp_path / "r"
    repo.mkdir()
    assert ralphnb.init(repo).add("x").id == "GL-001"
    _repo(tmp_path)  # a project config (none here) would win over the global one
    (repo / ".ralph" / "config.jsonc").write_text('{"queue": {"id_width": 3, "id_prefix": "GL"}}')
    assert Queue(repo).validate() == 1


def test_a_bad_config_fails_before_anything_is_written(tmp_path: Path, home: Path):
    repo = tmp_path / "r"
    repo.mkdir()
    q = ralphnb.init(repo)
    q.add("keep")
    before = {p: p.read_bytes() for p in (repo / ".ralph").rglob("*") if p.is_file()}
    _global(home, {"agent": {"phases": 9}})
    for call in (lambda: Queue(repo).add("never"), lambda: ralphnb.init(repo)):
        with pytest.raises(ConfigError, match="agent.phases"):
            call()
    after = {p: p.read_bytes() for p in (repo / ".ralph").rglob("*") if p.is_file()}
    assert after == before
