"""Transcript cost: rebuilding and rendering one 10,000-event attempt, in a Jupyter kernel.

Writes a log of `--events` stream-json lines as the demo agent (and Claude Code) writes them --
a third each of messages, tool calls with arguments (both with their usage) and tool results --
then, inside a fresh IPython kernel (jupyter_client; `--no-kernel` measures in this process),
times per round (wall clock; for the rendering also the kernel's CPU time, which is what it
costs on a machine that is not shared): the rebuild from the log (`TranscriptReader`: read +
parse into entries), the notebook rendering (`Transcript._repr_html_`, the view's HTML of every
entry) and the DataFrame (`Transcript.df`). The median of `--rounds` rounds is reported.

Usage: python benchmarks/transcript_bench.py [--events 10000] [--rounds 5] [--write]
Target: rendering under 200 ms. `--write` records the figures in the "Transcript" section of
benchmarks/RESULTS.md (other sections are kept).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from _results import command_line, write_section

MEASURE = """
import json, statistics, time
from ralphnb.runners import Claude
from ralphnb.runners.transcript import Transcript, TranscriptReader
from ralphnb.view.transcript import render

def _measure(path, rounds):
    out = {"rebuild": [], "render": [], "render_cpu": [], "frame": []}
    for _ in range(rounds):
        t0 = time.perf_counter()
        entries = TranscriptReader(path, Claude().parser).update(final=True)
        t1 = time.perf_counter()
        t = Transcript("RQ-0001", 1, entries, str(path), renderer=render)
        c1 = time.process_time()
        html = t._repr_html_()
        t2 = time.perf_counter()
        out["render_cpu"].append((time.process_time() - c1) * 1000)
        t.df
        t3 = time.perf_counter()
        for k, v in (("rebuild", t1 - t0), ("render", t2 - t1), ("frame", t3 - t2)):
            out[k].append(v * 1000)
    res = {k: statistics.median(v) for k, v in out.items()}
    res.update(entries=len(entries), html_bytes=len(html))
    return res
"""


def write_log(path: Path, events: int) -> None:
    """`events` lines: message, tool call, tool result, usage (on the assistant lines), ..."""
    sid = "00000000-0000-4000-8000-000000000000"
    lines = [json.dumps({"type": "system", "subtype": "init", "session_id": sid})]
    usage = {"input_tokens": 900, "output_tokens": 40}
    n = 0
    while len(lines) < events:
        n += 1
        text = f"Step {n}: reading the module and deciding what to change next. " * 3
        call = {"type": "tool_use", "id": f"t{n}", "name": "Edit"}
        call["input"] = {"file_path": f"src/m{n % 50}.py", "old_string": "a" * 80, "new": "b" * 80}
        for block in ({"type": "text", "text": text}, call):
            msg = {"id": f"m{len(lines)}", "content": [block], "usage": usage}
            lines.append(json.dumps({"type": "assistant", "message": msg, "session_id": sid}))
        res = {"type": "tool_result", "tool_use_id": f"t{n}", "content": "ok\n" * 40}
        lines.append(json.dumps({"type": "user", "message": {"content": [res]}}))
    lines = lines[:events]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def in_kernel(path: Path, rounds: int) -> dict[str, Any]:
    """Run the measurement in a fresh IPython kernel of this interpreter."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", extra_arguments=[])
    try:
        code = MEASURE + f"\nprint(json.dumps(_measure({str(path)!r}, {rounds})))"
        chunks: list[str] = []

        def on_output(msg: dict[str, Any]) -> None:
            if msg["msg_type"] == "stream":
                chunks.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                chunks.append("\n".join(msg["content"]["traceback"]))

        reply = kc.execute_interactive(code, timeout=600, output_hook=on_output)
        if reply["content"]["status"] != "ok":
            raise RuntimeError("".join(chunks))
        return json.loads("".join(chunks).strip().splitlines()[-1])
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def here(path: Path, rounds: int) -> dict[str, Any]:
    scope: dict[str, Any] = {}
    exec(MEASURE, scope)
    return scope["_measure"](str(path), rounds)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-kernel", action="store_true", help="measure in this process")
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "1.log"
        write_log(log, a.events)
        r = here(log, a.rounds) if a.no_kernel else in_kernel(log, a.rounds)
    where = "this process" if a.no_kernel else "an IPython kernel"
    figures = (
        f"One attempt of {a.events} stream events ({r['entries']} transcript entries), median "
        f"of {a.rounds} rounds in {where}: rendering (HTML, {r['html_bytes'] / 1e6:.1f} MB) "
        f"{r['render']:.0f} ms wall, {r['render_cpu']:.0f} ms CPU (target < 200 ms); rebuild "
        f"from the log {r['rebuild']:.0f} ms; DataFrame {r['frame']:.0f} ms."
    )
    if a.write:  # what the figures say, kept with them
        figures += (
            "\n\nReading it: rendering is linear in the entries (each escaped once, arguments "
            "and results clipped first). The rebuild parses each log line once (the Claude parser "
            "keeps running totals; it took 54 s for the same log when it re-summed every "
            "message per line); the dashboard's live view reads only what was appended since "
            "its last read."
        )
    print(figures)
    if a.write:
        write_section(
            "transcript-bench", "Transcript", command_line("transcript_bench.py", a), figures
        )
    return 0 if min(r["render"], r["render_cpu"]) < 200 else 1


if __name__ == "__main__":
    sys.exit(main())
