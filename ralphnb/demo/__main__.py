"""`python -m ralphnb.demo [PATH]` (what `make demo` runs): the demo agent on a sample repo.

Creates the sample repository (default ./demo-repo; a previous demo repo there is replaced, any
other non-empty directory is refused), prints its queue, runs a real Loop over it with the demo
agent (live table), then prints the final DataFrame and the queue. Exit 0 when every task was
integrated, 130 on Ctrl-C. `RALPHNB_DEMO_SPEED` scales the agent's timings.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..loop.core import Loop
from ..queue.store import Queue
from ..view.console import Printer
from .sample import create_sample_repo, is_sample_repo


def prepare(path: Path, n_tasks: int, *, duration: float | None) -> Path:
    """A fresh sample repo at `path` (a previous demo repo there is replaced; any other
    non-empty directory -- a user's own repository with a ralph queue too -- is refused)."""
    if path.exists() and is_sample_repo(path):
        shutil.rmtree(path)
    return create_sample_repo(path, n_tasks, duration=duration)


def show_queue(repo: Path) -> None:
    df = Queue(repo).df
    cols = [c for c in ("id", "status", "title", "depends_on") if c in df.columns]
    print(df[cols].to_string(index=False) if cols else df.to_string())


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ralphnb.demo", description=__doc__)
    ap.add_argument("path", nargs="?", default="demo-repo")
    ap.add_argument("--tasks", type=int, default=6)
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--duration", type=float, default=None, help="seconds per demo task")
    args = ap.parse_args(argv)
    try:
        repo = prepare(Path(args.path), args.tasks, duration=args.duration)
    except FileExistsError as e:
        print(f"python -m ralphnb.demo: error: {e}", file=sys.stderr)
        return 2
    print(f"Sample repository: {repo}\n")
    show_queue(repo)
    # A real Loop: the demo agent on the sample repo, the table printed as it changes.
    loop = Loop(repo, runner="demo", parallel=args.parallel)
    printer = Printer(loop, sys.stdout)
    loop.subscribe(printer)
    print(f"\nRunning {args.tasks} tasks, {args.parallel} in parallel (Ctrl-C stops the workers)")
    printer.start()
    try:
        df = loop.run()
    except KeyboardInterrupt:
        printer.close()
        print("interrupted: workers stopped, their tasks are back in todo")
        return 130
    printer.close()
    cols = ["worker_id", "title", "status", "elapsed_s", "turns", "cost_usd", "last_message"]
    with pd.option_context("display.width", 160, "display.max_colwidth", 40):
        print("\nFinal DataFrame (loop.df):")
        print(df[cols].to_string(index=False))
    print(f"\nRun journal: {loop.run_dir}  (ralphnb.Run.load(path).df rebuilds the table)")
    show_queue(repo)
    bad = df.drop_duplicates("task_id", keep="last").status != "integrated"
    return 1 if bad.any() else 0


if __name__ == "__main__":
    sys.exit(main())
