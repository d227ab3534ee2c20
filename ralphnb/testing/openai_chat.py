"""A scripted OpenAI chat completions server (opencode, pi and kimi speak it) on loopback.

Owns: `POST .../chat/completions` answered from the script — streamed as `chat.completion.chunk`
server-sent events ending in `data: [DONE]`, or one `chat.completion` JSON — with `tool_calls`
for a tool turn and `usage` (`prompt_tokens`, `completion_tokens`) on the last chunk (a chunk of
its own with empty `choices` when the client asks `stream_options.include_usage`), and
`GET .../models`. Errors carry OpenAI's body.
"""

from __future__ import annotations

import json
import time
from typing import Any, ClassVar

from ._base import BaseHandler, ScriptedServer, Turn, chunks, new_id, sse
from .openai_responses import openai_error


def _message(turn: Turn) -> tuple[dict[str, Any], str]:
    """The assistant message of a turn and its finish reason."""
    msg: dict[str, Any] = {"role": "assistant", "content": turn.get("text") or None}
    if turn["kind"] != "tool_use":
        msg["content"] = turn.get("text", "")
        return msg, "stop"
    args = turn["input"] if isinstance(turn["input"], str) else json.dumps(turn["input"])
    call = {
        "id": new_id("call_"),
        "type": "function",
        "function": {"name": turn["name"], "arguments": args},
    }
    msg["tool_calls"] = [call]
    return msg, "tool_calls"


def _deltas(msg: dict[str, Any]) -> list[dict[str, Any]]:
    """The streamed deltas of one message: role, content pieces, then tool call pieces."""
    out: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    if msg.get("content"):
        out += [{"content": p} for p in chunks(msg["content"], 40)]
    for i, call in enumerate(msg.get("tool_calls") or []):
        fn = call["function"]
        head = {
            "index": i,
            "id": call["id"],
            "type": "function",
            "function": {"name": fn["name"], "arguments": ""},
        }
        out.append({"tool_calls": [head]})
        for p in chunks(fn["arguments"], 40):
            out.append({"tool_calls": [{"index": i, "function": {"arguments": p}}]})
    return out


class _Handler(BaseHandler):
    owner: ScriptedChatServer
    server_version = "scripted-chat/1"

    def route(self, method: str, path: str, body: Any) -> None:
        if method == "GET" and path.endswith("/models"):
            model = {"id": self.owner.model, "object": "model", "created": 0, "owned_by": "mock"}
            self.send_json(200, {"object": "list", "data": [model]})
        elif method == "POST" and path.endswith("/chat/completions"):
            self._completions(body if isinstance(body, dict) else {})
        elif method == "HEAD":
            self.send_json(200, {})
        else:
            self.not_found()

    def _completions(self, body: dict[str, Any]) -> None:
        owner = self.owner
        turn = owner.take_turn(body)
        if turn["kind"] == "error":
            self.send_error_turn(turn, openai_error(turn))
            return
        msg, finish = _message(turn)
        usage = {
            "prompt_tokens": owner.input_tokens,
            "completion_tokens": owner.output_tokens,
            "total_tokens": owner.input_tokens + owner.output_tokens,
        }
        head = {
            "id": new_id("chatcmpl-"),
            "created": int(time.time()),
            "model": str(body.get("model") or owner.model),
        }
        if not body.get("stream"):
            choice = {"index": 0, "message": msg, "finish_reason": finish}
            self.send_json(
                200, {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
            )
            return
        chunk = {**head, "object": "chat.completion.chunk"}
        out = [
            sse({**chunk, "choices": [{"index": 0, "delta": d, "finish_reason": None}]})
            for d in _deltas(msg)
        ]
        last = {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
        if (body.get("stream_options") or {}).get("include_usage"):
            out += [sse(last), sse({**chunk, "choices": [], "usage": usage})]
        else:
            out.append(sse({**last, "usage": usage}))
        out.append(b"data: [DONE]\n\n")
        self.send_sse(out)


class ScriptedChatServer(ScriptedServer):
    """`with ScriptedChatServer([tool_use("write", {...}), text(...)]) as srv:`

    `srv.base_url` (`http://127.0.0.1:PORT/v1`) is what an OpenAI-compatible client takes.
    See `ScriptedServer` for the script and the request log.
    """

    name: ClassVar[str] = "openai-chat"
    handler = _Handler

    @property
    def base_url(self) -> str:
        return self.url + "/v1"
