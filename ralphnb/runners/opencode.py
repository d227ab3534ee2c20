"""The opencode runner (`opencode run --format json`) and its parser.

Owns: argv for `opencode run` — the prompt goes on stdin (opencode appends piped stdin to the
message; the message argument is a fixed instruction) — and `OpencodeStreamParser` for its JSON
events, each `{"type", "timestamp", "sessionID", "part"|"error"}`: `step_start`, `text`
(part.text), `tool_use` (part.tool, part.callID), `step_finish` (part.reason, part.cost,
part.tokens: input, output, reasoning, cache.read/write) and `error`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from .base import CommandSpec, Runner, StreamParser, as_float, as_int, task_dict

STDIN_INSTRUCTION = "Carry out the task given on standard input."


class OpencodeStreamParser(StreamParser):
    runner = "opencode"

    def __init__(self) -> None:
        super().__init__()
        self._calls: set[str] = set()

    def handle(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        kind = obj.get("type")
        part = obj.get("part") or {}
        out = self._session(obj.get("sessionID") or part.get("sessionID"))
        if kind == "step_start":
            self.turns = (self.turns or 0) + 1
        elif kind == "text":
            out += self._message(part.get("text"))
        elif kind == "tool_use":
            call = str(part.get("callID") or part.get("id") or len(self._calls))
            if call not in self._calls:
                self._calls.add(call)
                out.append({"type": "tool", "name": str(part.get("tool") or "?")})
        elif kind == "step_finish":
            t = part.get("tokens") or {}
            cache = t.get("cache") or {}
            self.tokens_in = (
                (self.tokens_in or 0)
                + as_int(t.get("input"))
                + as_int(cache.get("read"))
                + as_int(cache.get("write"))
            )
            self.tokens_out = (
                (self.tokens_out or 0) + as_int(t.get("output")) + as_int(t.get("reasoning"))
            )
            cost = as_float(part.get("cost"))
            if cost is not None:
                self.cost_usd = (self.cost_usd or 0.0) + cost
            out.append(self._usage())
            if part.get("reason") not in ("tool-calls", "tool_calls"):
                out.append(self._result(is_error=False))
        elif kind == "error":
            err = obj.get("error") or {}
            msg = None
            if isinstance(err, dict):
                data = err.get("data") or {}
                msg = (
                    (data.get("message") if isinstance(data, dict) else None)
                    or err.get("message")
                    or err.get("name")
                )
            msg = str(msg or err or "error")
            out.append(self._result(is_error=True, text=msg))
            out.append({"type": "error", "message": f"opencode: {msg}"})
        return out


class Opencode(Runner):
    """opencode (`opencode run --format json`). Model as `provider/model`."""

    name: ClassVar[str] = "opencode"
    default_executables = ("opencode",)
    install_hint = "npm install -g opencode-ai"
    failure_hint = (
        "Check the provider key (`opencode auth login`) and the model name "
        "(provider/model); try `opencode run hello` in a terminal."
    )
    env_passthrough = (
        "OPENCODE_*",
        "ANTHROPIC_*",
        "OPENAI_*",
        "OPENROUTER_*",
        "GEMINI_*",
        "GOOGLE_*",
        "GROQ_*",
        "MISTRAL_*",
        "DEEPSEEK_*",
        "XAI_*",
    )

    def argv(self, exe: str, *, session_id: str | None = None) -> list[str]:
        argv = [exe, "run", "--format", "json"]
        argv += self._flag("--model", "model", self.model)
        argv += self._flag("--session", "session id", session_id)
        return argv + self.extra_args + [STDIN_INSTRUCTION]

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
        return CommandSpec(
            argv=self.argv(exe, session_id=session_id),
            env=self.base_env(),
            stdin_path=Path(prompt_file),
        )

    def parser(self) -> OpencodeStreamParser:
        return OpencodeStreamParser()
