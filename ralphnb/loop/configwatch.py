"""Whether an agent changed a repository's git configuration while it ran, for one task.

Owns: `ConfigWatch`, the fingerprints (`workspace.repoconfig.config_fingerprint`) of the git
configs an agent in a workspace can write -- the user's repository (a linked worktree shares its
config and hooks; a clone's agent can reach it through RALPHNB_REPO) and a clone's own -- taken
before each attempt, and the one line saying what changed since (`changed`). A change stays the
baseline's until it is undone: later attempts do not re-arm over it. `held_message` is what the
task's row says while its integration waits for the user.
Invariants: only reads (git config, files); keys and files are named, values never kept or
shown; a copy workspace (no git) watches nothing.
"""

from __future__ import annotations

from pathlib import Path

from ..workspace.repoconfig import config_fingerprint, describe_config_change
from ..workspace.workspaces import Workspace


def watched(repo: Path, ws: Workspace) -> list[Path]:
    """Whose git config an agent in `ws` can write (see the module docstring)."""
    if ws.kind == "copy":
        return []
    return [repo] if ws.kind == "worktree" else [Path(ws.path), repo]


class ConfigWatch:
    """The git configs one task's agent could change, compared around its attempts."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.before: dict[Path, str] = {}
        self.noted: str | None = None  # the change last reported by `new_change`

    def arm(self) -> None:
        """Before an attempt: the baseline (kept as it is while a change is still there)."""
        if not self.before or self.changed() is None:
            self.before = {p: config_fingerprint(p) for p in self.paths}

    def changed(self) -> str | None:
        """What changed since the baseline, in one line naming keys and files; None if nothing
        did (or nothing was armed)."""
        found = [describe_config_change(p, fp) for p, fp in self.before.items()]
        return "; ".join(f for f in found if f) or None

    def new_change(self) -> str | None:
        """`changed()`, but each distinct change only once (a row says it once)."""
        change = self.changed()
        if change is None or change == self.noted:
            return None
        self.noted = change
        return change


def held_message(change: str, task_id: str) -> str:
    """The row's message while a changed git config holds the task's integration."""
    return (
        f"waiting: {change} while the agent ran (a program configured there would run in your "
        "own git commands); nothing is merged until it is restored: undo that change and the "
        f"loop retries every few seconds, or stop the task (loop.stop({task_id!r}) or "
        f"`ralphnb stop {task_id}`) to put it back unmerged"
    )
