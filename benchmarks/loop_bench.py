"""Loop benchmarks, each beside its baseline in the same run (figures -> benchmarks/RESULTS.md).

1. Throughput: N trivial tasks (`echo <promise>`: as cheap as `true`, and it says it is done) with
   parallel 8 and plain-directory (copy) workspaces, beside a bare thread pool running the same
   argv with `subprocess.Popen`, and beside a thread pool of supervised `process.Worker`s (the
   same supervision the loop uses, no queue/workspace/journal) to separate the two overheads.
2. Idle cost: the loop process's own CPU (getrusage of this process: all its threads, no
   children) while 16 workers sleep, as % of one core. Target < 1%.
3. Exit -> row latency: each worker prints `time.time()` as its last act and exits; we take the
   moment its `exited` event has been applied to the table (a subscriber runs right after the
   table update) and report p50/p99. Target p99 < 10 ms.

Usage: python benchmarks/loop_bench.py [--tasks 500] [--sleep 30] [--latency 200] [--write]
`--write` records the table in the "Loop" section of benchmarks/RESULTS.md (other sections are
kept).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from _results import command_line, write_section

from ralphnb import Command, Loop, init

# A documented internal (its module docstring names it usable by benchmarks): the supervised
# process alone, to separate the loop's overhead from supervision's.
from ralphnb.workers.process import Worker, build_env

PROMISE = "<promise>COMPLETE</promise>"
ECHO = ["echo", PROMISE]


def make_plain_repo(root: Path, n: int, name: str = "repo") -> Path:
    repo = root / name
    repo.mkdir()
    (repo / "README.md").write_text("bench\n")
    q = init(repo)
    for i in range(n):
        q.add(f"task {i}")
    return repo


def bench_throughput(root: Path, n: int, parallel: int) -> dict[str, float]:
    repo = make_plain_repo(root, n, "throughput")
    t0 = time.perf_counter()
    loop = Loop(
        repo, runner=Command(ECHO), parallel=parallel, max_iterations=1, workspace_mode="copy"
    )
    df = loop.run()
    t_loop = time.perf_counter() - t0
    ok = int((df.status == "integrated").sum())
    assert ok == n, df.status.value_counts()

    def bare(_: int) -> int:
        return (
            subprocess.Popen(
                ECHO,
                stdout=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
            )
            .communicate()[0]
            .count(b"\n")
        )

    t0 = time.perf_counter()
    with ThreadPoolExecutor(parallel) as ex:
        list(ex.map(bare, range(n)))
    t_bare = time.perf_counter() - t0

    logs = root / "worker-logs"
    env = build_env()

    def supervised(i: int) -> None:
        w = Worker(ECHO, cwd=root, env=env, log_path=logs / f"{i}.log", worker_id=f"w{i}")
        w.start().wait()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(parallel) as ex:
        list(ex.map(supervised, range(n)))
    t_sup = time.perf_counter() - t0
    return {"loop": t_loop, "bare": t_bare, "supervised": t_sup}


def bench_idle(root: Path, workers: int, sleep_s: float) -> dict[str, float]:
    repo = make_plain_repo(root, workers, "idle")
    loop = Loop(
        repo,
        runner=Command(["sleep", str(sleep_s)]),
        parallel=workers,
        max_iterations=1,
        workspace_mode="copy",
    )
    running = threading.Event()

    def on_event(_ev: object) -> None:
        if sum(1 for r in loop.snapshot(sample=False) if r["status"] == "running") == workers:
            running.set()

    loop.subscribe(on_event)
    loop.start()
    assert running.wait(60), "workers did not all start"
    window = max(1.0, sleep_s - 4.0)
    time.sleep(1.0)  # let spawning settle
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    time.sleep(window - 1.0)
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    loop.stop_all()
    loop.wait()
    return {"cpu_s": cpu, "wall_s": t1 - t0, "percent": 100.0 * cpu / (t1 - t0)}


def bench_latency(root: Path, n: int, parallel: int) -> dict[str, float]:
    repo = make_plain_repo(root, n, "latency")
    applied: dict[str, float] = {}
    argv = [
        sys.executable,
        "-S",
        "-c",
        f"import os, time; print({PROMISE!r}); print(repr(time.time()), flush=True); os._exit(0)",
    ]
    loop = Loop(
        repo, runner=Command(argv), parallel=parallel, max_iterations=1, workspace_mode="copy"
    )

    seen: dict[str, float] = {}

    def on_event(ev: object) -> None:
        if ev.kind == "exited":  # type: ignore[attr-defined]
            applied[ev.worker_id] = time.time()  # type: ignore[attr-defined]
            seen[ev.worker_id] = datetime.fromisoformat(ev.data["ended_at"]).timestamp()  # type: ignore

    loop.subscribe(on_event)
    df = loop.run()
    lat, ours = [], []
    for r in df.itertuples():
        last = Path(r.log_path).read_text().split()[-1]
        lat.append((applied[r.worker_id] - float(last)) * 1000)
        ours.append((applied[r.worker_id] - seen[r.worker_id]) * 1000)
    lat.sort()
    ours.sort()
    t0 = time.perf_counter()
    for _ in range(20):
        _ = loop.df
    df_ms = (time.perf_counter() - t0) / 20 * 1000
    return {
        "p50": statistics.median(lat),
        "p99": lat[int(0.99 * (len(lat) - 1))],
        "max": lat[-1],
        "df_ms": df_ms,
        "n": len(lat),
        "loop_p50": statistics.median(ours),
        "loop_p99": ours[int(0.99 * (len(ours) - 1))],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=500)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--sleep", type=float, default=30.0)
    ap.add_argument("--latency", type=int, default=200)
    ap.add_argument("--write", action="store_true", help="record the table in RESULTS.md")
    args = ap.parse_args(argv)
    for who in ("AUTHOR", "COMMITTER"):
        os.environ.setdefault(f"GIT_{who}_NAME", "bench")
        os.environ.setdefault(f"GIT_{who}_EMAIL", "bench@example.invalid")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        th = bench_throughput(root, args.tasks, args.parallel)
        idle = bench_idle(root, args.workers, args.sleep)
        lat = bench_latency(root, args.latency, args.parallel)
    lines = [
        "| measurement | ralphnb | baseline | ratio / target |",
        "|---|---|---|---|",
        f"| {args.tasks} trivial tasks, parallel {args.parallel}, copy workspaces | "
        f"{th['loop']:.2f} s ({args.tasks / th['loop']:.0f} tasks/s) | bare Popen thread pool "
        f"{th['bare']:.2f} s | {th['loop'] / th['bare']:.1f}x (target 1.5x) |",
        f"| same, supervision only | - | thread pool of process.Worker {th['supervised']:.2f} s"
        f" | loop / supervised {th['loop'] / th['supervised']:.1f}x |",
        f"| loop CPU while {args.workers} workers sleep ({idle['wall_s']:.0f} s window) | "
        f"{idle['percent']:.2f}% of a core ({idle['cpu_s'] * 1000:.1f} ms CPU) | - | "
        "target < 1% |",
        f"| worker exit -> row in loop.df ({lat['n']} workers) | p50 {lat['p50']:.2f} ms, "
        f"p99 {lat['p99']:.2f} ms, max {lat['max']:.2f} ms | - | target p99 < 10 ms |",
        f"| of which monitor's exit observation -> row (the loop's part) | p50 "
        f"{lat['loop_p50']:.2f} ms, p99 {lat['loop_p99']:.2f} ms | - | - |",
        f"| building loop.df ({lat['n']} rows) | {lat['df_ms']:.1f} ms | - | - |",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section("loop-bench", "Loop", command_line("loop_bench.py", args), text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
