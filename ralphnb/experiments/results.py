"""A sweep's numbers: the tidy results, the per-variant summary and the winners, all pure.

Owns: `results_frame` (one row per trial from the worker records and the trials' `trial_end`
data), `summarize` (per variant: runs, passes, pass rate, median cost and time, cost per pass)
and `pick_best` (one winner per task by the given columns). Never: I/O.
Invariant: column order and dtypes are fixed (`RESULT_COLUMNS`), so an empty sweep still gives
a typed frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

RESULT_COLUMNS: dict[str, str] = {
    "key": "string",
    "task_id": "string",
    "variant": "string",
    "repeat": "Int64",
    "passed": "boolean",
    "cost_usd": "float64",
    "tokens_in": "Int64",
    "tokens_out": "Int64",
    "turns": "Int64",
    "elapsed_s": "float64",
    "iterations": "Int64",
    "files_changed": "Int64",
    "lines_added": "Int64",
    "lines_removed": "Int64",
    "exit": "Int64",
    "error": "string",
}


def _sum(recs: list[Mapping[str, Any]], key: str) -> Any:
    vals = [r.get(key) for r in recs if r.get(key) is not None]
    return sum(vals) if vals else None


def result_rows(
    trials: Iterable[Mapping[str, Any]],
    records: Iterable[Mapping[str, Any]],
    ends: Mapping[str, Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """One dict per trial: `trials` give key/task_id/variant/repeat; `records` (worker table
    records, one per attempt) are summed; `ends` maps a key to its `trial_end` data (a trial
    that has not ended has `passed` None)."""
    by_key: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        by_key.setdefault(str(r.get("task_id")), []).append(r)
    rows = []
    for t in trials:
        recs = by_key.get(t["key"], [])
        end = ends.get(t["key"])
        last = recs[-1] if recs else {}
        error = (end or {}).get("error") or (last.get("error") if end else None)
        rows.append(
            {
                "key": t["key"],
                "task_id": t["task_id"],
                "variant": t["variant"],
                "repeat": t["repeat"],
                "passed": None if end is None else bool(end.get("passed")),
                "cost_usd": _sum(recs, "cost_usd"),
                "tokens_in": _sum(recs, "tokens_in"),
                "tokens_out": _sum(recs, "tokens_out"),
                "turns": _sum(recs, "turns"),
                "elapsed_s": _sum(recs, "elapsed_s"),
                "iterations": len(recs) or None,
                "files_changed": (end or {}).get("files_changed"),
                "lines_added": (end or {}).get("lines_added"),
                "lines_removed": (end or {}).get("lines_removed"),
                "exit": last.get("exit_code"),
                "error": error,
            }
        )
    return rows


def results_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The tidy results DataFrame, column by column with explicit dtypes."""
    cols = {
        name: pd.array([r.get(name) for r in rows], dtype=dtype)
        for name, dtype in RESULT_COLUMNS.items()
    }
    return pd.DataFrame(cols)


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Per variant: runs, passes, pass_rate, median_cost_usd, median_elapsed_s, total_cost_usd
    and cost_per_pass (total cost over passes; NaN without a pass); sorted best first."""
    rows = []
    for variant, g in results.groupby("variant", sort=True, observed=True):
        passes = int(g["passed"].fillna(False).astype(bool).sum())
        total = float(g["cost_usd"].fillna(0.0).sum())
        rows.append(
            {
                "variant": str(variant),
                "runs": len(g),
                "passes": passes,
                "pass_rate": passes / len(g) if len(g) else float("nan"),
                "median_cost_usd": float(g["cost_usd"].median()),
                "median_elapsed_s": float(g["elapsed_s"].median()),
                "total_cost_usd": total,
                "cost_per_pass": total / passes if passes else float("nan"),
            }
        )
    cols = [
        "variant",
        "runs",
        "passes",
        "pass_rate",
        "median_cost_usd",
        "median_elapsed_s",
        "total_cost_usd",
        "cost_per_pass",
    ]
    out = pd.DataFrame(rows, columns=cols)
    out = out.sort_values(["pass_rate", "cost_per_pass"], ascending=[False, True])
    return out.set_index("variant")


def pick_best(results: pd.DataFrame, by: Sequence[str] = ("passed", "cost_usd")) -> pd.DataFrame:
    """One winner per task: the trials sorted by `by` (`passed`: passed first; any other
    column: smallest first), the first of each task. Only passed trials can win when
    `passed` is among `by`; a task with no passed trial then has no winner."""
    df = results.copy()
    if "passed" in by:
        df = df[df["passed"].fillna(False).astype(bool)]
    keys = [c for c in by if c != "passed"]
    if keys:
        df = df.sort_values([*keys, "repeat"], kind="stable", na_position="last")
    return df.groupby("task_id", sort=True, observed=True).head(1).reset_index(drop=True)


__all__ = ["RESULT_COLUMNS", "pick_best", "result_rows", "results_frame", "summarize"]
