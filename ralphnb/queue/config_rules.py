"""ralph's rules across a merged configuration, and which project settings need trust.

Owns: `merged_problems` (ralph's `validate_config` and `validate_agent_patch`, from
crates/ralph/src/config/validation/: queue overrides, aging threshold order, the parallel
workspace root, instruction file entries, runner binaries, the CI gate's argv, the webhook URL,
reserved profile names), ralphnb's own limits on the queue settings it uses (paths inside the
repo, id prefix and width it can use as paths), and `execution_settings` (ralph's
`agent_has_execution_settings`: what an untrusted project config may not set).

Invariants: pure functions on plain trees; each problem is (dotted key, value, what is allowed).
"""

from __future__ import annotations

import ipaddress
import posixpath
from collections.abc import Iterator, Mapping
from pathlib import PurePath
from typing import Any
from urllib.parse import urlsplit

from .config_model import BUILTIN_PROFILES
from .ids import MAX_WIDTH, is_id_prefix
from .rules import BUILTIN_RUNNERS, PHASES, rust_trim

Problem = tuple[str, Any, str]
BINARIES = (
    "codex_bin",
    "opencode_bin",
    "gemini_bin",
    "claude_bin",
    "cursor_bin",
    "kimi_bin",
    "pi_bin",
)
_SHELLS = {"sh", "bash", "zsh", "dash", "fish", "cmd", "pwsh", "powershell"}
LOCK_DIR = ".ralph/lock"


def merged_problems(tree: Mapping[str, Any]) -> Iterator[Problem]:
    """What ralph's `validate_config` refuses in a merged configuration, in its order, then
    ralphnb's limits on the queue settings."""
    queue = tree.get("queue") or {}
    if queue.get("id_prefix") is not None and not rust_trim(queue["id_prefix"]):
        yield "queue.id_prefix", queue["id_prefix"], "a non-empty prefix such as RQ"
    for key in ("file", "done_file"):
        if queue.get(key) == "":
            yield f"queue.{key}", "", "a path such as .ralph/queue.jsonc"
    aging = queue.get("aging_thresholds") or {}
    days = [(k, aging.get(k)) for k in ("warning_days", "stale_days", "rotten_days")]
    for (a, x), (b, y) in ((days[0], days[1]), (days[1], days[2]), (days[0], days[2])):
        if x is not None and y is not None and x >= y:
            yield f"queue.aging_thresholds.{a}", x, f"fewer days than {b} ({y})"
    root = (tree.get("parallel") or {}).get("workspace_root")
    if root is not None and not root:
        yield "parallel.workspace_root", root, "a path (or leave it unset)"
    elif root is not None and ".." in PurePath(root).parts:
        yield "parallel.workspace_root", root, "a normalized path without '..'"
    yield from agent_problems(tree.get("agent") or {}, "agent")
    for name, patch in (tree.get("profiles") or {}).items():
        if name in BUILTIN_PROFILES:
            yield (
                f"profiles.{name}",
                name,
                "a name other than ralph's built-in profiles (" + ", ".join(BUILTIN_PROFILES) + ")",
            )
        yield from agent_problems(patch, f"profiles.{name}")
    yield from queue_problems(queue)


def agent_problems(agent: Mapping[str, Any], where: str) -> Iterator[Problem]:
    """ralph's `validate_agent_patch`: instruction files, binaries, CI gate, webhook."""
    for i, path in enumerate(agent.get("instruction_files") or ()):
        if not rust_trim(path):
            yield f"{where}.instruction_files", path, f"non-empty paths (entry {i} is blank)"
    for key in BINARIES:
        if agent.get(key) is not None and not rust_trim(agent[key]):
            yield f"{where}.{key}", agent[key], "a program name or path (or leave it unset)"
    gate = agent.get("ci_gate")
    if gate is not None and gate.get("enabled", True) is not False:
        argv = gate.get("argv")
        if argv is None:
            yield f"{where}.ci_gate.argv", None, "a command as an argv list while enabled"
        elif not argv:
            yield f"{where}.ci_gate.argv", argv, "at least one element (the program)"
        elif any(not rust_trim(a) for a in argv):
            yield f"{where}.ci_gate.argv", argv, "non-empty entries"
        elif _launches_shell(argv):
            yield (
                f"{where}.ci_gate.argv",
                argv,
                "the program and its arguments directly (a shell launcher like sh -c is not "
                "supported)",
            )
    hook = agent.get("webhook") or {}
    why = webhook_problem(hook) if hook.get("enabled") else None
    if why:
        yield f"{where}.webhook.url", hook.get("url"), why


def _launches_shell(argv: list[str]) -> bool:
    program = PurePath(argv[0]).name
    return program in _SHELLS and any(
        a == "-c" or a.lower() in ("/c", "-command") for a in argv[1:]
    )


def webhook_problem(hook: Mapping[str, Any]) -> str | None:
    """Why an enabled webhook's URL is refused (ralph's `validate_webhook_settings`), or None."""
    url = rust_trim(hook.get("url") or "")
    if not url:
        return "an absolute https:// URL while agent.webhook.enabled is true"
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "a valid absolute URL"
    scheme = parts.scheme.lower()
    if scheme == "http" and not hook.get("allow_insecure_http"):
        return "an https:// URL (http:// needs agent.webhook.allow_insecure_http: true)"
    if scheme not in ("http", "https"):
        return "an http:// or https:// URL"
    if not host:
        return "a URL with a host"
    if not hook.get("allow_private_targets") and _risky_host(host):
        return (
            "a public host (loopback, link-local and metadata hosts need "
            "agent.webhook.allow_private_targets: true)"
        )
    return None


def _risky_host(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        lower = host.lower()
        return lower in ("localhost", "metadata.google.internal") or lower.endswith(".localhost")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_link_local or ip.is_unspecified


def queue_problems(queue: Mapping[str, Any]) -> Iterator[Problem]:
    """ralphnb's limits on the queue settings it uses: ids it can use as paths and branch
    names, and queue files inside the repository (ralph also allows absolute paths)."""
    prefix = queue.get("id_prefix")
    if prefix is not None and rust_trim(prefix) and not is_id_prefix(rust_trim(prefix).upper()):
        yield (
            "queue.id_prefix",
            prefix,
            "an uppercase letter then up to 15 uppercase letters or digits (like RQ)",
        )
    width = queue.get("id_width")
    if width is not None and width > MAX_WIDTH:
        yield "queue.id_width", width, f"a whole number from 1 to {MAX_WIDTH}"
    paths = {}
    for key in ("file", "done_file"):
        value = queue.get(key)
        if value:
            norm, why = repo_path(value)
            if why:
                yield f"queue.{key}", value, why
            paths[key] = norm
    if paths.get("file") and paths.get("file") == paths.get("done_file"):
        yield "queue.done_file", queue["done_file"], "a different file than queue.file"


def repo_path(value: str) -> tuple[str, str | None]:
    """A queue file path normalised (repo-relative, `/`-separated), or why it is refused."""
    text = value.replace("\\", "/")
    if not text.strip() or "\0" in text:
        return text, "a non-empty path relative to the repo root"
    if text.startswith(("/", "~")) or (len(text) > 1 and text[1] == ":"):
        return text, "a path relative to the repo root (ralphnb keeps queue files inside it)"
    norm = posixpath.normpath(text)
    if norm in (".", "..") or norm.startswith("../"):
        return norm, "a path inside the repository"
    if norm == LOCK_DIR or norm.startswith(LOCK_DIR + "/"):
        return norm, f"a path outside the lock directory {LOCK_DIR}/"
    return norm, None


def execution_settings(layer: Mapping[str, Any]) -> list[str]:
    """The keys of one config file that make ralph run a program of the file's choosing
    (runner binaries, plugin runners, `agent.ci_gate`, plugins), for the trust check."""
    found = [f"agent.{k}" for k in _agent_execution(layer.get("agent") or {})]
    if (layer.get("plugins") or {}).get("plugins"):
        found.append("plugins.plugins")
    for name, patch in (layer.get("profiles") or {}).items():
        found += [f"profiles.{name}.{k}" for k in _agent_execution(patch or {})]
    return found


def _agent_execution(agent: Mapping[str, Any]) -> list[str]:
    keys = [k for k in ("ci_gate", *BINARIES) if agent.get(k) is not None]
    if _is_plugin(agent.get("runner")):
        keys.append("runner")
    overrides = agent.get("phase_overrides") or {}
    keys += [
        f"phase_overrides.{p}.runner"
        for p in PHASES
        if _is_plugin((overrides.get(p) or {}).get("runner"))
    ]
    return keys


def _is_plugin(runner: Any) -> bool:
    return isinstance(runner, str) and rust_trim(runner).lower() not in BUILTIN_RUNNERS
