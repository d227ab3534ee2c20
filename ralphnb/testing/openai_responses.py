"""A scripted OpenAI Responses API server (what the Codex CLI speaks) on loopback.

Owns: `POST .../responses` answered from the script as the Responses API's server-sent events —
`response.created`, `response.output_item.added` / `.done` (a `message` with `output_text`, a
`function_call` with JSON arguments, or a `custom_tool_call` with freeform input such as
Codex's `apply_patch`), `response.output_text.delta`, `response.completed` with `usage` — and
`GET .../models`. Errors carry OpenAI's body (`{"error": {message, type, code}}`).
Every `/responses` request is a main one (the agent's conversation always offers tools).
"""

from __future__ import annotations

import json
import time
from typing import Any, ClassVar

from ._base import BaseHandler, ScriptedServer, Turn, chunks, new_id, sse

_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_api_key", 429: "rate_limit_exceeded"}


def openai_error(turn: Turn) -> dict[str, Any]:
    """OpenAI's error body for an error turn (shared with the chat completions server)."""
    status = int(turn["status"])
    kind = turn.get("type") or _ERROR_TYPES.get(status, "server_error")
    return {"error": {"message": turn["message"], "type": kind, "param": None, "code": kind}}


def output_items(turn: Turn) -> list[dict[str, Any]]:
    """The finished output items of one turn."""
    items: list[dict[str, Any]] = []
    if turn.get("text") is not None and (turn["kind"] == "text" or turn.get("text")):
        content = [{"type": "output_text", "text": turn["text"], "annotations": []}]
        items.append(
            {
                "type": "message",
                "id": new_id("msg_"),
                "status": "completed",
                "role": "assistant",
                "content": content,
            }
        )
    if turn["kind"] == "tool_use":
        call = {"id": new_id("fc_"), "call_id": new_id("call_"), "name": turn["name"]}
        if isinstance(turn["input"], str):
            items.append({"type": "custom_tool_call", **call, "input": turn["input"]})
        else:
            args = json.dumps(turn["input"])
            items.append(
                {"type": "function_call", **call, "arguments": args, "status": "completed"}
            )
    return items


def _item_events(i: int, item: dict[str, Any], seq: list[int]) -> list[bytes]:
    """output_item.added, its deltas, output_item.done."""

    def ev(kind: str, **data: Any) -> bytes:
        seq[0] += 1
        return sse({"type": kind, "sequence_number": seq[0], **data}, kind)

    added = {**item, "status": "in_progress"}
    if item["type"] == "message":
        added["content"] = []
    elif item["type"] == "function_call":
        added["arguments"] = ""
    out = [ev("response.output_item.added", output_index=i, item=added)]
    if item["type"] == "message":
        text = item["content"][0]["text"]
        where = {"item_id": item["id"], "output_index": i, "content_index": 0}
        part = {"type": "output_text", "text": "", "annotations": []}
        out.append(ev("response.content_part.added", **where, part=part))
        out += [ev("response.output_text.delta", **where, delta=p) for p in chunks(text, 40)]
        out.append(ev("response.output_text.done", **where, text=text))
        out.append(ev("response.content_part.done", **where, part=item["content"][0]))
    elif item["type"] == "function_call":
        where = {"item_id": item["id"], "output_index": i}
        for p in chunks(item["arguments"], 40):
            out.append(ev("response.function_call_arguments.delta", **where, delta=p))
        out.append(
            ev("response.function_call_arguments.done", **where, arguments=item["arguments"])
        )
    out.append(ev("response.output_item.done", output_index=i, item=item))
    return out


class _Handler(BaseHandler):
    owner: ScriptedResponsesServer
    server_version = "scripted-responses/1"

    def route(self, method: str, path: str, body: Any) -> None:
        if method == "GET" and path.endswith("/models"):
            model = {"id": self.owner.model, "object": "model", "created": 0, "owned_by": "mock"}
            self.send_json(200, {"object": "list", "data": [model]})
        elif method == "POST" and path.endswith("/responses"):
            self._responses(body if isinstance(body, dict) else {})
        elif method == "HEAD":
            self.send_json(200, {})
        else:
            self.not_found()

    def _responses(self, body: dict[str, Any]) -> None:
        owner = self.owner
        turn = owner.take_turn(body)
        if turn["kind"] == "error":
            self.send_error_turn(turn, openai_error(turn))
            return
        items = output_items(turn)
        response: dict[str, Any] = {
            "id": new_id("resp_"),
            "object": "response",
            "created_at": int(time.time()),
            "model": str(body.get("model") or owner.model),
            "status": "in_progress",
            "output": [],
        }
        usage = {
            "input_tokens": owner.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": owner.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": owner.input_tokens + owner.output_tokens,
        }
        done = {**response, "status": "completed", "output": items, "usage": usage}
        if not body.get("stream"):
            self.send_json(200, done)
            return
        seq = [0]
        out = [
            sse(
                {"type": "response.created", "sequence_number": 0, "response": response},
                "response.created",
            )
        ]
        for i, item in enumerate(items):
            out += _item_events(i, item, seq)
        seq[0] += 1
        out.append(
            sse(
                {"type": "response.completed", "sequence_number": seq[0], "response": done},
                "response.completed",
            )
        )
        self.send_sse(out)


class ScriptedResponsesServer(ScriptedServer):
    """`with ScriptedResponsesServer([tool_use("exec_command", {"cmd": ...}), text(...)]):`

    `srv.base_url` (`http://127.0.0.1:PORT/v1`) is what a Responses client (Codex's
    `model_providers.X.base_url`) takes. See `ScriptedServer` for the script and the log.
    """

    name: ClassVar[str] = "openai-responses"
    handler = _Handler

    def __init__(self, script=(), **kw: Any) -> None:  # noqa: ANN001
        kw.setdefault("is_main", lambda body: True)
        super().__init__(script, **kw)

    @property
    def base_url(self) -> str:
        return self.url + "/v1"
