"""Runs kimi-cli for ralphnb's kimi runner and reports what kimi tells only elsewhere.

kimi's print mode writes the conversation to stdout, but its session id only to stderr ("To
resume this session: kimi -r ID") and its token usage only to the session's `wire.jsonl`. This
program runs the kimi command it is given (stdin and stdout pass straight through; stderr is
copied line by line to its own stderr), and when kimi has exited prints one more stdout line,
`{"type": "ralphnb.kimi", "session_id", "exit_code", "steps", "tokens_in", "tokens_out"}`, then
exits as kimi did (its code, or its signal).
Invariants: standard library only, run by path (`python kimi_shim.py kimi ...`), never imports
ralphnb; SIGINT is ignored here once kimi runs (the worker's stop reaches kimi through the
process group, and the summary must still be printed); SIGTERM is forwarded to kimi.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESUME = re.compile(r"kimi -r ([0-9A-Za-z][0-9A-Za-z_-]*)")


def share_dir(environ: dict[str, str]) -> Path:
    """kimi's data directory: `KIMI_SHARE_DIR`, else `~/.kimi`."""
    found = environ.get("KIMI_SHARE_DIR")
    return Path(found) if found else Path(environ.get("HOME") or Path.home()) / ".kimi"


def wire_usage(wire: Path, since: float) -> dict[str, int]:
    """Steps and tokens of the run that started at `since` (epoch seconds), from wire.jsonl."""
    steps = tokens_in = tokens_out = 0
    try:
        lines = wire.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return {}
    for line in lines:
        try:
            rec = json.loads(line)
            if float(rec.get("timestamp", 0)) < since:
                continue
            msg = rec.get("message") or {}
            if msg.get("type") == "StepBegin":
                steps += 1
            elif msg.get("type") == "StatusUpdate":
                u = (msg.get("payload") or {}).get("token_usage") or {}
                tokens_in += sum(
                    int(u.get(k) or 0)
                    for k in ("input_other", "input_cache_read", "input_cache_creation")
                )
                tokens_out += int(u.get("output") or 0)
        except (ValueError, TypeError, AttributeError):
            continue
    return {"steps": steps, "tokens_in": tokens_in, "tokens_out": tokens_out}


def find_wire(root: Path, session_id: str) -> Path | None:
    for path in root.glob(f"sessions/*/{session_id}/wire.jsonl"):
        return path
    return None


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: kimi_shim.py KIMI [ARGS...]", file=sys.stderr)
        return 2
    since = time.time() - 1.0
    try:
        proc = subprocess.Popen(argv, stderr=subprocess.PIPE)
    except OSError as exc:
        print(f"kimi_shim: cannot run {argv[0]}: {exc}", file=sys.stderr)
        return 127
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
    session: str | None = None
    assert proc.stderr is not None
    for raw in proc.stderr:
        sys.stderr.buffer.write(raw)
        sys.stderr.buffer.flush()
        found = RESUME.search(raw.decode("utf-8", "replace"))
        if found:
            session = found[1]
    code = proc.wait()
    summary: dict[str, Any] = {"type": "ralphnb.kimi", "session_id": session, "exit_code": code}
    wire = find_wire(share_dir(dict(os.environ)), session) if session else None
    if wire is not None:
        summary.update(wire_usage(wire, since))
    sys.stdout.write(json.dumps(summary) + "\n")
    sys.stdout.flush()
    if code < 0:  # kimi died of a signal: die of the same one
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
