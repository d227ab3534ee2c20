"""Worker records as HTML: the table of the notebook display and of the live dashboard.

Owns: `html_table` (text/html, and the live widget with `fixed_rows=True`), the status colours
and the row heights the widget's button column must match. Text cells come from
`loop.report`, so text and HTML always show the same values.
Invariants: pure functions of their arguments; standard library only (no ipywidgets, no pandas).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..loop.report import COLUMNS, latest_by_task, row_cells

COLOURS = {
    "queued": "#6b7280",
    "starting": "#2563eb",
    "running": "#2563eb",
    "stopping": "#d97706",
    "succeeded": "#16a34a",
    "integrating": "#0d9488",
    "integrated": "#15803d",
    "failed": "#dc2626",
    "check_failed": "#e11d48",
    "stopped": "#d97706",
    "killed": "#b91c1c",
    "timed_out": "#c2410c",
    "conflict": "#9333ea",
    "review": "#0891b2",
    "discarded": "#6b7280",
}
STUCK_COLOUR = "#be123c"  # the badge beside the status of a worker flagged stuck
ROW_PX = 30  # height of one table row and of one button row: they must line up
HEAD_PX = 26  # height of the table's header row
TOP_PX = 24  # height of the summary line above the table


_CELL = (
    "padding:0 6px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;"
    "text-align:left;line-height:18px;"
)
_BADGE = "color:#fff;border-radius:3px;padding:1px 5px;font-size:11px;"
_WIDTHS = {"title": "max-width:200px;", "message": "max-width:320px;"}


def _live_css() -> str:
    """One style block for the live table: its rows are sent 4x a second, so cells carry
    short class names instead of repeating inline styles."""
    t = ".ralphnb-live"
    rules = [
        f"{t}{{border-collapse:collapse;font-size:12px}}",
        f"{t} td,{t} th{{{_CELL}}}",
        f"{t} thead tr{{height:{HEAD_PX}px;border-bottom:1px solid #9ca3af}}",
        f"{t} tbody tr{{height:{ROW_PX}px;border-bottom:1px solid #e5e7eb}}",
        f"{t} td.c-title{{{_WIDTHS['title']}}}{t} td.c-message{{{_WIDTHS['message']}}}",
        f"{t} .b{{{_BADGE}background:#374151}}",
    ]
    rules += [f"{t} .b-{k}{{background:{v}}}" for k, v in COLOURS.items()]
    rules.append(f"{t} .b-stuck{{background:{STUCK_COLOUR};margin-left:3px}}")
    return "<style>" + "".join(rules) + "</style>"


def html_table(
    records: list[Mapping[str, Any]],
    *,
    now: datetime | None = None,
    head: str | None = None,
    fixed_rows: bool = False,
) -> str:
    """The workers as an HTML table.

    Default: inline styles only (a static render, e.g. on GitHub, keeps them). `fixed_rows`
    (the live widget): one style block and class names, every row pinned to ROW_PX so the
    button column beside the table lines up.
    """
    # one pass building the table: header, then a row per record with its cells and colours
    now = now or datetime.now(UTC)
    latest = latest_by_task(records)
    rows = [row_cells(r, now) for r in latest]
    live = fixed_rows
    out = []
    if head is not None:
        top = f"height:{TOP_PX}px;overflow:hidden;" if live else ""
        out.append(
            f'<div class="ralphnb-summary" style="{top}font-family:monospace;'
            f'line-height:{TOP_PX}px;margin:0;white-space:nowrap">{html.escape(head)}</div>'
        )
    if live:
        out.append(_live_css() + '<table class="ralphnb-workers ralphnb-live"><thead><tr>')
        out.extend(f"<th>{html.escape(label)}</th>" for _, label in COLUMNS)
    else:
        out.append(
            '<table class="ralphnb-workers" style="border-collapse:collapse;'
            'font-size:12px"><thead><tr style="border-bottom:1px solid #9ca3af">'
        )
        out.extend(f'<th style="{_CELL}">{html.escape(label)}</th>' for _, label in COLUMNS)
    out.append("</tr></thead><tbody>")
    for rec, r in zip(latest, rows, strict=True):
        style = "" if live else ' style="border-bottom:1px solid #e5e7eb"'
        out.append(
            f'<tr data-task="{html.escape(r["task"])}" '
            f'data-status="{html.escape(r["status"])}"{style}>'
        )
        for key, _ in COLUMNS:
            text = html.escape(r[key])
            if key == "status":
                st = r[key] if r[key] in COLOURS else ""
                if live:
                    text = f'<span class="b b-{st}">{text}</span>'
                else:
                    colour = COLOURS.get(st, "#374151")
                    text = f'<span style="{_BADGE}background:{colour}">{text}</span>'
                if str(rec.get("stuck")) == "True":
                    text += (
                        '<span class="b b-stuck" title="stuck">stuck</span>'
                        if live
                        else f'<span style="{_BADGE}background:{STUCK_COLOUR}">stuck</span>'
                    )
            title = f' title="{text}"' if key in _WIDTHS else ""
            if live:
                cls = f' class="c-{key}"' if key in _WIDTHS else ""
                out.append(f"<td{cls}{title}>{text}</td>")
            else:
                out.append(f'<td style="{_CELL}{_WIDTHS.get(key, "")}"{title}>{text}</td>')
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


__all__ = ["COLOURS", "HEAD_PX", "ROW_PX", "STUCK_COLOUR", "TOP_PX", "html_table"]
