"""What a running loop answers on its control socket: one request in, one JSON-safe reply out.

Owns: `answer(loop, request)` -- `status` (the records, times as text) and the actions that
map onto the Loop's public methods (`stop`/`kill` of one task, `stop_all`, `pause`, `resume`;
`"wait": false` returns before the worker is gone). For attached clients (`attached`):
`snapshot` (`sample`), `info` (the loop's state in one reply), `logs` (`task_id`, `n`) and
`subscribe` (`since`: the last event seq seen), whose answer is a stream (`feed.EventFeed`).
The review gate's ops (`review`: the waiting tasks; `accept`, `discard` with `note`, `requeue`
with `feedback`) hand the decision over and answer at once, without waiting for the merge:
`review_answer`. `budget` (the live budget's state; with `limit`, `loop.budget.set(limit)`
first). A new action is one entry in `TASK_ACTIONS` or `LOOP_ACTIONS`.
Never: raises (a `RalphError` becomes `{"error": ...}`, an unknown op too).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from .._time import format_time
from ..errors import RalphError
from .feed import feed_of

TASK_ACTIONS = ("stop", "kill")  # loop.<op>(task_id)
LOOP_ACTIONS = ("stop_all", "pause", "resume")  # loop.<op>()
REVIEW_OPS = ("review", "accept", "discard", "requeue")  # the review gate: review_answer


def _text_times(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {k: (format_time(v) if isinstance(v, datetime) else v) for k, v in r.items()} for r in recs
    ]


def status(loop: Any) -> dict[str, Any]:
    recs = _text_times(loop.snapshot())
    return {
        "run_id": loop.run_id,
        "records": recs,
        "finished": loop.finished,
        "paused": loop.paused,
        "halt_reason": loop.halt_reason,
        **({"budget": loop.budget.state()} if getattr(loop, "budget", None) else {}),
    }


def review_answer(loop: Any, op: str, req: dict[str, Any]) -> dict[str, Any]:
    """A review op (see the module docstring); RalphError when the loop has no review gate."""
    task_id = str(req.get("task_id"))
    if op == "review":
        waiting = [w.to_dict() for w in loop._desk().waiting()]
        return {"waiting": waiting, "target_branch": loop.target_branch}
    if op == "accept":
        loop.accept(task_id, wait=False)
    elif op == "discard":
        loop.discard(task_id, note=str(req.get("note") or ""), wait=False)
    else:
        loop.requeue(task_id, feedback=str(req.get("feedback") or ""))
    return {"ok": True}


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


def info(loop: Any) -> dict[str, Any]:
    """The loop's state an attached client shows, times as text."""
    started, ended = loop.started_at, loop.ended_at
    return {
        "run_id": loop.run_id,
        "finished": loop.finished,
        "paused": loop.paused,
        "halt_reason": loop.halt_reason,
        "loop_error": loop.error,  # not "error": that key means the request failed
        "started_at": format_time(started) if started else None,
        "ended_at": format_time(ended) if ended else None,
        "runner": getattr(loop.runner, "name", None),
        "parallel": loop.parallel,
        "pid": os.getpid(),
    }


def answer(loop: Any, req: dict[str, Any]) -> Any:
    """The reply to `req`: a dict, or for `subscribe` an iterator of messages (a stream)."""
    op = req.get("op")
    if op == "status":
        return status(loop)
    if op == "budget":
        return budget(loop, req)
    try:
        if op in REVIEW_OPS:
            return review_answer(loop, str(op), req)
        if op == "snapshot":
            return {"records": _text_times(loop.snapshot(sample=bool(req.get("sample", True))))}
        if op == "info":
            return info(loop)
        if op == "logs":
            return {"lines": list(loop.logs(str(req.get("task_id")), int(req.get("n") or 50)))}
        if op == "subscribe":
            since = req.get("since")
            return feed_of(loop).stream(None if since is None else int(since))
        if op in TASK_ACTIONS:
            getattr(loop, str(op))(str(req.get("task_id")), wait=bool(req.get("wait", True)))
        elif op == "stop_all":
            loop.stop_all(wait=bool(req.get("wait", True)))
        elif op in LOOP_ACTIONS:
            getattr(loop, str(op))()
        else:
            return {"error": f"unknown request {op!r}"}
    except RalphError as exc:
        return {"error": str(exc)}
    return {"ok": True}


__all__ = [
    "LOOP_ACTIONS",
    "REVIEW_OPS",
    "TASK_ACTIONS",
    "answer",
    "budget",
    "info",
    "review_answer",
    "status",
]
