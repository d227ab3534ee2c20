"""Review cost: computing and rendering a task's diff of a 5,000-line change.

Builds a git repository whose task branch changes `--lines` lines over `--files` files (half
of them new files, half edits of existing ones: each edit replaces every other line, so the
diff has both added and removed lines), then measures, best and median of `--repeat` runs:

- `task_diff`: git (sealed) computing the change against the target, split into files;
- `diff_html`: the notebook rendering (file list + coloured lines), what a `loop.diff()` shows;
- the HTML's size, which is what goes to the front end.

It runs in this process, as the kernel would run it (no front end). Usage:
python benchmarks/review_bench.py [--lines 5000] [--files 10] [--repeat 7] [--write]
Target: rendering under 200 ms. `--write` records the figures in the "Review" section of
benchmarks/RESULTS.md (other sections are kept).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _results import command_line, write_section

from ralphnb.view.diffview import diff_html
from ralphnb.workspace.diff import task_diff


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def build(root: Path, lines: int, files: int) -> Path:
    """A repo on `main` and a branch `ralph/RQ-0001` changing about `lines` lines."""
    repo = root / "repo"
    repo.mkdir()
    per = max(2, lines // files)
    edits = files // 2
    for i in range(edits):  # an edit of every other line: per/2 removed + per/2 added
        body = "".join(f"def f{i}_{n}(x):  return x + {n}  # <old>\n" for n in range(per))
        (repo / f"mod{i}.py").write_text(body)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-q", "-m", "init")
    git(repo, "checkout", "-q", "-b", "ralph/RQ-0001")
    for i in range(edits):
        text = "".join(
            f"def f{i}_{n}(x):  return x * {n}  # <new> & more\n"
            if n % 2
            else f"def f{i}_{n}(x):  return x + {n}  # <old>\n"
            for n in range(per)
        )
        (repo / f"mod{i}.py").write_text(text)
    for i in range(edits, files):
        (repo / f"new{i}.py").write_text("".join(f"value_{n} = '{n}' * 3\n" for n in range(per)))
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-q", "-m", "work")
    return repo


def timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=5000)
    p.add_argument("--files", type=int, default=10)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--write", action="store_true", help="record in benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        repo = build(Path(tmp), args.lines, args.files)
        compute, diff = timed(lambda: task_diff("RQ-0001", repo, "main"), args.repeat)
        render, page = timed(lambda: diff_html(diff), args.repeat)
    changed = diff.added + diff.removed
    rows = [
        f"{args.lines}-line change requested: {len(diff)} files, +{diff.added} -{diff.removed}"
        f" ({changed} changed lines)",
        f"- task_diff (git, sealed):  best {min(compute):.1f} ms, median "
        f"{statistics.median(compute):.1f} ms (n={args.repeat})",
        f"- diff_html (rendering):    best {min(render):.1f} ms, median "
        f"{statistics.median(render):.1f} ms (n={args.repeat}; target: under 200 ms)",
        f"- HTML sent to the front end: {len(page) / 1024:.0f} KiB",
    ]
    figures = "```\n" + "\n".join(rows) + "\n```"
    print(figures)
    if args.write:
        write_section("review-bench", "Review", command_line("review_bench.py", args), figures)
    return 0 if statistics.median(render) < 200 else 1


if __name__ == "__main__":
    sys.exit(main())
