"""ralph's configuration as typed, immutable objects: the model, its value rules, its defaults.

Owns: one frozen dataclass per object of ralph's config (ralph's contracts/config/*.rs, published
as config.schema.json), each field carrying what it is (a leaf value, a nested object, a map of
objects) and the rule its values obey (type, enum, range: what serde and the schema accept);
`DEFAULTS`, ralph's `Config::default()` as a plain tree; ralph's built-in profiles; `build`
(plain merged tree -> objects), `plain` (objects -> plain tree) and `layer_problems` (what ralph
refuses while reading one config file).

Never: reads a file, merges layers or checks rules across keys (that is `config` and
`config_rules`). Invariants: objects are frozen, lists are tuples and maps are read-only
mappings; a leaf left unset is None; runner ids and models are held as ralph reads them (trimmed;
a built-in runner in lower case).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .rules import (
    EFFORTS,
    RUNNER_CLI_OPTIONS,
    canonical_runner,
    rust_trim,
)

_U8, _U32, _U64 = 255, 2**32 - 1, 2**64 - 1


@dataclass(frozen=True)
class Rule:
    """What one leaf accepts: `test(value)` and the words saying what is allowed."""

    test: Callable[[Any], bool]
    allowed: str
    norm: Callable[[Any], Any] | None = None  # how ralph reads an accepted value


def _enum(*names: str) -> Rule:
    return Rule(lambda v: type(v) is str and v in names, "one of " + ", ".join(names))


def _int(low: int, high: int) -> Rule:
    return Rule(
        lambda v: type(v) is int and low <= v <= high, f"a whole number from {low} to {high}"
    )


def _number(low: float, high: float) -> Rule:
    return Rule(lambda v: type(v) in (int, float) and low <= v <= high, f"a number {low}-{high}")


BOOL = Rule(lambda v: type(v) is bool, "true or false")
STRING = Rule(lambda v: type(v) is str, "a string")
STRINGS = Rule(lambda v: type(v) is list and all(type(x) is str for x in v), "a list of strings")
RUNNER = Rule(
    lambda v: type(v) is str and bool(rust_trim(v)),
    "a runner id: codex, opencode, gemini, claude, cursor, kimi, pi or a plugin's id",
    canonical_runner,
)
MODEL = Rule(lambda v: type(v) is str and bool(rust_trim(v)), "a non-empty model name", rust_trim)
EFFORT = _enum(*EFFORTS)
ANY = Rule(lambda v: True, "any JSON value")
_EVENTS = (
    "task_created",
    "task_started",
    "task_completed",
    "task_failed",
    "task_status_changed",
    "loop_started",
    "loop_stopped",
    "phase_started",
    "phase_completed",
    "queue_unblocked",
    "*",
)
EVENTS = Rule(
    lambda v: type(v) is list and all(type(x) is str and x in _EVENTS for x in v),
    "a list of events from " + ", ".join(_EVENTS),
)
PUSH_BACKOFF = Rule(
    lambda v: type(v) is list and all(type(x) is int and 0 <= x <= _U64 for x in v),
    "a list of whole numbers of milliseconds",
)


def leaf(rule: Rule) -> Any:
    """A value field (ralph's `Option<T>`: null or absent means unset)."""
    return field(default=None, metadata={"kind": "leaf", "rule": rule})


def obj(cls: type, *, nullable: bool = False) -> Any:
    """A nested object; `nullable` for ralph's `Option<Struct>` (null means unset)."""
    meta = {"kind": "obj", "cls": cls, "nullable": nullable}
    return (
        field(default=None, metadata=meta)
        if nullable
        else field(default_factory=cls, metadata=meta)
    )


def mapping(cls: type, *, key: Rule | None = None, nullable: bool = False) -> Any:
    """A map of objects by name (`key` checks and normalises the names)."""
    meta = {"kind": "map", "cls": cls, "key": key, "nullable": nullable}
    if nullable:
        return field(default=None, metadata=meta)
    return field(default_factory=lambda: MappingProxyType({}), metadata=meta)


@dataclass(frozen=True)
class CiGateConfig:
    enabled: bool | None = leaf(BOOL)
    argv: tuple[str, ...] | None = leaf(STRINGS)


@dataclass(frozen=True)
class NotificationConfig:
    enabled: bool | None = leaf(BOOL)
    notify_on_complete: bool | None = leaf(BOOL)
    notify_on_fail: bool | None = leaf(BOOL)
    notify_on_loop_complete: bool | None = leaf(BOOL)
    notify_on_watch_new_tasks: bool | None = leaf(BOOL)
    suppress_when_active: bool | None = leaf(BOOL)
    sound_enabled: bool | None = leaf(BOOL)
    sound_path: str | None = leaf(STRING)
    timeout_ms: int | None = leaf(_int(1000, 60000))


@dataclass(frozen=True)
class WebhookConfig:
    enabled: bool | None = leaf(BOOL)
    url: str | None = leaf(STRING)
    allow_insecure_http: bool | None = leaf(BOOL)
    allow_private_targets: bool | None = leaf(BOOL)
    secret: str | None = leaf(STRING)
    events: tuple[str, ...] | None = leaf(EVENTS)
    timeout_secs: int | None = leaf(_int(1, 300))
    retry_count: int | None = leaf(_int(0, 10))
    retry_backoff_ms: int | None = leaf(_int(100, 30000))
    queue_capacity: int | None = leaf(_int(10, 10000))
    parallel_queue_multiplier: float | None = leaf(_number(1.0, 10.0))
    queue_policy: str | None = leaf(_enum("drop_oldest", "drop_new", "block_with_timeout"))


@dataclass(frozen=True)
class RunnerRetryConfig:
    max_attempts: int | None = leaf(_int(1, 20))
    base_backoff_ms: int | None = leaf(_int(0, 600000))
    multiplier: float | None = leaf(_number(1.0, 10.0))
    max_backoff_ms: int | None = leaf(_int(0, 600000))
    jitter_ratio: float | None = leaf(_number(0.0, 1.0))


@dataclass(frozen=True)
class RunnerCliOptions:
    output_format: str | None = leaf(_enum(*RUNNER_CLI_OPTIONS["output_format"]))
    verbosity: str | None = leaf(_enum(*RUNNER_CLI_OPTIONS["verbosity"]))
    approval_mode: str | None = leaf(_enum(*RUNNER_CLI_OPTIONS["approval_mode"]))
    sandbox: str | None = leaf(_enum(*RUNNER_CLI_OPTIONS["sandbox"]))
    plan_mode: str | None = leaf(_enum(*RUNNER_CLI_OPTIONS["plan_mode"]))
    unsupported_option_policy: str | None = leaf(
        _enum(*RUNNER_CLI_OPTIONS["unsupported_option_policy"])
    )


@dataclass(frozen=True)
class RunnerCliConfig:
    defaults: RunnerCliOptions = obj(RunnerCliOptions)
    runners: Mapping[str, RunnerCliOptions] = mapping(RunnerCliOptions, key=RUNNER)


@dataclass(frozen=True)
class PhaseOverride:
    runner: str | None = leaf(RUNNER)
    model: str | None = leaf(MODEL)
    reasoning_effort: str | None = leaf(EFFORT)


@dataclass(frozen=True)
class PhaseOverrides:
    phase1: PhaseOverride | None = obj(PhaseOverride, nullable=True)
    phase2: PhaseOverride | None = obj(PhaseOverride, nullable=True)
    phase3: PhaseOverride | None = obj(PhaseOverride, nullable=True)


@dataclass(frozen=True)
class AgentConfig:
    """ralph's `agent` object (also the shape of each profile)."""

    runner: str | None = leaf(RUNNER)
    model: str | None = leaf(MODEL)
    reasoning_effort: str | None = leaf(EFFORT)
    iterations: int | None = leaf(_int(1, _U8))
    followup_reasoning_effort: str | None = leaf(EFFORT)
    codex_bin: str | None = leaf(STRING)
    opencode_bin: str | None = leaf(STRING)
    gemini_bin: str | None = leaf(STRING)
    claude_bin: str | None = leaf(STRING)
    cursor_bin: str | None = leaf(STRING)
    kimi_bin: str | None = leaf(STRING)
    pi_bin: str | None = leaf(STRING)
    claude_permission_mode: str | None = leaf(_enum("accept_edits", "bypass_permissions"))
    runner_cli: RunnerCliConfig | None = obj(RunnerCliConfig, nullable=True)
    phase_overrides: PhaseOverrides | None = obj(PhaseOverrides, nullable=True)
    instruction_files: tuple[str, ...] | None = leaf(STRINGS)
    repoprompt_plan_required: bool | None = leaf(BOOL)
    repoprompt_tool_injection: bool | None = leaf(BOOL)
    ci_gate: CiGateConfig | None = obj(CiGateConfig, nullable=True)
    git_revert_mode: str | None = leaf(_enum("ask", "enabled", "disabled"))
    git_publish_mode: str | None = leaf(_enum("off", "commit", "commit_and_push"))
    phases: int | None = leaf(_int(1, 3))
    notification: NotificationConfig = obj(NotificationConfig)
    webhook: WebhookConfig = obj(WebhookConfig)
    session_timeout_hours: int | None = leaf(_int(1, _U64))
    scan_prompt_version: str | None = leaf(_enum("v1", "v2"))
    runner_retry: RunnerRetryConfig = obj(RunnerRetryConfig)


@dataclass(frozen=True)
class AgingThresholds:
    warning_days: int | None = leaf(_int(0, 3650))
    stale_days: int | None = leaf(_int(0, 3650))
    rotten_days: int | None = leaf(_int(0, 3650))


@dataclass(frozen=True)
class QueueConfig:
    file: str | None = leaf(STRING)
    done_file: str | None = leaf(STRING)
    id_prefix: str | None = leaf(STRING)
    id_width: int | None = leaf(_int(1, _U8))
    size_warning_threshold_kb: int | None = leaf(_int(100, 10000))
    task_count_warning_threshold: int | None = leaf(_int(50, 5000))
    max_dependency_depth: int | None = leaf(_int(1, 100))
    auto_archive_terminal_after_days: int | None = leaf(_int(0, 3650))
    aging_thresholds: AgingThresholds | None = obj(AgingThresholds, nullable=True)


@dataclass(frozen=True)
class ParallelConfig:
    workers: int | None = leaf(_int(2, _U8))
    workspace_root: str | None = leaf(STRING)
    max_push_attempts: int | None = leaf(_int(1, _U8))
    push_backoff_ms: tuple[int, ...] | None = leaf(PUSH_BACKOFF)
    workspace_retention_hours: int | None = leaf(_int(1, _U32))
    ignored_file_allowlist: tuple[str, ...] | None = leaf(STRINGS)


@dataclass(frozen=True)
class LoopConfig:
    wait_when_empty: bool | None = leaf(BOOL)
    empty_poll_ms: int | None = leaf(_int(50, _U64))
    wait_when_blocked: bool | None = leaf(BOOL)
    wait_poll_ms: int | None = leaf(_int(50, _U64))
    wait_timeout_seconds: int | None = leaf(_int(0, _U64))
    notify_when_unblocked: bool | None = leaf(BOOL)


@dataclass(frozen=True)
class PluginConfig:
    enabled: bool | None = leaf(BOOL)
    config: Any = leaf(ANY)


@dataclass(frozen=True)
class PluginsConfig:
    plugins: Mapping[str, PluginConfig] = mapping(PluginConfig)


_VERSION = Rule(lambda v: type(v) is int and v == 2, "2 (ralph's config version 2, ralph 0.3)")


@dataclass(frozen=True)
class Config:
    """The effective configuration of one repository, resolved as ralph resolves it.

    The model fields mirror ralph's config (`cfg.agent.runner`, `cfg.queue.id_prefix`, ...).
    `source(key)` says where a value came from: `default`, `global`, `project`,
    `profile:<name>`, `task` or `argument` (None for a value nothing set). `warnings` names
    each key that is set but that ralphnb does not honour yet; `files` maps each source to the
    file it was read from; `trusted` is whether `.ralph/trust.jsonc` allows project commands.
    """

    version: int | None = leaf(_VERSION)
    project_type: str | None = leaf(_enum("code", "docs"))
    queue: QueueConfig = obj(QueueConfig)
    agent: AgentConfig = obj(AgentConfig)
    parallel: ParallelConfig = obj(ParallelConfig)
    loop: LoopConfig = obj(LoopConfig)
    plugins: PluginsConfig = obj(PluginsConfig)
    profiles: Mapping[str, AgentConfig] | None = mapping(AgentConfig, nullable=True)
    repo: Path | None = None
    profile: str | None = None
    trusted: bool = False
    files: Mapping[str, Path] = field(default_factory=lambda: MappingProxyType({}))
    warnings: tuple[str, ...] = ()
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)

    def source(self, key: str) -> str | None:
        """Where `key` (dotted, like `agent.runner`) got its value; for an object, the
        strongest source among its values. None when nothing set it."""
        if key in self.sources:
            return self.sources[key]
        below = [s for k, s in self.sources.items() if k.startswith(key + ".")]
        return max(below, key=source_rank) if below else None

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON data (ralph's shape; unset values are null)."""
        return plain(self)


SOURCES = ("default", "global", "project", "profile", "task", "argument")


def source_rank(source: str) -> int:
    """Precedence of a source (later wins): `profile:<name>` ranks as `profile`."""
    return SOURCES.index(source.partition(":")[0])


# ralph's `Config::default()` (the defaults published in config.schema.json); unset = absent.
DEFAULTS: dict[str, Any] = {
    "version": 2,
    "project_type": "code",
    "queue": {
        "file": ".ralph/queue.jsonc",
        "done_file": ".ralph/done.jsonc",
        "id_prefix": "RQ",
        "id_width": 4,
        "size_warning_threshold_kb": 500,
        "task_count_warning_threshold": 500,
        "max_dependency_depth": 10,
        "aging_thresholds": {"warning_days": 7, "stale_days": 14, "rotten_days": 30},
    },
    "agent": {
        "runner": "codex",
        "model": "gpt-5.4",
        "reasoning_effort": "medium",
        "iterations": 1,
        "codex_bin": "codex",
        "opencode_bin": "opencode",
        "gemini_bin": "gemini",
        "claude_bin": "claude",
        "cursor_bin": "agent",
        "kimi_bin": "kimi",
        "pi_bin": "pi",
        "claude_permission_mode": "accept_edits",
        "runner_cli": {
            "defaults": {
                "output_format": "stream_json",
                "verbosity": "normal",
                "approval_mode": "default",
                "sandbox": "default",
                "plan_mode": "default",
                "unsupported_option_policy": "warn",
            },
            "runners": {"codex": {"sandbox": "disabled"}, "claude": {"verbosity": "verbose"}},
        },
        "repoprompt_plan_required": False,
        "repoprompt_tool_injection": False,
        "ci_gate": {"enabled": True, "argv": ["make", "ci"]},
        "git_revert_mode": "ask",
        "git_publish_mode": "off",
        "phases": 3,
        "notification": {
            "enabled": True,
            "notify_on_complete": True,
            "notify_on_fail": True,
            "notify_on_loop_complete": True,
            "notify_on_watch_new_tasks": True,
            "suppress_when_active": True,
            "sound_enabled": False,
            "timeout_ms": 8000,
        },
        "session_timeout_hours": 24,
        "scan_prompt_version": "v2",
    },
    "parallel": {
        "max_push_attempts": 50,
        "push_backoff_ms": [500, 2000, 5000, 10000],
        "workspace_retention_hours": 24,
    },
    "loop": {
        "wait_when_empty": False,
        "empty_poll_ms": 30000,
        "wait_when_blocked": False,
        "wait_poll_ms": 1000,
        "wait_timeout_seconds": 0,
        "notify_when_unblocked": False,
    },
    "plugins": {"plugins": {}},
}

# ralph's built-in profiles (contracts/config/profiles.rs); their names are reserved.
BUILTIN_PROFILES: dict[str, dict[str, Any]] = {
    "power-user": {
        "claude_permission_mode": "bypass_permissions",
        "runner_cli": {"defaults": {"approval_mode": "yolo"}},
        "git_publish_mode": "commit_and_push",
    },
    "safe": {
        "claude_permission_mode": "accept_edits",
        "runner_cli": {"defaults": {"approval_mode": "safe"}},
        "git_publish_mode": "off",
    },
}


def model_fields(cls: type) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, metadata) of each field of a model class that holds configuration."""
    for f in fields(cls):
        if "kind" in f.metadata:
            yield f.name, dict(f.metadata)


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    return value


def build(cls: type, tree: Mapping[str, Any] | None, **extra: Any) -> Any:
    """The model object of class `cls` for a plain (validated, merged) tree."""
    tree = tree or {}
    kwargs: dict[str, Any] = dict(extra)
    for name, meta in model_fields(cls):
        value = tree.get(name)
        if meta["kind"] == "leaf":
            kwargs[name] = _freeze(value)
        elif value is None and meta["nullable"]:
            kwargs[name] = None
        elif meta["kind"] == "obj":
            kwargs[name] = build(meta["cls"], value)
        else:
            items = (value or {}).items()
            kwargs[name] = MappingProxyType({k: build(meta["cls"], v) for k, v in items})
    return cls(**kwargs)


def plain(value: Any) -> Any:
    """A model object (or a value inside one) as plain JSON data."""
    if hasattr(value, "__dataclass_fields__"):
        return {name: plain(getattr(value, name)) for name, _ in model_fields(type(value))}
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    return value


def layer_problems(
    tree: Any, cls: type = Config, where: str = ""
) -> Iterator[tuple[str, Any, str]]:
    """(key, value, what is allowed) for each value ralph refuses in one config file."""
    if type(tree) is not dict:
        yield where or "(the file)", tree, "an object"
        return
    spec = dict(model_fields(cls))
    for key, value in tree.items():
        path = f"{where}.{key}" if where else key
        meta = spec.get(key)
        if meta is None:
            yield path, value, "nothing: ralph rejects unknown keys (it knows " + ", ".join(spec)
            continue
        if value is None and (meta["kind"] == "leaf" or meta["nullable"]):
            continue
        if meta["kind"] == "leaf":
            if not meta["rule"].test(value):
                yield path, value, meta["rule"].allowed
        elif meta["kind"] == "obj":
            yield from layer_problems(value, meta["cls"], path)
        elif type(value) is not dict:
            yield path, value, "an object mapping names to objects"
        else:
            for name, item in value.items():
                if meta["key"] is not None and not meta["key"].test(name):
                    yield f"{path}.{name}", name, "a name that is " + meta["key"].allowed
                yield from layer_problems(item, meta["cls"], f"{path}.{name}")
