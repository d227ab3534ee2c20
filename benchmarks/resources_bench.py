"""Resource sampling: time to call `Worker.resources()` on every one of N live workers.

Run: `.venv/bin/python benchmarks/resources_bench.py [--workers 50] [--rounds 10] [--write]`.
Each worker is a `sleep` under the real shim. A round samples every worker once, as
`loop.df`/`loop.snapshot()` do; rounds are spaced wider than the snapshot window, so every round
pays a fresh process-table scan. `--write` replaces the "Resource sampling" section of
benchmarks/RESULTS.md (between its markers; other sections are kept).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ralphnb.workers.process import Worker, build_env  # noqa: E402

START, END = "<!-- resources-bench:start -->", "<!-- resources-bench:end -->"


def scans() -> int | None:
    try:
        from ralphnb.workers import resources
    except ImportError:  # before the shared snapshot existed
        return None
    return resources.scan_count()


def measure(n: int, rounds: int, gap: float) -> dict[str, float | int | None]:
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
            s0 = scans()
            cpu0 = time.process_time()
            for _ in range(rounds):
                time.sleep(gap)
                t0 = time.perf_counter()
                figures = [w.resources() for w in workers]
                walls.append(time.perf_counter() - t0)
                procs = sum(int(f["num_procs"]) for f in figures)
            cpu = time.process_time() - cpu0
            s1 = scans()
        finally:
            for w in workers:
                w.kill()
    return {
        "p50_ms": 1000 * statistics.median(walls),
        "max_ms": 1000 * max(walls),
        "per_worker_ms": 1000 * statistics.median(walls) / n,
        "cpu_ms_per_round": 1000 * cpu / rounds,
        "procs_seen": procs,
        "scans_per_round": None if s0 is None or s1 is None else (s1 - s0) / rounds,
    }


def write(section: str) -> None:
    path = ROOT / "benchmarks" / "RESULTS.md"
    text = path.read_text()
    block = f"{START}\n{section}\n{END}"
    if START in text and END in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n## Resource sampling\n\n" + block + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--gap", type=float, default=0.4, help="seconds between rounds")
    ap.add_argument("--write", action="store_true")
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
        write(
            f"Command: `python benchmarks/resources_bench.py --workers {a.workers} --rounds "
            f"{a.rounds}` ({time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, "
            f"{os.cpu_count()} CPUs, load average {load:.1f}).\n\n"
            f"Sampling all {a.workers} live `sleep` workers once (`Worker.resources()` each): "
            f"p50 {r['p50_ms']:.1f} ms, max {r['max_ms']:.1f} ms "
            f"({r['per_worker_ms']:.2f} ms per worker), {r['cpu_ms_per_round']:.1f} ms of CPU "
            f"per round, {r['scans_per_round']} `/proc` scans per round, "
            f"{r['procs_seen']} processes counted."
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
