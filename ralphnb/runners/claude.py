"""The Claude Code runner (`claude -p --output-format stream-json --verbose`) and its parser.

Owns: argv for Claude Code (prompt on stdin from the prompt file, so task text never appears in
argv or `ps`), resume by session id, permission mode, and `ClaudeStreamParser`, which the demo
agent's stream also goes through.
Verified with Claude Code 2.1.197 against a scripted Messages API: the `system/init` line carries
`session_id`; `assistant` lines carry one content block each (text or tool_use) with the message
id; a `system/api_retry` line announces each retry; the final `result` line carries `num_turns`,
`usage`, `total_cost_usd` and `is_error` (a 400 gives `is_error: true`, exit code 1).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from .base import CommandSpec, Runner, StreamParser, as_float, as_int, check_value, task_dict

PERMISSION_MODES = ("default", "acceptEdits", "plan", "bypassPermissions", "dontAsk", "auto")

#: What the prompt asks the agent to run. Headless Claude Code denies Bash commands that are not
#: allowed ("This command requires approval"), so these narrow rules are on by default; pass
#: `allowed_tools=()` to grant nothing. Not a bypass: every other command still needs approval.
DEFAULT_ALLOWED_TOOLS = (
    "Bash(ralphnb task done:*)",
    "Bash(git add:*)",
    "Bash(git commit:*)",
    "Bash(git status:*)",
    "Bash(git diff:*)",
    "Bash(git log:*)",
)


class ClaudeStreamParser(StreamParser):
    """Claude Code stream-json -> normalized events (also the demo agent's format)."""

    runner = "claude"

    def __init__(self) -> None:
        super().__init__()
        # Running totals, O(1) per line: the messages before the current one, summed once,
        # plus the current message's latest usage (its lines repeat or grow it).
        self._done_in = self._done_out = 0
        self._cur_id: str | None = None  # the current message's id
        self._cur_usage = (0, 0)
        self._open_no_id = False  # the last line was part of a message without an id

    def _count(self, msg: dict[str, Any], continues: bool) -> dict[str, Any]:
        """One line of a top-level assistant message -> the running totals, as a usage event.

        A turn is one model call, as the CLI's `num_turns` counts it: one message, whose
        content blocks come as consecutive lines with the same id. Lines without an id belong
        to the same message until a line of another kind comes between (`continues`: the line
        before was one of them)."""
        mid = msg.get("id")
        same = continues if mid is None else str(mid) == self._cur_id
        if not same:
            self._done_in += self._cur_usage[0]
            self._done_out += self._cur_usage[1]
            self._cur_id = None if mid is None else str(mid)
            self.turns = (self.turns or 0) + 1
        self._open_no_id = mid is None
        u = msg.get("usage") or {}
        tin = (
            as_int(u.get("input_tokens"))
            + as_int(u.get("cache_creation_input_tokens"))
            + as_int(u.get("cache_read_input_tokens"))
        )
        self._cur_usage = (tin, as_int(u.get("output_tokens")))
        self.tokens_in = self._done_in + tin
        self.tokens_out = self._done_out + self._cur_usage[1]
        return self._usage()

    def handle(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        continues, self._open_no_id = self._open_no_id, False  # any other line ends a message
        kind = obj.get("type")
        out: list[dict[str, Any]] = []
        if kind == "system":
            sub = obj.get("subtype")
            if sub == "init":
                out += self._session(obj.get("session_id"))
            elif sub == "api_retry":
                err = obj.get("error")
                if isinstance(err, dict):
                    err = err.get("message") or err.get("type")
                status = obj.get("error_status")
                message = " ".join(str(x) for x in (status, err) if x) or "API error"
                out.append(
                    {
                        "type": "retry",
                        "attempt": obj.get("attempt"),
                        "max_retries": obj.get("max_retries"),
                        "error": message,
                        "delay_ms": obj.get("retry_delay_ms"),
                    }
                )
            elif obj.get("session_id"):
                out += self._session(obj.get("session_id"))
        elif kind == "assistant":
            out += self._session(obj.get("session_id"))
            msg = obj.get("message") or {}
            for block in msg.get("content") or []:
                if not isinstance(block, dict):
                    continue
                if block.get("type") == "text":
                    out += self._message(block.get("text"))
                elif block.get("type") in ("tool_use", "server_tool_use"):
                    out.append({"type": "tool", "name": str(block.get("name") or "?")})
            if obj.get("parent_tool_use_id") is None and msg.get("model") != "<synthetic>":
                out.append(self._count(msg, continues))
        elif kind == "result":
            out += self._session(obj.get("session_id"))
            u = obj.get("usage") or {}
            if u:
                self.tokens_in = (
                    as_int(u.get("input_tokens"))
                    + as_int(u.get("cache_creation_input_tokens"))
                    + as_int(u.get("cache_read_input_tokens"))
                )
                self.tokens_out = as_int(u.get("output_tokens"))
            if obj.get("num_turns") is not None:
                self.turns = as_int(obj.get("num_turns"))
            cost = as_float(obj.get("total_cost_usd", obj.get("cost_usd")))
            if cost is not None:
                self.cost_usd = cost
            is_error = bool(obj.get("is_error")) or str(obj.get("subtype", "")).startswith("error")
            text = obj.get("result")
            if not isinstance(text, str):
                text = None
            denied = [
                f"{d.get('tool_name')}: {json.dumps(d.get('tool_input'))[:200]}"
                for d in obj.get("permission_denials") or []
                if isinstance(d, dict)
            ]
            if denied:
                out.append(
                    {
                        "type": "error",
                        "fatal": False,
                        "message": "claude: permission denied for " + "; ".join(denied),
                    }
                )
            if is_error:
                detail = text or obj.get("subtype") or "unknown error"
                status = obj.get("api_error_status")
                prefix = f"claude: API error {status}: " if status else "claude: "
                out.append(self._result(is_error=True, text=text))
                out.append({"type": "error", "message": prefix + str(detail)})
            else:
                out.append(self._result(is_error=False, text=text))
        return out


class Claude(Runner):
    """Claude Code. `permission_mode`: acceptEdits, plan, bypassPermissions, ... (opt-in).

    Prompt delivery: stdin from the prompt file (`claude -p` reads the prompt from stdin).
    Resume: `session_id` given to `command()` becomes `--resume=<id>`.
    `allowed_tools`: `--allowedTools` rules (default: the git and `ralphnb task done` commands
    the prompt asks for; headless Claude Code denies other Bash commands).
    `max_retries`: API retries on 5xx/overload (`CLAUDE_CODE_MAX_RETRIES`; the CLI's default is
    10 with growing delays, minutes in all); each retry is a `retry` event.
    """

    name: ClassVar[str] = "claude"
    default_executables = ("claude",)
    install_hint = "npm install -g @anthropic-ai/claude-code"
    failure_hint = (
        "Check ANTHROPIC_API_KEY (or log in with `claude`), ANTHROPIC_BASE_URL and "
        "network access; try `claude -p hello` in a terminal."
    )
    env_passthrough = (
        "ANTHROPIC_*",
        "CLAUDE_*",
        "DISABLE_TELEMETRY",
        "DISABLE_ERROR_REPORTING",
        "DISABLE_AUTOUPDATER",
        "MAX_THINKING_TOKENS",
        "MCP_TIMEOUT",
        "BASH_DEFAULT_TIMEOUT_MS",
        "AWS_REGION",
        "AWS_PROFILE",
        "CLOUD_ML_REGION",
    )

    def __init__(
        self,
        executable=None,
        model=None,
        extra_args=(),
        env=None,
        *,  # noqa: ANN001
        permission_mode: str | None = None,
        bypass_permissions: bool = False,
        effort: str | None = None,
        max_turns: int | None = None,
        allowed_tools: Iterable[str] = DEFAULT_ALLOWED_TOOLS,
        max_retries: int | None = None,
    ) -> None:
        super().__init__(
            executable, model, extra_args, env, bypass_permissions=bypass_permissions, effort=effort
        )
        self.permission_mode = permission_mode
        self.max_turns = max_turns
        self.allowed_tools = tuple(allowed_tools)
        self.max_retries = max_retries

    def argv(self, exe: str, *, session_id: str | None = None) -> list[str]:
        argv = [exe, "-p", "--output-format", "stream-json", "--verbose"]
        argv += self._flag("--model", "model", self.model)
        mode = self.permission_mode
        if mode is None and self.bypass_permissions:
            mode = "bypassPermissions"
        argv += self._flag("--permission-mode", "permission mode", mode)
        if self.effort and self.effort != "default":
            argv += self._flag("--effort", "effort", self.effort)
        if self.max_turns:
            argv.append(f"--max-turns={int(self.max_turns)}")
        if self.allowed_tools:
            argv.append("--allowedTools=" + ",".join(self.allowed_tools))
        argv += self._flag("--resume", "session id", session_id)
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
        if session_id is not None:
            check_value(self.name, "session id", session_id)
        exe = self.resolve_executable()
        env = self.base_env()
        if self.max_retries is not None:
            env["CLAUDE_CODE_MAX_RETRIES"] = str(int(self.max_retries))
        return CommandSpec(
            argv=self.argv(exe, session_id=session_id),
            env=env,
            stdin_path=Path(prompt_file),
        )

    def parser(self) -> ClaudeStreamParser:
        return ClaudeStreamParser()
