"""A transcript as HTML for a notebook and the dashboard's Log view.

Owns: `transcript_html` (entries -> one HTML string: messages as text, tool calls collapsed
with their arguments, results clipped, errors in red, the final usage line), `render` (the
`Transcript.renderer` a loop hands out) and `live_html` (the dashboard's Log view of a task).
Invariants: pure functions of their arguments (`live_html` reads `loop.transcript`), standard
library only; every text is escaped;
the cost is linear in the entries shown and bounded per entry (arguments and results are
clipped before escaping), so a 10,000-entry attempt renders in well under 200 ms; per-message
usage lines are left out (the final totals stay).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..runners.transcript import Entry, Transcript


def escape(text: str) -> str:
    """`text` for an element's body (never an attribute: quotes stay as they are). Three
    replacements inline: the one cost every entry pays."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


ARGS_CLIP = 2000  # characters of a tool call's arguments shown
RESULT_CLIP = 600  # characters of a tool result shown
SUMMARY_CLIP = 100  # characters of the arguments in a collapsed call's one line
LIVE_ENTRIES = 300  # entries the dashboard's Log view shows (the latest)

_BOX = (
    '<div class="ralphnb-transcript" style="font-family:var(--jp-ui-font-family,sans-serif);'
    'font-size:12px;line-height:1.4">'
)
_PRE = 'style="white-space:pre-wrap;margin:2px 0 2px 16px;font-size:11px;'


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more]"


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text[: limit * 2].split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def entry_html(e: Entry) -> str:
    """One entry as HTML ('' for entries not shown: per-message usage)."""
    kind = e.kind
    if kind == "usage" and not e.final:  # the most frequent entry: out first
        return ""
    if kind == "message":
        return f'<div style="white-space:pre-wrap;margin:4px 0">{escape(e.text)}</div>'
    if kind == "tool_call":
        args = e.args or ""
        return (
            f'<details style="margin:2px 0"><summary style="cursor:pointer;color:#1d4ed8">'
            f"&#9656; <b>{escape(e.tool or '?')}</b> "
            f'<span style="color:#6b7280">{escape(_one_line(args, SUMMARY_CLIP))}</span>'
            f'</summary><pre {_PRE}background:#f3f4f6">{escape(_clip(args, ARGS_CLIP))}</pre>'
            "</details>"
        )
    if kind == "tool_result":
        colour = "#b91c1c" if e.is_error else "#374151"
        return f'<pre {_PRE}color:{colour}">{escape(_clip(e.text, RESULT_CLIP))}</pre>'
    if kind == "error":
        return f'<div style="color:#b91c1c;font-weight:bold;margin:4px 0">{escape(e.text)}</div>'
    if kind == "usage":
        cost = f", ${e.cost_usd:.4f}" if e.cost_usd is not None else ""
        return (
            f'<div style="color:#6b7280;font-size:11px;margin:4px 0">turns {e.turns}, '
            f"tokens in {e.tokens_in}, out {e.tokens_out}{cost}</div>"
        )
    return f'<pre style="margin:0;font-size:11px;color:#4b5563">{escape(e.text)}</pre>'


def transcript_html(entries: Sequence[Entry], *, title: str = "") -> str:
    """The entries as one HTML block (a title line first when given)."""
    parts = [_BOX]
    if title:
        parts.append(f'<div style="font-weight:bold;margin-bottom:4px">{escape(title)}</div>')
    parts += [entry_html(e) for e in entries]
    parts.append("</div>")
    return "".join(parts)


def render(t: Transcript) -> str:
    """`Transcript.renderer`: the transcript with its task, attempt and entry count."""
    live = " (live)" if t.live else ""
    title = f"{t.task_id} attempt {t.attempt}{live}: {len(t.entries)} entries"
    return transcript_html(t.entries, title=title)


def live_html(loop: Any, task_id: str, *, last: int = LIVE_ENTRIES) -> str:
    """The dashboard's Log view of a task: its latest attempt's transcript (the last `last`
    entries), or why there is none."""
    try:
        t = loop.transcript(task_id)
    except Exception as exc:  # no attempt yet, a log not there yet
        return f'<pre style="margin:4px">{escape(f"(no transcript: {exc})")}</pre>'
    entries = t.entries[-last:] if last > 0 else t.entries
    more = len(t.entries) - len(entries)
    live = " (live)" if t.live else ""
    title = f"{t.task_id} attempt {t.attempt}{live}"
    if more:
        title += f": last {len(entries)} of {len(t.entries)} entries (all: loop.transcript)"
    return transcript_html(entries, title=title)


__all__ = ["LIVE_ENTRIES", "entry_html", "live_html", "render", "transcript_html"]
