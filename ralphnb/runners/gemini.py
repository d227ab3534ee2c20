"""The Gemini CLI runner (`gemini --output-format stream-json`) and its parser.

Owns: argv for headless Gemini CLI — the prompt goes on stdin (Gemini prepends piped stdin to the
`--prompt` text, here a fixed instruction, so task text never reaches argv); approval mode
`auto_edit` by default (its edit tools, no shell: the least privilege that edits headless) with
a policy file allowing only the git and `ralphnb task done` commands the prompt asks for
(`yolo` only when asked); settings that switch off usage statistics, telemetry and auto-update
and, for an endpoint of the user's, select API-key auth — in the worker's private home when it
has one, else as system settings in ralphnb's cache directory (Gemini skips a settings file
under a world-writable directory such as /tmp), never in `~/.gemini`; `GeminiStreamParser`.
Verified with Gemini CLI 0.61 against `ScriptedGeminiServer`: `init` (session_id, model),
`message` (role, content, delta — the promise may be split across deltas), `tool_use`,
`tool_result` (status; a denied call is `error`), `result` (status, error, stats: input_tokens,
output_tokens). On an HTTP error it exits with the status modulo 256 (400 -> 144) after a
`result` whose error message holds the API's body. Gemini reports no cost: it is estimated.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from .base import MAX_TEXT, CommandSpec, Runner, StreamParser, as_int, check_value, task_dict
from .endpoint import Endpoint, runner_file, worker_home, write_config
from .prices import Price
from .transcript import Entry, call, result

STDIN_INSTRUCTION = "Carry out the task described above."
#: Shell commands the default policy lets the agent run (what the prompt asks for).
DEFAULT_ALLOWED_COMMANDS = (
    "ralphnb task done",
    "git add",
    "git commit",
    "git status",
    "git diff",
    "git log",
)
_SYSTEM_SETTINGS = Path("/etc/gemini-cli/settings.json")
_API_ERROR = re.compile(r"\[API Error: (.*)\]\s*$", re.S)


def api_error_text(message: str) -> str:
    """`[API Error: {"error": {code, message, status}}]` -> `API error 400: message (STATUS)`."""
    found = _API_ERROR.search(message.strip())
    if not found:
        return message
    try:
        err = json.loads(found[1]).get("error") or {}
    except (ValueError, AttributeError):
        return message
    if not isinstance(err, dict) or not err.get("message"):
        return message
    status = f" ({err['status']})" if err.get("status") else ""
    return f"API error {err.get('code', '?')}: {err['message']}{status}"


#: Longest streamed message kept while its deltas come: a shown message is clipped to MAX_TEXT
#: (after stripping), so what lies beyond twice that never shows; keeping it would make each
#: delta cost more than the one before.
_BUF_MAX = 2 * MAX_TEXT


class GeminiStreamParser(StreamParser):
    runner = "gemini"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._buf = ""
        self._in_message = False
        self._new_turn = True  # the next assistant output starts a model call (a turn)
        self._tools: dict[str, str] = {}
        self._done: tuple[str, str | None] = ("", None)  # the call whose result came last

    def _turn(self) -> None:
        if self._new_turn:
            self.turns = (self.turns or 0) + 1
            self._new_turn = False

    def handle(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        kind = obj.get("type")
        out: list[dict[str, Any]] = []
        if kind == "init":
            out += self._session(obj.get("session_id") or obj.get("sessionId"))
            if self.model is None and isinstance(obj.get("model"), str):
                self.model = obj["model"]
        elif kind == "message":
            if obj.get("role") != "assistant":
                self._in_message = False
                self._new_turn = True
                return out
            content = obj.get("content")
            if not isinstance(content, str):
                return out
            self._turn()
            if not self._in_message:
                self._buf = ""
                self._in_message = True
            if not obj.get("delta"):
                self._buf = content
            elif len(self._buf) < _BUF_MAX:  # beyond it, `_message` would clip the rest away
                self._buf += content
            out += self._message(self._buf)
        elif kind == "tool_use":
            self._turn()
            self._in_message = False
            name = str(obj.get("tool_name") or obj.get("name") or "?")
            self._tools[str(obj.get("tool_id"))] = name
            out.append({"type": "tool", "name": name})
        elif kind == "tool_result":
            self._in_message = False
            self._new_turn = True
            # done with this call (its name kept for the line's transcript entry, read next)
            self._done = (str(obj.get("tool_id")), self._tools.pop(str(obj.get("tool_id")), None))
            name = self._done[1] or "a tool"
            if obj.get("status") == "error":
                err = obj.get("error") or {}
                why = err.get("message") if isinstance(err, dict) else None
                msg = f"gemini: {name} failed: {why or obj.get('output') or 'error'}"
                out.append({"type": "error", "message": msg, "fatal": False})
        elif kind == "error":
            msg = f"gemini: {obj.get('message') or obj}"
            out.append({"type": "error", "message": msg, "fatal": obj.get("severity") == "error"})
        elif kind == "result":
            out += self._final(obj)
        return out

    def _final(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        stats = obj.get("stats") or {}
        if stats:
            self.tokens_in = as_int(stats.get("input_tokens", stats.get("input")))
            self.tokens_out = as_int(stats.get("output_tokens"))
        if obj.get("status", "success") == "success" and not obj.get("error"):
            return [self._result(is_error=False)]
        err = obj.get("error") or {}
        msg = api_error_text(str(err.get("message") if isinstance(err, dict) else err) or "failed")
        return [
            self._result(is_error=True, text=msg),
            {"type": "error", "message": f"gemini: {msg}"},
        ]

    def tool_entries(self, obj: dict[str, Any]) -> list[Entry]:
        """`tool_use` lines (name, parameters) and `tool_result` lines (output or error)."""
        kind = obj.get("type")
        if kind == "tool_use":
            name = obj.get("tool_name") or obj.get("name")
            return [call(name, obj.get("parameters") or {}, obj.get("tool_id"))]
        if kind == "tool_result":
            failed = obj.get("status") == "error"
            err = obj.get("error")
            output = obj.get("output")
            if failed and isinstance(err, dict) and err.get("message"):
                output = err["message"]
            tid = str(obj.get("tool_id"))
            name = self._tools.get(tid) or (self._done[1] if self._done[0] == tid else None)
            return [
                result(
                    output or obj.get("status") or "",
                    obj.get("tool_id"),
                    tool=name,
                    is_error=failed,
                )
            ]
        return []


def policy_toml(commands: Iterable[str]) -> str:
    """A Gemini policy that allows shell commands starting with one of `commands`."""
    prefixes = ", ".join(json.dumps(c) for c in commands)
    return (
        "# written by ralphnb: the shell commands a headless worker may run\n"
        "[[rule]]\n"
        'toolName = "run_shell_command"\n'
        f"commandPrefix = [{prefixes}]\n"
        'decision = "allow"\n'
        "priority = 100\n"
    )


def settings_json(*, base: Path | None, api_key_auth: bool, max_retries: int | None) -> str:
    """Gemini settings: `base` (the machine's system settings, when readable) plus ralphnb's —
    no usage statistics, telemetry or auto-update; API-key auth for an endpoint of the user's."""
    try:
        settings = json.loads(base.read_text(encoding="utf-8")) if base is not None else {}
        settings = settings if isinstance(settings, dict) else {}
    except (OSError, ValueError):
        settings = {}
    settings.setdefault("privacy", {})["usageStatisticsEnabled"] = False
    settings.setdefault("telemetry", {})["enabled"] = False
    general = settings.setdefault("general", {})
    general["enableAutoUpdate"] = False
    general["enableAutoUpdateNotification"] = False
    if max_retries is not None:
        general["maxAttempts"] = max_retries + 1
    if api_key_auth:
        settings.setdefault("security", {}).setdefault("auth", {})["selectedType"] = (
            "gemini-api-key"
        )
    return json.dumps(settings, indent=2, sort_keys=True)


class Gemini(Runner):
    """Google Gemini CLI. `approval_mode`: auto_edit (default), default, plan, yolo (opt-in).

    `allowed_commands`: shell command prefixes the policy allows (default: the git and
    `ralphnb task done` commands the prompt asks for; `()` for none). `base_url` /
    `api_key_env`: a Gemini API endpoint of your own and the variable holding its key; `home`:
    where private Gemini homes go (default: your `~/.gemini`, or a temporary one with
    `base_url`); `price`: USD per million tokens for the estimate; `max_retries`: API retries.
    """

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
        approval_mode: str | None = "auto_edit",
        allowed_commands: Iterable[str] = DEFAULT_ALLOWED_COMMANDS,
        bypass_permissions: bool = False,
        base_url: str | None = None,
        api_key_env: str | None = None,
        home: str | os.PathLike[str] | None = None,
        price: Price | None = None,
        max_retries: int | None = None,
    ) -> None:
        super().__init__(executable, model, extra_args, env, bypass_permissions=bypass_permissions)
        self.approval_mode = approval_mode
        self.allowed_commands = tuple(str(c) for c in allowed_commands)
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

    def argv(self, exe: str, *, session_id: str | None = None) -> list[str]:
        argv = [exe, "--output-format", "stream-json"]
        argv += self._flag("--model", "model", self.model)
        mode = "yolo" if self.bypass_permissions else self.approval_mode
        argv += self._flag("--approval-mode", "approval mode", mode)
        if self.allowed_commands and not self.bypass_permissions:
            policy = runner_file("gemini-policy.toml", policy_toml(self.allowed_commands))
            argv.append(f"--policy={policy}")
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
        if session_id is not None:
            check_value(self.name, "session id", session_id)
        exe = self.resolve_executable()
        ep = self.endpoint
        env = {"GEMINI_CLI_TRUST_WORKSPACE": "true", **self.base_env()}
        settings = settings_json(
            base=None if ep.private else _SYSTEM_SETTINGS,
            api_key_auth=ep.base_url is not None,
            max_retries=ep.max_retries,
        )
        if ep.private:  # the worker's own home: its user settings
            home = worker_home(self.name, workspace, ep.home)
            env["GEMINI_CLI_HOME"] = str(home)
            write_config(home / ".gemini" / "settings.json", settings)
        else:  # the user's own ~/.gemini stays as it is: ours go in as system settings, which
            # Gemini reads only from a directory nobody else can write (not /tmp)
            path = runner_file("gemini-settings.json", settings, cached=True)
            env["GEMINI_CLI_SYSTEM_SETTINGS_PATH"] = str(path)
        if ep.base_url is not None:
            env["GOOGLE_GEMINI_BASE_URL"] = ep.base_url
        key = ep.api_key(self.env)
        if key is not None:
            env["GEMINI_API_KEY"] = key
        return CommandSpec(
            argv=self.argv(exe, session_id=session_id), env=env, stdin_path=Path(prompt_file)
        )

    def parser(self) -> GeminiStreamParser:
        return GeminiStreamParser(model=self.model, price=self.endpoint.price)
