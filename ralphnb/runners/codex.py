"""The Codex CLI runner (`codex exec --json`, prompt on stdin) and its JSONL parser.

Owns: argv for `codex exec` — sandbox `workspace-write` by default (the least privilege that
lets it edit its workspace; `--dangerously-bypass-approvals-and-sandbox` only when asked), its
start-up network switched off (plugin sync, analytics, update check), an optional endpoint of
the user's (a `-c model_providers.ralphnb={...}` provider: no config file is written) and an
optional private `CODEX_HOME`; resume via `codex exec ... resume <id> -`; and
`CodexStreamParser`.
Verified with Codex 0.171 against `ScriptedResponsesServer`: `thread.started` (thread_id, the
session id), `turn.started`, `item.started/completed` (agent_message, command_execution with
exit_code and aggregated_output, file_change, error), `turn.completed` (usage: input_tokens,
cached_input_tokens, output_tokens; on a resumed session the session's totals),
`turn.failed` / `error` (the API's error body as text). Codex reports no cost: it is estimated
from the price table. It exits 0 when its sandbox refused a write: a refused write outside
git's and the queue's own files fails the attempt whatever the exit code says.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from .base import CommandSpec, Runner, StreamParser, as_int, check_value, clip, task_dict
from .endpoint import Endpoint, worker_home
from .prices import Price
from .transcript import Entry, call, result

_TOOL_ITEMS = {
    "command_execution": "shell",
    "file_change": "apply_patch",
    "mcp_tool_call": "mcp",
    "web_search": "web_search",
    "todo_list": "todo_list",
}
#: What an OS sandbox refusal looks like in a command's output.
_REFUSED = re.compile(r"Read-only file system|Operation not permitted|Permission denied")
#: Refusals that are expected: git's own files (a worktree's git dir lies outside the
#: workspace) and the queue (`ralphnb task done`); the agent falls back to the promise.
_EXPECTED = re.compile(r"(^|[/\s'\"])\.(git|ralph)(/|\b)|index\.lock")
#: Codex's log line on stderr when its sandbox rejected a patch (nothing on stdout says so).
_PATCH_REJECTED = re.compile(r"patch rejected: ([^\n]*)")
STARTUP_OFF = (
    "--disable",
    "plugins",
    "-c",
    "analytics.enabled=false",
    "-c",
    "check_for_update_on_startup=false",
)


def api_error_text(message: str) -> str:
    """Codex passes an API error body through as text: `{"error": {"message": ...}}` -> its
    message (with its type), anything else unchanged."""
    try:
        body = json.loads(message)
    except ValueError:
        return message
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and err.get("message"):
        kind = err.get("type") or err.get("code")
        return f"{err['message']} ({kind})" if kind else str(err["message"])
    return message


class CodexStreamParser(StreamParser):
    runner = "codex"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._tool_items: set[str] = set()
        self._turns_done = 0
        self.refused: list[str] = []  # writes the sandbox refused that fail the attempt

    def handle(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        kind = obj.get("type")
        out: list[dict[str, Any]] = []
        if kind == "thread.started":
            out += self._session(obj.get("thread_id"))
        elif kind in ("item.started", "item.updated", "item.completed"):
            item = obj.get("item") or {}
            itype = item.get("type") or item.get("item_type")
            iid = str(item.get("id") or id(item))
            if itype in _TOOL_ITEMS and iid not in self._tool_items:
                self._tool_items.add(iid)
                name = _TOOL_ITEMS[itype]
                if itype == "mcp_tool_call" and item.get("tool"):
                    name = f"{item.get('server') or 'mcp'}.{item['tool']}"
                out.append({"type": "tool", "name": name})
            if kind == "item.completed":
                out += self._completed(itype, item)
        elif kind == "turn.completed":
            u = obj.get("usage") or {}
            self._turns_done += 1
            self.turns = self._turns_done
            self.tokens_in = as_int(u.get("input_tokens"))
            self.tokens_out = as_int(u.get("output_tokens"))
            out.append(self._usage())
            if self.refused:
                msg = "the sandbox refused: " + "; ".join(self.refused)
                out.append(self._result(is_error=True, text=msg))
            else:
                out.append(self._result(is_error=False))
        elif kind == "turn.failed":
            err = obj.get("error") or {}
            msg = api_error_text(str(err.get("message") if isinstance(err, dict) else err))
            self._turns_done += 1
            self.turns = self._turns_done
            out.append(self._result(is_error=True, text=msg or "turn failed"))
            out.append({"type": "error", "message": f"codex: {msg or 'turn failed'}"})
        elif kind == "error":
            msg = api_error_text(str(obj.get("message") or obj))
            out.append({"type": "error", "message": f"codex: {msg}", "fatal": False})
        return out

    def _completed(self, itype: Any, item: dict[str, Any]) -> list[dict[str, Any]]:
        if itype == "agent_message":
            return self._message(item.get("text"))
        if itype == "error":  # codex's own warnings (e.g. unknown model metadata): log only
            return self.text(f"codex warning: {item.get('message') or item}")
        if itype in ("command_execution", "file_change") and item.get("status") == "failed":
            output = str(item.get("aggregated_output") or "")
            what = str(item.get("command") or item.get("changes") or itype)
            if itype == "file_change" or _REFUSED.search(output):
                line = next((ln for ln in output.splitlines() if _REFUSED.search(ln)), output)
                detail = clip(f"{what}: {line.strip()}", 300)
                expected = bool(_EXPECTED.search(what + "\n" + output))
                if not expected:
                    self.refused.append(detail)
                note = " (expected: git's and the queue's files are outside the sandbox)"
                msg = f"codex: the sandbox refused {detail}" + (note if expected else "")
                return [{"type": "error", "message": msg, "fatal": False}]
        return []

    def tool_entries(self, obj: dict[str, Any]) -> list[Entry]:
        """A tool item's start (a call with its command, changes or arguments; also on its
        completion when no start was seen) and its completion (the result)."""
        kind = obj.get("type")
        if kind not in ("item.started", "item.completed"):
            return []
        item = obj.get("item") or {}
        itype = item.get("type") or item.get("item_type")
        if itype not in _TOOL_ITEMS:
            return []
        iid = str(item.get("id") or "")
        called = self.__dict__.setdefault("_entry_calls", set())
        out: list[Entry] = []
        if iid not in called:
            called.add(iid)
            name = _TOOL_ITEMS[itype]
            if itype == "mcp_tool_call" and item.get("tool"):
                name = f"{item.get('server') or 'mcp'}.{item['tool']}"
            args = {
                "command_execution": lambda: {"command": item.get("command")},
                "file_change": lambda: {"changes": item.get("changes")},
                "mcp_tool_call": lambda: item.get("arguments") or {},
                "web_search": lambda: {"query": item.get("query")},
                "todo_list": lambda: {"items": item.get("items")},
            }[itype]()
            out.append(call(name, args, iid))
        if kind == "item.completed":
            failed = item.get("status") == "failed" or item.get("exit_code") not in (0, None)
            output = item.get("aggregated_output")
            if output is None:
                output = item.get("result") or item.get("status") or ""
            out.append(result(output, iid, is_error=failed))
        return out


class Codex(Runner):
    """OpenAI Codex CLI. `sandbox`: read-only, workspace-write (default), danger-full-access.

    `writable_dirs`: more directories the sandbox lets it write (e.g. the repository's
    `.ralph/` so that `ralphnb task done` works; without it the agent prints the promise).
    `base_url` / `api_key_env`: a Responses API endpoint of your own and the variable holding
    its key; `home`: where private `CODEX_HOME`s go (default: your `~/.codex`, or a temporary
    one with `base_url`); `price`: USD per million tokens for the cost estimate;
    `max_retries`: request and stream retries of that endpoint (0 in tests).
    """

    name: ClassVar[str] = "codex"
    default_executables = ("codex",)
    install_hint = "npm install -g @openai/codex"
    failure_hint = (
        "Check OPENAI_API_KEY (or `codex login`) and network access; try "
        "`codex exec hello` in a terminal."
    )
    env_passthrough = ("OPENAI_*", "CODEX_*", "AZURE_OPENAI_*")

    def __init__(
        self,
        executable=None,
        model=None,
        extra_args=(),
        env=None,
        *,  # noqa: ANN001
        sandbox: str | None = "workspace-write",
        bypass_permissions: bool = False,
        effort: str | None = None,
        writable_dirs: Iterable[str | os.PathLike[str]] = (),
        base_url: str | None = None,
        api_key_env: str | None = None,
        home: str | os.PathLike[str] | None = None,
        price: Price | None = None,
        max_retries: int | None = None,
    ) -> None:
        super().__init__(
            executable, model, extra_args, env, bypass_permissions=bypass_permissions, effort=effort
        )
        self.sandbox = sandbox
        self.writable_dirs = [os.path.abspath(os.fspath(d)) for d in writable_dirs]
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

    def provider_args(self) -> list[str]:
        """`-c` overrides that define and select the user's endpoint (empty without one)."""
        ep = self.endpoint
        if ep.base_url is None:
            return []
        fields = {"name": "ralphnb", "base_url": ep.base_url, "wire_api": "responses"}
        if ep.api_key_env:
            fields["env_key"] = ep.api_key_env
        table = ", ".join(f"{k}={json.dumps(v)}" for k, v in fields.items())
        if ep.max_retries is not None:
            table += f", request_max_retries={ep.max_retries}"
            table += f", stream_max_retries={ep.max_retries}"
        return ["-c", "model_provider=ralphnb", "-c", f"model_providers.ralphnb={{{table}}}"]

    def argv(self, exe: str, *, workspace: Path, session_id: str | None = None) -> list[str]:
        # no login shell: /etc/profile would reset PATH, and the agent must find `ralphnb`
        argv = [exe, "exec", "--json", *STARTUP_OFF, "-c", "allow_login_shell=false"]
        argv += self._flag("--model", "model", self.model)
        if self.bypass_permissions:
            argv.append("--dangerously-bypass-approvals-and-sandbox")
        elif self.sandbox:  # `-c`, because `exec resume` has no --sandbox flag
            mode = check_value(self.name, "sandbox", self.sandbox)
            argv += ["-c", f"sandbox_mode={json.dumps(mode)}"]
        if self.writable_dirs:
            argv += [
                "-c",
                f"sandbox_workspace_write.writable_roots={json.dumps(self.writable_dirs)}",
            ]
        if self.effort and self.effort != "default":
            effort = check_value(self.name, "effort", self.effort)
            argv += ["-c", f"model_reasoning_effort={effort}"]
        argv += self.provider_args()
        if not (Path(workspace) / ".git").exists():
            argv.append("--skip-git-repo-check")
        argv += self.extra_args
        if session_id:
            argv += ["resume", check_value(self.name, "session id", session_id)]
        return argv + ["-"]  # "-": read the prompt from stdin

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
        env = self.base_env()
        if self.endpoint.private:
            env["CODEX_HOME"] = str(worker_home(self.name, workspace, self.endpoint.home))
        return CommandSpec(
            argv=self.argv(exe, workspace=Path(workspace), session_id=session_id),
            env=env,
            stdin_path=Path(prompt_file),
        )

    def parser(self) -> CodexStreamParser:
        return CodexStreamParser(model=self.model, price=self.endpoint.price)

    def diagnose(
        self,
        returncode: int | None,
        parser: StreamParser | None = None,
        stderr: str = "",
        *,
        signal: int | None = None,
    ) -> str | None:
        found = _PATCH_REJECTED.search(stderr or "")
        if found and parser is not None and not parser.is_error and not _EXPECTED.search(found[1]):
            parser.is_error = True  # the patch was refused, though the stream does not say
            parser.last_message = f"the sandbox refused a patch: {found[1].strip()}"
        return super().diagnose(returncode, parser, stderr, signal=signal)
