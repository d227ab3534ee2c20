"""The kimi runner (kimi-cli `kimi --print --output-format stream-json`) and its parser.

Owns: argv for headless kimi — run through `kimi_shim.py` (this interpreter), which adds the
session id and token usage kimi reports only on stderr and in its session files; the prompt on
stdin (`--input-format text`); an agent file of the runner's own that leaves out the shell,
subagents, background tasks and web tools (print mode approves every tool call, so the tool
list is the only privilege control: file tools only by default, everything with `shell=True`
or `bypass_permissions=True`); for an endpoint of the user's, the whole config as `--config`
(telemetry off, an `openai_legacy` provider; the key travels as `OPENAI_API_KEY` in the
worker's environment, never in argv) and a private `KIMI_SHARE_DIR`; resume with `--session`.
Verified with kimi-cli 1.51.0 (1.52 is a stub; 1.51 needs a Python >= 3.12 newer than 3.12.1)
against `ScriptedChatServer`: stdout has role messages (`assistant` with content and
`tool_calls`, `tool`), an API error is a plain line `Error code: 400 - {...}` and exit 1; a 5xx
is retried at least once (`--max-retries-per-step` is >= 1) and exits 75 when retries run out.
kimi reports no cost: it is estimated from the price table.
"""

from __future__ import annotations

import ast
import json
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from ..errors import RunnerError
from .base import CommandSpec, Runner, StreamParser, check_value, clip, task_dict
from .endpoint import Endpoint, runner_file, worker_home
from .prices import Price
from .transcript import Entry, call, result

SHIM = Path(__file__).resolve().with_name("kimi_shim.py")
#: Tools left out by default: the shell, subagents (they have a shell), background tasks, web.
EXCLUDED_TOOLS = (
    "kimi_cli.tools.shell:Shell",
    "kimi_cli.tools.agent:Agent",
    "kimi_cli.tools.background:TaskList",
    "kimi_cli.tools.background:TaskOutput",
    "kimi_cli.tools.background:TaskStop",
    "kimi_cli.tools.web:SearchWeb",
    "kimi_cli.tools.web:FetchURL",
)
_ERROR_LINE = re.compile(r"^(Error code: (\d{3}) - (.*)|Unknown error: .*|Interrupted by user)$")


def error_line_text(line: str) -> str | None:
    """kimi's plain error line -> a short message (None when the line is not one)."""
    found = _ERROR_LINE.match(line.strip())
    if not found:
        return None
    if not found[2]:
        return found[0]
    try:  # the body is a Python repr of the API's error JSON
        body = ast.literal_eval(found[3])
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict) and err.get("message"):
            return f"API error {found[2]}: {err['message']}"
    except (ValueError, SyntaxError):
        pass
    return f"API error {found[2]}: {found[3]}"


class KimiStreamParser(StreamParser):
    runner = "kimi"

    def text(self, line: str) -> list[dict[str, Any]]:
        out = super().text(line)
        msg = error_line_text(line)
        if msg is not None:
            self.is_error = True
            self.last_message = clip(msg)
            out.append({"type": "error", "message": f"kimi: {msg}"})
        return out

    def handle(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        if obj.get("type") == "ralphnb.kimi":
            return self._summary(obj)
        out: list[dict[str, Any]] = []
        if obj.get("role") == "assistant":
            content = obj.get("content")
            if isinstance(content, list):
                content = "".join(
                    str(p.get("text") or "")
                    for p in content
                    if isinstance(p, dict) and p.get("type") == "text"
                )
            out += self._message(content)
            for call in obj.get("tool_calls") or []:
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    out.append({"type": "tool", "name": str(fn.get("name") or "?")})
        return out

    def _summary(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        out = self._session(obj.get("session_id"))
        if obj.get("steps") is not None:
            self.turns = int(obj["steps"])
            self.tokens_in = int(obj.get("tokens_in") or 0)
            self.tokens_out = int(obj.get("tokens_out") or 0)
        failed = bool(self.is_error) or obj.get("exit_code") not in (0, None)
        out.append(self._usage())
        out.append(self._result(is_error=failed, text=self.last_message if failed else None))
        return out

    def tool_entries(self, obj: dict[str, Any]) -> list[Entry]:
        """An assistant message's `tool_calls` (function name, arguments) and `tool` role
        messages (their results)."""
        if obj.get("role") == "assistant":
            out: list[Entry] = []
            for c in obj.get("tool_calls") or []:
                fn = c.get("function") if isinstance(c, dict) else None
                if isinstance(fn, dict):
                    out.append(call(fn.get("name"), fn.get("arguments") or {}, c.get("id")))
            return out
        if obj.get("role") == "tool":
            return [result(obj.get("content"), obj.get("tool_call_id"))]
        return []


class Kimi(Runner):
    """kimi-cli. Print mode approves every tool call, so the runner chooses the tools: file
    tools only by default; `shell=True` (or `bypass_permissions=True`) gives kimi its full
    default agent, shell included (opt-in).

    `base_url` / `api_key_env` / `model`: an OpenAI-compatible endpoint of your own, the
    variable holding its key and its model name; `home`: where private `KIMI_SHARE_DIR`s go
    (default: your `~/.kimi`, or a temporary one with `base_url`); `price`: USD per million
    tokens for the estimate; `max_retries`: retries per step (kimi's minimum is 1).
    With your own `~/.kimi/config.toml`, its `telemetry` setting applies.
    """

    name: ClassVar[str] = "kimi"
    default_executables = ("kimi",)
    install_hint = "pip install kimi-cli==1.51.0 (Python >= 3.12), e.g. with `uv tool install`"
    failure_hint = (
        "Check the provider in ~/.kimi/config.toml (or `kimi login`) and network access; try "
        "`kimi --print -p hello` in a terminal."
    )
    env_passthrough = ("KIMI_*", "MOONSHOT_*")

    def __init__(
        self,
        executable=None,
        model=None,
        extra_args=(),
        env=None,
        *,  # noqa: ANN001
        shell: bool = False,
        bypass_permissions: bool = False,
        excluded_tools: Iterable[str] = EXCLUDED_TOOLS,
        base_url: str | None = None,
        api_key_env: str | None = None,
        home: str | os.PathLike[str] | None = None,
        price: Price | None = None,
        max_retries: int | None = None,
        context_window: int = 128_000,
    ) -> None:
        super().__init__(executable, model, extra_args, env, bypass_permissions=bypass_permissions)
        self.shell = shell
        self.excluded_tools = tuple(str(t) for t in excluded_tools)
        self.context_window = int(context_window)
        self.endpoint = Endpoint.make(
            self.name,
            base_url=base_url,
            api_key_env=api_key_env,
            home=home,
            price=price,
            max_retries=max_retries,
        )

    def display_command(self) -> str:
        return os.path.basename(self.executable or "kimi")

    def config(self) -> dict[str, Any]:
        """The `--config` for the user's endpoint (no key in it: see the module docstring)."""
        if not self.model:
            raise RunnerError("kimi runner: base_url needs model= (the endpoint's model name)")
        provider = {"type": "openai_legacy", "base_url": self.endpoint.base_url, "api_key": ""}
        model = {
            "provider": "ralphnb",
            "model": check_value(self.name, "model", self.model),
            "max_context_size": self.context_window,
        }
        return {
            "default_model": "ralphnb",
            "telemetry": False,
            "providers": {"ralphnb": provider},
            "models": {"ralphnb": model},
        }

    def agent_file(self) -> Path | None:
        """The agent spec that leaves out `excluded_tools` (None: kimi's default agent)."""
        if self.shell or self.bypass_permissions or not self.excluded_tools:
            return None
        lines = ["version: 1", "agent:", "  extend: default", "  exclude_tools:"]
        lines += [f"    - {json.dumps(t)}" for t in self.excluded_tools]
        return runner_file("kimi-agent.yaml", "\n".join(lines) + "\n")

    def argv(self, exe: str, *, session_id: str | None = None) -> list[str]:
        argv = [sys.executable, str(SHIM), exe, "--print"]
        argv += ["--input-format", "text", "--output-format", "stream-json"]
        agent = self.agent_file()
        if agent is not None:
            argv += ["--agent-file", str(agent)]
        if self.endpoint.base_url is not None:
            argv += ["--config", json.dumps(self.config())]
        elif self.model:
            argv += ["--model", check_value(self.name, "model", self.model)]
        if self.endpoint.max_retries is not None:
            argv += ["--max-retries-per-step", str(max(1, self.endpoint.max_retries))]
        if session_id:
            argv += ["--session", check_value(self.name, "session id", session_id)]
        return argv + self.extra_args

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
        # a wide terminal, so that kimi's console does not wrap an error line
        env = {"KIMI_CLI_NO_AUTO_UPDATE": "1", "COLUMNS": "10000", **self.base_env()}
        ep = self.endpoint
        key = ep.api_key(self.env)
        if ep.base_url is not None and key is not None:
            env["OPENAI_API_KEY"] = key
        if ep.private:
            env["KIMI_SHARE_DIR"] = str(worker_home(self.name, workspace, ep.home))
        return CommandSpec(
            argv=self.argv(exe, session_id=session_id), env=env, stdin_path=Path(prompt_file)
        )

    def parser(self) -> KimiStreamParser:
        return KimiStreamParser(model=self.model, price=self.endpoint.price)
