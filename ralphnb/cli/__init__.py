"""The `ralphnb` command: shared options (common), `init` and queue commands (queue_cmds), task
lifecycle verbs (task_cmds), loop commands (loop_cmds), `doctor` and `config show` (doctor),
and the parser and error handling that tie them together (main).
"""

from .main import main

__all__ = ["main"]
