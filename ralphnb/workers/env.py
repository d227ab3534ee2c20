"""The environment a worker gets: an allow-list of the parent's variables plus explicit ones.

Owns: `DEFAULT_ENV_ALLOW` and `build_env` (pure given its `base`). Does not own which extra
variables an agent needs (the runners and the loop pass them) or redaction (the loop).
Invariant: nothing outside the allow-list reaches a worker unless it is passed explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

DEFAULT_ENV_ALLOW: tuple[str, ...] = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TERM",
    "TZ",
    "TMPDIR",
    "SHELL",
    "GIT_AUTHOR_*",
    "GIT_COMMITTER_*",
)


def build_env(
    extra: Mapping[str, str | None] | None = None,
    *,
    allow: Iterable[str] = DEFAULT_ENV_ALLOW,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The parent's allow-listed variables (`NAME` or `PREFIX*`) plus `extra` (None deletes)."""
    base = os.environ if base is None else base
    exact = {a for a in allow if not a.endswith("*")}
    prefixes = tuple(a[:-1] for a in allow if a.endswith("*"))
    env = {k: v for k, v in base.items() if k in exact or (prefixes and k.startswith(prefixes))}
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env
