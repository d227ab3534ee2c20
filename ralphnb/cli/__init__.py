"""The `ralphnb` command: shared options (common), queue and task commands (queue_cmds), loop
commands (loop_cmds), and the parser and error handling that tie them together (main).
"""

from .main import main

__all__ = ["main"]
