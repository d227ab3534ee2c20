"""Worker records as text and HTML tables: the pure formatters behind the dashboard.

Owns: the one place worker records (`loop.snapshot()` dicts, one per worker attempt, or a
replayed run's records) become display strings — `row_cells`, `latest_by_task`, `summary` /
`summary_line`, the text table (`attempts_table` / `attempt_line`: `repr(loop)`, `repr(Run)`,
`ralphnb run` / `status`; `text_table`: one row per task, the text/plain fallback) and
`html_table` (text/html, and the live widget with `fixed_rows=True`) — plus the worker status
list `STATUSES` (the table's categories), status colours and the row heights the widget's
button column must match.

Invariants:
- Pure functions of their arguments (the clock only when `now` is not given); no I/O, no
  threads, no state.
- Standard library only (no ipywidgets, no pandas): safe to import anywhere, e.g. for the
  CLI's live table or `repr(loop)`. Missing / NaN / pd.NA / NaT values render as empty cells;
  a start time that is not a datetime (records sent as JSON) falls back to `elapsed_s`.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

#: Worker statuses in display order (the categories of `loop.df.status`); the first four are
#: the ones a process may still be behind, the rest come after it has ended.
STATUSES: tuple[str, ...] = (
    "queued", "starting", "running", "stopping", "succeeded", "failed", "stopped", "killed",
    "timed_out", "integrating", "integrated", "conflict",
)
COLOURS = {
    "queued": "#6b7280", "starting": "#2563eb", "running": "#2563eb", "stopping": "#d97706",
    "succeeded": "#16a34a", "integrating": "#0d9488", "integrated": "#15803d",
    "failed": "#dc2626", "stopped": "#d97706", "killed": "#b91c1c", "timed_out": "#c2410c",
    "conflict": "#9333ea",
}
ROW_PX = 30  # height of one table row and of one button row: they must line up
HEAD_PX = 26  # height of the table's header row
TOP_PX = 24  # height of the summary line above the table


def _val(rec: Mapping[str, Any], key: str) -> Any:
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
    started = _val(rec, "started_at")
    if _val(rec, "ended_at") is None and isinstance(started, datetime):
        return max(0.0, (now - started).total_seconds())
    return _val(rec, "elapsed_s")


def latest_by_task(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One record per task (its latest attempt), in the order tasks first appeared."""
    out: dict[str, Mapping[str, Any]] = {}
    for rec in records:
        tid = str(rec.get("task_id"))
        prev = out.get(tid)
        if prev is None or (_val(rec, "iteration") or 0) >= (_val(prev, "iteration") or 0):
            out[tid] = rec
    return list(out.values())


def row_cells(rec: Mapping[str, Any], now: datetime) -> dict[str, str]:
    """The display strings of one worker row (plain text, not escaped)."""
    msg = _val(rec, "error") if _val(rec, "status") in ("failed", "conflict") else None
    msg = msg or _val(rec, "last_message") or ""
    msg = " ".join(str(msg).split())
    return {
        "task": str(rec.get("task_id") or ""),
        "title": str(_val(rec, "title") or ""),
        "status": str(_val(rec, "status") or ""),
        "iter": str(_val(rec, "iteration") or ""),
        "elapsed": _fmt_secs(_elapsed(rec, now)),
        "cpu": _fmt_num(_val(rec, "cpu_percent"), ".0f"),
        "mem": _fmt_num(_val(rec, "rss_mb"), ".0f"),
        "turns": str(_val(rec, "turns") or ""),
        "cost": _fmt_num(_val(rec, "cost_usd"), ".3f"),
        "message": msg[:160],
    }


COLUMNS = [("task", "task"), ("title", "title"), ("status", "status"), ("iter", "it"),
           ("elapsed", "elapsed"), ("cpu", "cpu%"), ("mem", "MB"), ("turns", "turns"),
           ("cost", "$"), ("message", "last message")]


def summary(records: list[Mapping[str, Any]], *, progress: tuple[int, int] | None = None,
            elapsed_s: float | None = None) -> dict[str, Any]:
    """Counts by status, total cost, elapsed and queue progress of a set of records."""
    counts: dict[str, int] = {}
    for rec in latest_by_task(records):
        st = str(_val(rec, "status") or "?")
        counts[st] = counts.get(st, 0) + 1
    cost = sum(float(_val(r, "cost_usd") or 0.0) for r in records)
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


def attempt_line(rec: Mapping[str, Any], *, now: datetime | None = None,
                 width: int = 110, task_w: int = 7) -> str:
    """One worker attempt as one fixed-width line (the rows of `attempts_table`)."""
    now = now or datetime.now(UTC)
    r = row_cells(rec, now)
    r["pid"] = str(_val(rec, "pid") or "")
    cols = [("task", task_w), *_TEXT_COLS]
    line = "  ".join(f"{r[k][:w]:<{w}}" for k, w in cols) + "  " + r["message"]
    return line[:width].rstrip()


_TEXT_COLS = [("iter", 2), ("status", 11), ("pid", 7), ("elapsed", 7), ("cpu", 4),
              ("mem", 5), ("cost", 6), ("title", 20)]
_TEXT_LABELS = {**dict(COLUMNS), "pid": "pid"}


def attempts_table(records: list[Mapping[str, Any]], *, now: datetime | None = None,
                   head: str | None = None, width: int = 110) -> str:
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


def text_table(records: list[Mapping[str, Any]], *, now: datetime | None = None,
               head: str | None = None, width: int = 110) -> str:
    """The text table with one line per task (its latest attempt): the text/plain fallback
    of the dashboard. Same layout and summary line as `attempts_table`."""
    head = head if head is not None else summary_line(summary(records))
    return attempts_table(latest_by_task(records), now=now, head=head, width=width)


_CELL = ("padding:0 6px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;"
         "text-align:left;line-height:18px;")
_BADGE = "color:#fff;border-radius:3px;padding:1px 5px;font-size:11px;"
_WIDTHS = {"title": "max-width:200px;", "message": "max-width:320px;"}


def _live_css() -> str:
    """One style block for the live table: its rows are sent 4x a second, so cells carry
    short class names instead of repeating inline styles."""
    t = ".ralphnb-live"
    rules = [f"{t}{{border-collapse:collapse;font-size:12px}}",
             f"{t} td,{t} th{{{_CELL}}}",
             f"{t} thead tr{{height:{HEAD_PX}px;border-bottom:1px solid #9ca3af}}",
             f"{t} tbody tr{{height:{ROW_PX}px;border-bottom:1px solid #e5e7eb}}",
             f"{t} td.c-title{{{_WIDTHS['title']}}}{t} td.c-message{{{_WIDTHS['message']}}}",
             f"{t} .b{{{_BADGE}background:#374151}}"]
    rules += [f"{t} .b-{k}{{background:{v}}}" for k, v in COLOURS.items()]
    return "<style>" + "".join(rules) + "</style>"


def html_table(records: list[Mapping[str, Any]], *, now: datetime | None = None,
               head: str | None = None, fixed_rows: bool = False) -> str:
    """The workers as an HTML table.

    Default: inline styles only (a static render, e.g. on GitHub, keeps them). `fixed_rows`
    (the live widget): one style block and class names, every row pinned to ROW_PX so the
    button column beside the table lines up.
    """
    now = now or datetime.now(UTC)
    rows = [row_cells(r, now) for r in latest_by_task(records)]
    live = fixed_rows
    out = []
    if head is not None:
        top = f"height:{TOP_PX}px;overflow:hidden;" if live else ""
        out.append(f'<div class="ralphnb-summary" style="{top}font-family:monospace;'
                   f'line-height:{TOP_PX}px;margin:0;white-space:nowrap">{html.escape(head)}</div>')
    if live:
        out.append(_live_css() + '<table class="ralphnb-workers ralphnb-live">'
                   "<thead><tr>")
        out.extend(f"<th>{html.escape(label)}</th>" for _, label in COLUMNS)
    else:
        out.append('<table class="ralphnb-workers" style="border-collapse:collapse;'
                   'font-size:12px"><thead><tr style="border-bottom:1px solid #9ca3af">')
        out.extend(f'<th style="{_CELL}">{html.escape(label)}</th>' for _, label in COLUMNS)
    out.append("</tr></thead><tbody>")
    for r in rows:
        style = "" if live else ' style="border-bottom:1px solid #e5e7eb"'
        out.append(f'<tr data-task="{html.escape(r["task"])}" '
                   f'data-status="{html.escape(r["status"])}"{style}>')
        for key, _ in COLUMNS:
            text = html.escape(r[key])
            if key == "status":
                st = r[key] if r[key] in COLOURS else ""
                if live:
                    text = f'<span class="b b-{st}">{text}</span>'
                else:
                    colour = COLOURS.get(st, "#374151")
                    text = f'<span style="{_BADGE}background:{colour}">{text}</span>'
            title = f' title="{text}"' if key in _WIDTHS else ""
            if live:
                cls = f' class="c-{key}"' if key in _WIDTHS else ""
                out.append(f"<td{cls}{title}>{text}</td>")
            else:
                out.append(f'<td style="{_CELL}{_WIDTHS.get(key, "")}"{title}>{text}</td>')
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


__all__ = [
    "COLOURS", "COLUMNS", "HEAD_PX", "ROW_PX", "STATUSES", "TOP_PX", "attempt_line",
    "attempts_table", "html_table", "latest_by_task", "row_cells", "summary", "summary_line",
    "text_table",
]
