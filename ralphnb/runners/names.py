"""Runner names: which adapter a name such as "claude" or a task's `agent.runner` means.

Owns: `RUNNERS` (name -> adapter class), `get_runner`, and `runner_from_config`, which reads
ralph's `agent` configuration (`runner`, `model`, `<runner>_bin`). Invariant: an unknown name is
a `RunnerError` listing the known ones, never a silent fallback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import RunnerError
from .base import Runner
from .claude import Claude
from .codex import Codex
from .cursor import Cursor
from .demo import Demo
from .gemini import Gemini
from .kimi import Kimi
from .opencode import Opencode
from .pi import Pi

RUNNERS: dict[str, type[Runner]] = {
    "claude": Claude,
    "codex": Codex,
    "gemini": Gemini,
    "opencode": Opencode,
    "cursor": Cursor,
    "cursor-agent": Cursor,
    "pi": Pi,
    "kimi": Kimi,
    "demo": Demo,
}


def get_runner(name_or_obj: Any) -> Runner:
    """A runner object from a name ("claude", "demo", ...), a Runner class, or a Runner."""
    if isinstance(name_or_obj, Runner):
        return name_or_obj
    if isinstance(name_or_obj, type) and issubclass(name_or_obj, Runner):
        return name_or_obj()
    if isinstance(name_or_obj, str):
        cls = RUNNERS.get(name_or_obj.strip().lower())
        if cls is not None:
            return cls()
        known = ", ".join(sorted(set(RUNNERS) - {"cursor-agent"}))
        raise RunnerError(
            f"unknown runner {name_or_obj!r}; known runners: {known}, or pass "
            "ralphnb.Command([...]) to run any program",
            runner=name_or_obj,
        )
    raise RunnerError(f"runner must be a name or a Runner object, not {type(name_or_obj).__name__}")


def runner_from_config(agent: Mapping[str, Any] | None, default: str | None = None) -> Runner:
    """The runner ralph's configuration names: `agent.runner` (else `default`), with
    `agent.model` and the executable from `agent.<runner>_bin` (e.g. `pi_bin`, `kimi_bin`).

    RunnerError when neither names a runner, or the name is unknown."""
    agent = agent or {}
    name = agent.get("runner") or default
    if not isinstance(name, str) or not name:
        raise RunnerError(
            "no runner configured: pass runner= or set agent.runner in .ralph/config.jsonc"
        )
    runner = get_runner(name)
    changes: dict[str, Any] = {}
    exe = agent.get(f"{runner.name}_bin")
    if isinstance(exe, str) and exe:
        changes["executable"] = exe
    if isinstance(agent.get("model"), str) and agent["model"]:
        changes["model"] = agent["model"]
    return runner.with_options(**changes) if changes else runner
