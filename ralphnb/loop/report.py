"""Worker records as text: the one place records become display strings.

Owns: `record_value` (a field, None when missing or NaN), `row_cells`, `latest_by_task`,
`summary` / `summary_line`, the text tables (`attempts_table` / `attempt_line`: `repr(loop)`,
`repr(Run)`, `ralphnb run` / `status`; `text_table`: one row per task, the text/plain fallback)
and the column list `COLUMNS` the HTML table (view/render) shares.
Invariants: pure functions of their arguments (the clock only when `now` is not given);
standard library only. Missing / NaN / pd.NA / NaT values render as empty cells; a start time
that is not a datetime (records sent as JSON) falls back to `elapsed_s`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from .table import STATUSES


def record_value(rec: Mapping[str, Any], key: str) -> Any:
    """A record value, with None for missing / NaN / pd.NA / NaT."""
    v = rec.get(key)
    if v is None:
        return None
    try:
        if v != v:  # NaN, NaT
            return None
    except (TypeError, ValueError):  # pd.NA refuses comparisons
        return None
    return v


def _fmt_secs(s: Any) -> str:
    if s is None:
        return ""
    s = float(s)
    if s < 10:
        return f"{s:.1f}s"
    s = int(s)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}:{s % 60:02d}"


def _fmt_num(v: Any, fmt: str) -> str:
    return "" if v is None else format(float(v), fmt)


def _elapsed(rec: Mapping[str, Any], now: datetime) -> float | None:
    """Seconds a worker has run: the record's elapsed_s, else now - started_at while live."""
    started = record_value(rec, "started_at")
    if record_value(rec, "ended_at") is None and isinstance(started, datetime):
        return max(0.0, (now - started).total_seconds())
    return record_value(rec, "elapsed_s")


def latest_by_task(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One record per task (its latest attempt), in the order tasks first appeared."""
    out: dict[str, Mapping[str, Any]] = {}
    for rec in records:
        tid = str(rec.get("task_id"))
        prev = out.get(tid)
        it = record_value(rec, "iteration") or 0
        if prev is None or it >= (record_value(prev, "iteration") or 0):
            out[tid] = rec
    return list(out.values())


def row_cells(rec: Mapping[str, Any], now: datetime) -> dict[str, str]:
    """The display strings of one worker row (plain text, not escaped)."""
    failed = record_value(rec, "status") in ("failed", "conflict", "check_failed")
    msg = record_value(rec, "error") if failed else None
    msg = msg or record_value(rec, "last_message") or ""
    msg = " ".join(str(msg).split())
    return {
        "task": str(rec.get("task_id") or ""),
        "title": str(record_value(rec, "title") or ""),
        "status": str(record_value(rec, "status") or ""),
        "iter": str(record_value(rec, "iteration") or ""),
        "phase": str(record_value(rec, "phase") or ""),
        "elapsed": _fmt_secs(_elapsed(rec, now)),
        "cpu": _fmt_num(record_value(rec, "cpu_percent"), ".0f"),
        "mem": _fmt_num(record_value(rec, "rss_mb"), ".0f"),
        "turns": str(record_value(rec, "turns") or ""),
        "cost": _fmt_num(record_value(rec, "cost_usd"), ".3f"),
        "message": msg[:160],
    }


COLUMNS = [
    ("task", "task"),
    ("title", "title"),
    ("status", "status"),
    ("iter", "it"),
    ("phase", "phase"),
    ("elapsed", "elapsed"),
    ("cpu", "cpu%"),
    ("mem", "MB"),
    ("turns", "turns"),
    ("cost", "$"),
    ("message", "last message"),
]


def summary(
    records: Sequence[Mapping[str, Any]],
    *,
    progress: tuple[int, int] | None = None,
    elapsed_s: float | None = None,
) -> dict[str, Any]:
    """Counts by status, total cost, elapsed and queue progress of a set of records."""
    counts: dict[str, int] = {}
    for rec in latest_by_task(records):
        st = str(record_value(rec, "status") or "?")
        counts[st] = counts.get(st, 0) + 1
    cost = sum(float(record_value(r, "cost_usd") or 0.0) for r in records)
    return {"counts": counts, "cost_usd": cost, "elapsed_s": elapsed_s, "progress": progress}


def summary_line(s: Mapping[str, Any]) -> str:
    parts = [f"{k} {v}" for k, v in sorted(s["counts"].items(), key=lambda kv: _rank(kv[0]))]
    text = " · ".join(parts) or "no workers yet"
    text += f" | cost ${s['cost_usd']:.3f}"
    if s.get("elapsed_s") is not None:
        text += f" | elapsed {_fmt_secs(s['elapsed_s'])}"
    if s.get("progress"):
        done, total = s["progress"]
        text += f" | done {done}/{total}"
    return text


def _rank(status: str) -> int:
    return STATUSES.index(status) if status in STATUSES else len(STATUSES)


def attempt_line(
    rec: Mapping[str, Any], *, now: datetime | None = None, width: int = 110, task_w: int = 7
) -> str:
    """One worker attempt as one fixed-width line (the rows of `attempts_table`)."""
    now = now or datetime.now(UTC)
    r = row_cells(rec, now)
    r["pid"] = str(record_value(rec, "pid") or "")
    cols = [("task", task_w), *_TEXT_COLS]
    line = "  ".join(f"{r[k][:w]:<{w}}" for k, w in cols) + "  " + r["message"]
    return line[:width].rstrip()


_TEXT_COLS = [
    ("iter", 2),
    ("status", 11),
    ("pid", 7),
    ("elapsed", 7),
    ("cpu", 4),
    ("mem", 5),
    ("cost", 6),
    ("title", 20),
]


_TEXT_LABELS = {**dict(COLUMNS), "pid": "pid"}


def attempts_table(
    records: Sequence[Mapping[str, Any]],
    *,
    now: datetime | None = None,
    head: str | None = None,
    width: int = 110,
) -> str:
    """The text table: a summary line (status counts of the tasks, cost), a header, then one
    line per record given, in order. `repr(loop)`, `repr(Run)`, `ralphnb status` and the
    live terminal table pass every attempt; `text_table` passes each task's latest."""
    now = now or datetime.now(UTC)
    task_w = max([7, *(len(str(r.get("task_id") or "")) for r in records)])
    cols = [("task", task_w), *_TEXT_COLS]
    lines = [head if head is not None else summary_line(summary(records))]
    if records:
        lines.append("  ".join(f"{_TEXT_LABELS[k]:<{w}}" for k, w in cols) + "  last message")
    lines += [attempt_line(r, now=now, width=width, task_w=task_w) for r in records]
    return "\n".join(lines)


def text_table(
    records: list[Mapping[str, Any]],
    *,
    now: datetime | None = None,
    head: str | None = None,
    width: int = 110,
) -> str:
    """The text table with one line per task (its latest attempt): the text/plain fallback
    of the dashboard. Same layout and summary line as `attempts_table`."""
    head = head if head is not None else summary_line(summary(records))
    return attempts_table(latest_by_task(records), now=now, head=head, width=width)
