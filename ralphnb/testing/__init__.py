"""Test helpers that ship with ralphnb: a scripted Anthropic Messages API server.

Used by ralphnb's own tests and by notebooks that show a real agent CLI working offline.
"""

from __future__ import annotations

from .model_server import ScriptedAnthropicServer, error, text, tool_use

__all__ = ["ScriptedAnthropicServer", "error", "text", "tool_use"]
