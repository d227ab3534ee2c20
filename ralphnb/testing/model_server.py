"""Every scripted model server under one name (kept for code that imports this module).

See `_base` for the script and turns, and one module per protocol: `anthropic` (Claude Code),
`openai_responses` (Codex), `openai_chat` (opencode, pi, kimi), `gemini` (Gemini CLI).
"""

from __future__ import annotations

from ._base import ScriptedServer, Turn, error, text, tool_use
from .anthropic import ScriptedAnthropicServer
from .gemini import ScriptedGeminiServer
from .openai_chat import ScriptedChatServer
from .openai_responses import ScriptedResponsesServer

__all__ = [
    "ScriptedAnthropicServer",
    "ScriptedChatServer",
    "ScriptedGeminiServer",
    "ScriptedResponsesServer",
    "ScriptedServer",
    "Turn",
    "error",
    "text",
    "tool_use",
]
