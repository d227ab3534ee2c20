"""Worker and workspace measurements, each beside its baseline in the same run.

Run: `.venv/bin/python benchmarks/worker_bench.py [--quick] [--write]`. `--quick` takes a fifth
of the samples; `--write` records the figures in the "Workers" section of benchmarks/RESULTS.md
(other sections are kept).

- exit-event latency: child's own exit instant (time.time_ns written just before _exit) to the
  event in the parent; Worker.on_exit vs a bare Popen.wait() thread vs a 100 ms polling loop.
- spawn overhead: Worker.start() return vs bare Popen() return, and time until the agent runs.
- workspace creation vs raw `git worktree add` (200-file and 5,000-file repos).
- stop latency (SIGINT-honouring worker) and kill sweep of a 50-process tree with an escapee.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from _results import command_line, write_section

# Documented internals (their module docstrings name them usable by benchmarks): the
# supervised process, the sweep of a worker's processes by its token, and workspaces are what
# this script measures; the public API reaches them only through a Loop.
from ralphnb.workers.process import Worker, build_env
from ralphnb.workers.registry import pids_with_token
from ralphnb.workspace.workspaces import Workspaces

PY = sys.executable
STAMP_EXIT = "import os,time;os.write(1,str(time.time_ns()).encode());os._exit(0)"
TREE = """
import os, time, sys
def sleeper():
    time.sleep(600); os._exit(0)
for _ in range(47):
    if os.fork() == 0: sleeper()
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(w, b"x"); sleeper()
    os._exit(0)
os.read(r, 1)
print("ready", flush=True)
time.sleep(600)
"""


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def fmt(xs: list[float]) -> str:
    return f"p50 {pct(xs, 50):.2f} ms, p99 {pct(xs, 99):.2f} ms (n={len(xs)})"


def exit_latency(n: int, tmp: Path) -> dict[str, list[float]]:
    argv = [PY, "-I", "-S", "-c", STAMP_EXIT]
    env = build_env()
    worker, bare, poll = [], [], []
    for i in range(n):
        got = threading.Event()
        t_event = [0]

        def on_exit(info, t_event=t_event, got=got):
            t_event[0] = time.time_ns()
            got.set()

        w = Worker(
            argv,
            cwd=tmp,
            env=env,
            log_path=tmp / "lat" / f"{i}.log",
            worker_id=f"b{i}",
            on_exit=on_exit,
        ).start()
        w.wait(30)
        worker.append((t_event[0] - int(w.tail(1)[0])) / 1e6)

        p = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env, start_new_session=True)
        box = [0]
        th = threading.Thread(
            target=lambda p=p, box=box: (p.wait(), box.__setitem__(0, time.time_ns()))
        )
        th.start()
        out = p.stdout.read()
        th.join()
        p.stdout.close()
        bare.append((box[0] - int(out)) / 1e6)

        p = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env, start_new_session=True)
        out = p.stdout.read()
        time.sleep((i % 10) / 100)  # the poller's phase relative to the exit is arbitrary
        while p.poll() is None:
            time.sleep(0.1)
        poll.append((time.time_ns() - int(out)) / 1e6)
        p.stdout.close()
    return {"worker": worker, "bare": bare, "poll": poll}


def spawn_overhead(n: int, tmp: Path) -> dict[str, list[float]]:
    argv = [PY, "-I", "-S", "-c", "import os,time;os.write(1,str(time.time_ns()).encode())"]
    env = build_env()
    res: dict[str, list[float]] = {
        "worker_start": [],
        "bare_popen": [],
        "worker_run": [],
        "bare_run": [],
    }
    for i in range(n):
        t0 = time.time_ns()
        w = Worker(
            argv, cwd=tmp, env=env, log_path=tmp / "sp" / f"{i}.log", worker_id=f"s{i}"
        ).start()
        res["worker_start"].append((time.time_ns() - t0) / 1e6)
        w.wait(30)
        res["worker_run"].append((int(w.tail(1)[0]) - t0) / 1e6)
        t0 = time.time_ns()
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env, start_new_session=True)
        res["bare_popen"].append((time.time_ns() - t0) / 1e6)
        out = p.stdout.read()
        p.wait()
        p.stdout.close()
        res["bare_run"].append((int(out) - t0) / 1e6)
    return res


def make_repo(path: Path, n_files: int) -> Path:
    path.mkdir(parents=True)
    for i in range(n_files):
        d = path / f"d{i % 50}"
        d.mkdir(exist_ok=True)
        (d / f"f{i}.txt").write_text(f"file {i}\n" * 20)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@x",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@x",
    }
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True)
    return path


def workspace_creation(n_files: int, reps: int, tmp: Path) -> dict[str, list[float]]:
    repo = make_repo(tmp / f"repo{n_files}", n_files)
    wss = Workspaces(repo)
    ours, raw = [], []
    for i in range(reps):
        tid = f"RQ-{i + 1:04d}"
        t0 = time.perf_counter()
        ws = wss.create(tid)
        ours.append((time.perf_counter() - t0) * 1e3)
        wss.remove(ws, delete_branch=True)
        path = wss.root / f"raw{i}"
        t0 = time.perf_counter()
        subprocess.run(
            ["git", "worktree", "add", "-q", "-b", f"raw/{i}", str(path), "HEAD"],
            cwd=repo,
            check=True,
        )
        raw.append((time.perf_counter() - t0) * 1e3)
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=repo, check=True)
    return {"ralphnb": ours, "raw": raw}


def wait_for_agent(w: Worker, name: str) -> None:
    """Until the shim has exec'd the agent (measure stop, not startup)."""
    shim = psutil.Process(w.pid)
    for _ in range(1000):
        if any(c.name() == name for c in shim.children()):
            return
        time.sleep(0.002)


def stop_latency(n: int, tmp: Path) -> dict[str, list[float]]:
    env = build_env()
    out: dict[str, list[float]] = {"sleep": [], "python": []}
    ready_sleep = "import time;print('ready',flush=True);time.sleep(600)"
    progs = {"sleep": ["sleep", "600"], "python": [PY, "-I", "-S", "-c", ready_sleep]}
    for name, argv in progs.items():
        for i in range(n):
            ready = threading.Event()
            w = Worker(
                argv,
                cwd=tmp,
                env=env,
                log_path=tmp / "st" / f"{name}{i}.log",
                worker_id=f"t{i}",
                on_line=lambda _l, ready=ready: ready.set(),
            ).start()
            if name == "python":
                ready.wait(10)
            else:
                wait_for_agent(w, "sleep")
            t0 = time.perf_counter()
            info = w.stop(grace=1.5)
            out[name].append((time.perf_counter() - t0) * 1e3)
            assert info.signal == 2, info
    return out


def kill_sweep(n: int, tmp: Path) -> tuple[list[float], int]:
    env = build_env()
    times, survivors = [], 0
    for i in range(n):
        ready = threading.Event()
        w = Worker(
            [PY, "-I", "-S", "-c", TREE],
            cwd=tmp,
            env=env,
            log_path=tmp / "k" / f"{i}.log",
            worker_id=f"k{i}",
            on_line=lambda _l, ready=ready: ready.set(),
        ).start()
        ready.wait(20)
        assert len(pids_with_token(w.token)) == 50  # shim, agent, 47 sleepers, escapee
        t0 = time.perf_counter()
        w.kill()
        times.append((time.perf_counter() - t0) * 1e3)
        survivors += len(pids_with_token(w.token))
    return times, survivors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples, a fifth of the time")
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    quick = args.quick
    n = 40 if quick else 200
    lines = []

    def say(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        lat = exit_latency(n, tmp)
        say(f"exit-event latency, {n} workers each (child's exit instant -> event):")
        say(f"- Worker.on_exit:          {fmt(lat['worker'])}")
        say(f"- bare Popen.wait thread:  {fmt(lat['bare'])}")
        say(f"- 100 ms polling loop:     {fmt(lat['poll'])}")
        say(
            f"- Worker minus bare at p50: {pct(lat['worker'], 50) - pct(lat['bare'], 50):+.2f} ms"
            " (target: within 1 ms)"
        )
        sp = spawn_overhead(n // 2, tmp)
        say()
        say(f"spawn, {n // 2} each:")
        say(f"- Worker.start() returns:  {fmt(sp['worker_start'])}")
        say(f"- bare Popen() returns:    {fmt(sp['bare_popen'])}")
        extra = pct(sp["worker_start"], 50) - pct(sp["bare_popen"], 50)
        say(f"- extra at p50: {extra:+.2f} ms (target: under 5 ms)")
        say(
            f"- agent's first instruction after spawn call: Worker {fmt(sp['worker_run'])}; "
            f"bare {fmt(sp['bare_run'])}"
        )
        say()
        for files, reps in ((200, 5 if quick else 15), (5000, 3 if quick else 7)):
            ws = workspace_creation(files, reps, tmp)
            ratio = statistics.median(ws["ralphnb"]) / statistics.median(ws["raw"])
            say(
                f"workspace creation, {files}-file repo, median of {reps}: Workspaces.create "
                f"{statistics.median(ws['ralphnb']):.1f} ms vs raw `git worktree add` "
                f"{statistics.median(ws['raw']):.1f} ms = {ratio:.2f}x (target: within 1.5x)"
            )
        say()
        st = stop_latency(10 if quick else 30, tmp)
        say(
            f"stop latency, SIGINT-honouring worker: `sleep` {fmt(st['sleep'])}; "
            f"python child {fmt(st['python'])} (target: under 50 ms)"
        )
        ks, surv = kill_sweep(5 if quick else 20, tmp)
        say(
            f"kill sweep, 50-process tree with a setsid escapee: {fmt(ks)}, survivors {surv} "
            "(target: under 200 ms, zero survivors)"
        )
    if args.write:
        figures = "\n".join(["```", *lines, "```"])
        write_section("worker-bench", "Workers", command_line("worker_bench.py", args), figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
