"""The Responses, chat completions and Gemini scripted servers speak their protocols: a tool
call that writes a file, a final message with the promise, usage, and HTTP errors."""

from __future__ import annotations

import json

import pytest

from ralphnb.testing import (
    ScriptedChatServer,
    ScriptedGeminiServer,
    ScriptedResponsesServer,
    error,
    text,
    tool_use,
)
from tests.testing.test_model_server import post, sse_events

PROMISE = "<promise>COMPLETE</promise>"
WRITE = {"path": "hello.txt", "content": "hi\n"}


def test_responses_stream_function_call_then_promise_with_usage():
    script = [tool_use("exec_command", {"cmd": "echo hi > hello.txt"}), text(f"ok {PROMISE}")]
    with ScriptedResponsesServer(script, input_tokens=7, output_tokens=3) as srv:
        url = srv.base_url + "/responses"
        status, ctype, body = post(url, {"model": "m", "stream": True, "input": []})
        assert status == 200 and ctype.startswith("text/event-stream")
        evs = sse_events(body)
        assert evs[0]["type"] == "response.created" and evs[-1]["type"] == "response.completed"
        (done,) = [e for e in evs if e["type"] == "response.output_item.done"]
        assert done["item"]["type"] == "function_call" and done["item"]["name"] == "exec_command"
        assert json.loads(done["item"]["arguments"]) == {"cmd": "echo hi > hello.txt"}
        assert evs[-1]["response"]["usage"]["input_tokens"] == 7
        second = sse_events(post(url, {"model": "m", "stream": True, "input": []})[2])
        deltas = "".join(e["delta"] for e in second if e["type"] == "response.output_text.delta")
        assert deltas == f"ok {PROMISE}"
        assert second[-1]["response"]["output"][0]["content"][0]["text"] == f"ok {PROMISE}"
        assert srv.turns_used == 2


def test_responses_freeform_tool_and_error():
    patch = "*** Begin Patch\n*** Add File: a.txt\n+a\n*** End Patch\n"
    with ScriptedResponsesServer([tool_use("apply_patch", patch), error(400, "bad")]) as srv:
        url = srv.base_url + "/responses"
        evs = sse_events(post(url, {"stream": True})[2])
        item = [e for e in evs if e["type"] == "response.output_item.done"][0]["item"]
        assert item == {**item, "type": "custom_tool_call", "name": "apply_patch", "input": patch}
        code, _, body = post(url, {"stream": True})
        assert code == 400 and json.loads(body)["error"]["message"] == "bad"


@pytest.mark.parametrize("include_usage", [True, False])
def test_chat_stream_tool_call_promise_and_usage(include_usage):
    script = [tool_use("write", WRITE, text_before="Writing."), text(PROMISE)]
    with ScriptedChatServer(script, input_tokens=11, output_tokens=5) as srv:
        url = srv.base_url + "/chat/completions"
        body = {"model": "m", "stream": True, "tools": [{"type": "function"}]}
        if include_usage:
            body["stream_options"] = {"include_usage": True}
        status, ctype, raw = post(url, body)
        assert status == 200 and raw.rstrip().endswith("data: [DONE]")
        chunks = [json.loads(ln[6:]) for ln in raw.splitlines() if ln.startswith("data: {")]
        calls = [
            c for ch in chunks for ch_ in ch["choices"] for c in ch_["delta"].get("tool_calls", [])
        ]
        assert calls[0]["function"]["name"] == "write"
        args = "".join(c["function"]["arguments"] for c in calls)
        assert json.loads(args) == WRITE
        finish = [c["finish_reason"] for ch in chunks for c in ch["choices"] if c["finish_reason"]]
        assert finish == ["tool_calls"]
        usage = [ch["usage"] for ch in chunks if ch.get("usage")]
        assert usage == [{"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}]
        assert (chunks[-1]["choices"] == []) is include_usage
        final = json.loads(post(url, {**body, "stream": False})[2])
        assert final["choices"][0]["message"]["content"] == PROMISE
        assert final["choices"][0]["finish_reason"] == "stop"
        side = json.loads(post(url, {"model": "m", "stream": False})[2])  # no tools: side request
        assert side["choices"][0]["message"]["content"] == "OK" and srv.turns_used == 2


def test_chat_error_with_retry_after():
    with ScriptedChatServer([error(500, "boom", retry_after_ms=0)]) as srv:
        import urllib.error
        import urllib.request

        req = urllib.request.Request(
            srv.base_url + "/chat/completions",
            data=json.dumps({"tools": [1]}).encode(),
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as ei:
            urllib.request.urlopen(req, timeout=10)
        assert ei.value.code == 500 and ei.value.headers["retry-after-ms"] == "0"
        assert json.loads(ei.value.read())["error"]["message"] == "boom"


def test_gemini_stream_function_call_promise_usage_and_error():
    script = [tool_use("write_file", {"file_path": "a", "content": "b"}), text(PROMISE)]
    with ScriptedGeminiServer([*script, error(400, "nope")], input_tokens=9) as srv:
        url = srv.url + "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        body = {"contents": [], "tools": [{"functionDeclarations": []}]}
        status, ctype, raw = post(url, body)
        assert status == 200 and ctype.startswith("text/event-stream")
        chunks = sse_events(raw)
        part = chunks[-1]["candidates"][0]["content"]["parts"][0]
        assert part == {
            "functionCall": {"name": "write_file", "args": {"file_path": "a", "content": "b"}}
        }
        assert chunks[-1]["usageMetadata"]["promptTokenCount"] == 9
        second = sse_events(post(url, body)[2])
        joined = "".join(p["text"] for c in second for p in c["candidates"][0]["content"]["parts"])
        assert joined == PROMISE and second[-1]["candidates"][0]["finishReason"] == "STOP"
        code, _, err = post(url, body)
        assert code == 400
        assert json.loads(err)["error"] == {
            "code": 400,
            "message": "nope",
            "status": "INVALID_ARGUMENT",
        }
        check = srv.url + "/v1beta/models/gemini-2.5-flash:generateContent"
        answer = json.loads(
            post(check, {"generationConfig": {"responseMimeType": "application/json"}})[2]
        )
        assert answer["candidates"][0]["content"]["parts"][0]["text"] == "{}"
        count = json.loads(post(srv.url + "/v1beta/models/x:countTokens", {})[2])
        assert count == {"totalTokens": 9} and srv.turns_used == 3
