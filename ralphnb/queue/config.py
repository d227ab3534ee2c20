"""ralph's configuration, resolved as ralph resolves it, and the queue settings taken from it.

Owns: reading the config layers and the trust file; `resolve_config` (the effective `Config`
with where each value came from); `load_queue_settings` (the `QueueSettings` a `Queue` uses).
Layers, later wins, merged leaf-wise as ralph's `merge_from` (a null or absent value never
overrides; objects and maps of objects merge key by key; lists replace):

  ralph's defaults -> global `$XDG_CONFIG_HOME/ralph/config.jsonc` (else
  `~/.config/ralph/config.jsonc`) -> the repo's `.ralph/config.jsonc` -> the selected profile
  (`profiles.<name>`, else ralph's built-in `safe`/`power-user`) -> the task's `agent` block ->
  explicit arguments.

Invariants: nothing here writes a file. A bad value fails with one line naming the file, the
key, the value and what is allowed, before anything is written. As ralph, a project config that
sets a command (`agent.ci_gate`, a runner binary, a plugin runner, plugins) is refused unless
`.ralph/trust.jsonc` says `"allow_project_commands": true`. Unlike ralph, no runner is ever
chosen by default: with none named anywhere, `agent.runner` is None (source None). A key set
by the user that ralphnb does not honour yet is named once in `Config.warnings` and in a
`ConfigWarning`. `load_queue_settings` reads the same files without the trust check (queue
edits run nothing) and never warns.
"""

from __future__ import annotations

import copy
import json
import os
import warnings as _warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import QueueError
from .config_model import (
    BUILTIN_PROFILES,
    DEFAULTS,
    AgentConfig,
    Config,
    build,
    layer_problems,
    model_fields,
    source_rank,
)
from .config_rules import execution_settings, merged_problems, repo_path
from .ids import DEFAULT_PREFIX, DEFAULT_WIDTH
from .jsonio import read_jsonc
from .rules import EFFORTS, rust_trim
from .validation import agent_problem

CONFIG_PATH = ".ralph/config.jsonc"
TRUST_PATH = ".ralph/trust.jsonc"
DEFAULT_QUEUE_FILE = ".ralph/queue.jsonc"
DEFAULT_DONE_FILE = ".ralph/done.jsonc"
# Keys ralphnb acts on today (the loop wiring adds to this set); every other key that a user
# sets is named in a warning.
HONOURED = frozenset(
    {
        "version",
        "queue.file",
        "queue.done_file",
        "queue.id_prefix",
        "queue.id_width",
        "queue.max_dependency_depth",
        "agent.git_publish_mode",
        "agent.session_timeout_hours",
        "parallel.max_push_attempts",
        "parallel.workers",  # Loop(parallel=None)
        "parallel.workspace_root",  # Loop(workspace_root=None)
        "parallel.push_backoff_ms",
        # the loop's runner, phases, passes and CI gate (loop/choice.py, phases.py, gate.py)
        *("agent.runner", "agent.model", "agent.phases", "agent.iterations", "agent.ci_gate"),
        *("agent.phase_overrides", "agent.instruction_files"),
        *(f"agent.{r}_bin" for r in ("claude", "codex", "gemini", "opencode", "cursor", "pi")),
        "agent.kimi_bin",
    }
)


class ConfigError(QueueError):
    """A configuration value ralph (or ralphnb) refuses; `path` is its file, `field` its key."""


class ConfigWarning(UserWarning):
    """A configuration key is set that ralphnb does not honour yet."""


@dataclass(frozen=True)
class QueueSettings:
    """The queue settings ralphnb uses. Paths are normalized, repo-relative, `/`-separated.

    `id_prefix`/`id_width` are None when no config file sets them; `prefix`/`width` are the
    values every id must have (ralph's defaults `RQ` and 4 when unset).
    """

    file: str = DEFAULT_QUEUE_FILE
    done_file: str = DEFAULT_DONE_FILE
    id_prefix: str | None = None
    id_width: int | None = None
    max_dependency_depth: int = 10

    @property
    def prefix(self) -> str:
        return self.id_prefix or DEFAULT_PREFIX

    @property
    def width(self) -> int:
        return self.id_width or DEFAULT_WIDTH


def global_config_path(env: Mapping[str, str] | None = None) -> Path | None:
    """ralph's global config file (`$XDG_CONFIG_HOME`, else `$HOME/.config`), or None."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or (
        str(Path(env["HOME"]) / ".config") if env.get("HOME") else None
    )
    return Path(base) / "ralph" / "config.jsonc" if base else None


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if value is not None else "null"
    return text if len(text) <= 80 else text[:77] + "..."


def _refuse(where: str | Path, key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(
        f"{where}: {key}: {_shown(value)} is not allowed; use {allowed}",
        path=where if isinstance(where, Path) else None,
        field=key,
    )


def read_layer(path: Path) -> dict[str, Any] | None:
    """One config file, checked as ralph reads it (None when there is none)."""
    if not path.exists() and not path.is_symlink():
        return None
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a config file", path=path)
    tree = read_jsonc(path)
    for key, value, allowed in layer_problems(tree):
        raise _refuse(path, key, value, allowed)
    return tree


def read_trust(repo: Path) -> bool:
    """Does the repo's local `.ralph/trust.jsonc` allow project commands (ralph's RepoTrust)?"""
    path = repo / TRUST_PATH
    if not path.exists():
        return False
    tree = read_jsonc(path)
    if type(tree) is not dict:
        raise _refuse(path, "(the file)", tree, 'an object like {"allow_project_commands": true}')
    for key, value in tree.items():
        if key == "allow_project_commands" and type(value) is not bool:
            raise _refuse(path, key, value, "true or false")
        if key == "trusted_at" and value is not None and type(value) is not str:
            raise _refuse(path, key, value, "an RFC 3339 timestamp")
        if key not in ("allow_project_commands", "trusted_at"):
            raise _refuse(path, key, value, "only allow_project_commands and trusted_at")
    return tree.get("allow_project_commands") is True


class _Layers:
    """The merged tree and, for every value, the source that set it."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}
        self.sources: dict[str, str] = {}
        self.files: dict[str, Path | str] = {}
        self.apply(DEFAULTS, "default")

    def apply(self, layer: Mapping[str, Any] | None, source: str, where: Path | str = "") -> None:
        if layer is not None:
            self.files.setdefault(source, where)
            _merge(self.tree, layer, Config, source, self.sources, "")

    def where(self, key: str) -> Path | str:
        """The file (or label) the value at `key` (or, for an object, the strongest value
        under it) came from."""
        while True:
            below = [s for k, s in self.sources.items() if k == key or k.startswith(key + ".")]
            if below or "." not in key:
                break
            key = key.rpartition(".")[0]  # an unset value: the object that holds it
        source = max(below, key=source_rank) if below else ""
        return self.files.get(source, "") or "ralph's defaults"


def _merge(base: dict, layer: Mapping[str, Any], cls: type, source: str, sources: dict, at: str):
    """ralph's leaf-wise `merge_from` of one (validated) layer into `base`, noting sources."""
    for name, meta in model_fields(cls):
        value = layer.get(name)
        if value is None:
            continue
        path = f"{at}{name}"
        if meta["kind"] == "leaf":
            norm = meta["rule"].norm
            base[name] = copy.deepcopy(norm(value) if norm else value)
            sources[path] = source
        elif meta["kind"] == "obj":
            sub = base.get(name)
            if sub is None:
                sub = base[name] = {}
            _merge(sub, value, meta["cls"], source, sources, path + ".")
        else:
            entries = base.get(name)
            if entries is None:
                entries = base[name] = {}
            key_norm = meta["key"].norm if meta["key"] is not None else None
            for key, patch in value.items():
                key = key_norm(key) if key_norm else key
                entry = entries.setdefault(key, {})
                _merge(entry, patch, meta["cls"], source, sources, f"{path}.{key}.")


def _check_merged(layers: _Layers) -> None:
    for key, value, allowed in merged_problems(layers.tree):
        raise _refuse(layers.where(key), key, value, allowed)


def _base_layers(repo: Path, env: Mapping[str, str] | None) -> tuple[_Layers, dict | None, Path]:
    """Defaults, global and project config merged and checked (no trust, no profile)."""
    layers = _Layers()
    gpath = global_config_path(env)
    if gpath is not None:
        layers.apply(read_layer(gpath), "global", gpath)
    ppath = repo / CONFIG_PATH
    project = read_layer(ppath)
    layers.apply(project, "project", ppath)
    return layers, project, ppath


def load_queue_settings(repo: str | Path, *, env: Mapping[str, str] | None = None) -> QueueSettings:
    """The queue settings of `repo` (ralph's defaults, global then project config).

    The whole configuration is checked (ralph refuses every command on a bad one); the trust
    check is left to `resolve_config`, since editing the queue runs no command.
    """
    layers, _, _ = _base_layers(Path(repo), env)
    _check_merged(layers)
    q = layers.tree["queue"]
    configured = {k: layers.sources.get(f"queue.{k}") != "default" for k in q}
    return QueueSettings(
        file=repo_path(q["file"])[0],
        done_file=repo_path(q["done_file"])[0],
        id_prefix=rust_trim(q["id_prefix"]).upper() if configured["id_prefix"] else None,
        id_width=q["id_width"] if configured["id_width"] else None,
        max_dependency_depth=q["max_dependency_depth"],
    )


def _task_layer(agent: Mapping[str, Any], tree: Mapping[str, Any]) -> dict[str, Any]:
    """A task's `agent` block as a config layer: runner, model, phases, iterations,
    followup_reasoning_effort and phase_overrides as they are; model_effort (unless `default`)
    as reasoning_effort; runner_cli as a patch over the defaults and every runner's options
    (so, as in ralph, it wins over both)."""
    out: dict[str, Any] = {
        k: agent[k]
        for k in ("runner", "model", "phases", "iterations", "followup_reasoning_effort")
        if agent.get(k) is not None
    }
    if agent.get("model_effort") in EFFORTS:
        out["reasoning_effort"] = agent["model_effort"]
    if agent.get("phase_overrides") is not None:
        out["phase_overrides"] = agent["phase_overrides"]
    cli = agent.get("runner_cli")
    if cli is not None:
        runners = ((tree.get("agent") or {}).get("runner_cli") or {}).get("runners") or {}
        out["runner_cli"] = {"defaults": cli, "runners": dict.fromkeys(runners, cli)}
    return {"agent": out}


def _argument_layer(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments as a config layer: an `agent` key by its name (`runner="claude"`),
    or a whole section (`agent=`, `queue=`, `parallel=`, `loop=`, `plugins=`, `project_type=`)."""
    agent_keys = dict(model_fields(AgentConfig))
    sections = {name for name, _ in model_fields(Config)} - {"version", "profiles"}
    layer: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key in agent_keys:
            layer.setdefault("agent", {})[key] = value
        elif key in sections:
            if key == "agent" and isinstance(value, Mapping):
                layer["agent"] = {**value, **layer.get("agent", {})}
            else:
                layer[key] = dict(value) if isinstance(value, Mapping) else value
        else:
            raise ConfigError(
                f"ralphnb.config(): unknown argument {key!r}; give an agent key "
                f"({', '.join(agent_keys)}) or a section ({', '.join(sorted(sections))})",
                field=key,
            )
    return layer


def _apply_profile(layers: _Layers, name: str) -> str:
    """Merge the selected profile into `agent` (a configured one, else a built-in one)."""
    chosen = rust_trim(name) if isinstance(name, str) else ""
    configured = layers.tree.get("profiles") or {}
    if not chosen:
        raise ConfigError("ralphnb.config(): profile: a profile name cannot be empty")
    if chosen in configured:
        patch, where = configured[chosen], layers.where(f"profiles.{chosen}")
    elif chosen in BUILTIN_PROFILES:
        patch, where = BUILTIN_PROFILES[chosen], "ralph's built-in profiles"
    else:
        names = sorted({*configured, *BUILTIN_PROFILES})
        raise ConfigError(
            f"ralphnb.config(): unknown profile {chosen!r}; the profiles are "
            f"{', '.join(names)} (define more under `profiles` in {CONFIG_PATH} or the global "
            "config)",
            field="profile",
        )
    layers.apply({"agent": patch}, f"profile:{chosen}", where)
    return chosen


def _check_instruction_files(repo: Path, layers: _Layers) -> None:
    """ralph's `validate_instruction_file_paths`: each file exists, is UTF-8 and not empty."""
    for entry in layers.tree["agent"].get("instruction_files") or ():
        path = Path(os.path.expanduser(entry))
        path = path if path.is_absolute() else repo / path
        try:
            why = "is empty" if not path.read_bytes().decode("utf-8").strip() else None
        except (OSError, UnicodeDecodeError) as exc:
            why = f"cannot be read as UTF-8 ({exc.__class__.__name__})"
        if why:
            raise _refuse(
                layers.where("agent.instruction_files"),
                "agent.instruction_files",
                entry,
                f"files that exist and hold UTF-8 text ({path} {why})",
            )


def _unhonoured(layers: _Layers) -> list[str]:
    """One line per key a user set (not a default, not a profile definition) that ralphnb
    does not act on yet, naming its strongest source."""
    found: dict[str, str] = {}
    for path, source in layers.sources.items():
        parts = path.split(".")
        if source == "default" or parts[0] == "profiles":
            continue
        key = (
            ".".join(parts[:2]) if parts[0] in ("agent", "queue", "parallel", "loop") else parts[0]
        )
        if key not in HONOURED and (
            key not in found or source_rank(source) > source_rank(found[key])
        ):
            found[key] = source
    return [
        f"{key} is set ({source}: {layers.files.get(source)}) but ralphnb does not honour it "
        "yet; it has no effect"
        for key, source in sorted(found.items(), key=lambda kv: _KEY_ORDER.get(kv[0], 0))
    ]


def _key_order() -> dict[str, int]:
    """The keys warnings name, in the model's order (`agent.runner` before `agent.model`)."""
    keys = []
    for name, meta in model_fields(Config):
        if name in ("agent", "queue", "parallel", "loop"):
            keys += [f"{name}.{sub}" for sub, _ in model_fields(meta["cls"])]
        else:
            keys.append(name)
    return {k: i for i, k in enumerate(keys)}


_KEY_ORDER = _key_order()


def _refuse_untrusted(project: Mapping[str, Any], path: Path, env: Mapping[str, str] | None):
    needs = execution_settings(project)
    if needs:
        raise ConfigError(
            f"{path}: {needs[0]} makes ralph run a program, but this repository is not trusted: "
            f'create {TRUST_PATH} with {{"allow_project_commands": true}} (keep it out of git) '
            f"after reviewing the config, or move the setting to your global config "
            f"{global_config_path(env) or '~/.config/ralph/config.jsonc'}",
            path=path,
            field=needs[0],
        )


def resolve_config(
    repo: str | Path = ".",
    *,
    profile: str | None = None,
    task_agent: Mapping[str, Any] | None = None,
    task_label: str = "task",
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    warn: bool = True,
) -> Config:
    """The effective configuration of `repo`, layer by layer as the module docstring says.

    `task_agent` is a task's `agent` block (`task_label` names the task in errors);
    `overrides` are explicit arguments (see `ralphnb.config`). Raises `ConfigError` on the
    first value refused; `warn` emits a `ConfigWarning` per key ralphnb does not honour.
    """
    root = Path(repo).resolve()
    layers, project, ppath = _base_layers(root, env)
    trusted = read_trust(root)
    if project is not None and not trusted:
        _refuse_untrusted(project, ppath, env)
    _check_merged(layers)
    chosen = None
    if profile is not None:
        chosen = _apply_profile(layers, profile)
        _check_merged(layers)
    if task_agent is not None:
        bad = agent_problem(task_agent)
        if bad is not None:
            raise ConfigError(f"{task_label}: {bad[0]}: {bad[1]}", field=bad[0])
        layers.apply(_task_layer(task_agent, layers.tree), "task", task_label)
    if overrides:
        layer = _argument_layer(overrides)
        for key, value, allowed in layer_problems(layer):
            raise _refuse("ralphnb.config() argument", key, value, allowed)
        layers.apply(layer, "argument", "ralphnb.config() argument")
    _check_merged(layers)
    _check_instruction_files(root, layers)
    if layers.sources.get("agent.runner") == "default":  # ralphnb never picks a runner itself
        del layers.tree["agent"]["runner"], layers.sources["agent.runner"]
    notes = _unhonoured(layers)
    if warn:
        for note in notes:
            _warnings.warn(note, ConfigWarning, stacklevel=3)
    return build(
        Config,
        layers.tree,
        repo=root,
        profile=chosen,
        trusted=trusted,
        files=MappingProxyType({k: v for k, v in layers.files.items() if isinstance(v, Path)}),
        warnings=tuple(notes),
        sources=MappingProxyType(dict(layers.sources)),
    )
