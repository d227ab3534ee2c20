"""The variants of a sweep: a name and what runs under it (a runner, a prompt template).

Owns: `Variant` and `variants_from` (a mapping of names to runners, `Variant`s or
`runner[:model]` strings, or a list of such strings, to named `Variant`s), `parse_variant`
(`"claude:sonnet"` -> a Claude runner with model sonnet). Never: starts anything.
Invariant: variant names are safe in a workspace name and a branch (letters, digits, `.`, `_`,
`-`), checked up front.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import RalphError
from ..runners import get_runner
from ..runners.base import Runner

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class Variant:
    """One arm of a sweep: `runner` (an object or a name) and an optional `prompt_template`
    (as `Loop(prompt_template=...)`)."""

    runner: Any
    prompt_template: str | None = None


def parse_variant(text: str) -> Runner:
    """`runner[:model]` -> a runner (`demo`, `claude:sonnet`, `codex:gpt-5.5`)."""
    name, _, model = text.partition(":")
    runner = get_runner(name.strip())
    return runner.with_options(model=model.strip()) if model.strip() else runner


def _safe(name: str) -> str:
    """A variant name made safe for a workspace and a branch name."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")
    return safe or "variant"


def variants_from(spec: Mapping[str, Any] | Iterable[str]) -> dict[str, Variant]:
    """Named variants from a mapping (name -> runner | Variant | "runner[:model]") or a list
    of `runner[:model]` strings (each its own name, made safe)."""
    items = list(spec.items()) if isinstance(spec, Mapping) else [(_safe(s), s) for s in spec]
    if not items:
        raise RalphError("a sweep needs at least one variant")
    out: dict[str, Variant] = {}
    for name, value in items:
        if not _NAME.fullmatch(str(name)):
            raise RalphError(
                f"variant name {name!r}: use letters, digits, '_' and '-' (it names workspaces)"
            )
        if name in out:
            raise RalphError(f"variant {name!r} is given twice")
        if isinstance(value, Variant):
            var = value
        elif isinstance(value, str):
            var = Variant(parse_variant(value))
        else:
            var = Variant(value, getattr(value, "prompt_template", None))
        runner = var.runner if not isinstance(var.runner, str) else parse_variant(var.runner)
        out[str(name)] = Variant(runner, var.prompt_template)
    return out


__all__ = ["Variant", "parse_variant", "variants_from"]
