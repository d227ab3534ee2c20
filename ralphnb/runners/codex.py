"""The Codex CLI runner (`codex exec --json`, prompt on stdin) and its JSONL parser.

Owns: argv for `codex exec` (sandbox `workspace-write` by default so the agent can edit its
workspace; `--dangerously-bypass-approvals-and-sandbox` only when asked), resume via
`codex exec ... resume <id>`, and `CodexStreamParser` for the documented exec events:
`thread.started` (thread_id), `turn.started`, `item.started/updated/completed` (agent_message,
reasoning, command_execution, file_change, mcp_tool_call, web_search, todo_list, error),
`turn.completed` (usage: input_tokens, cached_input_tokens, output_tokens), `turn.failed`, `error`.
Codex reports no cost; `cost_usd` stays None.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from .base import CommandSpec, Runner, StreamParser, as_int, check_value, task_dict

_TOOL_ITEMS = {
    "command_execution": "shell",
    "file_change": "apply_patch",
    "mcp_tool_call": "mcp",
    "web_search": "web_search",
    "todo_list": "todo_list",
}


class CodexStreamParser(StreamParser):
    runner = "codex"

    def __init__(self) -> None:
        super().__init__()
        self._tool_items: set[str] = set()
        self._turns_done = 0

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
                if itype == "agent_message":
                    out += self._message(item.get("text"))
                elif itype == "error":
                    out.append(
                        {
                            "type": "error",
                            "message": str(item.get("message") or item),
                            "fatal": False,
                        }
                    )
        elif kind == "turn.completed":
            u = obj.get("usage") or {}
            self._turns_done += 1
            self.turns = self._turns_done
            self.tokens_in = (self.tokens_in or 0) + as_int(u.get("input_tokens"))
            self.tokens_out = (self.tokens_out or 0) + as_int(u.get("output_tokens"))
            out.append(self._usage())
            out.append(self._result(is_error=False))
        elif kind == "turn.failed":
            err = obj.get("error") or {}
            msg = err.get("message") if isinstance(err, dict) else str(err)
            u = obj.get("usage") or {}
            if u:
                self.tokens_in = (self.tokens_in or 0) + as_int(u.get("input_tokens"))
                self.tokens_out = (self.tokens_out or 0) + as_int(u.get("output_tokens"))
            self._turns_done += 1
            self.turns = self._turns_done
            out.append(self._result(is_error=True, text=msg or "turn failed"))
            out.append({"type": "error", "message": f"codex: {msg or 'turn failed'}"})
        elif kind == "error":
            out.append({"type": "error", "message": f"codex: {obj.get('message') or obj}"})
        return out


class Codex(Runner):
    """OpenAI Codex CLI. `sandbox`: read-only, workspace-write (default), danger-full-access."""

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
    ) -> None:
        super().__init__(
            executable, model, extra_args, env, bypass_permissions=bypass_permissions, effort=effort
        )
        self.sandbox = sandbox

    def argv(self, exe: str, *, workspace: Path, session_id: str | None = None) -> list[str]:
        argv = [exe, "exec", "--json"]
        argv += self._flag("--model", "model", self.model)
        if self.bypass_permissions:
            argv.append("--dangerously-bypass-approvals-and-sandbox")
        else:
            argv += self._flag("--sandbox", "sandbox", self.sandbox)
        if self.effort and self.effort != "default":
            effort = check_value(self.name, "effort", self.effort)
            argv += ["-c", f"model_reasoning_effort={effort}"]
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
        return CommandSpec(
            argv=self.argv(exe, workspace=Path(workspace), session_id=session_id),
            env=self.base_env(),
            stdin_path=Path(prompt_file),
        )

    def parser(self) -> CodexStreamParser:
        return CodexStreamParser()
