"""How a worker ended: `ExitInfo`, the one record every executor delivers, local or remote.

Owns: the record's fields and what follows from them alone (`duration`, `ok`). Plain data: no
process, no I/O, nothing to tear down. Does not own deciding what an exit means (the loop).
Invariants:
- Exactly one of `returncode` and `signal` is set (Popen's -N becomes `signal=N`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True)
class ExitInfo:
    """How a worker ended. Exactly one of `returncode` and `signal` is set."""

    pid: int
    returncode: int | None
    signal: int | None
    started_at: datetime
    ended_at: datetime
    log_path: Path
    reason: str | None  # "stop" | "kill" | None (exited by itself); Dask adds "lost"
    task_id: str | None = None
    worker_id: str | None = None
    stderr_path: Path | None = None

    @property
    def duration(self) -> float:
        return (self.ended_at - self.started_at).total_seconds()

    @property
    def ok(self) -> bool:
        return self.returncode == 0
