"""Parsers keep running totals: turns and tokens counted as the CLIs count them, at a cost per
line that does not grow with the lines before it."""

from __future__ import annotations

import json
import time

from ralphnb.runners import Claude, Gemini
from ralphnb.runners.base import MAX_TEXT


def _assistant(block: dict, usage: tuple[int, int], mid: str | None = None) -> str:
    msg: dict = {"role": "assistant", "model": "m", "content": [block]}
    msg["usage"] = {"input_tokens": usage[0], "output_tokens": usage[1]}
    if mid is not None:
        msg["id"] = mid
    return json.dumps({"type": "assistant", "message": msg, "parent_tool_use_id": None})


def _tool_result() -> str:
    content = [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]
    return json.dumps({"type": "user", "message": {"role": "user", "content": content}})


def _claude_turns(n: int, *, ids: bool) -> list[str]:
    """`n` model calls, each a text block and a tool_use block (two lines of one message,
    the second with the message's final usage), then the tool's result."""
    lines = []
    for i in range(n):
        mid = f"msg_{i}" if ids else None
        lines.append(_assistant({"type": "text", "text": f"step {i}"}, (100, 1), mid))
        lines.append(_assistant({"type": "tool_use", "name": "Edit"}, (100, 10), mid))
        lines.append(_tool_result())
    return lines


def _feed(parser, lines: list[str]) -> list[dict]:
    out: list[dict] = []
    for line in lines:
        out += parser.feed(line)
    return out


def test_claude_messages_without_an_id_count_one_turn_per_model_call():
    p = Claude().parser()
    events = _feed(p, _claude_turns(3, ids=False))
    assert p.turns == 3
    assert p.tokens_in == 300 and p.tokens_out == 30
    assert [e["turns"] for e in events if e["type"] == "usage"] == [1, 1, 2, 2, 3, 3]


def test_claude_lines_of_one_message_count_its_latest_usage_once():
    p = Claude().parser()
    _feed(p, _claude_turns(4, ids=True))
    assert p.turns == 4
    assert p.tokens_in == 400 and p.tokens_out == 40


def _growth(make_parser, lines: list[str], chunk: int) -> float:
    """How much more a line at the end of `lines` costs than one at the start (best of 5)."""
    first = last = float("inf")
    for _ in range(5):
        p = make_parser()
        t0 = time.perf_counter()
        for line in lines[:chunk]:
            p.feed(line)
        t1 = time.perf_counter()
        for line in lines[chunk:-chunk]:
            p.feed(line)
        t2 = time.perf_counter()
        for line in lines[-chunk:]:
            p.feed(line)
        first, last = min(first, t1 - t0), min(last, time.perf_counter() - t2)
    return last / first


def test_claude_cost_per_line_does_not_grow_with_the_messages_before_it():
    growth = _growth(Claude().parser, _claude_turns(3000, ids=False), 900)
    assert growth < 4, f"a line costs {growth:.1f}x more after 3,000 messages"


def _gemini_deltas(n: int) -> list[str]:
    lines = [json.dumps({"type": "init", "session_id": "s", "model": "gemini-x"})]
    for i in range(n):
        word = f"w{i} ".ljust(100, ".")
        lines.append(
            json.dumps({"type": "message", "role": "assistant", "content": word, "delta": True})
        )
    return lines


def test_gemini_long_streamed_message_costs_the_same_per_delta():
    growth = _growth(Gemini().parser, _gemini_deltas(10_000), 1000)
    assert growth < 4, f"a delta costs {growth:.1f}x more after 10,000 deltas"


def test_gemini_long_streamed_message_shows_its_start_clipped():
    p = Gemini().parser()
    events = _feed(p, _gemini_deltas(5000))
    text = [e for e in events if e["type"] == "message"][-1]["text"]
    assert len(text) == MAX_TEXT and text.startswith("w0 ...") and text.endswith("…")
