"""The task files, `.ralph/queue.jsonc` and `.ralph/done.jsonc`, read and written as ralph does.

Owns: `Queue`, `Task` and `init` (store), the DataFrame view (frame), the schema, validation
and selection rules (rules), task ids (ids), ralph's `.ralph/lock/` directory lock (lock), JSONC
in and atomic pretty JSON out (jsonio), and the `queue` settings of `.ralph/config.jsonc`
(config).
Never: runs an agent, a process or git; imports nothing of the loop, the workers or the view.
"""

from .store import Queue, Task, init

__all__ = ["Queue", "Task", "init"]
