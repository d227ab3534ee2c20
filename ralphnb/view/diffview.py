"""A task's diff as a person reads it in a notebook: a file list, then each file's coloured diff.

Owns: `diff_html(diff)` (one HTML string: a summary line, a table of files with their status
and +/- counts linking to each file, and per file its unified diff with added lines green,
removed red, hunk headers blue) and `DiffView`, the `Diff` that `loop.diff()` returns, whose
notebook display is that HTML and whose text display is `Diff`'s.
Never: runs git or reads files (the `Diff` holds everything); puts text into HTML unescaped.
Invariants: rendering is one pass over the lines with a list of strings joined once, so a
5,000-line diff renders well under 200 ms (benchmarks/review_bench.py); a file's diff longer
than `max_lines` is cut with a note saying how many lines were left out.
"""

from __future__ import annotations

import dataclasses
import html

from ..workspace.diff import Diff

_STYLE = (
    "<style>"
    ".rnb-diff{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}"
    ".rnb-diff table.rnb-files{border-collapse:collapse;margin:4px 0 8px 0}"
    ".rnb-diff table.rnb-files td{padding:1px 8px;border-bottom:1px solid #e5e7eb}"
    ".rnb-diff .rnb-file{border:1px solid #d1d5db;border-radius:4px;margin:6px 0}"
    ".rnb-diff .rnb-fh{background:#f3f4f6;padding:3px 6px;font-weight:600}"
    ".rnb-diff pre{margin:0;padding:2px 0;overflow-x:auto;line-height:1.35}"
    ".rnb-diff pre span{display:block;padding:0 6px;white-space:pre}"
    ".rnb-diff .a{background:#dcfce7;color:#14532d}"
    ".rnb-diff .d{background:#fee2e2;color:#7f1d1d}"
    ".rnb-diff .h{background:#e0f2fe;color:#075985}"
    ".rnb-diff .m{color:#6b7280}"
    ".rnb-diff .plus{color:#15803d}.rnb-diff .minus{color:#b91c1c}"
    "</style>"
)
_STATUS_COLOUR = {"added": "#15803d", "deleted": "#b91c1c", "renamed": "#7c3aed"}


def _line_class(line: str, in_hunk: bool) -> str:
    if line.startswith("@@"):
        return "h"
    if not in_hunk:
        return "m"
    if line.startswith("+"):
        return "a"
    if line.startswith("-"):
        return "d"
    return ""


def _file_body(patch: str, max_lines: int) -> str:
    out: list[str] = []
    in_hunk = False
    lines = patch.splitlines()
    for line in lines[:max_lines]:
        if line.startswith("@@"):
            in_hunk = True
        cls = _line_class(line, in_hunk)
        text = html.escape(line) or " "
        out.append(f'<span class="{cls}">{text}</span>' if cls else f"<span>{text}</span>")
    if len(lines) > max_lines:
        out.append(f'<span class="m">… {len(lines) - max_lines} more lines not shown</span>')
    return "".join(out)


def diff_html(diff: Diff, *, max_lines: int = 20_000) -> str:
    """The whole diff as one HTML fragment (see the module docstring)."""
    esc = html.escape
    parts = [_STYLE, '<div class="rnb-diff">', f"<div><b>{esc(diff.summary())}</b></div>"]
    if not diff.files:
        parts.append("<div>No change against the target branch.</div></div>")
        return "".join(parts)
    parts.append('<table class="rnb-files">')
    for i, f in enumerate(diff.files):
        colour = _STATUS_COLOUR.get(f.status, "#374151")
        name = esc(f.path) if f.old_path is None else f"{esc(f.old_path)} → {esc(f.path)}"
        counts = (
            "binary"
            if f.binary
            else f'<span class="plus">+{f.added}</span> <span class="minus">-{f.removed}</span>'
        )
        parts.append(
            f'<tr><td style="color:{colour}">{esc(f.status)}</td>'
            f'<td><a href="#rnb-{esc(diff.task_id)}-{i}">{name}</a></td><td>{counts}</td></tr>'
        )
    parts.append("</table>")
    for i, f in enumerate(diff.files):
        parts.append(
            f'<div class="rnb-file" id="rnb-{esc(diff.task_id)}-{i}">'
            f'<div class="rnb-fh">{esc(f.path)}</div><pre>{_file_body(f.patch, max_lines)}</pre>'
            "</div>"
        )
    parts.append("</div>")
    return "".join(parts)


@dataclasses.dataclass(frozen=True, repr=False)
class DiffView(Diff):
    """A `Diff` that shows itself in a notebook as `diff_html`."""

    def _repr_html_(self) -> str:
        return diff_html(self)


def diff_view(diff: Diff) -> DiffView:
    """`diff` as a `DiffView` (same fields)."""
    if isinstance(diff, DiffView):
        return diff
    return DiffView(**{f.name: getattr(diff, f.name) for f in dataclasses.fields(diff)})


__all__ = ["DiffView", "diff_html", "diff_view"]
