"""The one writer of benchmarks/RESULTS.md: each benchmark's figures in a section of its own.

Owns: the section format (`Command: `...` (date, Python, versions, CPUs, load).` then the
figures, between `<!-- NAME:start -->` and `<!-- NAME:end -->`), `command_line` (the command
that reproduces a run, every option spelled out) and `write_section`.
Invariants: writing a section changes only the text between its own markers (or appends the
section, or fills a heading that has no markers yet); everything else in RESULTS.md, such as
the "Reading it" notes kept outside the markers, is left byte for byte. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def command_line(script: str, args: argparse.Namespace) -> str:
    """`python benchmarks/SCRIPT --opt value ... --write`: every option of this run, so the
    recorded command reproduces it even after a default changes."""
    parts = ["python", f"benchmarks/{script}"]
    for name, value in vars(args).items():
        if name == "write" or value is False or value is None:
            continue
        parts.append("--" + name.replace("_", "-"))
        if value is not True:
            parts.append(f"{value:g}" if isinstance(value, float) else str(value))
    return " ".join([*parts, "--write"])


def machine(*facts: str) -> str:
    """Where and when: date, Python, the given facts (library versions), CPUs, load average."""
    return ", ".join(
        [
            time.strftime("%Y-%m-%d"),
            f"Python {platform.python_version()}",
            *facts,
            f"{os.cpu_count()} CPUs",
            f"load average {os.getloadavg()[0]:.1f}",
        ]
    )


def replace_section(doc: str, name: str, title: str, body: str) -> str:
    """`doc` with the block between `name`'s markers replaced by `body`; a heading `## title`
    without markers gets the block right under it; otherwise the section is appended."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body}\n{end}"
    if start in doc and end in doc:
        return doc[: doc.index(start)] + block + doc[doc.index(end) + len(end) :]
    heading = f"\n## {title}\n"
    if heading in doc:
        at = doc.index(heading) + len(heading)
        return doc[:at] + "\n" + block + "\n" + doc[at:]
    return doc.rstrip("\n") + f"\n\n## {title}\n\n{block}\n"


def write_section(
    name: str,
    title: str,
    command: str,
    figures: str,
    *,
    facts: tuple[str, ...] = (),
    path: Path = RESULTS,
) -> None:
    """Record one run in RESULTS.md: its command line, the machine, then `figures`."""
    body = f"Command: `{command}` ({machine(*facts)}).\n\n{figures}"
    doc = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    path.write_text(replace_section(doc, name, title, body), encoding="utf-8")
