"""What every scripted model server shares: the script, its turns, the HTTP plumbing, recording.

Owns: the turn constructors (`text`, `tool_use`, `error`), `ScriptedServer` (lifecycle on a
thread, which requests consume the script, the request log) and `BaseHandler` (reading JSON
bodies, answering JSON or server-sent events). Each protocol module subclasses both and only
says how a turn looks on its wire.
Invariants: binds 127.0.0.1 only; every request is recorded in `requests`; only "main" requests
(by default those that offer tools: the agent's own conversation) consume the script, side
requests (titles, summaries, checks) get a short text; when the script is used up, the model
answers a final text turn so a CLI always terminates.
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

Turn = dict[str, Any]


def text(content: str) -> Turn:
    """A turn in which the model answers with text and ends its turn."""
    return {"kind": "text", "text": content}


def tool_use(name: str, input: dict[str, Any] | str, *, text_before: str | None = None) -> Turn:  # noqa: A002
    """A turn in which the model calls tool `name` with `input` (e.g. write a file).

    A string `input` is a freeform tool call (the Responses API's `custom_tool_call`, such as
    Codex's `apply_patch`); elsewhere it is sent as it is."""
    value = input if isinstance(input, str) else dict(input)
    return {"kind": "tool_use", "name": name, "input": value, "text": text_before}


def error(
    status: int,
    message: str = "scripted error",
    *,
    type: str | None = None,  # noqa: A002
    retry_after_ms: int | None = None,
) -> Turn:
    """A turn answered with HTTP `status` and the protocol's error body (`type` overrides the
    error type it names; `retry_after_ms` adds a `retry-after-ms` header)."""
    return {
        "kind": "error",
        "status": int(status),
        "message": message,
        "type": type,
        "retry_after_ms": retry_after_ms,
    }


def has_tools(body: dict[str, Any]) -> bool:
    """The agent's own conversation offers tools; side requests (titles, checks) do not."""
    return bool(body.get("tools"))


def new_id(prefix: str, n: int = 24) -> str:
    return prefix + uuid.uuid4().hex[:n]


def chunks(s: str, n: int) -> list[str]:
    """`s` in pieces of `n` characters (one empty piece for an empty string)."""
    return [s[i : i + n] for i in range(0, len(s), n)] or [""]


class _QuietServer(ThreadingHTTPServer):
    """A client that drops its kept-alive connection is normal here, not worth a traceback."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ScriptedServer:
    """Base of the scripted servers: `with Server([...]) as srv:` then point a CLI at `srv.url`.

    `requests` lists every request (method, path, headers, body); `message_requests` the bodies
    of the main requests, in order; `turns_used` how many main requests were answered.
    `input_tokens` / `output_tokens`: the usage every answer reports.
    """

    name: ClassVar[str] = "scripted"
    handler: ClassVar[type[BaseHandler]]

    def __init__(
        self,
        script: Iterable[Turn] = (),
        *,
        model: str = "mock-model",
        input_tokens: int = 1200,
        output_tokens: int = 60,
        is_main: Callable[[dict[str, Any]], bool] = has_tools,
        final_text: str = "Done.",
        side_text: str = "OK",
    ) -> None:
        self.script: list[Turn] = list(script)
        self.model = model
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.is_main = is_main
        self.final_text = final_text
        self.side_text = side_text
        self.requests: list[dict[str, Any]] = []
        self.message_requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._next = 0
        self._httpd: _QuietServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> ScriptedServer:
        if self._httpd is not None:
            return self
        handler = type("Handler", (self.handler,), {"owner": self})
        self._httpd = _QuietServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name=f"scripted-{self.name}", daemon=True
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

    def __enter__(self) -> ScriptedServer:
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
        """The server's root, `http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def turns_used(self) -> int:
        return self._next

    # -- decisions ---------------------------------------------------------------------------
    def take_turn(self, body: dict[str, Any]) -> Turn:
        """The turn that answers `body`: the next scripted one for a main request."""
        with self._lock:
            if not self.is_main(body):
                return text(self.side_text)
            self.message_requests.append(body)
            if self._next < len(self.script):
                turn = self.script[self._next]
                self._next += 1
                return turn
            self._next += 1
            return text(self.final_text)

    def record(self, method: str, path: str, headers: dict[str, str], body: Any) -> None:
        with self._lock:
            self.requests.append({"method": method, "path": path, "headers": headers, "body": body})


class BaseHandler(BaseHTTPRequestHandler):
    """HTTP plumbing for one protocol; subclasses implement `route(method, path, body)`."""

    owner: ScriptedServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # quiet: tests read `requests` instead

    def read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def path_only(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/") or "/"

    def send_json(self, status: int, obj: Any, extra: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", new_id("req_", 20))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_sse(self, events: list[bytes]) -> None:
        """One complete server-sent-event stream (sent with a length: scripts are short)."""
        data = b"".join(events)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", new_id("req_", 20))
        self.end_headers()
        self.wfile.write(data)

    def send_error_turn(self, turn: Turn, body: Any) -> None:
        """An error turn: its status, the protocol's body, and `retry-after-ms` when scripted."""
        extra: dict[str, str] = {}
        if turn.get("retry_after_ms") is not None:
            extra["retry-after-ms"] = str(int(turn["retry_after_ms"]))
        self.send_json(int(turn["status"]), body, extra)

    def not_found(self) -> None:
        self.send_json(404, {"error": {"message": f"no route for {self.path}", "code": 404}})

    def handle_verb(self, method: str) -> None:
        body = self.read_body() if method == "POST" else None
        self.owner.record(method, self.path, dict(self.headers), body)
        self.route(method, self.path_only(), body)

    def route(self, method: str, path: str, body: Any) -> None:
        self.not_found()

    def do_HEAD(self) -> None:
        self.handle_verb("HEAD")

    def do_GET(self) -> None:
        self.handle_verb("GET")

    def do_POST(self) -> None:
        self.handle_verb("POST")


def sse(data: dict[str, Any], event: str | None = None) -> bytes:
    """One server-sent event: `event: NAME` (when given) and a `data:` line of JSON."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()
