"""Stream parsers on recorded streams (tests/streams/): normalized events, totals, errors, and
tolerance — a line that is not JSON, or is JSON of an unknown shape, never raises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ralphnb.runners import Claude, Codex, Command, Cursor, Demo, Gemini, Kimi, Opencode, Pi
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
    assert result["turns"] == 3 and result["is_error"] is False  # three model calls


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
    assert kinds(events, "error")[0]["message"] == "opencode: API error 401: Invalid API key."
    assert kinds(events, "result")[0]["is_error"] is True


def test_cursor_success():
    events, _ = parse(Cursor(), "cursor_success.jsonl")
    assert kinds(events, "session")[0]["session_id"] == "c6b62c6f-7ead-4fd6-9922-e952131177ff"
    assert [e["name"] for e in kinds(events, "tool")] == ["write", "shell"]
    (result,) = kinds(events, "result")
    assert result["is_error"] is False and result["turns"] == 2
    last = kinds(events, "message")[-1]["text"]
    assert last == "Created src/greeting.py and marked RQ-0001 done."


PROMISE = "<promise>COMPLETE</promise>"
REAL = {"codex": Codex(), "gemini": Gemini(), "opencode": Opencode(), "pi": Pi(), "kimi": Kimi()}


@pytest.mark.parametrize("cli", sorted(REAL))
def test_real_cli_write_stream(cli):
    """Recorded from the real CLI run by its runner: the file written, then the promise."""
    events, p = parse(REAL[cli], f"{cli}_real_write.jsonl")
    (session,) = kinds(events, "session")
    assert session["session_id"]
    assert len(kinds(events, "tool")) == 1
    assert PROMISE in kinds(events, "message")[-1]["text"]
    (result,) = kinds(events, "result")
    assert result["is_error"] is False and result["session_id"] == session["session_id"]
    assert result["tokens_in"] == 2400 and result["tokens_out"] == 120
    assert result["turns"] == (1 if cli == "codex" else 2)
    assert not kinds(events, "error")
    cost = {"codex": None, "kimi": None, "gemini": 0.00102, "opencode": 0.00264, "pi": 0.00264}
    # opencode and pi report the cost (from the price in their config); Gemini's model is in the
    # price table, so its cost is estimated; "mock-model" has no price: no estimate
    assert p.summary()["cost_usd"] == pytest.approx(cost[cli])
    assert p.summary()["cost_estimated"] is (cli == "gemini")


@pytest.mark.parametrize("cli", sorted(REAL))
def test_real_cli_http_400_stream_is_a_clear_error(cli):
    events, p = parse(REAL[cli], f"{cli}_real_400.jsonl")
    assert p.is_error is True
    assert "scripted bad request" in p.last_message
    assert any("scripted bad request" in e["message"] for e in kinds(events, "error"))
    exit_code = {"codex": 1, "gemini": 144, "opencode": 1, "pi": 0, "kimi": 1}[cli]
    why = REAL[cli].diagnose(exit_code, p, "a stack trace on stderr")
    assert why.startswith(f"{cli} runner: `{cli}` exited with code {exit_code}")
    assert "scripted bad request" in why and "stack trace" not in why
    if cli == "pi":  # pi exits 0 when the model call failed
        assert "exited with code 0 but failed: 400 scripted bad request" in why


def test_codex_refused_write_fails_the_attempt_though_codex_exits_0():
    events, p = parse(Codex(), "codex_real_refused.jsonl")
    (result,) = kinds(events, "result")
    assert result["is_error"] is True and "Read-only file system" in result["text"]
    assert any("sandbox refused" in e["message"] for e in kinds(events, "error"))
    assert "exited with code 0 but failed: the sandbox refused" in Codex().diagnose(0, p)


def test_codex_refusals_of_git_and_queue_files_are_expected_not_failures():
    p = Codex().parser()
    item = {
        "id": "i1",
        "type": "command_execution",
        "command": "git commit -m x",
        "aggregated_output": "fatal: Unable to create '/r/.git/worktrees/a/index.lock': "
        "Read-only file system\n",
        "status": "failed",
    }
    events = p.feed(json.dumps({"type": "item.completed", "item": item}))
    assert "expected" in kinds(events, "error")[0]["message"]
    events = p.feed(json.dumps({"type": "turn.completed", "usage": {"input_tokens": 5}}))
    assert kinds(events, "result")[0]["is_error"] is False
    rejected = Codex().parser()
    rejected.feed(json.dumps({"type": "turn.completed", "usage": {}}))
    stderr = (
        "ERROR codex_core::tools::router: error=patch rejected: writing is blocked by read-only"
    )
    assert "but failed: the sandbox refused a patch" in Codex().diagnose(0, rejected, stderr)


def test_cost_is_estimated_only_when_the_cli_reports_none():
    est = Codex(model="gpt-5").parser()
    est.feed('{"type":"turn.completed","usage":{"input_tokens":1000000,"output_tokens":100000}}')
    assert est.summary()["cost_usd"] == pytest.approx(1.25 + 1.0)
    assert est.summary()["cost_estimated"] is True and est.result["cost_estimated"] is True
    own = Codex(model="mine", price=(2.0, 4.0)).parser()
    own.feed('{"type":"turn.completed","usage":{"input_tokens":500000,"output_tokens":0}}')
    assert own.cost_usd == pytest.approx(1.0)
    reported, _ = parse(Opencode(price=(100.0, 100.0)), "opencode_success.jsonl")
    (result,) = kinds(reported, "result")
    assert result["cost_usd"] == pytest.approx(0.0168) and "cost_estimated" not in result
    unknown = Codex(model="something-new").parser()
    unknown.feed('{"type":"turn.completed","usage":{"input_tokens":10,"output_tokens":1}}')
    assert unknown.cost_usd is None


def test_price_table_lookup():
    from ralphnb.runners.prices import estimate_cost, lookup

    assert lookup("gemini-2.5-flash") == (0.30, 2.50)
    assert lookup("gemini-2.5-flash-001") == (0.30, 2.50)
    assert lookup("gemini-2.5-flash-lite") == (0.10, 0.40)
    assert lookup("openai/gpt-5") == (1.25, 10.0)
    assert lookup("gpt-5x") is None and lookup(None) is None
    assert estimate_cost("kimi-k2", 1_000_000, 1_000_000) == pytest.approx(3.10)
    assert estimate_cost("nope", 1, 1) is None


def test_pi_error_then_retry_success_is_not_an_error():
    p = Pi().parser()
    bad = {"role": "assistant", "content": [], "stopReason": "error", "errorMessage": "500 x"}
    good = {"role": "assistant", "content": [{"type": "text", "text": "ok"}], "stopReason": "stop"}
    p.feed(json.dumps({"type": "message_end", "message": bad}))
    p.feed(json.dumps({"type": "auto_retry_start", "attempt": 1, "maxAttempts": 3}))
    p.feed(json.dumps({"type": "message_end", "message": good}))
    (result,) = kinds(p.feed('{"type":"agent_end","messages":[]}'), "result")
    assert result["is_error"] is False and result["text"] == "ok"


def test_kimi_error_line_and_summary():
    p = Kimi().parser()
    events = p.feed("Unknown error: boom\n")
    assert kinds(events, "error")[0]["message"] == "kimi: Unknown error: boom"
    events = p.feed('{"type":"ralphnb.kimi","session_id":"s-1","exit_code":1,"steps":1}')
    (result,) = kinds(events, "result")
    assert result["is_error"] is True and result["session_id"] == "s-1"


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
    [Claude(), Codex(), Gemini(), Opencode(), Pi(), Kimi(), Cursor(), Demo(), Command(["x"])],
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
