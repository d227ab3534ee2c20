"""The Cursor agent runner (`cursor-agent --print --output-format stream-json`) and its parser.

Owns: argv for the Cursor CLI (`cursor-agent`, or `agent` in newer installs) — the prompt is the
last argument, after `--` — and `CursorStreamParser` for the documented stream-json events:
`system/init` (session_id, model), `user`, `assistant` (message.content[].text, one line per
message), `tool_call` (subtype started/completed; the tool is the `*ToolCall` key) and `result`
(is_error, result, session_id, duration_ms). Cursor reports no tokens or cost; `--force` is
opt-in via `bypass_permissions=True`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from .base import CommandSpec, Runner, StreamParser, as_int, task_dict
from .transcript import Entry, call, result


def _tool_name(call: Any) -> str:
    if not isinstance(call, dict) or not call:
        return "?"
    key = next(iter(call))
    if key == "function" and isinstance(call[key], dict):
        return str(call[key].get("name") or "function")
    return key[: -len("ToolCall")] if key.endswith("ToolCall") else key


class CursorStreamParser(StreamParser):
    runner = "cursor"

    def handle(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        kind = obj.get("type")
        out = self._session(obj.get("session_id"))
        if kind == "assistant":
            content = (obj.get("message") or {}).get("content") or []
            blocks = [b for b in content if isinstance(b, dict) and b.get("type") == "text"]
            text = "".join(str(b.get("text", "")) for b in blocks)
            if text.strip():
                self.turns = (self.turns or 0) + 1
            out += self._message(text)
        elif kind == "tool_call" and obj.get("subtype") == "started":
            out.append({"type": "tool", "name": _tool_name(obj.get("tool_call"))})
        elif kind == "result":
            u = obj.get("usage") or {}
            if u:
                self.tokens_in = as_int(u.get("input_tokens") or u.get("inputTokens"))
                self.tokens_out = as_int(u.get("output_tokens") or u.get("outputTokens"))
            is_error = bool(obj.get("is_error")) or obj.get("subtype") not in (None, "success")
            text = obj.get("result") if isinstance(obj.get("result"), str) else None
            out.append(self._result(is_error=is_error, text=text))
            if is_error:
                out.append({"type": "error", "message": f"cursor: {text or obj.get('subtype')}"})
        return out

    def tool_entries(self, obj: dict[str, Any]) -> list[Entry]:
        """`tool_call` lines: started (name, args), completed (result: success or error)."""
        if obj.get("type") != "tool_call":
            return []
        tc = obj.get("tool_call")
        body = next(iter(tc.values()), {}) if isinstance(tc, dict) and tc else {}
        body = body if isinstance(body, dict) else {}
        cid = obj.get("call_id")
        if obj.get("subtype") == "started":
            return [call(_tool_name(tc), body.get("args") or {}, cid)]
        if obj.get("subtype") == "completed":
            res = body.get("result") if isinstance(body.get("result"), dict) else {}
            failed = "success" not in res and bool(res)
            output = res.get("success", res.get("error", res)) if res else ""
            if isinstance(output, dict) and isinstance(output.get("stdout"), str):
                output = output["stdout"]
            return [result(output, cid, tool=_tool_name(tc), is_error=failed)]
        return []


class Cursor(Runner):
    """Cursor agent CLI. `bypass_permissions=True` adds `--force` (opt-in).

    `trust=True` (default) adds `--trust`: headless Cursor asks before working in a directory it
    has not seen, and each worker's workspace is new; the workspace is ralphnb's own copy of the
    user's repository. It approves no tool calls."""

    name: ClassVar[str] = "cursor"
    default_executables = ("cursor-agent", "agent")
    install_hint = "curl https://cursor.com/install -fsS | bash"
    failure_hint = (
        "Check CURSOR_API_KEY (or `cursor-agent login`); try `cursor-agent -p hello` in a terminal."
    )
    env_passthrough = ("CURSOR_*",)

    def __init__(
        self,
        executable=None,
        model=None,
        extra_args=(),
        env=None,
        *,  # noqa: ANN001
        bypass_permissions: bool = False,
        trust: bool = True,
    ) -> None:
        super().__init__(executable, model, extra_args, env, bypass_permissions=bypass_permissions)
        self.trust = trust

    def argv(self, exe: str, prompt: str, *, session_id: str | None = None) -> list[str]:
        argv = [exe, "--print", "--output-format", "stream-json"]
        if self.trust:
            argv.append("--trust")
        argv += self._flag("--model", "model", self.model)
        argv += self._flag("--resume", "session id", session_id)
        if self.bypass_permissions:
            argv.append("--force")
        return argv + self.extra_args + ["--", prompt]

    def command(
        self,
        task: Any,
        *,
        workspace: Path,
        prompt_file: Path,
        iteration: int,
        session_id: str | None = None,
    ) -> CommandSpec:
        task_dict(task)
        exe = self.resolve_executable()
        prompt = self._read_prompt(Path(prompt_file))
        return CommandSpec(argv=self.argv(exe, prompt, session_id=session_id), env=self.base_env())

    def parser(self) -> CursorStreamParser:
        return CursorStreamParser()
