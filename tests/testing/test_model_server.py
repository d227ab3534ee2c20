"""ScriptedAnthropicServer speaks the Messages API: SSE stream, plain JSON, errors, side calls."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from ralphnb.testing import ScriptedAnthropicServer, error, text, tool_use

TOOLS = [{"name": "Write", "input_schema": {"type": "object"}}]


def post(url: str, body: dict) -> tuple[int, str, str]:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("content-type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("content-type", ""), e.read().decode()


def sse_events(body: str) -> list[dict]:
    return [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]


def test_stream_tool_use_then_text_then_default():
    script = [tool_use("Write", {"file_path": "a.txt", "content": "x" * 100}), text("fine")]
    with ScriptedAnthropicServer(script) as srv:
        url = srv.url + "/v1/messages?beta=true"
        status, ctype, body = post(url, {"model": "m", "stream": True, "tools": TOOLS})
        assert status == 200 and ctype.startswith("text/event-stream")
        evs = sse_events(body)
        assert [e["type"] for e in evs][0] == "message_start"
        assert evs[-1]["type"] == "message_stop"
        start = next(e for e in evs if e["type"] == "content_block_start")
        assert start["content_block"]["type"] == "tool_use"
        assert start["content_block"]["name"] == "Write"
        partial = "".join(
            e["delta"]["partial_json"] for e in evs if e["type"] == "content_block_delta"
        )
        assert json.loads(partial) == {"file_path": "a.txt", "content": "x" * 100}
        delta = next(e for e in evs if e["type"] == "message_delta")
        assert delta["delta"]["stop_reason"] == "tool_use"
        assert delta["usage"]["output_tokens"] == srv.output_tokens
        # a side request without tools does not consume the script
        side = sse_events(post(url, {"model": "m", "stream": True})[2])
        assert any(e.get("delta", {}).get("text") == "OK" for e in side)
        second = sse_events(post(url, {"model": "m", "stream": True, "tools": TOOLS})[2])
        assert (
            "".join(
                e["delta"].get("text", "") for e in second if e["type"] == "content_block_delta"
            )
            == "fine"
        )
        third = json.loads(post(url, {"model": "m", "stream": False, "tools": TOOLS})[2])
        assert third["content"] == [{"type": "text", "text": "Done."}]
        assert third["stop_reason"] == "end_turn"
        assert srv.turns_used == 3 and len(srv.message_requests) == 3


@pytest.mark.parametrize("status", [400, 401, 529])
def test_error_turns(status):
    with ScriptedAnthropicServer([error(status, "nope")]) as srv:
        code, ctype, body = post(srv.url + "/v1/messages", {"stream": True, "tools": TOOLS})
        assert code == status and ctype == "application/json"
        assert json.loads(body)["error"]["message"] == "nope"
        assert json.loads(body)["type"] == "error"


def test_side_endpoints_and_recording():
    with ScriptedAnthropicServer() as srv:
        head = urllib.request.Request(srv.url + "/", method="HEAD")
        with urllib.request.urlopen(head, timeout=10) as r:
            assert r.status == 200
        with urllib.request.urlopen(srv.url + "/v1/models", timeout=10) as r:
            assert json.loads(r.read())["data"][0]["id"] == srv.model
        count = post(srv.url + "/v1/messages/count_tokens", {"messages": []})
        assert count[0] == 200 and json.loads(count[2]) == {"input_tokens": srv.input_tokens}
        with pytest.raises(urllib.error.HTTPError) as ei:
            urllib.request.urlopen(srv.url + "/nowhere", timeout=10)
        assert ei.value.code == 404
        assert [r["method"] for r in srv.requests] == ["HEAD", "GET", "POST", "GET"]
        assert srv.env()["ANTHROPIC_BASE_URL"] == srv.url and srv.url.startswith(
            "http://127.0.0.1:"
        )
    with pytest.raises(RuntimeError):
        _ = srv.url
