"""What a running loop answers on its control socket: one request in, one JSON-safe reply out.

Owns: `answer(loop, request)` -- `status` (the records, times as text) and the actions that
map onto the Loop's public methods (`stop`/`kill` of one task, `stop_all`, `pause`, `resume`),
and `budget` (the live budget's state; with `limit`, `loop.budget.set(limit)` first).
A new action is one entry in `TASK_ACTIONS` or `LOOP_ACTIONS`.
Never: raises (a `RalphError` becomes `{"error": ...}`, an unknown op too).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .._time import format_time
from ..errors import RalphError

TASK_ACTIONS = ("stop", "kill")  # loop.<op>(task_id)
LOOP_ACTIONS = ("stop_all", "pause", "resume")  # loop.<op>()


def status(loop: Any) -> dict[str, Any]:
    recs = [
        {k: (format_time(v) if isinstance(v, datetime) else v) for k, v in r.items()}
        for r in loop.snapshot()
    ]
    return {
        "run_id": loop.run_id,
        "records": recs,
        "finished": loop.finished,
        "paused": loop.paused,
        "halt_reason": loop.halt_reason,
        **({"budget": loop.budget.state()} if getattr(loop, "budget", None) else {}),
    }


def budget(loop: Any, req: dict[str, Any]) -> dict[str, Any]:
    """`{"op": "budget"}` reads the budget; `{"op": "budget", "limit": 30.0}` sets it."""
    live = getattr(loop, "budget", None)
    if live is None:
        return {"error": "this run has no budget"}
    if "limit" in req:
        try:
            live.set(req["limit"])
        except (TypeError, ValueError) as exc:
            return {"error": f"budget: {exc}"}
    return {"budget": live.state()}


def answer(loop: Any, req: dict[str, Any]) -> dict[str, Any]:
    op = req.get("op")
    if op == "status":
        return status(loop)
    if op == "budget":
        return budget(loop, req)
    try:
        if op in TASK_ACTIONS:
            getattr(loop, str(op))(str(req.get("task_id")))
        elif op in LOOP_ACTIONS:
            getattr(loop, str(op))()
        else:
            return {"error": f"unknown request {op!r}"}
    except RalphError as exc:
        return {"error": str(exc)}
    return {"ok": True}


__all__ = ["LOOP_ACTIONS", "TASK_ACTIONS", "answer", "budget", "status"]
