"""Test helpers that ship with ralphnb: scripted model servers for every agent CLI's protocol.

Used by ralphnb's own tests and by notebooks that show a real agent CLI working offline:
`ScriptedAnthropicServer` (Claude Code), `ScriptedResponsesServer` (Codex),
`ScriptedChatServer` (opencode, pi, kimi), `ScriptedGeminiServer` (Gemini CLI). A script is a
list of turns made with `text`, `tool_use` and `error`.
"""

from __future__ import annotations

from .model_server import (
    ScriptedAnthropicServer,
    ScriptedChatServer,
    ScriptedGeminiServer,
    ScriptedResponsesServer,
    ScriptedServer,
    error,
    text,
    tool_use,
)

__all__ = [
    "ScriptedAnthropicServer",
    "ScriptedChatServer",
    "ScriptedGeminiServer",
    "ScriptedResponsesServer",
    "ScriptedServer",
    "error",
    "text",
    "tool_use",
]
