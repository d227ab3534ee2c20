"""Detached loops: how fast an attached client sees events, and how long attaching takes.

Starts a detached loop (its own background process) over N demo workers that "think" forever,
each printing a message every `--step` seconds, then from this process:

- attach time: `ralphnb.attach(repo)` plus its first full `df` (the live table of all N
  workers, CPU/RSS sampled), repeated `--attaches` times; median and worst.
- event latency: one subscribed client receives every event over the loop's socket for
  `--seconds`; latency = arrival time here minus the event's own time (stamped when the loop's
  process made it; one machine, one clock); p50, p99 and max.

Usage: python benchmarks/attach_bench.py [--workers 50] [--seconds 20] [--step 0.5]
[--attaches 10] [--write]. `--write` records the figures in the "Detached loops" section of
benchmarks/RESULTS.md (other sections are kept).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _results import command_line, write_section

import ralphnb
from ralphnb import Loop, Queue
from ralphnb.demo import create_sample_repo


def make_repo(root: Path, n: int) -> Path:
    repo = create_sample_repo(root / "repo", n_tasks=0)
    q = Queue(repo)
    for i in range(n):
        q.add(f"busy worker {i + 1}", custom_fields={"demo.hang": "true", "demo.duration": "2"})
    return repo


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(n: int, seconds: float, step: float, attaches: int) -> dict[str, Any]:
    os.environ["RALPHNB_DEMO_SPEED"] = str(step / 0.5)  # demo.duration 2 -> a line per `step`
    with tempfile.TemporaryDirectory(prefix="ralphnb-attach-bench-") as tmp:
        repo = make_repo(Path(tmp), n)
        loop = Loop(repo, runner="demo", parallel=n, max_iterations=1, detach=True).start()
        try:
            end = time.monotonic() + 180
            while sum(r["status"] == "running" for r in loop.snapshot(sample=False)) < n:
                if time.monotonic() > end:
                    raise SystemExit("workers did not all start within 180 s")
                time.sleep(0.5)
            time.sleep(2.0)  # settle: every worker is past its start-up
            took = []
            for _ in range(attaches):
                t0 = time.perf_counter()
                client = ralphnb.attach(repo)
                rows = len(client.df)
                took.append(time.perf_counter() - t0)
                assert rows == n, rows
            lat: list[float] = []
            lock = threading.Lock()

            def on_event(ev: Any) -> None:
                now = time.time()
                with lock:
                    lat.append(now - ev.time.timestamp())

            watcher = ralphnb.attach(repo)
            watcher.subscribe(on_event)
            time.sleep(seconds)
            watcher.detach()
            with lock:
                got = list(lat)
        finally:
            loop.stop_all()
            loop.wait(120)
    return {
        "workers": n,
        "attach_median_ms": round(1000 * statistics.median(took), 1),
        "attach_max_ms": round(1000 * max(took), 1),
        "events": len(got),
        "events_per_s": round(len(got) / seconds, 1),
        "p50_ms": round(1000 * pct(got, 0.50), 2),
        "p99_ms": round(1000 * pct(got, 0.99), 2),
        "max_ms": round(1000 * max(got), 2),
    }


def figures(args: argparse.Namespace, r: dict[str, Any]) -> str:
    return f"""\
A detached loop (its own background process) over {r["workers"]} demo workers that never finish,
each printing a message every {args.step:g} s; the client is this benchmark's process.

| measure | value |
|---|---|
| attach + first `df` of {r["workers"]} live workers (CPU/RSS sampled), median of \
{args.attaches} | {r["attach_median_ms"]} ms (worst {r["attach_max_ms"]} ms) |
| events streamed to one attached client | {r["events_per_s"]} / s ({r["events"]} in \
{args.seconds:g} s) |
| event latency to the attached client, p50 | {r["p50_ms"]} ms |
| event latency to the attached client, p99 | {r["p99_ms"]} ms (max {r["max_ms"]} ms) |

Latency is arrival in the client minus the event's time, stamped in the loop's process when it
made the event (same machine, same clock): it includes the loop's own emit path (table, journal),
the feed, the socket and the client's JSON decoding. Attaching is reading `loop.json` and one
`snapshot` request over the control socket."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--step", type=float, default=0.5, help="seconds between a worker's lines")
    ap.add_argument("--attaches", type=int, default=10)
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    r = measure(args.workers, args.seconds, args.step, args.attaches)
    for key, value in r.items():
        print(f"{key:20}{value!s:>12}")
    if args.write:
        write_section(
            "attach",
            "Detached loops",
            command_line("attach_bench.py", args),
            figures(args, r),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
