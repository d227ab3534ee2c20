"""The transcript model against every runner's recorded stream (tests/streams/): messages, tool
calls with their names and arguments, tool results, errors and usage, in stream order; and the
incremental log reader that rebuilds a transcript from an attempt's log."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ralphnb.runners import Claude, Codex, Command, Cursor, Demo, Gemini, Kimi, Opencode, Pi
from ralphnb.runners.transcript import (
    KINDS,
    MAX_RESULT,
    Entry,
    Transcript,
    TranscriptReader,
    read_entries,
    to_entries,
)

STREAMS = Path(__file__).resolve().parents[1] / "streams"


def entries(runner, name: str) -> list[Entry]:
    return read_entries((STREAMS / name).read_text().splitlines(), runner.parser())


def of(es: list[Entry], kind: str) -> list[Entry]:
    return [e for e in es if e.kind == kind]


def test_claude_recorded_stream_has_the_write_call_its_result_and_the_final_usage():
    es = entries(Claude(), "claude_success.jsonl")
    (call,) = of(es, "tool_call")
    assert call.tool == "Write"
    assert json.loads(call.args) == {"file_path": "hello.txt", "content": "hello from the model\n"}
    (res,) = of(es, "tool_result")
    assert res.call_id == call.call_id and res.text.startswith("File created successfully")
    assert not res.is_error
    assert of(es, "message")[-1].text == "Wrote hello.txt. <promise>COMPLETE</promise>"
    final = [e for e in es if e.kind == "usage" and e.final]
    assert len(final) == 1 and final[0].turns == 2 and final[0].cost_usd == 0.015
    order = [e.kind for e in es if e.kind in ("tool_call", "tool_result", "message")]
    assert order == ["tool_call", "tool_result", "message"]


def test_claude_error_and_retry_streams_are_errors():
    es = entries(Claude(), "claude_error_400.jsonl")
    assert any("API error 400" in e.text for e in of(es, "error"))
    es = entries(Claude(), "claude_api_retry.jsonl")
    assert any(e.text.startswith("API retry 1/") for e in of(es, "error"))


def test_codex_command_call_and_its_output():
    es = entries(Codex(), "codex_real_write.jsonl")
    (call,) = of(es, "tool_call")
    assert call.tool == "shell" and "hello.txt" in json.loads(call.args)["command"]
    (res,) = of(es, "tool_result")
    assert res.call_id == call.call_id and not res.is_error
    es = entries(Codex(), "codex_success.jsonl")
    calls = of(es, "tool_call")
    assert [c.tool for c in calls][:2] == ["shell", "apply_patch"]
    assert json.loads(calls[1].args)["changes"][0]["path"] == "src/greeting.py"
    assert of(es, "tool_result")[0].text == "README.md\nsrc\n"


def test_codex_refused_write_is_a_failed_result_and_an_error():
    es = entries(Codex(), "codex_real_refused.jsonl")
    assert any(r.is_error for r in of(es, "tool_result"))
    assert any("sandbox refused" in e.text for e in of(es, "error"))


def test_gemini_tool_use_parameters_and_result():
    es = entries(Gemini(), "gemini_real_write.jsonl")
    (call,) = of(es, "tool_call")
    assert call.tool == "write_file"
    assert json.loads(call.args) == {
        "file_path": "hello.txt",
        "content": "hello from the scripted model\n",
    }
    (res,) = of(es, "tool_result")
    assert res.call_id == call.call_id and res.tool == "write_file" and not res.is_error
    assert of(entries(Gemini(), "gemini_real_400.jsonl"), "error")


def test_opencode_tool_part_is_one_call_and_one_result():
    es = entries(Opencode(), "opencode_real_write.jsonl")
    (call,) = of(es, "tool_call")
    assert call.tool == "write" and json.loads(call.args)["filePath"] == "hello.txt"
    (res,) = of(es, "tool_result")
    assert res.text == "Wrote file successfully." and res.call_id == call.call_id
    assert of(entries(Opencode(), "opencode_real_400.jsonl"), "error")


def test_pi_tool_execution_start_and_end():
    es = entries(Pi(), "pi_real_write.jsonl")
    (call,) = of(es, "tool_call")
    assert call.tool == "write" and json.loads(call.args)["path"] == "hello.txt"
    (res,) = of(es, "tool_result")
    assert res.text == "Successfully wrote 30 bytes to hello.txt" and not res.is_error
    assert of(entries(Pi(), "pi_real_400.jsonl"), "error")


def test_kimi_function_call_arguments_and_tool_message():
    es = entries(Kimi(), "kimi_real_write.jsonl")
    (call,) = of(es, "tool_call")
    assert call.tool == "WriteFile" and json.loads(call.args)["path"] == "hello.txt"
    (res,) = of(es, "tool_result")
    assert res.call_id == call.call_id and "File successfully overwritten" in res.text
    assert of(entries(Kimi(), "kimi_real_400.jsonl"), "error")


def test_cursor_tool_calls_and_results():
    es = entries(Cursor(), "cursor_success.jsonl")
    calls = of(es, "tool_call")
    assert [c.tool for c in calls] == ["write", "shell"]
    assert json.loads(calls[1].args) == {"command": "ralphnb task done RQ-0001"}
    results = of(es, "tool_result")
    assert results[1].text == "done RQ-0001\n" and not results[1].is_error


def test_demo_agent_stream_goes_through_the_claude_model():
    lines = [
        json.dumps(
            {
                "type": "assistant",
                "message": {
                    "id": "m1",
                    "content": [
                        {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls"}}
                    ],
                },
            }
        ),
        json.dumps(
            {
                "type": "user",
                "message": {
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": "x",
                            "is_error": True,
                        }
                    ]
                },
            }
        ),
    ]
    es = read_entries(lines, Demo().parser())
    assert [(e.kind, e.tool, e.call_id) for e in es if e.kind != "usage"] == [
        ("tool_call", "Bash", "t1"),
        ("tool_result", None, "t1"),
    ]
    assert of(es, "tool_result")[0].is_error


def test_plain_command_output_is_text_entries():
    es = read_entries(["building...", '{"not": "a protocol"}', ""], Command(["x"]).parser())
    assert [(e.kind, e.text) for e in es] == [
        ("text", "building..."),
        ("text", '{"not": "a protocol"}'),
    ]


def test_every_recorded_stream_parses_into_known_kinds_without_raising():
    runners = {"claude": Claude(), "codex": Codex(), "gemini": Gemini(), "opencode": Opencode()}
    runners |= {"pi": Pi(), "kimi": Kimi(), "cursor": Cursor()}
    for path in sorted(STREAMS.glob("*.jsonl")):
        es = entries(runners[path.name.split("_")[0]], path.name)
        assert es and {e.kind for e in es} <= set(KINDS), path.name


def test_to_entries_puts_tool_details_where_the_tool_event_stood():
    detail = [Entry("tool_call", tool="Read", args="{}")]
    events = [{"type": "message", "text": "a"}, {"type": "tool", "name": "Read"}]
    events.append({"type": "error", "message": "boom"})
    assert [e.kind for e in to_entries(events, detail)] == ["message", "tool_call", "error"]
    # without details, a tool event is a call by name alone
    (only,) = to_entries([{"type": "tool", "name": "Grep"}], [])
    assert (only.kind, only.tool, only.args) == ("tool_call", "Grep", None)


def test_long_tool_result_is_clipped():
    line = json.dumps(
        {
            "type": "user",
            "message": {
                "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x" * 9000}]
            },
        }
    )
    (res,) = read_entries([line], Claude().parser())
    assert len(res.text) == MAX_RESULT and res.text.endswith("…")


def test_transcript_frame_has_typed_columns():
    es = entries(Claude(), "claude_success.jsonl")
    df = Transcript("RQ-0001", 1, es).df
    assert len(df) == len(es)
    assert df.kind.dtype == "category" and df.tokens_in.dtype == "Int64"
    assert df.is_error.dtype == bool and df.args.dtype == pd.StringDtype()
    assert "Write" in Transcript("RQ-0001", 1, es).text()


def test_reader_parses_only_what_was_appended_and_restarts_on_a_shrunk_log(tmp_path):
    lines = (STREAMS / "claude_success.jsonl").read_text().splitlines(keepends=True)
    log = tmp_path / "1.log"
    log.write_text("".join(lines[:3]) + lines[3][:20])  # a half-written line at the end
    reader = TranscriptReader(log, Claude().parser)
    first = list(reader.update())
    with open(log, "a") as fh:
        fh.write(lines[3][20:] + "".join(lines[4:]))
    assert reader.update()[: len(first)] == first
    assert reader.entries == entries(Claude(), "claude_success.jsonl")
    log.write_text(lines[0])  # compacted / rewritten: read again from the start
    assert reader.update() == read_entries(lines[:1], Claude().parser())
    log.write_text("unterminated")
    assert reader.update(final=True)[-1] == Entry("text", text="unterminated")
