"""Which branches ralphnb created: the record that lets it delete only its own.

Owns: `BranchRecords`, one small JSON file in the workspace root's metadata directory
(`<root>/.ralphnb-meta/branches.json`, `{"version": 1, "branches": {branch: {"task_id",
"repo"}}}`) listing every `ralph/<ID>` branch ralphnb made in a repository. It outlives the
workspace, so a later run can still remove the branch of a task that was archived meanwhile.
Invariants: a branch is recorded only by the code that created it; each write is atomic (temp
file, rename); a missing or unreadable file means "nothing recorded", so ralphnb then deletes
nothing. Never: runs git or deletes a branch itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path


class BranchRecords:
    """The branches ralphnb created in `repo`, kept in `path`."""

    def __init__(self, path: Path, repo: Path) -> None:
        self.path = path
        self.repo = str(repo)
        self._lock = threading.Lock()

    def _read(self) -> dict[str, dict]:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        branches = doc.get("branches") if isinstance(doc, dict) else None
        return branches if isinstance(branches, dict) else {}

    def _write(self, branches: dict[str, dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(json.dumps({"version": 1, "branches": branches}, indent=1))
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def add(self, branch: str, task_id: str) -> None:
        """Record that ralphnb just created `branch` for `task_id` (raises if it cannot)."""
        with self._lock:
            branches = self._read()
            branches[branch] = {"task_id": task_id, "repo": self.repo}
            self._write(branches)

    def forget(self, branch: str) -> None:
        """Drop `branch` from the record (it was deleted); never raises."""
        with self._lock, contextlib.suppress(OSError):
            branches = self._read()
            if branches.pop(branch, None) is not None:
                self._write(branches)

    def mine(self) -> dict[str, str]:
        """branch -> task id, for the branches recorded as created in this repository."""
        with self._lock:
            return {
                b: str(v.get("task_id"))
                for b, v in self._read().items()
                if isinstance(v, dict) and v.get("repo") == self.repo
            }
