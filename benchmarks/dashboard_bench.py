"""Dashboard cost: a live dashboard over many workers that keep changing state.

Runs the same loop twice in this process — without a dashboard, then with one — over N demo
workers that "think" forever (each prints a message every `--step` seconds, so the loop applies
N/step events a second), and measures over a fixed window while all N run:

- comm messages a front end would receive per second. Counted at the comm layer: ipywidgets
  creates every widget's comm through `comm.create_comm`, which we replace with a comm that
  counts (and JSON-encodes, as a kernel would) each `comm_open`/`comm_msg` it publishes. Outside
  a kernel this is exactly the traffic ipykernel would put on the iopub socket.
- CPU of this process (user+sys from psutil) as % of one core, with and without the dashboard.
  Both include the loop's own threads (one monitor + reader per worker, parsing the stream).

Usage: python benchmarks/dashboard_bench.py [--workers 50] [--seconds 20] [--step 0.5]
Targets (issue 6): <= 5 messages/s; dashboard CPU < 5% of a core.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import comm
import psutil


class CountingComm(comm.DummyComm):
    """A comm that counts and serialises what it would send to the front end."""

    lock = threading.Lock()
    counts: dict[str, int] = {}
    nbytes = 0

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None,
                    buffers: Any = None, **keys: Any) -> None:
        size = len(json.dumps(data, default=str))
        with CountingComm.lock:
            CountingComm.counts[msg_type] = CountingComm.counts.get(msg_type, 0) + 1
            CountingComm.nbytes += size

    @classmethod
    def snapshot(cls) -> tuple[int, int]:
        with cls.lock:
            return sum(cls.counts.values()), cls.nbytes


def make_repo(root: Path, n: int) -> Path:
    from ralphnb.demo.sample import create_sample_repo
    from ralphnb.queue import Queue

    repo = create_sample_repo(root / "repo", n_tasks=0)
    q = Queue(repo)
    for i in range(n):
        q.add(f"busy worker {i + 1}", custom_fields={"demo.hang": "true", "demo.duration": "2"})
    return repo


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def measure(n: int, seconds: float, step: float, dashboard: bool) -> dict[str, Any]:
    from ralphnb.loop import Loop

    os.environ["RALPHNB_DEMO_SPEED"] = str(step / 0.5)  # demo.duration 2 -> a line per `step`
    with tempfile.TemporaryDirectory(prefix="ralphnb-dash-bench-") as tmp:
        repo = make_repo(Path(tmp), n)
        loop = Loop(repo, runner="demo", parallel=n, max_iterations=1)
        events = [0]
        loop.subscribe(lambda _e: events.__setitem__(0, events[0] + 1))
        dash = None
        if dashboard:
            from ralphnb import widgets

            dash = widgets.dashboard(loop)
        loop.start()
        try:
            end = time.monotonic() + 180
            while sum(r["status"] == "running" for r in loop.snapshot()) < n:
                if time.monotonic() > end:
                    raise SystemExit("workers did not all start within 180 s")
                time.sleep(0.5)
            time.sleep(2.0)  # settle: every worker is past its start-up
            proc = psutil.Process()
            c0, e0, (m0, b0), r0 = (cpu_seconds(proc), events[0], CountingComm.snapshot(),
                                    dash.render_count if dash else 0)
            s0 = dash._sampler.samples if dash else 0
            per_second: list[int] = []
            t0 = time.monotonic()
            for _ in range(int(seconds)):
                m_before = CountingComm.snapshot()[0]
                time.sleep(1.0)
                per_second.append(CountingComm.snapshot()[0] - m_before)
            wall = time.monotonic() - t0
            c1, e1, (m1, b1) = cpu_seconds(proc), events[0], CountingComm.snapshot()
            renders = (dash.render_count if dash else 0) - r0
            samples = (dash._sampler.samples if dash else 0) - s0
        finally:
            loop.stop_all()
            loop.wait(120)
            if dash is not None:
                dash.close()
    return {
        "dashboard": dashboard, "workers": n, "window_s": round(wall, 1),
        "events_per_s": round((e1 - e0) / wall, 1),
        "cpu_pct_of_core": round(100 * (c1 - c0) / wall, 2),
        "messages_per_s": round((m1 - m0) / wall, 2),
        "max_messages_in_1s": max(per_second) if per_second else 0,
        "median_messages_per_s": statistics.median(per_second) if per_second else 0,
        "kb_per_s": round((b1 - b0) / wall / 1024, 1),
        "renders_per_s": round(renders / wall, 2),
        "cpu_mem_refresh_s": round(wall / samples, 1) if samples else None,
        "full_snapshot_ms": round(1000 * dash._sampler.took, 1) if dash else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--step", type=float, default=0.5, help="seconds between a worker's lines")
    args = ap.parse_args(argv)
    comm.create_comm = lambda *a, **k: CountingComm(*a, **k)  # before any widget exists
    results = [measure(args.workers, args.seconds, args.step, dashboard=False),
               measure(args.workers, args.seconds, args.step, dashboard=True)]
    base, dash = results
    print(f"{'':24}{'no dashboard':>14}{'dashboard':>12}")
    for key in ("events_per_s", "cpu_pct_of_core", "messages_per_s", "max_messages_in_1s",
                "kb_per_s", "renders_per_s", "cpu_mem_refresh_s",
                "full_snapshot_ms"):
        print(f"{key:24}{base[key]!s:>14}{dash[key]!s:>12}")
    extra = round(dash["cpu_pct_of_core"] - base["cpu_pct_of_core"], 2)
    print(f"dashboard's own CPU: {extra}% of a core; "
          f"messages {dash['messages_per_s']}/s (target <= 5), "
          f"cpu with dashboard {dash['cpu_pct_of_core']}%")
    print(json.dumps({"results": results, "python": sys.version.split()[0],
                      "cpus": psutil.cpu_count()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
