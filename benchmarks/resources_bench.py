"""Resource sampling: time to call `Worker.resources()` on every one of N live workers.

Run: `.venv/bin/python benchmarks/resources_bench.py [--workers 50] [--rounds 10] [--write]`.
Each worker is a `sleep` under the real shim. A round samples every worker once, as
`loop.df`/`loop.snapshot()` do; rounds are spaced wider than the snapshot window, so every round
pays a fresh process-table scan. `--write` records the figures in the "Resource sampling"
section of benchmarks/RESULTS.md (other sections are kept).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from _results import command_line, write_section

# Documented internals (their module docstrings name them usable by benchmarks): the
# supervised process and the count of process-table scans behind its figures.
from ralphnb.workers.process import Worker, build_env
from ralphnb.workers.resources import scan_count


def measure(n: int, rounds: int, gap: float) -> dict[str, float | int]:
    with tempfile.TemporaryDirectory(prefix="ralphnb-res-bench-") as tmp:
        workers = [
            Worker(
                ["sleep", "600"],
                cwd=tmp,
                env=build_env(),
                log_path=Path(tmp) / f"{i}.log",
                worker_id=f"w{i}",
            ).start()
            for i in range(n)
        ]
        try:
            time.sleep(1.0)  # every shim has forked its `sleep`
            walls: list[float] = []
            procs = 0
            s0 = scan_count()
            cpu0 = time.process_time()
            for _ in range(rounds):
                time.sleep(gap)
                t0 = time.perf_counter()
                figures = [w.resources() for w in workers]
                walls.append(time.perf_counter() - t0)
                procs = sum(int(f["num_procs"]) for f in figures)
            cpu = time.process_time() - cpu0
            s1 = scan_count()
        finally:
            for w in workers:
                w.kill()
    return {
        "p50_ms": 1000 * statistics.median(walls),
        "max_ms": 1000 * max(walls),
        "per_worker_ms": 1000 * statistics.median(walls) / n,
        "cpu_ms_per_round": 1000 * cpu / rounds,
        "procs_seen": procs,
        "scans_per_round": (s1 - s0) / rounds,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--gap", type=float, default=0.4, help="seconds between rounds")
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    a = ap.parse_args(argv)
    r = measure(a.workers, a.rounds, a.gap)
    load = os.getloadavg()[0]
    print(
        f"{a.workers} workers, {a.rounds} rounds: sample all p50 {r['p50_ms']:.1f} ms "
        f"(max {r['max_ms']:.1f} ms, {r['per_worker_ms']:.2f} ms/worker), "
        f"CPU {r['cpu_ms_per_round']:.1f} ms/round, processes seen {r['procs_seen']}, "
        f"scans/round {r['scans_per_round']}, load {load:.1f}"
    )
    if a.write:
        write_section(
            "resources-bench",
            "Resource sampling",
            command_line("resources_bench.py", a),
            f"Sampling all {a.workers} live `sleep` workers once (`Worker.resources()` each): "
            f"p50 {r['p50_ms']:.1f} ms, max {r['max_ms']:.1f} ms "
            f"({r['per_worker_ms']:.2f} ms per worker), {r['cpu_ms_per_round']:.1f} ms of CPU "
            f"per round, {r['scans_per_round']} `/proc` scans per round, "
            f"{r['procs_seen']} processes counted.",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
