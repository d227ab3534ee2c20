"""What the view reads from a loop: its worker records, the header line, a log tail.

Owns: `Sampler` (records for a render, with live CPU/RSS sampled at most once a second and
carried over in between), `records`, `header`, `progress`, `loop_elapsed`, `loop_finished` and
`log_text`. Used by the dashboard (`widgets`) and its static text/HTML fallback.
Never: imports ipywidgets, changes the loop, or reads anything but the Loop's public API
(`snapshot`, `finished`, `progress`, `started_at`, `ended_at`, `logs`); a loop without one of
the optional attributes still renders (the figures are then derived from its records).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..loop.report import latest_by_task, record_value, summary, summary_line


def records(loop: Any, sample: bool = True) -> list[Mapping[str, Any]]:
    """The loop's worker records; `sample=False` skips the CPU/RSS scan."""
    return list(loop.snapshot(sample=sample))


class Sampler:
    """Records for rendering: a sampled `loop.snapshot()` (live CPU/RSS) on a render at most
    once every `every` seconds, and never more than `budget` of a core; unsampled reads in
    between, with the last CPU/RSS figures carried over to live workers. A sampled snapshot
    costs one shared process-table scan (~8 ms for 50 workers), so with the defaults the
    figures refresh about once a second (the dashboard ticks once a second while workers are
    live). `samples`, `took` and `took_total` count the sampled snapshots and their seconds
    (the dashboard benchmark reads them)."""

    def __init__(self, loop: Any, every: float = 1.0, budget: float = 0.05) -> None:
        self.loop, self.every, self.budget = loop, every, budget
        self.next_at = 0.0
        self.samples = 0
        self.took = self.took_total = 0.0
        self.last: dict[Any, tuple[Any, Any]] = {}

    @staticmethod
    def _key(rec: Mapping[str, Any]) -> Any:
        return rec.get("worker_id") or (rec.get("task_id"), rec.get("iteration"))

    def records(self) -> list[Mapping[str, Any]]:
        now = time.monotonic()
        if now >= self.next_at:
            t0 = time.perf_counter()
            recs = records(self.loop)
            took = time.perf_counter() - t0
            self.samples += 1
            self.took = took
            self.took_total += took
            self.next_at = now + max(self.every, took / self.budget)
            self.last = {self._key(r): (r.get("cpu_percent"), r.get("rss_mb")) for r in recs}
            return recs
        recs = records(self.loop, sample=False)
        for r in recs:
            if record_value(r, "ended_at") is None and self._key(r) in self.last:
                r["cpu_percent"], r["rss_mb"] = self.last[self._key(r)]
        return recs


def loop_finished(loop: Any) -> bool:
    """True once the loop has run and finished (`Loop.finished`)."""
    return bool(getattr(loop, "finished", False))


def progress(loop: Any, recs: list[Mapping[str, Any]]) -> tuple[int, int] | None:
    """(done, total): `Loop.progress`, else integrated tasks among those seen."""
    p = getattr(loop, "progress", None)
    if isinstance(p, tuple) and len(p) == 2:
        return int(p[0]), int(p[1])
    latest = latest_by_task(recs)
    done = sum(1 for r in latest if record_value(r, "status") == "integrated")
    return (done, len(latest)) if latest else None


def loop_elapsed(loop: Any, recs: list[Mapping[str, Any]], now: datetime) -> float | None:
    """Seconds the loop has run (until it ended), else since its first worker started."""
    started = getattr(loop, "started_at", None)
    if not isinstance(started, datetime):
        starts = [s for r in recs if isinstance(s := record_value(r, "started_at"), datetime)]
        started = min(starts) if starts else None
    if started is None:
        return None
    ended = getattr(loop, "ended_at", None)
    end = ended if isinstance(ended, datetime) else now
    return max(0.0, (end - started).total_seconds())


def header(loop: Any, recs: list[Mapping[str, Any]], now: datetime) -> str:
    """The summary line above the table: counts, progress, elapsed time, cost."""
    return summary_line(
        summary(recs, progress=progress(loop, recs), elapsed_s=loop_elapsed(loop, recs, now))
    )


def budget_text(loop: Any) -> tuple[str, str]:
    """(the header's "$spent / $limit" part, a banner saying why no attempt starts, or "");
    both empty for a loop without a `budget`."""
    budget = getattr(loop, "budget", None)
    if budget is None:
        return "", ""
    spent, limit = budget.spent, budget.limit
    est = " est." if budget.estimated else ""
    part = f"${spent:.2f}{est} / " + ("no limit" if limit is None else f"${limit:.2f}")
    reason = budget.reason()
    if reason is None:
        return part, ""
    halted = getattr(loop, "halt_reason", None)
    then = "halted" if halted or loop_finished(loop) else "raise the budget to go on"
    return part, f"{reason}: no new attempt starts ({then})"


def log_text(loop: Any, task_id: str, n: int = 40) -> str:
    """The last `n` lines of a task's log, or why there is none."""
    try:
        lines = loop.logs(task_id)
    except Exception as exc:  # a log that is not there yet, a task with no attempt
        return f"(no log: {exc})"
    if isinstance(lines, str):
        lines = lines.splitlines()
    return "\n".join(list(lines)[-n:])


__all__ = [
    "Sampler",
    "budget_text",
    "header",
    "log_text",
    "loop_elapsed",
    "loop_finished",
    "progress",
    "records",
]
