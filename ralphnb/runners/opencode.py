"""The opencode runner (`opencode run --format json`) and its parser.

Owns: argv for `opencode run` — the prompt goes on stdin (opencode appends piped stdin to the
message; the message argument is a fixed instruction), `--title` so no title request is made —
and its configuration, given in `OPENCODE_CONFIG_CONTENT` (no file is written): permissions
(edits allowed, shell only for the git and `ralphnb task done` commands the prompt asks for, web
fetches denied; everything allowed only when asked), auto-update and sharing off, and an
OpenAI-compatible provider for an endpoint of the user's. Start-up plugin installs are skipped
(`OPENCODE_PURE`) unless `plugins=True`. Private XDG homes on request. `OpencodeStreamParser`.
Verified with opencode 1.18 against `ScriptedChatServer`: every event carries `sessionID`;
`step_start`, `text` (part.text), `tool_use` (part.tool, part.state.status: a denied call is
`error`), `step_finish` (part.reason, part.cost, part.tokens: input, output, reasoning,
cache.read/write) and `error` (error.data: message, statusCode); an API error exits 1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from ..errors import RunnerError
from .base import CommandSpec, Runner, StreamParser, as_float, as_int, check_value, task_dict
from .endpoint import Endpoint, worker_home
from .prices import Price
from .transcript import Entry, call, result

STDIN_INSTRUCTION = "Carry out the task given on standard input."
DEFAULT_ALLOWED_COMMANDS = (
    "ralphnb task done",
    "git add",
    "git commit",
    "git status",
    "git diff",
    "git log",
)
#: Start-up network a headless run does without (update check, sharing, LSP downloads).
QUIET_ENV = {
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_SHARE": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
}
#: No plugins: opencode npm-installs them at start.
NO_PLUGINS_ENV = {"OPENCODE_PURE": "1", "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1"}


class OpencodeStreamParser(StreamParser):
    runner = "opencode"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._calls: dict[str, str] = {}

    def handle(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        kind = obj.get("type")
        part = obj.get("part") or {}
        out = self._session(obj.get("sessionID") or part.get("sessionID"))
        if kind == "step_start":
            self.turns = (self.turns or 0) + 1
        elif kind == "text":
            out += self._message(part.get("text"))
        elif kind == "tool_use":
            out += self._tool(part)
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
            msg = _error_text(obj.get("error"))
            out.append(self._result(is_error=True, text=msg))
            out.append({"type": "error", "message": f"opencode: {msg}"})
        return out

    def _tool(self, part: dict[str, Any]) -> list[dict[str, Any]]:
        call = str(part.get("callID") or part.get("id") or len(self._calls))
        name = str(part.get("tool") or "?")
        out: list[dict[str, Any]] = []
        if call not in self._calls:
            self._calls[call] = name
            out.append({"type": "tool", "name": name})
        state = part.get("state") or {}
        if isinstance(state, dict) and state.get("status") == "error":
            why = str(state.get("error") or "error").splitlines()[0][:300]
            out.append(
                {"type": "error", "message": f"opencode: {name} failed: {why}", "fatal": False}
            )
        return out

    def tool_entries(self, obj: dict[str, Any]) -> list[Entry]:
        """A `tool_use` part: its call (tool, input) once, its result once it completed or
        failed."""
        part = obj.get("part") or {}
        if obj.get("type") != "tool_use" or not isinstance(part, dict):
            return []
        cid = str(part.get("callID") or part.get("id") or "")
        state = part.get("state") if isinstance(part.get("state"), dict) else {}
        seen = self.__dict__.setdefault("_entry_calls", set())
        out: list[Entry] = []
        if cid not in seen:
            seen.add(cid)
            out.append(call(part.get("tool"), state.get("input") or {}, cid))
        if state.get("status") in ("completed", "error"):
            failed = state.get("status") == "error"
            output = state.get("error") if failed else state.get("output")
            out.append(result(output or "", cid, tool=part.get("tool"), is_error=failed))
        return out


def _error_text(err: Any) -> str:
    """`{"name", "data": {"message", "statusCode"}}` -> `API error 400: message`."""
    if not isinstance(err, dict):
        return str(err or "error")
    data = err.get("data") if isinstance(err.get("data"), dict) else {}
    msg = data.get("message") or err.get("message") or err.get("name") or "error"
    status = data.get("statusCode")
    return f"API error {status}: {msg}" if status else str(msg)


def merge_config(env: dict[str, str], ours: dict[str, Any]) -> dict[str, Any]:
    """The user's own `OPENCODE_CONFIG_CONTENT` (when it parses) with ralphnb's keys on top."""
    try:
        theirs = json.loads(env.get("OPENCODE_CONFIG_CONTENT") or "{}")
    except ValueError:
        theirs = {}
    return {**theirs, **ours} if isinstance(theirs, dict) else ours


def permissions(allowed_commands: Iterable[str], *, everything: bool) -> dict[str, Any]:
    """opencode's `permission` config: edits yes, only the listed shell commands, no web."""
    if everything:
        return {"edit": "allow", "bash": "allow", "webfetch": "allow"}
    bash: dict[str, str] = {"*": "deny"}
    bash.update({f"{c}*": "allow" for c in allowed_commands})
    return {"edit": "allow", "bash": bash, "webfetch": "deny"}


class Opencode(Runner):
    """opencode (`opencode run --format json`). Model as `provider/model`.

    `allowed_commands`: shell command prefixes allowed (default: the git and `ralphnb task
    done` commands the prompt asks for); `bypass_permissions=True` allows everything (opt-in).
    `plugins=True` loads your opencode plugins (opencode npm-installs them at start).
    `base_url` / `api_key_env` / `model`: an OpenAI-compatible endpoint of your own, the
    variable holding its key, and its model name; `home`: where private XDG homes go (default:
    your own, or a temporary one with `base_url`); `price`: USD per million tokens, given to
    opencode so it reports the cost. opencode has no retry setting (`max_retries` is refused).
    """

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

    def __init__(
        self,
        executable=None,
        model=None,
        extra_args=(),
        env=None,
        *,  # noqa: ANN001
        allowed_commands: Iterable[str] = DEFAULT_ALLOWED_COMMANDS,
        bypass_permissions: bool = False,
        plugins: bool = False,
        base_url: str | None = None,
        api_key_env: str | None = None,
        home: str | os.PathLike[str] | None = None,
        price: Price | None = None,
        context_window: int = 128_000,
    ) -> None:
        super().__init__(executable, model, extra_args, env, bypass_permissions=bypass_permissions)
        self.allowed_commands = tuple(str(c) for c in allowed_commands)
        self.plugins = plugins
        self.context_window = int(context_window)
        self.endpoint = Endpoint.make(
            self.name, base_url=base_url, api_key_env=api_key_env, home=home, price=price
        )

    def passthrough_patterns(self) -> tuple[str, ...]:
        return self.endpoint.passthrough(tuple(self.env_passthrough))

    def config(self) -> dict[str, Any]:
        """What goes in `OPENCODE_CONFIG_CONTENT`."""
        cfg: dict[str, Any] = {
            "permission": permissions(self.allowed_commands, everything=self.bypass_permissions),
            "autoupdate": False,
            "share": "disabled",
        }
        ep = self.endpoint
        if ep.base_url is None:
            return cfg
        if not self.model:
            raise RunnerError("opencode runner: base_url needs model= (the endpoint's model name)")
        model = check_value(self.name, "model", self.model)
        entry: dict[str, Any] = {
            "name": model,
            "tool_call": True,
            "limit": {"context": self.context_window, "output": 16_384},
        }
        if ep.price is not None:
            entry["cost"] = {"input": ep.price[0], "output": ep.price[1]}
        options = {"baseURL": ep.base_url}
        if ep.api_key_env:
            options["apiKey"] = "{env:" + ep.api_key_env + "}"
        cfg["provider"] = {
            "ralphnb": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "ralphnb",
                "options": options,
                "models": {model: entry},
            }
        }
        cfg["model"] = cfg["small_model"] = f"ralphnb/{model}"
        return cfg

    def argv(self, exe: str, *, title: str, session_id: str | None = None) -> list[str]:
        argv = [exe, "run", "--format", "json", f"--title={title}"]
        if self.endpoint.base_url is None:
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
        t = task_dict(task)
        exe = self.resolve_executable()
        title = check_value(self.name, "task id", str(t.get("id") or "ralphnb"))
        env = {**QUIET_ENV, **({} if self.plugins else NO_PLUGINS_ENV), **self.base_env()}
        env["OPENCODE_CONFIG_CONTENT"] = json.dumps(merge_config(env, self.config()))
        if self.endpoint.base_url is not None:
            env["OPENCODE_DISABLE_MODELS_FETCH"] = "1"  # its own provider needs no catalogue
        if self.endpoint.private:
            home = worker_home(self.name, workspace, self.endpoint.home)
            for var, sub in (("CONFIG", "config"), ("DATA", "data"), ("CACHE", "cache")):
                env[f"XDG_{var}_HOME"] = str(home / sub)
            env["XDG_STATE_HOME"] = str(home / "state")
        return CommandSpec(
            argv=self.argv(exe, title=title, session_id=session_id),
            env=env,
            stdin_path=Path(prompt_file),
        )

    def parser(self) -> OpencodeStreamParser:
        return OpencodeStreamParser(model=self.model, price=self.endpoint.price)
