"""A past (or running) loop's run, rebuilt from its journal.

Owns: the layout of a run directory (`.ralph/cache/ralphnb/runs/<run_id>/` with `events.jsonl`,
`logs/`, `prompts/`, `workers/`, `loop.json`) and `Run.load`, which replays `events.jsonl`
through the same `table.apply_event` the live loop uses, so `Run.load(path).df` equals the
loop's final `loop.df`. Also what tells whether a run's loop is alive (`loop_alive`,
`pid_create_time`). The control socket of a running loop is in `control`.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from .._time import utcnow
from ..errors import RalphError
from .events import Event, Journal
from .report import attempts_table
from .table import apply_event, build_frame

RUNS_DIR = Path(".ralph") / "cache" / "ralphnb" / "runs"
JOURNAL = "events.jsonl"
LOOP_INFO = "loop.json"


def runs_root(repo: str | Path) -> Path:
    return Path(repo) / RUNS_DIR


def new_run_id(now: datetime | None = None) -> str:
    """Sortable, unique: `20261125T134501-3f9a`."""
    t = now or utcnow()
    return f"{t:%Y%m%dT%H%M%S}-{secrets.token_hex(2)}"


def list_runs(repo: str | Path) -> list[Path]:
    """Run directories of a repository, oldest first."""
    root = runs_root(repo)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / JOURNAL).exists())


def read_loop_info(run_dir: str | Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(run_dir) / LOOP_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def loop_alive(info: dict[str, Any] | None) -> bool:
    """Is the process that owns this run still the same live process?"""
    if not info or not info.get("pid"):
        return False
    try:
        proc = psutil.Process(int(info["pid"]))
        same = abs(proc.create_time() - float(info.get("create_time") or 0)) < 1.0
        return same and proc.status() != psutil.STATUS_ZOMBIE  # a zombie has died already
    except (psutil.Error, ValueError, TypeError):
        return False


@dataclass
class Run:
    """A run's journal replayed: `events`, `df`, `records`."""

    path: Path
    events: list[Event] = field(default_factory=list)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> Run:
        """Load a run from its directory or its `events.jsonl`. A torn last line is skipped."""
        p = Path(path)
        journal = p / JOURNAL if p.is_dir() else p
        if not journal.exists():
            raise RalphError(
                f"{journal}: no run journal here; pass a run directory under "
                f"{RUNS_DIR} or its {JOURNAL}"
            )
        run = cls(path=journal.parent)
        for ev in Journal.read(journal):
            run.events.append(ev)
            apply_event(run.records, ev)
        return run

    @classmethod
    def latest(cls, repo: str | Path = ".") -> Run:
        runs = list_runs(repo)
        if not runs:
            raise RalphError(f"{runs_root(repo)}: no runs yet; start one with Loop(...).run()")
        return cls.load(runs[-1])

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def df(self) -> pd.DataFrame:
        return build_frame(dict(r) for r in self.records.values())

    @property
    def info(self) -> dict[str, Any] | None:
        return read_loop_info(self.path)

    def __repr__(self) -> str:
        return f"Run({self.run_id})\n" + attempts_table(list(self.records.values()))


def pid_create_time(pid: int | None = None) -> float:
    return psutil.Process(pid or os.getpid()).create_time()
