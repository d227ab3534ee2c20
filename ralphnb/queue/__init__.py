"""The task files, `.ralph/queue.jsonc` and `.ralph/done.jsonc`, read and written as ralph does.

Owns: `Queue` and `init` (store), `Task` (task), the parse state (state); ralph's dependency
graph and its drawings (graph) and its `queue repair` (repair); ralph's task rules (rules:
schema names, selection, ids, archiving; validation and links: every error and warning of
ralph's validation; ralphjson: the bytes ralph writes; frame: the DataFrame view); task ids
(ids); ralph's `.ralph/lock/` directory lock (lock); JSONC in and atomic writes out (jsonio);
ralph's configuration resolved as ralph resolves it (config, config_model, config_rules).
Never: runs an agent, a process or git; imports nothing of the loop, the workers or the view.
"""

from .store import Queue, Task, init

__all__ = ["Queue", "Task", "init"]
