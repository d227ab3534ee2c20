"""The transcripts of a run's attempts, rebuilt from their log files.

Owns: `Transcripts` -- finds an attempt's table record (a task's latest attempt by default),
reads its log through a fresh parser of the runner that ran it (`runners.transcript
.TranscriptReader`), and keeps one reader per log so a live transcript asked for again (the
dashboard, once a second) parses only what was appended since.
Does not own: the entry model, the parsing (runners) or the HTML (`view.transcript`; the loop
hands a renderer in).
Invariants: the secret values a worker could see (this process's environment's and its
runner's) never reach a transcript; the log file is the only source (the live loop holds no
transcript in memory); readers are kept for at most `KEEP` logs (least recently used
dropped); thread-safe.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..errors import RalphError
from ..runners import runner_for_task
from ..runners.base import Runner
from ..runners.secrets import Redactor, secret_values
from ..runners.transcript import Transcript, TranscriptReader
from .table import LIVE

KEEP = 16


def runner_of(queue: Any, default: Runner, task_id: str) -> Runner:
    """The runner that works `task_id` (its `agent` field may choose another than the loop's
    default); the default when the task cannot be read (archived, removed)."""
    try:
        return runner_for_task(default, queue.get(task_id))
    except Exception:
        return default


def find_record(records: list[dict[str, Any]], task_id: str, attempt: int | None) -> dict:
    """The record of `task_id`'s attempt `attempt` (its latest when None); RalphError naming
    what there is when there is no such attempt."""
    recs = [r for r in records if r["task_id"] == task_id]
    if not recs:
        raise RalphError(f"no attempt of {task_id} in this run yet")
    if attempt is None:
        return recs[-1]
    for r in recs:
        if r.get("iteration") == attempt:
            return r
    have = ", ".join(str(r.get("iteration")) for r in recs)
    raise RalphError(f"{task_id} has no attempt {attempt} in this run (attempts: {have})")


class Transcripts:
    """Transcripts of one loop's attempts; `runner_for(task_id)` names the runner that ran a
    task (its parser reads the log), `renderer` the HTML of a `Transcript`."""

    def __init__(
        self,
        runner_for: Callable[[str], Runner],
        renderer: Callable[[Transcript], str] | None = None,
    ) -> None:
        self.runner_for = runner_for
        self.renderer = renderer
        self._readers: OrderedDict[str, TranscriptReader] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, records: list[dict[str, Any]], task_id: str, attempt: int | None) -> Transcript:
        rec = find_record(records, task_id, attempt)
        path = rec.get("log_path")
        live = rec["status"] in LIVE or rec["status"] == "queued"
        iteration = int(rec.get("iteration") or 0)
        if not path:
            return Transcript(task_id, iteration, [], None, live, self.renderer)
        with self._lock:
            reader = self._readers.pop(path, None)
            if reader is None:
                runner = self.runner_for(task_id)
                # the secrets its worker could see: this process's and the runner's own
                redact = Redactor(secret_values({**os.environ, **runner.env}))
                reader = TranscriptReader(path, runner.parser, redact)
            self._readers[path] = reader
            while len(self._readers) > KEEP:
                self._readers.popitem(last=False)
            entries = list(reader.update(final=not live))
        return Transcript(task_id, iteration, entries, str(path), live, self.renderer)


__all__ = ["KEEP", "Transcripts", "find_record", "runner_of"]
