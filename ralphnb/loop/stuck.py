"""Is a live worker stuck? Its measured signals and the pure decision.

Owns: `Activity` (one attempt's output-side facts, fed from its output thread: when it last
printed, the run of identical tool calls it is in, its turns since the last file change),
`Signals` (the figures `loop.df` shows per live worker), `signals` and `stuck_reason` (pure:
facts and "now" in, figures and a reason out), `workspace_stamp` (one walk of a workspace:
what changes when a file changes) and `cpu_average` (CPU over the last minute from samples).
Does not own: sampling on a timer or acting on a stuck worker (`stuckwatch`).
Invariants: the decision is a pure function of its arguments; `Activity` is touched under its
own lock only, and holds O(1) memory whatever the output; a worker that prints or changes a
file within `stuck_after` seconds is never stuck for silence, and a tool call is "the same"
only with the same name and the same arguments.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..runners.transcript import Entry

ON_STUCK = ("flag", "stop", "requeue")
DEFAULT_REPEAT_LIMIT = 5  # identical tool calls in a row that count as looping
CPU_WINDOW = 60.0  # seconds of CPU samples averaged
#: Directories a workspace walk skips: version control, environments, caches, build outputs.
SKIP_DIRS = frozenset(
    {".git", ".hg", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache",
     ".pytest_cache", ".tox", "dist", "build", ".ralph"}
)  # fmt: skip
MAX_FILES = 50_000  # a walk stops counting here (a huge tree is then stamped by its first part)


@dataclass
class Activity:
    """What one attempt's output says about its progress (monotonic seconds)."""

    started: float
    last_output: float | None = None
    last_call: tuple[str, str] | None = None
    repeats: int = 0  # identical tool calls in a row, the last one included
    turns: int = 0  # the parser's turn count
    turns_at_change: int = 0  # `turns` when a file last changed
    last_change: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def saw(self, entries: Iterable[Entry], turns: int | None, now: float) -> None:
        """One output line was read: its transcript entries and the parser's turns so far."""
        with self.lock:
            self.last_output = now
            if turns is not None:
                self.turns = turns
            for e in entries:
                if e.kind != "tool_call":
                    continue
                sig = (e.tool or "?", e.args or "")
                self.repeats = self.repeats + 1 if sig == self.last_call else 1
                self.last_call = sig

    def files_changed(self, now: float) -> None:
        with self.lock:
            self.last_change = now
            self.turns_at_change = self.turns

    def facts(self) -> tuple[float, float | None, float | None, int, int]:
        """(started, last output, last file change, repeats, turns since the change)."""
        with self.lock:
            return (
                self.started,
                self.last_output,
                self.last_change,
                self.repeats,
                self.turns - self.turns_at_change,
            )


@dataclass(frozen=True)
class Signals:
    """A live worker's measured signals (seconds; `cpu_1m` in percent)."""

    idle_output_s: float
    idle_files_s: float
    cpu_1m: float | None
    repeat_calls: int
    turns_no_change: int

    def columns(self) -> dict[str, float | int | None]:
        return {
            "idle_output_s": self.idle_output_s,
            "idle_files_s": self.idle_files_s,
            "cpu_1m": self.cpu_1m,
            "repeat_calls": self.repeat_calls,
            "turns_no_change": self.turns_no_change,
        }


def signals(
    facts: tuple[float, float | None, float | None, int, int], now: float, cpu_1m: float | None
) -> Signals:
    """The signals from `Activity.facts()` at `now`: silence counts from the attempt's start
    when it never printed (or never changed a file)."""
    started, last_output, last_change, repeats, turns = facts
    return Signals(
        idle_output_s=max(0.0, now - (last_output if last_output is not None else started)),
        idle_files_s=max(0.0, now - (last_change if last_change is not None else started)),
        cpu_1m=cpu_1m,
        repeat_calls=repeats,
        turns_no_change=max(0, turns),
    )


def stuck_reason(
    sig: Signals, *, stuck_after: float, repeat_limit: int = DEFAULT_REPEAT_LIMIT
) -> str | None:
    """Why a worker with signals `sig` is stuck, or None: the same tool call `repeat_limit`
    times in a row, or neither output nor a file change for `stuck_after` seconds."""
    if repeat_limit > 0 and sig.repeat_calls >= repeat_limit:
        return f"the same tool call {sig.repeat_calls} times in a row"
    quiet = min(sig.idle_output_s, sig.idle_files_s)
    if quiet >= stuck_after:
        return f"no output and no file change for {quiet:.0f} s"
    return None


def cpu_average(samples: Sequence[tuple[float, float]], now: float) -> float | None:
    """Mean CPU % of the `(time, percent)` samples of the last `CPU_WINDOW` seconds."""
    recent = [p for t, p in samples if now - t <= CPU_WINDOW]
    return sum(recent) / len(recent) if recent else None


def workspace_stamp(root: str | os.PathLike[str]) -> tuple[int, int, int]:
    """(files, newest mtime in ns, total size) of the files under `root`, skipping
    `SKIP_DIRS`: any write, creation or deletion of a file changes it."""
    count = newest = total = 0
    todo = [os.fspath(root)]
    while todo and count < MAX_FILES:
        try:
            it = os.scandir(todo.pop())
        except OSError:
            continue
        with it:
            for entry in it:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if entry.name not in SKIP_DIRS:
                            todo.append(entry.path)
                        continue
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                count += 1
                total += st.st_size
                newest = max(newest, st.st_mtime_ns)
    return count, newest, total


__all__ = [
    "DEFAULT_REPEAT_LIMIT",
    "ON_STUCK",
    "Activity",
    "Signals",
    "cpu_average",
    "signals",
    "stuck_reason",
    "workspace_stamp",
]
