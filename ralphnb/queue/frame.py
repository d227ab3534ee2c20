"""The queue as a pandas DataFrame: one row per task (queue then done), typed columns.

Owns: `tasks_frame`. Invariants: categorical status and priority, `datetime64[us, UTC]`
timestamps, a `file` column saying which file a task came from; pandas is imported here only,
so reading and writing the queue never needs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .rules import (
    ID_LISTS,
    MINUTES,
    PRIORITIES,
    STATUSES,
    TEXT_LISTS,
    TIMES,
    coerce_text,
)


def _naive(v: str | None) -> str:
    if not v:
        return "NaT"
    return v[:-1] if v[-1] == "Z" else v[:-6]


def tasks_frame(open_tasks: Sequence[dict], done_tasks: Sequence[dict]) -> Any:
    """A typed DataFrame of both files' tasks (works with pandas 2.2 and 3.x)."""
    import numpy as np
    import pandas as pd

    rows = [(t, "queue") for t in open_tasks] + [(t, "done") for t in done_tasks]
    cols: dict[str, Any] = {"id": [t["id"] for t, _ in rows]}
    cols["file"] = pd.Categorical([f for _, f in rows], categories=["queue", "done"])
    cols["status"] = pd.Categorical(
        [t.get("status", "todo") for t, _ in rows], categories=list(STATUSES)
    )
    cols["priority"] = pd.Categorical(
        [t.get("priority", "medium") for t, _ in rows], categories=list(PRIORITIES), ordered=True
    )
    cols["title"] = [t["title"] for t, _ in rows]
    for k in TIMES:  # validated as …Z or …+00:00: numpy parses the naive part (fast)
        naive = np.array([_naive(t.get(k)) for t, _ in rows], dtype="datetime64[us]")
        cols[k] = pd.Series(naive).dt.tz_localize("UTC")
    for k in MINUTES:
        cols[k] = pd.array([t.get(k) for t, _ in rows], dtype="Int64")
    for k in ("description", "request", "duplicates", "parent_id"):
        cols[k] = pd.Series([t.get(k) for t, _ in rows], dtype=object)
    for k in TEXT_LISTS + ID_LISTS:
        cols[k] = pd.Series([list(t.get(k) or ()) for t, _ in rows], dtype=object)
    cols["custom_fields"] = pd.Series(
        [{a: coerce_text(b) for a, b in (t.get("custom_fields") or {}).items()} for t, _ in rows],
        dtype=object,
    )
    cols["agent"] = pd.Series([t.get("agent") for t, _ in rows], dtype=object)
    return pd.DataFrame(
        {
            k: (v.to_numpy() if isinstance(v, pd.Series) and v.dtype == object else v)
            for k, v in cols.items()
        }
    )
