"""The pi runner (`pi -p --mode json`, npm `@mariozechner/pi-coding-agent`) and its parser.

Owns: argv for headless pi — the prompt on stdin (pi reads piped stdin as the message, before a
fixed instruction), the `--tools` allow-list (pi has no approvals: `read,write,edit` by default,
the least privilege that edits; `bash` only when asked), extensions off by default, resume with
`--session <id>`; `PI_OFFLINE=1` (no update check, telemetry or tool download at start); for an
endpoint of the user's a private agent directory (`PI_CODING_AGENT_DIR`) holding the
`models.json` that defines it (its `apiKey` names the variable, pi reads the key from the
environment) and a `settings.json` with the retry setting; and `PiStreamParser`.
Verified with pi 0.73 against `ScriptedChatServer`: `session {id}` first, `turn_start` per
model call, `message_end` (an assistant message carries `usage {input, output, cacheRead,
cacheWrite, cost.total}`, `stopReason` and, on failure, `errorMessage`),
`tool_execution_start/_end` (isError), `auto_retry_start`, `agent_end`. In json mode pi exits 0
even when the model call failed: `stopReason: "error"` fails the attempt.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from ..errors import RunnerError
from .base import CommandSpec, Runner, StreamParser, as_float, as_int, check_value, task_dict
from .endpoint import Endpoint, worker_home, write_config
from .prices import Price
from .transcript import Entry, call, result

STDIN_INSTRUCTION = "Carry out the task given above."
DEFAULT_TOOLS = ("read", "write", "edit")
ALL_TOOLS = ("read", "bash", "edit", "write", "grep", "find", "ls")


class PiStreamParser(StreamParser):
    runner = "pi"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._error: str | None = None

    def handle(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        kind = obj.get("type")
        out: list[dict[str, Any]] = []
        if kind == "session":
            out += self._session(obj.get("id"))
        elif kind == "turn_start":
            self.turns = (self.turns or 0) + 1
        elif kind == "message_end":
            msg = obj.get("message") or {}
            if isinstance(msg, dict) and msg.get("role") == "assistant":
                out += self._assistant(msg)
        elif kind == "tool_execution_start":
            out.append({"type": "tool", "name": str(obj.get("toolName") or "?")})
        elif kind == "tool_execution_end" and obj.get("isError"):
            result = obj.get("result") or {}
            texts = [c.get("text", "") for c in result.get("content") or [] if isinstance(c, dict)]
            why = (" ".join(texts).strip() or "error")[:300]
            msg = f"pi: {obj.get('toolName') or 'a tool'} failed: {why}"
            out.append({"type": "error", "message": msg, "fatal": False})
        elif kind == "auto_retry_start":
            out.append(
                {
                    "type": "retry",
                    "attempt": obj.get("attempt"),
                    "max_retries": obj.get("maxAttempts", obj.get("maxRetries")),
                    "error": obj.get("errorMessage") or obj.get("error"),
                    "delay_ms": obj.get("delayMs"),
                }
            )
        elif kind == "agent_end":
            if self._error is not None:
                out.append(self._result(is_error=True, text=self._error))
                out.append({"type": "error", "message": f"pi: {self._error}"})
            else:
                out.append(self._result(is_error=False))
        return out

    def _assistant(self, msg: dict[str, Any]) -> list[dict[str, Any]]:
        u = msg.get("usage") or {}
        self.tokens_in = (
            (self.tokens_in or 0)
            + as_int(u.get("input"))
            + as_int(u.get("cacheRead"))
            + as_int(u.get("cacheWrite"))
        )
        self.tokens_out = (self.tokens_out or 0) + as_int(u.get("output"))
        cost = (
            as_float((u.get("cost") or {}).get("total"))
            if isinstance(u.get("cost"), dict)
            else None
        )
        if cost is not None:
            self.cost_usd = (self.cost_usd or 0.0) + cost
        out = [self._usage()]
        content = msg.get("content")
        parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
        text = "".join(
            str(p.get("text") or "")
            for p in parts
            if isinstance(p, dict) and p.get("type") == "text"
        )
        out += self._message(text)
        if msg.get("stopReason") in ("error", "aborted"):
            self._error = str(msg.get("errorMessage") or msg.get("stopReason"))
        else:
            self._error = None  # a later call succeeded (pi retried)
        return out

    def tool_entries(self, obj: dict[str, Any]) -> list[Entry]:
        """`tool_execution_start` (name, args) and `tool_execution_end` (result, isError)."""
        kind = obj.get("type")
        if kind == "tool_execution_start":
            return [call(obj.get("toolName"), obj.get("args") or {}, obj.get("toolCallId"))]
        if kind == "tool_execution_end":
            return [
                result(
                    obj.get("result"),
                    obj.get("toolCallId"),
                    tool=obj.get("toolName"),
                    is_error=bool(obj.get("isError")),
                )
            ]
        return []


class Pi(Runner):
    """pi coding agent. `tools`: the tools it may use (default read, write, edit: no shell);
    `bypass_permissions=True` gives it every built-in tool, bash included (opt-in).

    `provider` / `model`: pi's provider and model; `extensions=True` loads your pi extensions.
    `base_url` / `api_key_env` / `model`: an OpenAI-compatible endpoint of your own, the
    variable holding its key and its model name (written to a private `models.json` with
    `price` as pi's cost table); `home`: where private agent directories go (default: your
    `~/.pi/agent`, or a temporary one with `base_url`); `max_retries`: pi's API retries (needs
    a private directory).
    """

    name: ClassVar[str] = "pi"
    default_executables = ("pi",)
    install_hint = "npm install -g @mariozechner/pi-coding-agent"
    failure_hint = (
        "Check the provider's API key variable and the model (`pi --list-models`); try "
        "`pi -p hello` in a terminal."
    )
    env_passthrough = (
        "PI_*",
        "ANTHROPIC_*",
        "OPENAI_*",
        "AZURE_OPENAI_*",
        "GEMINI_*",
        "GOOGLE_*",
        "GROQ_*",
        "CEREBRAS_*",
        "XAI_*",
        "OPENROUTER_*",
        "MISTRAL_*",
        "DEEPSEEK_*",
        "MOONSHOT_*",
        "KIMI_*",
        "ZAI_*",
        "FIREWORKS_*",
        "AWS_REGION",
        "AWS_PROFILE",
    )

    def __init__(
        self,
        executable=None,
        model=None,
        extra_args=(),
        env=None,
        *,  # noqa: ANN001
        provider: str | None = None,
        tools: Iterable[str] = DEFAULT_TOOLS,
        bypass_permissions: bool = False,
        extensions: bool = False,
        effort: str | None = None,
        base_url: str | None = None,
        api_key_env: str | None = None,
        home: str | os.PathLike[str] | None = None,
        price: Price | None = None,
        max_retries: int | None = None,
        context_window: int = 128_000,
    ) -> None:
        super().__init__(
            executable, model, extra_args, env, bypass_permissions=bypass_permissions, effort=effort
        )
        self.provider = provider
        self.tools = tuple(str(t) for t in tools)
        self.extensions = extensions
        self.context_window = int(context_window)
        self.endpoint = Endpoint.make(
            self.name,
            base_url=base_url,
            api_key_env=api_key_env,
            home=home,
            price=price,
            max_retries=max_retries,
        )

    def passthrough_patterns(self) -> tuple[str, ...]:
        return self.endpoint.passthrough(tuple(self.env_passthrough))

    def models_json(self) -> dict[str, Any]:
        """The private `models.json` defining the user's endpoint as provider `ralphnb`."""
        ep = self.endpoint
        if not self.model:
            raise RunnerError("pi runner: base_url needs model= (the endpoint's model name)")
        price = ep.price or (0.0, 0.0)
        model = {
            "id": check_value(self.name, "model", self.model),
            "name": self.model,
            "reasoning": False,
            "input": ["text"],
            "contextWindow": self.context_window,
            "maxTokens": 16_384,
            "cost": {"input": price[0], "output": price[1], "cacheRead": 0, "cacheWrite": 0},
        }
        provider = {
            "baseUrl": ep.base_url,
            "api": "openai-completions",
            "apiKey": ep.api_key_env or "none",
            "models": [model],
        }
        return {"providers": {"ralphnb": provider}}

    def argv(self, exe: str, *, session_id: str | None = None) -> list[str]:
        tools = ALL_TOOLS if self.bypass_permissions else self.tools
        argv = [exe, "-p", "--mode", "json", "--no-themes"]
        argv += ["--tools", ",".join(check_value(self.name, "tool", t) for t in tools)]
        if not self.extensions:
            argv.append("--no-extensions")
        provider = "ralphnb" if self.endpoint.base_url else self.provider
        if provider:
            argv += ["--provider", check_value(self.name, "provider", provider)]
        if self.model:
            argv += ["--model", check_value(self.name, "model", self.model)]
        if self.effort and self.effort != "default":
            argv += ["--thinking", check_value(self.name, "effort", self.effort)]
        if session_id:
            argv += ["--session", check_value(self.name, "session id", session_id)]
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
        env = {"PI_OFFLINE": "1", "PI_TELEMETRY": "0", **self.base_env()}
        ep = self.endpoint
        if ep.private:
            home = worker_home(self.name, workspace, ep.home)
            env["PI_CODING_AGENT_DIR"] = str(home)
            if ep.base_url is not None:
                write_config(home / "models.json", json.dumps(self.models_json(), indent=2))
            if ep.max_retries is not None:
                retry = {"enabled": ep.max_retries > 0, "maxRetries": ep.max_retries}
                retry["provider"] = {"maxRetries": ep.max_retries}
                write_config(home / "settings.json", json.dumps({"retry": retry}, indent=2))
        return CommandSpec(
            argv=self.argv(exe, session_id=session_id), env=env, stdin_path=Path(prompt_file)
        )

    def parser(self) -> PiStreamParser:
        return PiStreamParser(model=self.model, price=self.endpoint.price)
