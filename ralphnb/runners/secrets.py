"""What counts as a secret in an agent's environment, and redacting it from what ralphnb shows.

Owns: `secret_values(env)` — the values to hide: every variable whose name has a secret-like
word (KEY, TOKEN, SECRET, PASSWORD, CREDENTIAL, AUTH, ...), whatever the value's length, plus
the password of any URL in any variable (`postgres://user:PASSWORD@host/db`) — and `redact`,
which replaces them in strings, dicts and lists (events, the DataFrame, the journal).
Identity variables (`GIT_AUTHOR_EMAIL`, `GIT_COMMITTER_NAME`) are not secrets.
Invariants: pure functions; a short secret (under 8 characters) is replaced only where it
stands as a whole token, so a one-character value cannot garble every line; URL passwords are
redacted in any string, known or not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[redacted]"
_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH", "COOKIE")
_NOT_SECRET = frozenset({"AUTHOR", "AUTHORS", "KEYBOARD", "KEYMAP"})
_SHORT = 8
# scheme://user:password@host — the password is group 2
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*:)([^\s/@]+)(@)")


def is_secret_name(name: str) -> bool:
    """Does a variable name look secret? (`MY_API_KEY` yes, `GIT_AUTHOR_EMAIL` no)"""
    for part in re.split(r"[_\W]+", name.upper()):
        if part and part not in _NOT_SECRET and any(w in part for w in _SECRET_WORDS):
            return True
    return False


def secret_values(env: Mapping[str, str]) -> list[str]:
    """Values to redact from what the agent's run shows: secret-named variables' values and
    URL passwords in any variable, longest first (so a secret containing another is whole)."""
    found = {v for k, v in env.items() if v and is_secret_name(k)}
    for v in env.values():
        found.update(m.group(2) for m in _URL_PASSWORD.finditer(v or ""))
    return sorted(found, key=lambda s: (-len(s), s))


def _pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    alts = [
        re.escape(s) if len(s) >= _SHORT else rf"(?<![A-Za-z0-9]){re.escape(s)}(?![A-Za-z0-9])"
        for s in secrets
        if s
    ]
    return re.compile("|".join(alts)) if alts else None


class Redactor:
    """Replaces the given secrets (and any URL password) in strings, dicts and lists."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._re = _pattern(secrets)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            if self._re is not None:
                value = self._re.sub(REDACTED, value)
            return _URL_PASSWORD.sub(rf"\g<1>{REDACTED}\g<3>", value)
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        return value


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """`value` with every secret replaced by `[redacted]` (see `Redactor`)."""
    return Redactor(secrets)(value)
