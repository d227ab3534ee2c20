"""One attempt of a task, as the driver follows it: its parsed output and what its exit says.

Owns: `Attempt` (the parser, the redactor of its worker's secrets -- `runners.secrets` decides
what is secret --, whether the completion promise was seen, whether its start was announced),
`exit_data` (the `exited` event's data) and `diagnose` (one line on why an attempt failed).
What of the parsed output becomes events, and how often, is its `gate` (`outflow`).
Invariants: no I/O except `diagnose` reading the tail of a stderr file; `Attempt.feed` runs on
the executor's output thread and touches only the attempt's own fields.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

from .._time import format_time
from ..runners.base import Runner, StreamParser
from ..runners.secrets import Redactor, secret_values
from ..workers.exits import ExitInfo
from .outflow import OutputGate, Send


@dataclass
class Attempt:
    """One attempt's bookkeeping. `promise`: the completion promise to look for; `redact`
    hides the secrets of the worker's environment in anything shown or journaled."""

    worker_id: str
    parser: StreamParser
    promise: str
    redact: Redactor
    promise_seen: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    started: bool = False
    gate: OutputGate | None = None  # from `open_gate`

    @classmethod
    def new(cls, worker_id: str, runner: Runner, promise: str, env: dict[str, str]) -> Attempt:
        """A fresh attempt for `runner`, redacting the secret values of its worker's `env`."""
        return cls(worker_id, runner.parser(), promise, Redactor(secret_values(env)))

    def feed(self, line: str) -> list[dict[str, Any]]:
        """Parse one output line: the parsed events worth a row update (plain text left out;
        not yet redacted: the gate redacts what it sends); notes the completion promise in
        text, messages and results."""
        out: list[dict[str, Any]] = []
        for ev in self.parser.feed(line):
            typ = ev.get("type")
            if typ in ("text", "message", "result") and self.promise in (ev.get("text") or ""):
                self.promise_seen = True
            if typ != "text":
                out.append(ev)
        return out

    def open_gate(self, send: Send) -> OutputGate:
        """The gate this attempt's parsed events go through, redacted, to `send` (see
        `outflow`): only what is sent is redacted, not every event a flood coalesces away."""
        redact = self.redact
        self.gate = OutputGate(lambda ev: send(redact(ev)))
        return self.gate

    def first_start(self) -> bool:
        """True exactly once: for whichever of spawn and exit announces the start first."""
        with self.lock:
            if self.started:
                return False
            self.started = True
            return True


def exit_data(info: ExitInfo, reason: str | None) -> dict[str, Any]:
    """The data of an attempt's `exited` event (`reason` as the driver names it)."""
    return {
        "pid": info.pid,
        "returncode": info.returncode,
        "signal": info.signal,
        "reason": reason,
        "started_at": format_time(info.started_at),
        "ended_at": format_time(info.ended_at),
    }


def diagnose(runner: Runner, info: ExitInfo, parser: StreamParser | None) -> str:
    """One line on why an attempt failed (empty when it did not), from the runner if it can."""
    detail = getattr(info, "detail", None)  # an executor's own reason, e.g. its worker was lost
    if detail:
        return str(detail)
    stderr = ""
    if info.stderr_path:
        try:
            with open(info.stderr_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 4096))
                stderr = fh.read().decode("utf-8", "replace")
        except OSError:
            pass
    try:
        return runner.diagnose(info.returncode, parser, stderr, signal=info.signal) or ""
    except Exception:  # a runner's own diagnosis must not take the driver down
        pass
    if info.returncode == 0:
        return ""
    return f"exit code {info.returncode}" if info.signal is None else f"signal {info.signal}"
