"""Stream parsers on recorded streams (tests/streams/): normalized events, totals, errors, and
tolerance — a line that is not JSON, or is JSON of an unknown shape, never raises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ralphnb.runners import Claude, Codex, Command, Cursor, Demo, Gemini, Opencode
from ralphnb.runners.base import MAX_TEXT

STREAMS = Path(__file__).resolve().parents[1] / "streams"


def parse(runner, name: str) -> tuple[list[dict], object]:
    p = runner.parser()
    events: list[dict] = []
    for line in (STREAMS / name).read_text().splitlines(keepends=True):
        events += p.feed(line)
    return events, p


def kinds(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["type"] == kind]


def test_claude_success_recorded_from_real_cli():
    events, p = parse(Claude(), "claude_success.jsonl")
    last = json.loads((STREAMS / "claude_success.jsonl").read_text().splitlines()[-1])
    (session,) = kinds(events, "session")
    sid = session["session_id"]
    assert sid == last["session_id"]
    assert [e["name"] for e in kinds(events, "tool")] == ["Write"]
    (result,) = kinds(events, "result")
    assert result["session_id"] == sid and result["turns"] == 2
    assert result["is_error"] is False and result["cost_usd"] == pytest.approx(0.015)
    assert result["tokens_in"] == 2400 and result["tokens_out"] == 120
    assert "<promise>COMPLETE</promise>" in result["text"]
    assert kinds(events, "message")[-1]["text"].startswith("Wrote hello.txt")
    assert not kinds(events, "error") and not kinds(events, "text")
    assert p.summary()["cost_usd"] == pytest.approx(0.015)
    usage = kinds(events, "usage")
    assert usage and usage[-1]["turns"] == 2  # live, before the result line


def test_claude_api_error_400():
    events, p = parse(Claude(), "claude_error_400.jsonl")
    (result,) = kinds(events, "result")
    assert result["is_error"] is True and result["turns"] == 1
    (err,) = kinds(events, "error")
    assert "400" in err["message"] and "scripted bad request" in err["message"]
    assert p.is_error is True


def test_claude_api_retry_is_announced():
    events, _ = parse(Claude(), "claude_api_retry.jsonl")
    (retry,) = kinds(events, "retry")
    assert retry["attempt"] == 1 and retry["max_retries"] == 10
    assert "529" in retry["error"] and "overloaded" in retry["error"]
    assert kinds(events, "result")[0]["is_error"] is False


def test_codex_success():
    events, p = parse(Codex(), "codex_success.jsonl")
    assert kinds(events, "session")[0]["session_id"] == "0199a213-81c0-7800-8aa1-bbab2a035a53"
    assert [e["name"] for e in kinds(events, "tool")] == ["shell", "apply_patch", "shell"]
    assert kinds(events, "text") == [
        {"type": "text", "text": "this line is not JSON: codex printed a warning"}
    ]
    (result,) = kinds(events, "result")
    assert result["turns"] == 1 and result["tokens_in"] == 24763 and result["tokens_out"] == 122
    assert result["cost_usd"] is None and result["is_error"] is False
    assert result["text"] == "Added src/greeting.py and marked RQ-0001 done."
    assert p.last_message == result["text"]


def test_codex_turn_failed():
    events, _ = parse(Codex(), "codex_failed.jsonl")
    errors = kinds(events, "error")
    assert any("Reconnecting" in e["message"] for e in errors)
    assert errors[-1]["message"].startswith("codex: stream disconnected")
    assert kinds(events, "result")[0]["is_error"] is True


def test_gemini_success_joins_deltas():
    events, _ = parse(Gemini(), "gemini_success.jsonl")
    assert kinds(events, "session")[0]["session_id"] == "c25acda3-b5b4-4a1a-9e3b-6c0e5d2f1a90"
    msgs = [e["text"] for e in kinds(events, "message")]
    assert "I'll create the greeting module first." in msgs
    assert msgs[-1] == "Created src/greeting.py and marked RQ-0001 done."
    assert [e["name"] for e in kinds(events, "tool")] == ["write_file", "run_shell_command"]
    (result,) = kinds(events, "result")
    assert result["tokens_in"] == 10180 and result["tokens_out"] == 272
    assert result["turns"] == 2 and result["is_error"] is False


def test_gemini_error_and_banner_line():
    events, _ = parse(Gemini(), "gemini_error.jsonl")
    assert events[0] == {"type": "text", "text": "Loaded cached credentials."}
    assert kinds(events, "result")[0]["is_error"] is True
    assert any("max session turns" in e["message"] for e in kinds(events, "error"))


def test_opencode_success_sums_steps():
    events, _ = parse(Opencode(), "opencode_success.jsonl")
    assert kinds(events, "session") == [
        {"type": "session", "session_id": "ses_62a1f0c3dffeQk7b2XN1wYh9Zc"}
    ]
    assert [e["name"] for e in kinds(events, "tool")] == ["write", "bash"]
    (result,) = kinds(events, "result")  # the tool-calls step does not end the run
    assert result["turns"] == 2
    assert result["tokens_in"] == 3000 + 1000 + 400 + 3000
    assert result["tokens_out"] == 80 + 30 + 10
    assert result["cost_usd"] == pytest.approx(0.0168)
    assert result["text"] == "Created src/greeting.py and marked RQ-0001 done."


def test_opencode_error():
    events, _ = parse(Opencode(), "opencode_error.jsonl")
    assert kinds(events, "error")[0]["message"] == "opencode: Invalid API key."
    assert kinds(events, "result")[0]["is_error"] is True


def test_cursor_success():
    events, _ = parse(Cursor(), "cursor_success.jsonl")
    assert kinds(events, "session")[0]["session_id"] == "c6b62c6f-7ead-4fd6-9922-e952131177ff"
    assert [e["name"] for e in kinds(events, "tool")] == ["write", "shell"]
    (result,) = kinds(events, "result")
    assert result["is_error"] is False and result["turns"] == 2
    last = kinds(events, "message")[-1]["text"]
    assert last == "Created src/greeting.py and marked RQ-0001 done."


GARBAGE = [
    "",
    "\n",
    "not json",
    "{",
    '{"type": ',
    "[1, 2]",
    "null",
    "42",
    '"str"',
    '{"type": "result", "usage": "nope", "num_turns": "x", "total_cost_usd": "free"}',
    '{"type": "assistant", "message": null}',
    '{"type": "assistant", "message": {"content": 5}}',
    '{"type": "system", "subtype": "api_retry", "error": {"message": "x"}}',
    '{"type": "item.completed", "item": null}',
    '{"type": "turn.completed", "usage": [1]}',
    '{"type": "message", "role": "assistant", "content": {"a": 1}}',
    '{"type": "step_finish", "part": {"tokens": "many", "cost": "1e-3"}}',
    '{"type": "tool_call", "subtype": "started", "tool_call": []}',
    '{"type": "error", "error": "plain"}',
    '{"type": 7}',
    "\x00\xff garbage \u2028",
    "{" * 10000,
]


@pytest.mark.parametrize(
    "runner",
    [Claude(), Codex(), Gemini(), Opencode(), Cursor(), Demo(), Command(["x"])],
    ids=lambda r: r.name,
)
def test_parsers_never_raise(runner):
    p = runner.parser()
    for line in GARBAGE:
        events = p.feed(line)
        assert isinstance(events, list)
        for e in events:
            assert isinstance(e, dict) and isinstance(e["type"], str)
            json.dumps(e)
            if e["type"] == "text":
                assert len(e["text"]) <= MAX_TEXT
    assert p.feed("plain words\n") == [{"type": "text", "text": "plain words"}]
