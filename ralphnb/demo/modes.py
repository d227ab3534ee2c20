"""The demo agent's misbehaviours, for tests of the loop: going silent, looping on one tool
call, working slowly but steadily, hanging, failing.

Owns: `misbehave(agent, step)` -- run the mode the task's `demo.*` custom fields ask for; an exit
code when the mode ends the run, None when the agent goes on as usual (after `demo.steady`'s
steps, or when no mode is set). Silent and repeat never return: the loop stops them.
"""

from __future__ import annotations

import time
from typing import Any


def misbehave(agent: Any, step: float) -> int | None:
    """See the module docstring; `agent` is the running `agent.Agent`."""
    if agent.flag("silent"):  # gone quiet: nothing printed, nothing written
        while True:
            time.sleep(0.2)
    if agent.flag("repeat"):  # looping on one tool call
        while True:
            agent.tool("Read", {"file_path": "README.md"}, "(the same as last time)")
            time.sleep(agent.float_field("step", 0.5))
    for n in range(1, agent.int_field("steady", 0) + 1):  # slow but steady: output and edits
        time.sleep(agent.float_field("step", 0.5))
        agent.edit(f"{agent.tid}: step {n}")
    if agent.flag("hang"):
        n = 0
        while True:
            n += 1
            agent.sleep(max(step, 0.25) if agent.speed > 0 else 0)
            if agent.speed <= 0:
                time.sleep(0.05)
            agent.say(f"Still thinking about {agent.tid} ({n})...")
    fail = agent.cf.get("fail", "").strip()
    if fail:
        agent.sleep(step)
        code = int(fail) if fail.lstrip("-").isdigit() and int(fail) != 0 else 1
        msg = f"Giving up on {agent.tid}: the task says to fail (exit {code})."
        agent.say(msg)
        agent.result(msg, is_error=True)
        return code
    return None


__all__ = ["misbehave"]
