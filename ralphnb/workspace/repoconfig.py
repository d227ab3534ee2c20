"""Noticing that the repository's git configuration changed while an agent ran.

Owns: `config_fingerprint(repo)`, a string naming every key of the repository's own config
(`.git/config`, this checkout's worktree config, and every file they include) with a digest of
its values, plus a digest of every other file an agent could plant for the user's own git to
run (`hooks/*`, `info/attributes`, the worktree configs of linked worktrees); and
`describe_config_change(repo, before)`, one line naming what was added, changed or removed
since `before`, or None. The loop takes a fingerprint before an agent runs and holds the
integration for the user when it changed.
Invariants: values are never kept or shown, only named by key (a credential helper's
arguments, a token in a URL stay private); only reads (git config, file contents); the
user's global and system config are not covered (ralphnb's own sealed git calls never read
them, and a change there is the user's).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .git import run_git

_SCOPES = ("local", "worktree")
_VERSION = "repoconfig-1 "


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def config_snapshot(repo: str | Path) -> dict[str, str]:
    """key -> digest of its values, for the repository's own config and planted files."""
    r = run_git(
        ["config", "--list", "--show-scope", "--includes", "-z"],
        repo,
        check=False,
        errors="surrogateescape",
    )
    values: dict[str, list[str]] = {}
    items = r.stdout.split("\0")
    for scope, entry in zip(items[0::2], items[1::2], strict=False):
        if scope in _SCOPES:
            key, _, value = entry.partition("\n")
            values.setdefault(key, []).append(value)
    snap = {k: _digest("\0".join(v).encode("utf-8", "surrogateescape")) for k, v in values.items()}
    common = run_git(
        ["rev-parse", "--path-format=absolute", "--git-common-dir"], repo, check=False
    ).stdout.strip()
    if common:
        snap.update(_planted_files(Path(common)))
    return snap


def _planted_files(common: Path) -> dict[str, str]:
    """Digests of the files an agent could plant for the user's own git, named by path."""
    out: dict[str, str] = {}
    candidates = [common / "info" / "attributes", common / "config.worktree"]
    for sub in ("hooks", "worktrees"):
        d = common / sub
        if d.is_dir():
            if sub == "hooks":
                candidates += sorted(d.iterdir())
            else:
                candidates += sorted(w / "config.worktree" for w in d.iterdir())
    for p in candidates:
        try:
            out[p.relative_to(common).as_posix()] = _digest(p.read_bytes())
        except OSError:
            continue  # absent, or a directory
    return out


def config_fingerprint(repo: str | Path) -> str:
    """A string that changes whenever the repository's config or planted files change."""
    return _VERSION + json.dumps(config_snapshot(repo), sort_keys=True, separators=(",", ":"))


def diff_snapshots(before: dict[str, str], after: dict[str, str]) -> str | None:
    """One line naming the keys added, changed and removed, or None when equal. Pure."""
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    parts = [
        f"{what} {', '.join(keys)}"
        for what, keys in (("added", added), ("changed", changed), ("removed", removed))
        if keys
    ]
    return "; ".join(parts) if parts else None


def describe_config_change(repo: str | Path, before: str) -> str | None:
    """What changed in the repository's git config since `before` (a `config_fingerprint`),
    in one line naming keys and files, never values; None when nothing did."""
    now = config_snapshot(repo)
    try:
        if not before.startswith(_VERSION):
            raise ValueError(before[:20])
        then = json.loads(before[len(_VERSION) :])
        if not isinstance(then, dict):
            raise ValueError("not an object")
    except ValueError:
        return f"git config of {repo} cannot be compared (unreadable fingerprint)"
    what = diff_snapshots(then, now)
    return f"git config of {repo} changed: {what}" if what else None
