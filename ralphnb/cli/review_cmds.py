"""Review subcommands of the `ralphnb` command: `review`, `accept`, `discard`, `requeue`.

Owns: their arguments and what they print. They reach a loop started with `--review` (or
`Loop(..., review=True)`) in another process through its control socket (`loop.control`;
the ops are answered by `loop.requests.review_answer`). `review` lists the tasks waiting, with
each one's diff stat when its workspace is readable from here; `accept ID`, `discard ID
[--note TEXT]` and `requeue ID --feedback TEXT` hand over the decision and return at once
(`ralphnb status` shows the merge or the next attempt).
Never: merges or changes a workspace itself: the running loop does.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import RalphError
from ..loop.control import live_run, send_control
from ..queue.ids import validate_task_id
from ..workspace.diff import task_diff
from .common import find_repo


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the review subcommands to the `ralphnb` parser."""
    sp = subparsers.add_parser(
        "review", parents=[common], help="tasks of the running loop that wait for review"
    )
    sp.set_defaults(func=_cmd_review)
    sp = subparsers.add_parser("accept", parents=[common], help="merge a task waiting for review")
    sp.add_argument("id")
    sp.set_defaults(func=_cmd_decide, op="accept")
    sp = subparsers.add_parser(
        "discard", parents=[common], help="drop a waiting task's work; the task goes back to todo"
    )
    sp.add_argument("id")
    sp.add_argument("--note", default="", help="why (added to the task's notes)")
    sp.set_defaults(func=_cmd_decide, op="discard")
    sp = subparsers.add_parser(
        "requeue", parents=[common], help="another attempt at a waiting task, with feedback"
    )
    sp.add_argument("id")
    sp.add_argument("--feedback", required=True, help="what should change")
    sp.set_defaults(func=_cmd_decide, op="requeue")


def _send(repo: Path, request: dict[str, Any]) -> dict[str, Any]:
    live = live_run(repo)
    if live is None or not live[1].get("control"):
        raise RalphError(f"no loop is running on {repo}; start one with `ralphnb run --review`")
    reply = send_control(live[1]["control"], request)
    if "error" in reply:
        raise RalphError(reply["error"])
    return reply


def _stat(item: dict[str, Any], target: str | None) -> str:
    """`3 files, +40 -2` for a waiting task, or '' when its diff cannot be read from here."""
    if not target:
        return ""
    try:
        d = task_diff(item["task_id"], item["workspace"], target)
    except RalphError:
        return ""
    return f"{len(d)} file{'s' if len(d) != 1 else ''}, +{d.added} -{d.removed}"


def _cmd_review(args: argparse.Namespace) -> int:
    repo = find_repo(getattr(args, "repo", None))
    reply = _send(repo, {"op": "review"})
    waiting, target = reply["waiting"], reply.get("target_branch")
    for item in waiting:
        item["diff"] = _stat(item, target)
    if args.json:
        print(json.dumps(waiting, indent=2))
        return 0
    if not waiting:
        print("no task waits for review")
        return 0
    for w in waiting:
        print(f"{w['task_id']}  {w['title']}  (since {w['since']})")
        print(f"    {w['diff'] or 'diff not readable'}  in {w['workspace']}")
    print("decide with: ralphnb accept ID | ralphnb discard ID | ralphnb requeue ID --feedback ...")
    return 0


def _cmd_decide(args: argparse.Namespace) -> int:
    task_id = validate_task_id(args.id)
    req: dict[str, Any] = {"op": args.op, "task_id": task_id}
    if args.op == "discard":
        req["note"] = args.note
    elif args.op == "requeue":
        req["feedback"] = args.feedback
    _send(find_repo(getattr(args, "repo", None)), req)
    said = {
        "accept": "accepted; the loop merges it (`ralphnb status` shows it)",
        "discard": "discarded; back to todo",
        "requeue": "requeued with your feedback",
    }
    print(f"{task_id}: {said[args.op]}")
    return 0


__all__ = ["register"]
