"""`FakeLoop`: a stand-in for `ralphnb.Loop` with the methods the view calls, for view tests.

It holds worker records in a dict and calls its subscribers on every change, so rendering,
throttling and button wiring are tested without processes. Tests that need real workers use a
real `ralphnb.Loop`.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from ralphnb.runners.transcript import Entry, Transcript


class FakeLoop:
    """Stand-in for ralphnb.Loop with the same method names (unit tests only)."""

    def __init__(self, n: int = 3) -> None:
        now = datetime.now(UTC)
        self.records = {
            f"RQ-{i:04d}": {
                "task_id": f"RQ-{i:04d}",
                "title": f"task {i}",
                "iteration": 1,
                "status": "running",
                "pid": 1000 + i,
                "started_at": now - timedelta(seconds=5),
                "ended_at": None,
                "elapsed_s": None,
                "cpu_percent": 1.0,
                "rss_mb": 20.0,
                "turns": 2,
                "cost_usd": 0.01,
                "last_message": f"working on {i}",
                "error": None,
            }
            for i in range(1, n + 1)
        }
        self.subscribers: list[Any] = []
        self.calls: list[tuple[str, Any]] = []
        self.release = threading.Event()
        self.release.set()
        self.finished = False
        self.paused = False
        self.sampled = 0  # snapshot(sample=True) calls
        self.lock = threading.Lock()

    def snapshot(self, sample: bool = True) -> list[dict]:
        self.sampled += sample
        with self.lock:
            return [dict(r) for r in self.records.values()]

    def subscribe(self, cb: Any) -> Any:
        self.subscribers.append(cb)
        return lambda: self.subscribers.remove(cb)

    def emit(self) -> None:
        for cb in list(self.subscribers):
            cb({"kind": "test"})

    def set(self, task_id: str, **fields: Any) -> None:
        with self.lock:
            self.records[task_id].update(fields)
        self.emit()

    def _end(self, task_id: str, status: str) -> None:
        self.release.wait(10)
        self.set(task_id, status=status, ended_at=datetime.now(UTC), elapsed_s=5.0)

    def stop(self, task_id: str) -> None:
        self.calls.append(("stop", task_id))
        self._end(task_id, "stopped")

    def kill(self, task_id: str) -> None:
        self.calls.append(("kill", task_id))
        self._end(task_id, "killed")

    def stop_all(self) -> None:
        self.calls.append(("stop_all", None))

    def pause(self) -> None:
        self.calls.append(("pause", None))
        self.paused = True
        self.emit()

    def resume(self) -> None:
        self.calls.append(("resume", None))
        self.paused = False
        self.emit()

    def logs(self, task_id: str) -> list[str]:
        return [f"{task_id} line {i}" for i in range(100)]

    def transcript(self, task_id: str) -> Transcript:
        """The log lines as plain-text entries, one tool call and one error at the end."""
        entries = [Entry("text", text=line) for line in self.logs(task_id)]
        entries += [Entry("tool_call", tool="Bash", args='{"command": "ls"}')]
        entries += [Entry("error", text=f"{task_id} <failed>")]
        return Transcript(task_id, 1, entries, live=True)

    def finish(self) -> None:
        self.finished = True
        self.emit()
