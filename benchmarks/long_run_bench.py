"""Long-run benchmark: a loop whose workers print Claude stream-json as fast as they can.

N workers (default 8, parallel N, copy workspaces) each run a small Python agent that prints
Claude Code stream-json turns (an assistant text block, a tool_use block of the same message,
the user's tool_result) for `--seconds`, then a `result` line, through `ralphnb.Command(...,
parser="claude")`. The agents are throttled only by the pipe: the loop's process is the
bottleneck. A sampler thread records, once a second, the lines parsed so far (a counting parser),
this process's CPU time (all its threads, no children) and its RSS. Reported:
- lines processed per second over the flood (target >= 20,000/s on a 2-core machine);
- CPU time per 1,000 lines in the first and in the last 10 s of the flood (target: within 20%);
- RSS growth of the loop's process from the first line to the end, and per 1,000,000 lines
  (target < 50 MB per 1,000,000);
- journal bytes per output line, and whether `Run.load(run_dir).df` equals the live `loop.df`.

Usage: python benchmarks/long_run_bench.py [--workers 8] [--seconds 60] [--label after] [--write]
`--write` records the table in the "Long runs" section of benchmarks/RESULTS.md under `--label`
(the other label's rows are kept, so before/after sit side by side).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from _results import RESULTS, command_line, write_section

from ralphnb import Command, Loop, Run, init
from ralphnb.runners.claude import ClaudeStreamParser

# One turn: three lines; `%(n)d` makes every message id and tool id unique.
_TURN = (
    '{"type":"assistant","message":{"id":"msg_%(t)s_%(n)d","type":"message","role":"assistant",'
    '"model":"claude-bench","content":[{"type":"text","text":"Step %(n)d: reading the module '
    'and deciding what to change next, then writing the file."}],"stop_reason":null,'
    '"usage":{"input_tokens":%(n)d,"output_tokens":12,"cache_creation_input_tokens":0,'
    '"cache_read_input_tokens":900}},"parent_tool_use_id":null,"session_id":"s-%(t)s"}\n'
    '{"type":"assistant","message":{"id":"msg_%(t)s_%(n)d","type":"message","role":"assistant",'
    '"model":"claude-bench","content":[{"type":"tool_use","id":"toolu_%(t)s_%(n)d","name":"Edit",'
    '"input":{"file_path":"src/mod.py","old_string":"a","new_string":"b"}}],"stop_reason":null,'
    '"usage":{"input_tokens":%(n)d,"output_tokens":40,"cache_creation_input_tokens":0,'
    '"cache_read_input_tokens":900}},"parent_tool_use_id":null,"session_id":"s-%(t)s"}\n'
    '{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_%(t)s_%(n)d",'
    '"type":"tool_result","content":"The file src/mod.py has been updated."}]},'
    '"parent_tool_use_id":null,"session_id":"s-%(t)s"}\n'
)

AGENT = r"""
import sys, time
seconds, tag, turn = float(sys.argv[1]), sys.argv[2], sys.argv[3]
out = sys.stdout.buffer
out.write(('{"type":"system","subtype":"init","session_id":"s-%s"}\n' % tag).encode())
end, n = time.monotonic() + seconds, 0
while time.monotonic() < end:
    chunk = []
    for _ in range(40):
        n += 1
        chunk.append(turn % {"t": tag, "n": n})
    out.write("".join(chunk).encode())
out.write(('{"type":"result","subtype":"success","is_error":false,"num_turns":%d,'
           '"result":"done <promise>COMPLETE</promise>","session_id":"s-%s",'
           '"total_cost_usd":1.5,"usage":{"input_tokens":%d,"output_tokens":%d}}\n'
           % (n, tag, n, 52 * n)).encode())
out.flush()
"""


class Counter:
    """Parsers that count the lines they are fed (one per attempt; summed by the sampler)."""

    def __init__(self) -> None:
        self.parsers: list[Any] = []

    def parser(self) -> ClaudeStreamParser:
        counter = self

        class Counting(ClaudeStreamParser):
            lines = 0

            def feed(self, line: str) -> list[dict[str, Any]]:
                self.lines += 1
                return super().feed(line)

        p = Counting()
        counter.parsers.append(p)
        return p

    def lines(self) -> int:
        return sum(p.lines for p in list(self.parsers))


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(workers: int, seconds: float, root: Path) -> dict[str, Any]:
    repo = root / "repo"
    repo.mkdir()
    (repo / "README.md").write_text("bench\n")
    q = init(repo)
    for i in range(workers):
        q.add(f"flood {i}")
    counter = Counter()
    runner = Command(
        [sys.executable, "-S", "-c", AGENT, str(seconds), "{task_id}", _TURN],
        parser=counter.parser,
    )
    loop = Loop(repo, runner=runner, parallel=workers, max_iterations=1, workspace_mode="copy")
    me = psutil.Process()
    samples: list[tuple[float, int, float, int]] = []  # (t, lines, cpu s, rss bytes)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(1.0):
            samples.append((time.monotonic(), counter.lines(), cpu_s(), me.memory_info().rss))

    sampler = threading.Thread(target=sample, daemon=True)
    loop.start()
    sampler.start()
    loop.wait()
    done.set()
    sampler.join()
    total = counter.lines()
    live_df = loop.df
    assert loop.run_dir is not None
    journal = loop.run_dir / "events.jsonl"
    same = live_df.drop(columns=["cpu_percent", "rss_mb"]).equals(
        Run.load(loop.run_dir).df.drop(columns=["cpu_percent", "rss_mb"])
    )
    flood = [s for s in samples if 0 < s[1] < total]  # from the first line to the last
    if len(flood) < 4:
        raise SystemExit(f"too few samples during the flood: {samples}")
    t0, tn = flood[0][0], flood[-1][0]

    def per_k(a: tuple[float, int, float, int], b: tuple[float, int, float, int]) -> float:
        return (b[2] - a[2]) / max(1, b[1] - a[1]) * 1000

    first_end = next(s for s in flood if s[0] >= t0 + 10) if tn - t0 > 20 else flood[1]
    last_start = next(s for s in flood if s[0] >= tn - 10) if tn - t0 > 20 else flood[-2]
    rss_growth = max(s[3] for s in flood) - flood[0][3]
    return {
        "lines": total,
        "rate": (flood[-1][1] - flood[0][1]) / (tn - t0),
        "cpu_first": per_k(flood[0], first_end),
        "cpu_last": per_k(last_start, flood[-1]),
        "rss_growth_mb": rss_growth / 2**20,
        "rss_per_m_mb": rss_growth / 2**20 / max(1, total) * 1e6,
        "journal_bytes": journal.stat().st_size,
        "journal_lines": sum(1 for _ in journal.open("rb")),
        "same_df": same,
        "status": ",".join(sorted(set(live_df.status.astype(str)))),
    }


def rows(label: str, r: dict[str, Any]) -> list[str]:
    drift = (r["cpu_last"] / r["cpu_first"] - 1) * 100
    return [
        f"| {label} | lines processed per second | {r['rate']:,.0f} /s ({r['lines']:,} lines) "
        "| >= 20,000 /s |",
        f"| {label} | CPU per 1,000 lines, first 10 s -> last 10 s | {r['cpu_first'] * 1000:.1f} ms"
        f" -> {r['cpu_last'] * 1000:.1f} ms ({drift:+.0f}%) | within 20% |",
        f"| {label} | parent RSS growth (per 1,000,000 lines) | {r['rss_growth_mb']:.0f} MB "
        f"({r['rss_per_m_mb']:.0f} MB) | < 50 MB per 1,000,000 |",
        f"| {label} | journal bytes per output line | {r['journal_bytes'] / r['lines']:.1f} B "
        f"({r['journal_lines']:,} journal lines) | - |",
        f"| {label} | Run.load(run_dir).df == loop.df | {'yes' if r['same_df'] else 'NO'} "
        f"(statuses: {r['status']}) | yes |",
    ]


def merge_rows(old_body: str, label: str, new: list[str]) -> list[str]:
    """The table rows already recorded for other labels, then this label's new ones."""
    kept = [ln for ln in old_body.splitlines() if ln.startswith("| ") and " | " in ln]
    kept = [ln for ln in kept if not ln.startswith(f"| {label} |") and not ln.startswith("| run")]
    return kept + new


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--label", default="after")
    ap.add_argument("--write", action="store_true", help="record the table in RESULTS.md")
    args = ap.parse_args(argv)
    for who in ("AUTHOR", "COMMITTER"):
        os.environ.setdefault(f"GIT_{who}_NAME", "bench")
        os.environ.setdefault(f"GIT_{who}_EMAIL", "bench@example.invalid")
    with tempfile.TemporaryDirectory() as tmp:
        r = run(args.workers, args.seconds, Path(tmp))
    new = rows(args.label, r)
    print("\n".join(new))
    if args.write:
        doc = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
        m = re.search(r"<!-- long-run-bench:start -->(.*?)<!-- long-run-bench:end -->", doc, re.S)
        body = m.group(1) if m else ""
        commands = [c for c in re.findall(r"^- `[^`]+` .*$", body, re.M) if args.label not in c]
        commands.append(f"- `{command_line('long_run_bench.py', args)}` ({args.label})")
        table = ["| run | measurement | result | target |", "|---|---|---|---|"]
        table += merge_rows(body, args.label, new)
        figures = "\n".join([*commands, "", *table])
        write_section(
            "long-run-bench", "Long runs", command_line("long_run_bench.py", args), figures
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
