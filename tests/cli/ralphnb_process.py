"""`run_cli`: the `ralphnb` command as a real process, with none of this session's `RALPHNB_*`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_cli(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m ralphnb ARGS` in `cwd`; `env` adds to the environment, minus `RALPHNB_*`."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("RALPHNB_")}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "ralphnb", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )
