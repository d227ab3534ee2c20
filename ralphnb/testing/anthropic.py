"""A scripted Anthropic Messages API server (Claude Code) on loopback.

Owns: `POST /v1/messages` answered from the script as server-sent events (or plain JSON when the
request says `"stream": false`), and the side requests Claude Code makes (`HEAD /`,
`/v1/models`, `count_tokens`, requests without tools, telemetry) answered without consuming
the script. Errors carry Anthropic's body (`{"type": "error", "error": {type, message}}`) and
`x-should-retry: false` below 500.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from ._base import BaseHandler, ScriptedServer, Turn, chunks, new_id, sse

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _content_blocks(turn: Turn) -> tuple[list[dict[str, Any]], str]:
    """The message content blocks of a turn and its stop reason."""
    if turn["kind"] == "tool_use":
        blocks: list[dict[str, Any]] = []
        if turn.get("text"):
            blocks.append({"type": "text", "text": turn["text"]})
        blocks.append(
            {
                "type": "tool_use",
                "id": new_id("toolu_"),
                "name": turn["name"],
                "input": turn["input"],
            }
        )
        return blocks, "tool_use"
    return [{"type": "text", "text": turn.get("text", "")}], "end_turn"


def _model_info(model_id: str) -> dict[str, Any]:
    return {
        "type": "model",
        "id": model_id,
        "display_name": model_id,
        "created_at": "2025-01-01T00:00:00Z",
    }


def _block_events(i: int, block: dict[str, Any]) -> list[bytes]:
    """content_block_start, its deltas and content_block_stop for one block."""
    if block["type"] == "text":
        start = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in chunks(block["text"], 40)]
    else:
        start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        deltas = [
            {"type": "input_json_delta", "partial_json": p}
            for p in chunks(json.dumps(block["input"]), 40)
        ]
    out = [
        sse(
            {"type": "content_block_start", "index": i, "content_block": start},
            "content_block_start",
        )
    ]
    out += [
        sse({"type": "content_block_delta", "index": i, "delta": d}, "content_block_delta")
        for d in deltas
    ]
    out.append(sse({"type": "content_block_stop", "index": i}, "content_block_stop"))
    return out


class _Handler(BaseHandler):
    owner: ScriptedAnthropicServer
    server_version = "scripted-anthropic/1"

    def route(self, method: str, path: str, body: Any) -> None:
        if method == "HEAD":
            self.send_json(200, {})
        elif method == "GET" and path == "/":
            self.send_json(200, {"ok": True})
        elif method == "GET" and path == "/v1/models":
            model = _model_info(self.owner.model)
            page = {"data": [model], "has_more": False, "first_id": model["id"]}
            self.send_json(200, {**page, "last_id": model["id"]})
        elif method == "GET" and path.startswith("/v1/models/"):
            self.send_json(200, _model_info(path.rsplit("/", 1)[1]))
        elif method == "POST" and path == "/v1/messages/count_tokens":
            self.send_json(200, {"input_tokens": self.owner.input_tokens})
        elif method == "POST" and path == "/v1/messages":
            self._messages(body if isinstance(body, dict) else {})
        elif method == "POST" and (path.startswith("/api/") or path.startswith("/v1/")):
            self.send_json(200, {})  # telemetry, event logging and similar: accept and ignore
        else:
            self.not_found()

    def not_found(self) -> None:
        self.send_json(
            404, {"type": "error", "error": {"type": "not_found_error", "message": "Not found"}}
        )

    def _messages(self, body: dict[str, Any]) -> None:
        owner = self.owner
        turn = owner.take_turn(body)
        if turn["kind"] == "error":
            status = int(turn["status"])
            kind = turn.get("type") or _ERROR_TYPES.get(status, "api_error")
            self.send_json(
                status,
                {"type": "error", "error": {"type": kind, "message": turn["message"]}},
                {"x-should-retry": "false"} if status < 500 else None,
            )
            return
        blocks, stop_reason = _content_blocks(turn)
        message = {
            "id": new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": str(body.get("model") or owner.model),
            "stop_sequence": None,
        }
        usage_in, usage_out = owner.input_tokens, owner.output_tokens
        if not body.get("stream"):
            usage = {"input_tokens": usage_in, "output_tokens": usage_out}
            self.send_json(
                200, {**message, "content": blocks, "stop_reason": stop_reason, "usage": usage}
            )
            return
        start_usage = {
            "input_tokens": usage_in,
            "output_tokens": 1,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        start = {**message, "content": [], "stop_reason": None, "usage": start_usage}
        out = [sse({"type": "message_start", "message": start}, "message_start")]
        for i, block in enumerate(blocks):
            out += _block_events(i, block)
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": usage_out},
        }
        out.append(sse(delta, "message_delta"))
        out.append(sse({"type": "message_stop"}, "message_stop"))
        self.send_sse(out)


class ScriptedAnthropicServer(ScriptedServer):
    """`with ScriptedAnthropicServer([tool_use("Write", {...}), text("done")]) as srv:`

    `srv.url` is the base URL for `ANTHROPIC_BASE_URL`; `srv.env()` gives the variables Claude
    Code needs to use it. See `ScriptedServer` for the script and the request log.
    """

    name: ClassVar[str] = "anthropic"
    handler = _Handler

    def __init__(self, script=(), *, model: str = "claude-sonnet-4-5-20250929", **kw: Any) -> None:  # noqa: ANN001
        super().__init__(script, model=model, **kw)

    def env(self, api_key: str = "test") -> dict[str, str]:
        """Environment variables pointing an Anthropic client (e.g. Claude Code) here."""
        return {
            "ANTHROPIC_BASE_URL": self.url,
            "ANTHROPIC_API_KEY": api_key,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
        }
