"""A scripted Gemini API server (what the Gemini CLI speaks) on loopback.

Owns: `POST /v1beta/models/MODEL:streamGenerateContent?alt=sse` answered from the script as
server-sent events of `GenerateContentResponse` chunks (`candidates[0].content.parts` with text
or a `functionCall`, `finishReason`, `usageMetadata`), `:generateContent` (one JSON answer; side
requests such as the CLI's checks get a short text, or `{}` when they ask for JSON),
`:countTokens`, and `GET /v1beta/models`. Errors carry Google's body
(`{"error": {code, message, status}}`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ._base import BaseHandler, ScriptedServer, Turn, chunks, sse

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def _parts(turn: Turn) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if turn.get("text"):
        parts += [{"text": p} for p in chunks(turn["text"], 40)]
    if turn["kind"] == "tool_use":
        parts.append({"functionCall": {"name": turn["name"], "args": turn["input"]}})
    return parts


def _wants_json(body: dict[str, Any]) -> bool:
    config = body.get("generationConfig") or {}
    return config.get("responseMimeType") == "application/json"


class _Handler(BaseHandler):
    owner: ScriptedGeminiServer
    server_version = "scripted-gemini/1"

    def route(self, method: str, path: str, body: Any) -> None:
        body = body if isinstance(body, dict) else {}
        model, _, action = path.rsplit("/", 1)[-1].partition(":")
        if method == "GET" and path.endswith("/models"):
            self.send_json(200, {"models": [{"name": f"models/{self.owner.model}"}]})
        elif method == "POST" and action == "countTokens":
            self.send_json(200, {"totalTokens": self.owner.input_tokens})
        elif method == "POST" and action in ("streamGenerateContent", "generateContent"):
            self._generate(body, model or self.owner.model, stream=action.startswith("stream"))
        elif method == "HEAD":
            self.send_json(200, {})
        else:
            self.not_found()

    def _usage(self) -> dict[str, int]:
        o = self.owner
        return {
            "promptTokenCount": o.input_tokens,
            "candidatesTokenCount": o.output_tokens,
            "totalTokenCount": o.input_tokens + o.output_tokens,
        }

    def _generate(self, body: dict[str, Any], model: str, *, stream: bool) -> None:
        turn = self.owner.take_turn(body)
        if turn["kind"] == "error":
            status = int(turn["status"])
            err = {
                "code": status,
                "message": turn["message"],
                "status": turn.get("type") or _STATUS.get(status, "UNKNOWN"),
            }
            self.send_error_turn(turn, {"error": err})
            return
        if not self.owner.is_main(body) and _wants_json(body):
            turn = {"kind": "text", "text": "{}"}
        parts = _parts(turn) or [{"text": ""}]
        base = {"modelVersion": model, "responseId": "resp-scripted"}
        if not stream:
            cand = {
                "content": {"role": "model", "parts": parts},
                "finishReason": "STOP",
                "index": 0,
            }
            self.send_json(200, {**base, "candidates": [cand], "usageMetadata": self._usage()})
            return
        out = []
        for i, part in enumerate(parts):
            cand: dict[str, Any] = {"content": {"role": "model", "parts": [part]}, "index": 0}
            chunk: dict[str, Any] = {**base, "candidates": [cand]}
            if i == len(parts) - 1:
                cand["finishReason"] = "STOP"
                chunk["usageMetadata"] = self._usage()
            out.append(sse(chunk))
        self.send_sse(out)


class ScriptedGeminiServer(ScriptedServer):
    """`with ScriptedGeminiServer([tool_use("write_file", {...}), text(...)]) as srv:`

    `srv.url` is what `GOOGLE_GEMINI_BASE_URL` takes. See `ScriptedServer` for the script and
    the request log.
    """

    name: ClassVar[str] = "gemini"
    handler = _Handler

    def __init__(self, script=(), *, model: str = "gemini-2.5-flash", **kw: Any) -> None:  # noqa: ANN001
        super().__init__(script, model=model, **kw)
