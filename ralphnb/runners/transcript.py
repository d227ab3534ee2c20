"""The transcript model: one agent attempt's stream as entries a person reads, for every runner.

Owns: `Entry` (one thing the agent did or said: a message, a tool call with its name and
arguments, a tool result, an error, usage figures, or a plain output line), `to_entries` (a
parser's normalized events for one line, plus the parser's tool details, as entries),
`Transcript` (the entries of one attempt: `df`, text, HTML through a renderer the caller gives)
and `TranscriptReader` (a log file read incrementally through a fresh parser; what a finished
attempt's transcript and the live one are rebuilt from).
Does not own: parsing a CLI's stream (each runner's `StreamParser`; `StreamParser.transcribe`
returns both its events and these entries) or the HTML (`view.transcript`).
Invariants: entries are immutable and plain (str/int/float/bool/None), in stream order; a tool
call's `args` is compact JSON; nothing here raises on a line it does not understand; memory is
what the caller keeps: the live loop keeps no transcript (it is rebuilt from the log file).
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

#: Entry kinds, in no particular order. `text`: an output line that is not part of the CLI's
#: protocol (a plain command's output, a warning printed in between).
KINDS = ("message", "tool_call", "tool_result", "error", "usage", "text")

#: Longest tool result kept in an entry (the log file has all of it).
MAX_RESULT = 4000


@dataclass(frozen=True, slots=True)
class Entry:
    """One transcript entry. `tool`/`args`/`call_id` for tool calls and results; `is_error`
    for a failed tool result; `final` for the usage totals of the attempt's result line."""

    kind: str
    text: str = ""
    tool: str | None = None
    args: str | None = None
    call_id: str | None = None
    is_error: bool = False
    turns: int | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    final: bool = False


COLUMNS = tuple(f.name for f in fields(Entry))


def call(tool: Any, args: Any, call_id: Any = None) -> Entry:
    """A tool call entry; `args` a dict (or a JSON string, kept as given when it parses)."""
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            pass
    text = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False, default=str)
    return Entry(
        "tool_call",
        tool=str(tool or "?"),
        args=text,
        call_id=None if call_id is None else str(call_id),
    )


def result(output: Any, call_id: Any = None, *, tool: Any = None, is_error: bool = False) -> Entry:
    """A tool result entry; `output` a string, or blocks/dicts whose text is joined."""
    text = output_text(output)
    if len(text) > MAX_RESULT:
        text = text[: MAX_RESULT - 1] + "…"
    return Entry(
        "tool_result",
        text=text,
        tool=None if tool is None else str(tool),
        call_id=None if call_id is None else str(call_id),
        is_error=bool(is_error),
    )


def output_text(output: Any) -> str:
    """A tool's output as text: strings as they are, `[{"type": "text", "text": ...}]` blocks
    joined, anything else as compact JSON."""
    if output is None:
        return ""
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        parts = [
            str(p.get("text", "")) if isinstance(p, dict) and "text" in p else output_text(p)
            for p in output
        ]
        return "\n".join(p for p in parts if p)
    if isinstance(output, dict) and isinstance(output.get("content"), list | str):
        return output_text(output["content"])
    return json.dumps(output, ensure_ascii=False, default=str)


def to_entries(events: list[dict[str, Any]], detail: list[Entry]) -> list[Entry]:
    """One line's entries: its events in order, with the parser's tool details (`detail`:
    calls with arguments, results) where the line's first `tool` event stood (after the other
    events when there was none). Without tool-call details, a `tool` event is a call with its
    name only."""
    has_calls = any(e.kind == "tool_call" for e in detail)
    out: list[Entry] = []
    placed = False
    for ev in events:
        typ = ev.get("type")
        if typ == "tool":
            if has_calls:
                if not placed:
                    out += detail
                    placed = True
            else:
                out.append(Entry("tool_call", tool=str(ev.get("name") or "?")))
        elif typ == "message":
            out.append(Entry("message", text=str(ev.get("text") or "")))
        elif typ == "text":
            out.append(Entry("text", text=str(ev.get("text") or "")))
        elif typ == "error":
            out.append(Entry("error", text=str(ev.get("message") or "error")))
        elif typ == "retry":
            what = f"API retry {ev.get('attempt')}/{ev.get('max_retries')}: {ev.get('error') or ''}"
            out.append(Entry("error", text=what.strip()))
        elif typ in ("usage", "result"):
            out.append(
                Entry(
                    "usage",
                    turns=ev.get("turns"),
                    tokens_in=ev.get("tokens_in"),
                    tokens_out=ev.get("tokens_out"),
                    cost_usd=ev.get("cost_usd"),
                    final=typ == "result",
                )
            )
    if not placed:
        out += [e for e in detail if has_calls or e.kind != "tool_call"]
    return out


@dataclass
class Transcript:
    """The entries of one attempt (`task_id`, `attempt`), rebuilt from `log_path`.
    `live`: the attempt was still running when read. `renderer`: entries -> HTML (the view's;
    without one the HTML is the plain text)."""

    task_id: str
    attempt: int
    entries: list[Entry]
    log_path: str | None = None
    live: bool = False
    renderer: Callable[[Transcript], str] | None = None

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def df(self) -> Any:
        """One row per entry; columns as `Entry`'s fields, with nullable dtypes."""
        import pandas as pd

        cols: dict[str, Any] = {}
        for name in COLUMNS:
            values = [getattr(e, name) for e in self.entries]
            if name in ("turns", "tokens_in", "tokens_out"):
                cols[name] = pd.array(values, dtype="Int64")
            elif name == "cost_usd":
                cols[name] = pd.array(values, dtype="Float64")
            elif name in ("is_error", "final"):
                cols[name] = pd.array(values, dtype="bool")
            elif name == "kind":
                cols[name] = pd.Categorical(values, categories=list(KINDS))
            else:
                cols[name] = pd.array(values, dtype="string")
        return pd.DataFrame(cols)

    def text(self, clip: int = 300) -> str:
        """A plain-text rendering (terminals, `repr`)."""
        lines = [
            f"transcript {self.task_id} attempt {self.attempt}" + (" (live)" if self.live else "")
        ]
        for e in self.entries:
            if e.kind == "tool_call":
                lines.append(f"> {e.tool}({_short(e.args or '', clip)})")
            elif e.kind == "tool_result":
                lines.append(("! " if e.is_error else "< ") + _short(e.text, clip))
            elif e.kind == "error":
                lines.append(f"ERROR {e.text}")
            elif e.kind == "usage":
                if e.final:
                    lines.append(f"[usage] turns={e.turns} in={e.tokens_in} out={e.tokens_out}")
            else:
                lines.append(e.text)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        if self.renderer is not None:
            return self.renderer(self)
        return f"<pre>{html.escape(self.text())}</pre>"


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class TranscriptReader:
    """Entries of the log at `path`, read incrementally through `parser` (a fresh one per log):
    `update()` parses what was appended since the last call. A log that shrank (the size cap
    compacted it) is read again from its start with `new_parser()`. `redact` (a string's
    secrets hidden) is applied to every entry's text and arguments."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        new_parser: Callable[[], Any],
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.new_parser = new_parser
        self.redact = redact
        self.parser = new_parser()
        self.entries: list[Entry] = []
        self.offset = 0
        self._partial = b""

    def update(self, *, final: bool = False) -> list[Entry]:
        """All entries so far; `final`: the log is complete (an unterminated last line counts)."""
        try:
            size = self.path.stat().st_size
        except OSError:
            return self.entries
        if size < self.offset:
            self.parser, self.entries, self.offset, self._partial = self.new_parser(), [], 0, b""
        if size > self.offset:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read(size - self.offset)
            self.offset += len(data)
            data = self._partial + data
            lines = data.split(b"\n")
            self._partial = lines.pop()
            self._feed(lines)
        if final and self._partial:
            self._feed([self._partial])
            self._partial = b""
        return self.entries

    def _feed(self, lines: Iterable[bytes]) -> None:
        transcribe, redact = self.parser.transcribe, self.redact
        out = self.entries
        for raw in lines:
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            new = transcribe(raw.decode("utf-8", "replace"))[1]
            if redact is not None:
                new = [redacted(e, redact) for e in new]
            out += new


def redacted(e: Entry, redact: Callable[[str], str]) -> Entry:
    """`e` with `redact` applied to its text and arguments (the same entry when unchanged)."""
    text, args = redact(e.text), (redact(e.args) if e.args else e.args)
    return e if text == e.text and args == e.args else replace(e, text=text, args=args)


def read_entries(lines: Iterable[str], parser: Any) -> list[Entry]:
    """The entries of `lines` (one attempt's output) through `parser` (fresh)."""
    out: list[Entry] = []
    for line in lines:
        out += parser.transcribe(line)[1]
    return out


__all__ = [
    "COLUMNS",
    "KINDS",
    "Entry",
    "Transcript",
    "TranscriptReader",
    "call",
    "output_text",
    "read_entries",
    "redacted",
    "result",
    "to_entries",
]
