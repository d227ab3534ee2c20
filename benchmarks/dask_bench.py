"""DaskExecutor beside LocalExecutor, same parallelism, same demo-agent tasks.

Measures, in one run on this machine:
- 100 short demo tasks (the demo agent at speed 0: a real Python process that edits a file and
  prints its stream) through a 2-worker LocalCluster (1 thread each) and through the local
  executor with parallel 2: wall time, mean spawn-to-exit latency, overhead per task;
- live output latency (an agent's print to the client's on_line);
- the time from SIGKILL of a Dask worker under a running agent to its `lost` exit;
- stop latency (SIGINT-honouring agent) and kill latency (SIGINT-ignoring agent with children),
  from the call to the confirmed exit, both executors.

- the same through the whole `Loop` (`--loop N` tasks of a sample git repo: worktrees, merges,
  queue bookkeeping) with each executor.

Run: `python benchmarks/dask_bench.py [--tasks 100] [--parallel 2] [--rounds 10] [--loop 20]
[--write]` (needs the `dask` extra). Prints a markdown section; `--write` records it in the
"Dask" section of benchmarks/RESULTS.md (other sections are kept).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import distributed
from _results import command_line, write_section
from distributed import Client, LocalCluster

from ralphnb import DaskExecutor, Demo, LocalExecutor, Loop, Queue
from ralphnb.demo import create_sample_repo
from ralphnb.runners import build_prompt

# Documented internals (their module docstrings name them usable by benchmarks): what an
# executor is handed (WorkerSpec, Callbacks) and the environment the loop gives a worker.
from ralphnb.workers.executors import Callbacks, WorkerSpec
from ralphnb.workers.process import build_env


def make_spec(root: Path, i: int, fields: dict[str, str], speed: float) -> WorkerSpec:
    tid = f"RQ-{i + 1:04d}"
    ws = root / "ws" / tid
    ws.mkdir(parents=True, exist_ok=True)
    task = {"id": tid, "title": f"Task {i + 1}", "custom_fields": fields}
    prompt = root / "prompts" / f"{tid}.md"
    prompt.parent.mkdir(exist_ok=True)
    prompt.write_text(build_prompt(task, workspace=ws, completion_promise="<promise>C</promise>"))
    cmd = Demo(speed=speed).command(task, workspace=ws, prompt_file=prompt, iteration=1)
    env = build_env({**cmd.env, "RALPHNB_TASK_ID": tid, "RALPHNB_ITERATION": "1"})
    return WorkerSpec(
        worker_id=f"w-{tid}",
        task_id=tid,
        iteration=1,
        argv=tuple(cmd.argv),
        cwd=str(ws),
        env=env,
        log_path=str(root / "logs" / f"{tid}.log"),
    )


def batch(
    executor, specs: list[WorkerSpec], parallel: int
) -> tuple[float, list[float], list[float]]:
    """Run all specs, at most `parallel` at once: wall time, per-task spawn-to-exit times, and
    per-task overhead (spawn-to-exit minus the agent process's own lifetime)."""
    slots = threading.Semaphore(parallel)
    lat: list[float] = []
    over: list[float] = []
    done = threading.Event()
    bad: list[str] = []
    lock = threading.Lock()

    def finished(t0: float, info) -> None:
        with lock:
            lat.append(time.perf_counter() - t0)
            over.append(lat[-1] - info.duration)
            if info.returncode != 0:
                bad.append(f"{info.worker_id}: {info}")
            if len(lat) == len(specs):
                done.set()
        slots.release()

    t_start = time.perf_counter()
    for spec in specs:
        slots.acquire()
        t0 = time.perf_counter()
        executor.spawn(spec, Callbacks(on_drained=lambda info, t0=t0: finished(t0, info)))
    done.wait(600)
    wall = time.perf_counter() - t_start
    if bad:
        raise SystemExit(f"{len(bad)} task(s) failed, e.g. {bad[0]}")
    return wall, lat, over


def stop_kill(executor, root: Path, rounds: int, offset: int) -> dict[str, list[float]]:
    """Latency from stop()/kill() to the confirmed exit, `rounds` times each."""
    out: dict[str, list[float]] = {"stop": [], "kill": []}
    for r in range(rounds):
        for action in ("stop", "kill"):
            fields = {"demo.hang": "1", "demo.duration": "1"}
            if action == "kill":
                fields.update({"demo.ignore_sigint": "1", "demo.children": "3"})
            spec = make_spec(root, offset + 2 * r + (action == "kill"), fields, speed=1.0)
            seen = threading.Event()
            h = executor.spawn(
                spec,
                Callbacks(on_line=lambda line, seen=seen: "Reading task" in line and seen.set()),
            )
            if not seen.wait(30):
                raise SystemExit(f"{action}: the agent never started: {h.tail(5)}")
            t0 = time.perf_counter()
            info = h.stop(grace=1.5) if action == "stop" else h.kill()
            out[action].append(time.perf_counter() - t0)
            assert info.reason == action, info
    return out


def line_latency(executor, root: Path, n: int = 50) -> list[float]:
    """From an agent printing a line (its own timestamp) to the line reaching on_line."""
    code = (
        f"import time\nfor i in range({n}):\n    print(time.time(), flush=True)\n"
        "    time.sleep(0.02)"
    )
    got: list[float] = []
    spec = WorkerSpec(
        worker_id="lines",
        task_id="RQ-9999",
        iteration=1,
        argv=(sys.executable, "-c", code),
        cwd=str(root),
        env=build_env(),
        log_path=str(root / "lines.log"),
    )
    root.mkdir(parents=True, exist_ok=True)
    h = executor.spawn(spec, Callbacks(on_line=lambda line: got.append(time.time() - float(line))))
    h.wait(60)
    return got


def lost_latency(client, executor, root: Path, rounds: int) -> list[float]:
    """SIGKILL of the Dask worker under a running agent to its `lost` exit (agents swept)."""
    out = []
    for r in range(rounds):
        spec = make_spec(root, 900 + r, {"demo.hang": "1", "demo.duration": "1"}, speed=1.0)
        seen = threading.Event()
        h = executor.spawn(spec, Callbacks(on_line=lambda line, s=seen: s.set()))
        seen.wait(30)
        pid = client.run(os.getpid, workers=[h.address])[h.address]
        t0 = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        info = h.wait(60)
        out.append(time.perf_counter() - t0)
        assert info is not None and info.reason == "lost", info
        client.wait_for_workers(2, timeout=60)  # the nanny restarts it
    return out


def loop_run(executor, root: Path, n: int, parallel: int) -> tuple[float, int]:
    """Wall time of a whole Loop over an `n`-task sample repo, and how many tasks it merged."""
    repo = create_sample_repo(root / "repo", n_tasks=n, duration=0.0)
    t0 = time.perf_counter()
    Loop(repo, runner=Demo(speed=0.0), parallel=parallel, executor=executor).run()
    return time.perf_counter() - t0, len(Queue(repo).done)


def ms(x: float) -> str:
    return f"{x * 1000:.1f} ms"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=100)
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--loop", type=int, default=20, help="tasks for the Loop comparison (0: skip)")
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    for k in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        os.environ.setdefault(k, "ralphnb bench")
    for k in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        os.environ.setdefault(k, "bench@ralphnb.invalid")

    fields = {"demo.file": "note.md", "demo.content": "hello", "demo.finish": "promise"}
    rows: dict[str, dict[str, float | list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="ralphnb-dask-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        cluster = LocalCluster(
            n_workers=args.parallel, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
        dask_ex = DaskExecutor(client)
        startup = time.perf_counter() - t0
        local_ex = LocalExecutor()
        try:
            for name, ex in (("local", local_ex), ("dask", dask_ex)):
                batch(
                    ex,
                    [make_spec(root / f"warm-{name}", i, fields, 0.0) for i in range(4)],
                    args.parallel,
                )  # warm up imports and the page cache
            for name in ("local", "dask"):
                rows[name] = {"wall": 0.0, "lat": [], "over": [], "stop": [], "kill": []}
            chunk = max(1, args.tasks // 5)  # alternate executors: the machine's load drifts
            for start in range(0, args.tasks, chunk):
                for name, ex in (("local", local_ex), ("dask", dask_ex)):
                    specs = [
                        make_spec(root / name, i, fields, 0.0)
                        for i in range(start, min(args.tasks, start + chunk))
                    ]
                    wall, lat, over = batch(ex, specs, args.parallel)
                    r = rows[name]
                    r["wall"] += wall
                    r["lat"] += lat
                    r["over"] += over
            for name, ex in (("local", local_ex), ("dask", dask_ex)):
                rows[name].update(stop_kill(ex, root / f"sk-{name}", args.rounds, args.tasks))
                rows[name]["line"] = line_latency(ex, root / f"lines-{name}")
                if name == "dask":
                    rows[name]["lost"] = lost_latency(client, ex, root / "lost", 3)
                if args.loop:
                    rows[name]["loop"] = loop_run(
                        ex, root / f"loop-{name}", args.loop, args.parallel
                    )
        finally:
            dask_ex.close()
            client.close()
            cluster.close()

    loc, dsk = rows["local"], rows["dask"]
    n, par = args.tasks, args.parallel
    over_wall = (dsk["wall"] - loc["wall"]) / n * par
    out = [
        f"{n} short demo tasks (demo agent at speed 0, promise finish), parallel {par}: a "
        f"{par}-worker LocalCluster (processes, 1 thread each; started in {startup:.2f} s) "
        f"beside the local executor, run alternately in chunks. Stop/kill: {args.rounds} "
        "rounds each, from the call to the confirmed exit.",
        "",
        "| | local executor | Dask executor |",
        "|---|---|---|",
        f"| wall time, {n} tasks | {loc['wall']:.2f} s | {dsk['wall']:.2f} s |",
        f"| tasks/s | {n / loc['wall']:.1f} | {n / dsk['wall']:.1f} |",
    ]
    for key, label in (
        ("lat", "spawn to exit delivered"),
        ("over", "executor overhead (spawn to exit minus agent lifetime)"),
        ("line", "output line, agent print to on_line"),
        ("stop", "stop (SIGINT honoured)"),
        ("kill", "kill (3 children, SIGINT ignored)"),
    ):
        a, b = loc[key], dsk[key]
        out.append(
            f"| {label}, p50 / p90 | {ms(statistics.median(a))} / {ms(pct(a, 0.9))} | "
            f"{ms(statistics.median(b))} / {ms(pct(b, 0.9))} |"
        )
    if args.loop:
        (lw, ld), (dw, dd) = loc["loop"], dsk["loop"]
        out.append(
            f"| whole Loop, {args.loop} sample tasks (worktrees, merges) | {lw:.2f} s "
            f"({ld} merged) | {dw:.2f} s ({dd} merged) |"
        )
    lost = dsk["lost"]
    out.append(
        f"| Dask worker SIGKILLed under an agent: `lost` exit delivered, agents swept "
        f"(median of {len(lost)}) | - | {ms(statistics.median(lost))} |"
    )
    extra = statistics.mean(dsk["over"]) - statistics.mean(loc["over"])
    out += [
        "",
        f"Overhead per task of the Dask executor over the local one: {ms(extra)} (mean "
        f"executor overhead); {ms(over_wall)} of wall time per task per slot, which also "
        "counts the machine's load (agents share the CPUs with the scheduler and the "
        "Dask worker processes).",
        "",
        "Reading it: the Dask executor's own cost is the submit, the start on the worker, and "
        "the lines and exit relayed through the scheduler; stop and kill add one "
        "`client.run` to the owning worker before the exit event travels back. Wall times "
        "are dominated by the agents' own start-up and drift with the machine's load, which "
        "is why the executors run alternately and the overhead is also given net of each "
        "agent's lifetime. A LocalCluster's start-up is paid once per session.",
    ]
    text = "\n".join(out)
    print(text)
    if args.write:
        write_section(
            "dask-bench",
            "Dask",
            command_line("dask_bench.py", args),
            text,
            facts=(f"distributed {distributed.__version__}",),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
