"""Sweep benchmark: N runs of the demo agent as a Sweep beside the same N runs as a plain Loop.

1. Overhead per run: a Sweep of T tasks x 2 variants x R repeats (N = 2*T*R runs, parallel 8,
   git worktrees from one base commit, nothing merged) against a Loop over N tasks (parallel
   8, git worktrees, each finished task merged back, as a Loop does). The demo agent runs with
   RALPHNB_DEMO_SPEED=0 (no sleeps) and finishes by printing the promise, so both do the same
   agent work; the difference per run is what each one's bookkeeping costs.
2. Results: the time to build `sweep.results` and `sweep.summary()` from the finished sweep's
   table (median of 20 builds each).

Usage: python benchmarks/sweep_bench.py [--runs 200] [--parallel 8] [--write]
`--write` records the figures in the "Sweep" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _results import command_line, write_section

from ralphnb import Demo, Loop, Sweep, init

FIELDS = {"demo.finish": "promise", "demo.content": "x"}


def make_repo(root: Path, n: int) -> Path:
    repo = root / "repo"
    repo.mkdir(parents=True)
    (repo / "README.md").write_text("bench\n")
    (repo / ".gitignore").write_text(".ralph/\n")
    q = init(repo)
    for i in range(n):
        q.add(f"Task {i}", custom_fields={**FIELDS, "demo.file": f"f{i}.txt"})
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    return repo


def bench_loop(root: Path, n: int, parallel: int) -> float:
    repo = make_repo(root / "loop", n)
    t0 = time.perf_counter()
    df = Loop(repo, runner=Demo(), parallel=parallel, max_iterations=1).run()
    took = time.perf_counter() - t0
    assert (df.status == "integrated").sum() == n, df.status.value_counts()
    return took


def bench_sweep(root: Path, n: int, parallel: int) -> tuple[float, Sweep]:
    tasks = max(1, n // 10)
    repeats = max(1, n // (2 * tasks))
    repo = make_repo(root / "sweep", tasks)
    variants = {"a": Demo(), "b": Demo(env={"RALPHNB_DEMO_PRICE": "2"})}
    sweep = Sweep(repo, variants=variants, repeats=repeats, parallel=parallel)
    t0 = time.perf_counter()
    res = sweep.run()
    took = time.perf_counter() - t0
    assert len(res) == 2 * tasks * repeats
    for row in res[~res.passed.fillna(False)].itertuples():  # say why, do not hide it
        print(f"run {row.key} did not pass: {row.error}", flush=True)
    return took, sweep


def median_ms(fn, rounds: int = 20) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    os.environ["RALPHNB_DEMO_SPEED"] = "0"
    with tempfile.TemporaryDirectory(prefix="ralphnb-sweep-bench-") as tmp:
        root = Path(tmp)
        sweep_s, sweep = bench_sweep(root, args.runs, args.parallel)
        n = len(sweep.trials)
        loop_s = bench_loop(root, n, args.parallel)
        results_ms = median_ms(lambda: sweep.results)
        summary_ms = median_ms(sweep.summary)
    per_sweep, per_loop = sweep_s / n * 1000, loop_s / n * 1000
    figures = (
        f"| | {n} demo runs, parallel {args.parallel} | per run |\n|---|---|---|\n"
        f"| Sweep ({len(sweep.tasks)} tasks x 2 variants x {sweep.repeats} repeats, "
        f"{int(sweep.results.passed.sum())} passed) "
        f"| {sweep_s:.1f} s | {per_sweep:.0f} ms |\n"
        f"| Loop ({n} tasks, each merged) | {loop_s:.1f} s | {per_loop:.0f} ms |\n"
        f"| Sweep overhead over the Loop | {sweep_s - loop_s:+.1f} s | "
        f"{per_sweep - per_loop:+.0f} ms |\n\n"
        f"Building `sweep.results` for {n} runs: {results_ms:.1f} ms; `sweep.summary()`: "
        f"{summary_ms:.1f} ms (medians of 20)."
    )
    print(figures)
    if args.write:
        write_section("sweep-bench", "Sweep", command_line("sweep_bench.py", args), figures)


if __name__ == "__main__":
    main()
