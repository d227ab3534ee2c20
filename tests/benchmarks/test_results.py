"""The benchmarks' shared writer of RESULTS.md, and every script's `--help`.

benchmarks/ is not a package: its scripts run as `python benchmarks/NAME.py`, so the writer is
loaded here from its file.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
_spec = importlib.util.spec_from_file_location("bench_results", BENCH / "_results.py")
assert _spec is not None and _spec.loader is not None
results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(results)

DOC = """\
# Benchmark results

## Queue

<!-- queue-bench:start -->
Command: `old queue` (old machine).

old queue figures
<!-- queue-bench:end -->

Reading it: a note kept outside the markers.

## Loop

<!-- loop-bench:start -->
old loop figures
<!-- loop-bench:end -->
"""


def test_writing_a_section_changes_only_the_text_between_its_markers(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text(DOC)
    results.write_section("queue-bench", "Queue", "python q.py --write", "| new |", path=path)
    doc = path.read_text()
    head, rest = doc.split("<!-- queue-bench:start -->\n")
    body, tail = rest.split("\n<!-- queue-bench:end -->")
    assert head == DOC.split("<!-- queue-bench:start -->\n")[0]
    assert tail == DOC.split("\n<!-- queue-bench:end -->")[1]  # notes and other sections
    assert body.startswith("Command: `python q.py --write` (") and body.endswith(").\n\n| new |")
    assert "load average" in body and "CPUs" in body


def test_a_new_section_goes_under_its_heading_or_at_the_end() -> None:
    doc = "# Benchmark results\n\n## Dask\n\nnotes\n"
    under = results.replace_section(doc, "dask-bench", "Dask", "figures")
    assert under == (
        "# Benchmark results\n\n## Dask\n\n<!-- dask-bench:start -->\nfigures\n"
        "<!-- dask-bench:end -->\n\nnotes\n"
    )
    added = results.replace_section(doc, "new-bench", "New", "figures")
    assert added == doc + "\n## New\n\n<!-- new-bench:start -->\nfigures\n<!-- new-bench:end -->\n"


def test_the_recorded_command_spells_out_every_option() -> None:
    args = argparse.Namespace(tasks=500, sleep=30.0, step=0.5, quick=True, skip=False, write=True)
    assert results.command_line("loop_bench.py", args) == (
        "python benchmarks/loop_bench.py --tasks 500 --sleep 30 --step 0.5 --quick --write"
    )


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*_bench.py")))
def test_every_benchmark_answers_help_without_running(script: str) -> None:
    before = (BENCH / "RESULTS.md").read_bytes()
    r = subprocess.run(
        [sys.executable, str(BENCH / script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "--write" in r.stdout
    assert (BENCH / "RESULTS.md").read_bytes() == before
