"""The Gemini CLI runner (`gemini --output-format stream-json`) and its parser.

Owns: argv for headless Gemini CLI — the prompt goes on stdin (Gemini prepends piped stdin to the
`--prompt` text, which here is a fixed instruction, so task text never reaches argv) — and
`GeminiStreamParser` for the documented events: `init` (session_id, model), `message` (role,
content, delta), `tool_use` (tool_name), `tool_result`, `error` (severity, message) and `result`
(status, error, stats: input_tokens, output_tokens, total_tokens, tool_calls, duration_ms).
`approval_mode` (`auto_edit`, `yolo`) is opt-in — without it headless Gemini cannot use its edit
and shell tools; `GEMINI_CLI_TRUST_WORKSPACE=true` (unless set) because every workspace is new,
else Gemini ignores the approval mode in an untrusted folder. Gemini reports no cost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from .base import CommandSpec, Runner, StreamParser, as_int, task_dict

STDIN_INSTRUCTION = "Carry out the task described above."


class GeminiStreamParser(StreamParser):
    runner = "gemini"

    def __init__(self) -> None:
        super().__init__()
        self._buf = ""
        self._in_message = False

    def handle(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        kind = obj.get("type")
        out: list[dict[str, Any]] = []
        if kind == "init":
            out += self._session(obj.get("session_id") or obj.get("sessionId"))
        elif kind == "message":
            if obj.get("role") != "assistant":
                self._in_message = False
                return out
            content = obj.get("content")
            if not isinstance(content, str):
                return out
            if not self._in_message:
                self._buf = ""
                self._in_message = True
                self.turns = (self.turns or 0) + 1
            self._buf = self._buf + content if obj.get("delta") else content
            out += self._message(self._buf)
        elif kind == "tool_use":
            self._in_message = False
            name = obj.get("tool_name") or obj.get("name") or "?"
            out.append({"type": "tool", "name": str(name)})
        elif kind == "tool_result":
            self._in_message = False
        elif kind == "error":
            out.append(
                {
                    "type": "error",
                    "message": f"gemini: {obj.get('message') or obj}",
                    "fatal": obj.get("severity") == "error",
                }
            )
        elif kind == "result":
            stats = obj.get("stats") or {}
            if stats:
                self.tokens_in = as_int(stats.get("input_tokens", stats.get("input")))
                self.tokens_out = as_int(stats.get("output_tokens"))
            ok = obj.get("status", "success") == "success" and not obj.get("error")
            if ok:
                out.append(self._result(is_error=False))
            else:
                err = obj.get("error") or {}
                msg = err.get("message") if isinstance(err, dict) else str(err)
                out.append(self._result(is_error=True, text=msg or "failed"))
                out.append({"type": "error", "message": f"gemini: {msg or 'failed'}"})
        return out


class Gemini(Runner):
    """Google Gemini CLI. `approval_mode`: default, auto_edit, yolo (opt-in)."""

    name: ClassVar[str] = "gemini"
    default_executables = ("gemini",)
    install_hint = "npm install -g @google/gemini-cli"
    failure_hint = (
        "Check GEMINI_API_KEY (or your GOOGLE_* credentials) and network access; "
        "try `gemini -p hello` in a terminal."
    )
    env_passthrough = ("GEMINI_*", "GOOGLE_*")

    def __init__(
        self,
        executable=None,
        model=None,
        extra_args=(),
        env=None,
        *,  # noqa: ANN001
        approval_mode: str | None = None,
        bypass_permissions: bool = False,
    ) -> None:
        super().__init__(executable, model, extra_args, env, bypass_permissions=bypass_permissions)
        self.approval_mode = approval_mode

    def argv(self, exe: str, *, session_id: str | None = None) -> list[str]:
        argv = [exe, "--output-format", "stream-json"]
        argv += self._flag("--model", "model", self.model)
        mode = self.approval_mode or ("yolo" if self.bypass_permissions else None)
        argv += self._flag("--approval-mode", "approval mode", mode)
        argv += self._flag("--resume", "session id", session_id)
        return argv + self.extra_args + [f"--prompt={STDIN_INSTRUCTION}"]

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
        env = {"GEMINI_CLI_TRUST_WORKSPACE": "true", **self.base_env()}
        return CommandSpec(
            argv=self.argv(exe, session_id=session_id), env=env, stdin_path=Path(prompt_file)
        )

    def parser(self) -> GeminiStreamParser:
        return GeminiStreamParser()
