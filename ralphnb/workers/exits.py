"""How a worker ended: `ExitInfo`, the one record every executor delivers, local or remote.

Owns: the record's fields and what follows from them alone (`duration`, `ok`). Plain data: no
process, no I/O, nothing to tear down. Does not own deciding what an exit means (the loop).
Invariants:
- Exactly one of `returncode` and `signal` is set (Popen's -N becomes `signal=N`).
- `detail` is the executor's own word beside the process's exit, None when it has none: why a
  remote agent was lost, or that its log could not be written ("<log>: no space left on
  device"; the output was still read and parsed). The loop shows it as the attempt's error.
- `queue_marks` is None unless the agent ran against a stub queue (the Dask executor with
  queue_writes="client"): then it is what the agent did there to its task, for the loop to
  apply to the user's queue. A worker never writes the user's queue itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ExitInfo:
    """How a worker ended. Exactly one of `returncode` and `signal` is set.

    `queue_marks`: `{"status": "done" | "rejected" | None, "notes": [str, ...], "added": [task
    dicts]}` = the final status the agent gave its task in its stub queue with the notes it added
    then, and the tasks it added there (as the stub holds them); None when there was no stub
    queue or the agent changed nothing in it.
    """

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
    queue_marks: dict[str, Any] | None = None
    detail: str | None = None

    @property
    def duration(self) -> float:
        return (self.ended_at - self.started_at).total_seconds()

    @property
    def ok(self) -> bool:
        return self.returncode == 0
