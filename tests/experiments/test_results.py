"""The pure numbers of a sweep: tidy results from records, the summary, the winners."""

from __future__ import annotations

import math

from ralphnb.experiments.results import (
    RESULT_COLUMNS,
    pick_best,
    result_rows,
    results_frame,
    summarize,
)

GRID = [
    {"key": f"RQ-000{t}.{v}.{r}", "task_id": f"RQ-000{t}", "variant": v, "repeat": r}
    for t in (1, 2)
    for v in ("a", "b")
    for r in (1, 2)
]


def _rec(key: str, it: int, cost: float, **more) -> dict:
    base = {
        "worker_id": f"{key}#{it}",
        "task_id": key,
        "cost_usd": cost,
        "tokens_in": 10,
        "tokens_out": 5,
        "turns": 2,
        "elapsed_s": 1.5,
        "exit_code": 0,
        "error": None,
    }
    return {**base, **more}


def _frame():
    recs, ends = [], {}
    for g in GRID:
        cost = 0.1 if g["variant"] == "a" else 0.3
        recs.append(_rec(g["key"], 1, cost))
        # b passes everything; a passes only RQ-0001
        passed = g["variant"] == "b" or g["task_id"] == "RQ-0001"
        ends[g["key"]] = {"passed": passed, "files_changed": 1, "lines_added": 2}
    recs.append(_rec("RQ-0002.a.2", 2, 0.1, exit_code=1, error="exit code 1"))  # a retry
    ends["RQ-0002.a.2"]["error"] = "not complete after 2 iteration(s)"
    return results_frame(result_rows(GRID, recs, ends))


def test_attempts_of_a_run_are_summed_into_one_row():
    df = _frame()
    assert list(df.columns) == list(RESULT_COLUMNS) and len(df) == 8
    row = df.set_index("key").loc["RQ-0002.a.2"]
    assert row.iterations == 2 and math.isclose(row.cost_usd, 0.2) and row.tokens_in == 20
    assert row.exit == 1 and row.error == "not complete after 2 iteration(s)"
    assert str(df.passed.dtype) == "boolean" and str(df.repeat.dtype) == "Int64"


def test_a_run_not_ended_has_no_verdict_and_an_empty_sweep_is_typed():
    df = results_frame(result_rows(GRID[:1], [], {}))
    assert df.passed.isna().all() and df.iterations.isna().all()
    empty = results_frame([])
    assert len(empty) == 0 and [str(t) for t in empty.dtypes] == list(RESULT_COLUMNS.values())


def test_summary_ranks_by_pass_rate_then_cost_per_pass():
    s = summarize(_frame())
    assert list(s.index) == ["b", "a"]
    assert s.loc["b", "pass_rate"] == 1.0 and s.loc["a", "pass_rate"] == 0.5
    assert math.isclose(s.loc["a", "cost_per_pass"], 0.5 / 2)
    assert math.isclose(s.loc["b", "median_cost_usd"], 0.3)


def test_best_takes_passed_runs_first_then_the_cheapest_and_skips_tasks_without_a_pass():
    df = _frame()
    best = pick_best(df)
    assert list(zip(best.task_id, best.variant, best.repeat, strict=True)) == [
        ("RQ-0001", "a", 1),
        ("RQ-0002", "b", 1),
    ]
    none = pick_best(df[df.variant == "a"])
    assert list(none.task_id) == ["RQ-0001"]  # RQ-0002 never passed with a
    by_time = pick_best(df, by=("elapsed_s",))  # without "passed", failures may win
    assert len(by_time) == 2
