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

Usage: python benchmarks/dashboard_bench.py [--workers 50] [--seconds 20] [--step 0.5] [--write]
Targets: <= 5 messages/s; dashboard CPU < 5% of a core. `--write` records the figures in the
"Dashboard" section of benchmarks/RESULTS.md (other sections are kept).
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
from _results import command_line, write_section

from ralphnb import Loop, Queue
from ralphnb.demo import create_sample_repo


class CountingComm(comm.DummyComm):
    """A comm that counts and serialises what it would send to the front end."""

    lock = threading.Lock()
    counts: dict[str, int] = {}
    nbytes = 0

    def publish_msg(
        self,
        msg_type: str,
        data: Any = None,
        metadata: Any = None,
        buffers: Any = None,
        **keys: Any,
    ) -> None:
        size = len(json.dumps(data, default=str))
        with CountingComm.lock:
            CountingComm.counts[msg_type] = CountingComm.counts.get(msg_type, 0) + 1
            CountingComm.nbytes += size

    @classmethod
    def snapshot(cls) -> tuple[int, int]:
        with cls.lock:
            return sum(cls.counts.values()), cls.nbytes


def make_repo(root: Path, n: int) -> Path:
    repo = create_sample_repo(root / "repo", n_tasks=0)
    q = Queue(repo)
    for i in range(n):
        q.add(f"busy worker {i + 1}", custom_fields={"demo.hang": "true", "demo.duration": "2"})
    return repo


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def measure(n: int, seconds: float, step: float, dashboard: bool) -> dict[str, Any]:
    os.environ["RALPHNB_DEMO_SPEED"] = str(step / 0.5)  # demo.duration 2 -> a line per `step`
    with tempfile.TemporaryDirectory(prefix="ralphnb-dash-bench-") as tmp:
        repo = make_repo(Path(tmp), n)
        loop = Loop(repo, runner="demo", parallel=n, max_iterations=1)
        events = [0]
        loop.subscribe(lambda _e: events.__setitem__(0, events[0] + 1))
        dash = None
        if dashboard:
            dash = loop.dashboard()
        loop.start()
        try:
            end = time.monotonic() + 180
            while sum(r["status"] == "running" for r in loop.snapshot()) < n:
                if time.monotonic() > end:
                    raise SystemExit("workers did not all start within 180 s")
                time.sleep(0.5)
            time.sleep(2.0)  # settle: every worker is past its start-up
            proc = psutil.Process()
            c0, e0, (m0, b0), r0 = (
                cpu_seconds(proc),
                events[0],
                CountingComm.snapshot(),
                dash.render_count if dash else 0,
            )
            s0, k0 = (dash.sampler.samples, dash.sampler.took_total) if dash else (0, 0.0)
            per_second: list[int] = []
            t0 = time.monotonic()
            for _ in range(int(seconds)):
                m_before = CountingComm.snapshot()[0]
                time.sleep(1.0)
                per_second.append(CountingComm.snapshot()[0] - m_before)
            wall = time.monotonic() - t0
            c1, e1, (m1, b1) = cpu_seconds(proc), events[0], CountingComm.snapshot()
            renders = (dash.render_count if dash else 0) - r0
            samples = (dash.sampler.samples if dash else 0) - s0
            took = (dash.sampler.took_total if dash else 0.0) - k0
        finally:
            loop.stop_all()
            loop.wait(120)
            if dash is not None:
                dash.close()
    return {
        "dashboard": dashboard,
        "workers": n,
        "window_s": round(wall, 1),
        "events_per_s": round((e1 - e0) / wall, 1),
        "cpu_pct_of_core": round(100 * (c1 - c0) / wall, 2),
        "messages_per_s": round((m1 - m0) / wall, 2),
        "max_messages_in_1s": max(per_second) if per_second else 0,
        "median_messages_per_s": statistics.median(per_second) if per_second else 0,
        "kb_per_s": round((b1 - b0) / wall / 1024, 1),
        "renders_per_s": round(renders / wall, 2),
        "cpu_mem_refresh_s": round(wall / samples, 1) if samples else None,
        "full_snapshot_ms": round(1000 * took / samples, 1) if samples else None,
    }


def figures(args: argparse.Namespace, base: dict[str, Any], dash: dict[str, Any]) -> str:
    """The Dashboard section of RESULTS.md, below its command line."""
    own = round(dash["cpu_pct_of_core"] - base["cpu_pct_of_core"], 2)
    n = args.workers
    return f"""\
{n} demo workers that never finish, each printing a message every {args.step:g} s \
(~{base["events_per_s"]:.0f} loop events/s);
the same loop measured without and then with a dashboard, over {base["window_s"]:g} s once all \
{n} run.
Messages are counted at the comm layer: `comm.create_comm` is replaced by a comm that counts (and
JSON-encodes, as ipykernel would) every `comm_open`/`comm_msg` the widgets publish — exactly what
a kernel would send to the front end.

| measure | no dashboard | dashboard | target |
|---|---|---|---|
| loop events / s | {base["events_per_s"]} | {dash["events_per_s"]} | - |
| comm messages to the front end / s | 0 | {dash["messages_per_s"]} \
(max {dash["max_messages_in_1s"]} in any 1 s) | <= 5 |
| data sent to the front end | 0 | {dash["kb_per_s"]:.0f} KB/s | - |
| render passes / s | 0 | {dash["renders_per_s"]} | <= 4 |
| this process's CPU, % of one core | {base["cpu_pct_of_core"]} | {dash["cpu_pct_of_core"]} \
| dashboard's share < 5 (here: {own}) |
| live CPU/RSS figures refreshed every | - | {dash["cpu_mem_refresh_s"]} s | ~1 s |
| one sampled `loop.snapshot()` (live CPU/RSS of all {n} workers) | - | \
{dash["full_snapshot_ms"]} ms | - |

How: one render thread, woken by a dirty flag that `loop.subscribe` sets, renders at most 4 times a
second; the whole table is ONE HTML widget (one message per render, however many workers changed),
styled by one `<style>` block with short class names (5x smaller than inline styles); Stop/Kill
buttons only change when a worker starts or ends. Live CPU/RSS come from one shared process-table
scan for all workers (`ralphnb/workers/resources.py`), a few ms for {n} workers, so the dashboard
samples on a render at most once a second (`loop.snapshot()`) and reads
`loop.snapshot(sample=False)` on the renders in between, carrying the last figures over. The CPU
figures include the loop's own threads (a monitor and a reader per worker parsing the stream) and
vary with the machine's load; the 5% target is for the difference the dashboard makes. (Before
the scan was shared, one sampled snapshot walked `/proc` once per worker, 1.2 s for 50 workers,
and the dashboard sampled about once a minute.)"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--step", type=float, default=0.5, help="seconds between a worker's lines")
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    comm.create_comm = lambda *a, **k: CountingComm(*a, **k)  # before any widget exists
    results = [
        measure(args.workers, args.seconds, args.step, dashboard=False),
        measure(args.workers, args.seconds, args.step, dashboard=True),
    ]
    base, dash = results
    print(f"{'':24}{'no dashboard':>14}{'dashboard':>12}")
    for key in (
        "events_per_s",
        "cpu_pct_of_core",
        "messages_per_s",
        "max_messages_in_1s",
        "kb_per_s",
        "renders_per_s",
        "cpu_mem_refresh_s",
        "full_snapshot_ms",
    ):
        print(f"{key:24}{base[key]!s:>14}{dash[key]!s:>12}")
    extra = round(dash["cpu_pct_of_core"] - base["cpu_pct_of_core"], 2)
    print(
        f"dashboard's own CPU: {extra}% of a core; "
        f"messages {dash['messages_per_s']}/s (target <= 5), "
        f"cpu with dashboard {dash['cpu_pct_of_core']}%"
    )
    print(
        json.dumps(
            {"results": results, "python": sys.version.split()[0], "cpus": psutil.cpu_count()}
        )
    )
    if args.write:
        write_section(
            "dashboard-bench",
            "Dashboard",
            command_line("dashboard_bench.py", args),
            figures(args, base, dash),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
