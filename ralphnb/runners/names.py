"""Runner names: which adapter a name such as "claude" or a task's `agent.runner` means.

Owns: `RUNNERS` (name -> adapter class) and `get_runner`. Invariant: an unknown name is a
`RunnerError` listing the known ones, never a silent fallback.
"""

from __future__ import annotations

from typing import Any

from ..errors import RunnerError
from .base import Runner
from .claude import Claude
from .codex import Codex
from .cursor import Cursor
from .demo import Demo
from .gemini import Gemini
from .opencode import Opencode

RUNNERS: dict[str, type[Runner]] = {
    "claude": Claude,
    "codex": Codex,
    "gemini": Gemini,
    "opencode": Opencode,
    "cursor": Cursor,
    "cursor-agent": Cursor,
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
