"""A scripted Anthropic Messages API server on loopback, for running real agent CLIs offline.

Owns: an HTTP server (stdlib `http.server`, one thread) that answers `POST /v1/messages` from a
script of turns — text, a `tool_use` block, or an HTTP error — as server-sent events (or plain JSON
when the request says `"stream": false`), and answers the CLI's side requests (`HEAD /`,
`/v1/models`, `count_tokens`, requests without tools) without consuming the script.
Invariants: binds 127.0.0.1 only; every request is recorded in `requests`; when the script is
used up, the model answers a final text turn ("Done.") so a CLI always terminates.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Turn = dict[str, Any]


def text(content: str) -> Turn:
    """A turn in which the model answers with text and ends its turn."""
    return {"kind": "text", "text": content}


def tool_use(name: str, input: dict[str, Any], *, text_before: str | None = None) -> Turn:  # noqa: A002
    """A turn in which the model calls tool `name` with `input` (e.g. Write a file)."""
    return {"kind": "tool_use", "name": name, "input": dict(input), "text": text_before}


def error(status: int, message: str = "scripted error", *, type: str | None = None) -> Turn:  # noqa: A002
    """A turn answered with HTTP `status` and an Anthropic-style error body."""
    default_type = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        529: "overloaded_error",
    }.get(status, "api_error")
    return {"kind": "error", "status": status, "message": message, "type": type or default_type}


def _is_main_request(body: dict[str, Any]) -> bool:
    """The agent's own conversation carries tools; side requests (titles, quota) do not."""
    return bool(body.get("tools"))


class ScriptedAnthropicServer:
    """`with ScriptedAnthropicServer([tool_use("Write", {...}), text("done")]) as srv:`

    `srv.url` is the base URL for `ANTHROPIC_BASE_URL`; `srv.env()` gives the variables a CLI
    needs to use it. `srv.requests` lists every request (method, path, headers, body);
    `srv.message_requests` the scripted ones. `is_main` decides which `/v1/messages` requests
    consume the script (default: those that offer tools).
    """

    def __init__(
        self,
        script: Iterable[Turn] = (),
        *,
        model: str = "claude-sonnet-4-5-20250929",
        input_tokens: int = 1200,
        output_tokens: int = 60,
        is_main: Callable[[dict[str, Any]], bool] = _is_main_request,
        final_text: str = "Done.",
    ) -> None:
        self.script: list[Turn] = list(script)
        self.model = model
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.is_main = is_main
        self.final_text = final_text
        self.requests: list[dict[str, Any]] = []
        self.message_requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._next = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> ScriptedAnthropicServer:
        if self._httpd is not None:
            return self
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="scripted-anthropic", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    close = stop

    def __enter__(self) -> ScriptedAnthropicServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- facts -------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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

    @property
    def turns_used(self) -> int:
        return self._next

    # -- decisions ---------------------------------------------------------------------------
    def _take_turn(self, body: dict[str, Any]) -> Turn:
        with self._lock:
            if not self.is_main(body):
                return text("OK")
            self.message_requests.append(body)
            if self._next < len(self.script):
                turn = self.script[self._next]
                self._next += 1
                return turn
            self._next += 1
            return text(self.final_text)

    def _record(self, method: str, path: str, headers: dict[str, str], body: Any) -> None:
        with self._lock:
            self.requests.append({"method": method, "path": path, "headers": headers, "body": body})


def _content_blocks(turn: Turn) -> tuple[list[dict[str, Any]], str]:
    """The message content blocks of a turn and its stop reason."""
    if turn["kind"] == "tool_use":
        blocks: list[dict[str, Any]] = []
        if turn.get("text"):
            blocks.append({"type": "text", "text": turn["text"]})
        blocks.append(
            {
                "type": "tool_use",
                "id": "toolu_" + uuid.uuid4().hex[:24],
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


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _chunks(s: str, n: int) -> list[str]:
    return [s[i : i + n] for i in range(0, len(s), n)] or [""]


class _Handler(BaseHTTPRequestHandler):
    owner: ScriptedAnthropicServer
    server_version = "scripted-anthropic/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # quiet: tests read `requests` instead

    # -- plumbing ----------------------------------------------------------------------------
    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def _send_json(self, status: int, obj: Any, extra: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", "req_" + uuid.uuid4().hex[:20])
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _path(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/") or "/"

    # -- verbs -------------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self.owner._record("HEAD", self.path, dict(self.headers), None)
        self._send_json(200, {})

    def do_GET(self) -> None:
        self.owner._record("GET", self.path, dict(self.headers), None)
        path = self._path()
        if path == "/":
            self._send_json(200, {"ok": True})
        elif path == "/v1/models":
            model = _model_info(self.owner.model)
            page = {"data": [model], "has_more": False, "first_id": model["id"]}
            self._send_json(200, {**page, "last_id": model["id"]})
        elif path.startswith("/v1/models/"):
            self._send_json(200, _model_info(path.rsplit("/", 1)[1]))
        else:
            self._not_found()

    def do_POST(self) -> None:
        body = self._read_body()
        self.owner._record("POST", self.path, dict(self.headers), body)
        path = self._path()
        if path == "/v1/messages/count_tokens":
            self._send_json(200, {"input_tokens": self.owner.input_tokens})
        elif path == "/v1/messages":
            self._messages(body if isinstance(body, dict) else {})
        elif path.startswith("/api/") or path.startswith("/v1/"):
            # Telemetry, event logging and similar side channels: accept and ignore.
            self._send_json(200, {})
        else:
            self._not_found()

    def _not_found(self) -> None:
        self._send_json(
            404, {"type": "error", "error": {"type": "not_found_error", "message": "Not found"}}
        )

    def _messages(self, body: dict[str, Any]) -> None:
        owner = self.owner
        turn = owner._take_turn(body)
        if turn["kind"] == "error":
            self._send_json(
                int(turn["status"]),
                {"type": "error", "error": {"type": turn["type"], "message": turn["message"]}},
                {"x-should-retry": "false"} if int(turn["status"]) < 500 else None,
            )
            return
        blocks, stop_reason = _content_blocks(turn)
        model = str(body.get("model") or owner.model)
        usage_in = owner.input_tokens
        usage_out = owner.output_tokens
        message = {
            "id": "msg_" + uuid.uuid4().hex[:24],
            "type": "message",
            "role": "assistant",
            "model": model,
            "stop_sequence": None,
        }
        if not body.get("stream"):
            self._send_json(
                200,
                {
                    **message,
                    "content": blocks,
                    "stop_reason": stop_reason,
                    "usage": {"input_tokens": usage_in, "output_tokens": usage_out},
                },
            )
            return
        out = [
            _sse(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        **message,
                        "content": [],
                        "stop_reason": None,
                        "usage": {
                            "input_tokens": usage_in,
                            "output_tokens": 1,
                            "cache_creation_input_tokens": 0,
                            "cache_read_input_tokens": 0,
                        },
                    },
                },
            )
        ]
        for i, block in enumerate(blocks):
            if block["type"] == "text":
                out.append(
                    _sse(
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": i,
                            "content_block": {"type": "text", "text": ""},
                        },
                    )
                )
                for piece in _chunks(block["text"], 40):
                    out.append(
                        _sse(
                            "content_block_delta",
                            {
                                "type": "content_block_delta",
                                "index": i,
                                "delta": {"type": "text_delta", "text": piece},
                            },
                        )
                    )
            else:
                out.append(
                    _sse(
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": i,
                            "content_block": {
                                "type": "tool_use",
                                "id": block["id"],
                                "name": block["name"],
                                "input": {},
                            },
                        },
                    )
                )
                for piece in _chunks(json.dumps(block["input"]), 40):
                    out.append(
                        _sse(
                            "content_block_delta",
                            {
                                "type": "content_block_delta",
                                "index": i,
                                "delta": {"type": "input_json_delta", "partial_json": piece},
                            },
                        )
                    )
            out.append(_sse("content_block_stop", {"type": "content_block_stop", "index": i}))
        out.append(
            _sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": usage_out},
                },
            )
        )
        out.append(_sse("message_stop", {"type": "message_stop"}))
        data = b"".join(out)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", "req_" + uuid.uuid4().hex[:20])
        self.end_headers()
        self.wfile.write(data)
