"""The worker table: one record per worker attempt, updated only by events.

Owns: the record dict (keyed by worker id `<TASK>#<iteration>`) guarded by ONE lock, the pure
`apply_event` that turns an `Event` into a record change, and `build_frame`, which turns a copy of
the records into a typed pandas DataFrame. Invariants: `WorkerTable.apply` is the only mutator;
`df()` copies under the lock and builds the frame outside it, column by column with explicit
dtypes, so a frame a user holds never changes. Replaying a journal through `apply` gives the same
table (that is what `Run.load` does). Live CPU/RSS figures are not events: they are sampled only
when a frame is built and are merged into the copy, never stored. The status list `STATUSES` is
defined here; text rendering of records is `report`, HTML is `view.render`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import pandas as pd

from .._time import parse_time
from .events import Event

#: Worker statuses in display order (the categories of `loop.df.status`); the first four are
#: the ones a process may still be behind, the rest come after it has ended.
STATUSES: tuple[str, ...] = (
    "queued",
    "starting",
    "running",
    "stopping",
    "succeeded",
    "failed",
    "check_failed",
    "stopped",
    "killed",
    "timed_out",
    "review",
    "discarded",
    "integrating",
    "integrated",
    "conflict",
)

#: States after which a record's process is gone.
ENDED: frozenset[str] = frozenset(STATUSES[4:])
#: States in which a record's process may still be alive.
LIVE: frozenset[str] = frozenset(("starting", "running", "stopping"))

_STR = "string"
#: Live signals of a running worker (`stuck`): sampled like CPU, never stored in the table.
SIGNALS = ("idle_output_s", "idle_files_s", "cpu_1m", "repeat_calls", "turns_no_change")
#: Column order and dtypes of `loop.df`.
COLUMNS: dict[str, str] = {
    "worker_id": _STR,
    "task_id": _STR,
    "title": _STR,
    "iteration": "Int64",
    "phase": _STR,
    "status": "category",
    "pid": "Int64",
    "workspace": _STR,
    "branch": _STR,
    "started_at": "datetime64[us, UTC]",
    "ended_at": "datetime64[us, UTC]",
    "elapsed_s": "float64",
    "exit_code": "Int64",
    "signal": "Int64",
    "cpu_percent": "float64",
    "rss_mb": "float64",
    "cost_usd": "float64",
    "turns": "Int64",
    "tokens_in": "Int64",
    "tokens_out": "Int64",
    "session_id": _STR,
    "idle_output_s": "float64",
    "idle_files_s": "float64",
    "cpu_1m": "float64",
    "repeat_calls": "Int64",
    "turns_no_change": "Int64",
    "stuck": "boolean",
    "last_message": _STR,
    "error": _STR,
    "log_path": _STR,
    "check_exit_code": "Int64",
    "check_s": "float64",
}

_MSG_MAX = 500


def _new_record(event: Event) -> dict[str, Any]:
    rec: dict[str, Any] = dict.fromkeys(COLUMNS)
    task_id = event.task_id or ""
    worker_id = event.worker_id or ""
    rec["worker_id"] = worker_id
    rec["task_id"] = task_id
    it = event.data.get("iteration")
    if it is None and "#" in worker_id:
        try:
            it = int(worker_id.rsplit("#", 1)[1])
        except ValueError:
            it = None
    rec["iteration"] = it
    rec["status"] = "queued"
    rec["stuck"] = False
    return rec


def _clip(text: Any) -> str | None:
    if text is None:
        return None
    s = str(text).strip()
    if not s:
        return None
    s = " ".join(s.split())
    return s if len(s) <= _MSG_MAX else s[: _MSG_MAX - 1] + "…"


def _exit_status(data: dict[str, Any]) -> str:
    reason = data.get("reason")
    if reason == "stop":
        return "stopped"
    if reason == "kill":
        return "killed"
    if reason == "timeout":
        return "timed_out"
    if data.get("returncode") == 0:
        return "succeeded"
    return "failed"


def _apply_output(rec: dict[str, Any], data: dict[str, Any]) -> None:
    """A runner's normalized parsed event (see runners) -> record fields."""
    typ = data.get("type")
    if typ == "session" and data.get("session_id"):
        rec["session_id"] = data["session_id"]
    elif typ in ("message", "text"):
        msg = _clip(data.get("text"))
        if msg:
            rec["last_message"] = msg
    elif typ == "tool":
        if data.get("name"):
            rec["last_message"] = _clip(f"[tool] {data['name']}")
    elif typ == "usage":
        for key in ("tokens_in", "tokens_out"):
            if data.get(key) is not None:
                rec[key] = int(data[key])
    elif typ == "result":
        for key in ("turns", "tokens_in", "tokens_out"):
            if data.get(key) is not None:
                rec[key] = int(data[key])
        if data.get("cost_usd") is not None:
            rec["cost_usd"] = float(data["cost_usd"])
        if data.get("session_id"):
            rec["session_id"] = data["session_id"]
        msg = _clip(data.get("text"))
        if msg:
            rec["last_message"] = msg
        if data.get("is_error"):
            rec["error"] = _clip(data.get("text")) or "the agent reported an error"
    elif typ == "retry":
        rec["last_message"] = _clip(
            f"API retry {data.get('attempt')}/{data.get('max_retries')}: {data.get('error') or ''}"
        )
    elif typ == "error":
        rec["error"] = _clip(data.get("message")) or "error"


def apply_event(records: dict[str, dict[str, Any]], event: Event) -> dict[str, Any] | None:
    """Apply one event to `records` in place; return the changed record (or None).

    Pure apart from mutating `records`: the same events in the same order give the same table.
    Loop-level events (no worker id) change nothing here.
    """
    # long but flat: one branch per event kind, each a few assignments (one place to read)
    wid = event.worker_id
    if not wid:
        return None
    rec = records.get(wid)
    if rec is None:
        rec = records[wid] = _new_record(event)
    d = event.data
    kind = event.kind
    for key in ("title", "workspace", "branch", "log_path", "phase"):
        if d.get(key) is not None:
            rec[key] = str(d[key])
    if kind == "queued":
        rec["status"] = "queued"
    elif kind == "starting":
        rec["status"] = "starting"
    elif kind == "started":
        rec["status"] = "running"
        rec["pid"] = d.get("pid")
        rec["started_at"] = event.time if d.get("started_at") is None else _t(d["started_at"])
    elif kind == "output":
        _apply_output(rec, d)
    elif kind == "stopping":
        if rec["status"] in LIVE or rec["status"] == "queued":
            rec["status"] = "stopping"
    elif kind == "exited":
        rec["status"] = _exit_status(d)
        rec["exit_code"] = d.get("returncode")
        rec["signal"] = d.get("signal")
        if d.get("pid") is not None:
            rec["pid"] = d["pid"]
        if d.get("started_at") is not None:
            rec["started_at"] = _t(d["started_at"])
        rec["ended_at"] = _t(d["ended_at"]) if d.get("ended_at") is not None else event.time
        if rec["started_at"] is not None:
            rec["elapsed_s"] = (rec["ended_at"] - rec["started_at"]).total_seconds()
        if d.get("last_line") and not rec["last_message"]:
            rec["last_message"] = _clip(d["last_line"])
    elif kind in ("integrating", "integrated", "conflict", "failed", "status", "review"):
        status = d.get("status") or (kind if kind != "status" else None)
        if status in STATUSES:
            rec["status"] = status
        if kind == "integrated":
            rec["error"] = None
        if d.get("error") is not None:
            rec["error"] = _clip(d["error"])
        elif d.get("message") is not None:
            rec["last_message"] = _clip(d["message"])
    elif kind == "check":  # the CI gate after the agent said done (`loop.gate`)
        rec["check_exit_code"] = d.get("exit_code")
        rec["check_s"] = d.get("duration_s")
        if not d.get("ok"):
            rec["status"] = "check_failed"
            rec["error"] = _clip(d.get("error"))
    elif kind == "stuck":  # flagged by the stuck watch (or recovered: stuck false)
        rec["stuck"] = bool(d.get("stuck"))
        if d.get("reason"):
            rec["error"] = _clip(f"stuck: {d['reason']}")
    elif kind == "iteration_end" and d.get("error") is not None:
        rec["error"] = _clip(d["error"])
    return rec


def _t(value: Any) -> datetime:
    return value if isinstance(value, datetime) else parse_time(str(value))


def build_frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Typed DataFrame from record dicts (already copies), one column at a time."""
    rows = list(records)
    cols: dict[str, Any] = {}
    for name, dtype in COLUMNS.items():
        values = [r.get(name) for r in rows]
        if dtype == "category":
            cols[name] = pd.Categorical(values, categories=list(STATUSES))
        elif dtype.startswith("datetime64"):
            cols[name] = (
                pd.array(pd.to_datetime(values, utc=True), dtype=dtype)
                if rows
                else pd.array([], dtype=dtype)
            )
        elif dtype == "float64":
            cols[name] = pd.array(
                [float("nan") if v is None else float(v) for v in values], dtype="float64"
            )
        else:
            cols[name] = pd.array(values, dtype=dtype)
    return pd.DataFrame(cols, index=pd.RangeIndex(len(rows)))


class WorkerTable:
    """The live table: records under one lock; `apply` is the only mutator."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, Any]] = {}
        self.version = 0

    def apply(self, event: Event) -> dict[str, Any] | None:
        """Apply `event`; return a copy of the changed record (None for loop-level events)."""
        with self._lock:
            rec = apply_event(self._records, event)
            if rec is None:
                return None
            self.version += 1
            return dict(rec)

    def records(self) -> list[dict[str, Any]]:
        """Copies of all records, in insertion order."""
        with self._lock:
            return [dict(r) for r in self._records.values()]

    def get(self, worker_id: str) -> dict[str, Any] | None:
        with self._lock:
            rec = self._records.get(worker_id)
            return dict(rec) if rec is not None else None

    def df(
        self,
        sample: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
        now: datetime | None = None,
    ) -> pd.DataFrame:
        """A snapshot frame. `sample(record)` may add live cpu/rss for live records;
        running records get `elapsed_s` measured to `now`."""
        recs = self.records()
        fill_live(recs, sample, now)
        return build_frame(recs)


def fill_live(
    recs: list[dict[str, Any]],
    sample: Callable[[dict[str, Any]], dict[str, Any] | None] | None,
    now: datetime | None,
) -> None:
    """Add live-only figures to copies of records (never to the table itself)."""
    for r in recs:
        if r["status"] not in LIVE:
            continue
        if now is not None and r["started_at"] is not None and r["ended_at"] is None:
            r["elapsed_s"] = (now - r["started_at"]).total_seconds()
        if sample is not None:
            res = sample(r)
            if res:
                r["cpu_percent"] = res.get("cpu_percent")
                r["rss_mb"] = res.get("rss_mb")
                r.update({k: res[k] for k in SIGNALS if k in res})
