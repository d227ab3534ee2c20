"""What every `ralphnb` subcommand shares: finding the repository, the common `--json`/`--repo`
options, and printing either JSON or text.

Repository: `--repo`, else env `RALPHNB_REPO` (set by the loop for workers), else the nearest
directory upwards holding `.ralph/queue.jsonc` or `.ralph/config.jsonc` (whose `queue` settings
may move the queue files), else the git toplevel, else the cwd.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from ..queue.config import CONFIG_PATH


def _git_toplevel(cwd: Path) -> Path | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None


def find_repo(explicit: str | None = None, *, for_init: bool = False) -> Path:
    """The repository a command acts on (see the module docstring for the order)."""
    if explicit:
        return Path(explicit).resolve()
    env = os.environ.get("RALPHNB_REPO")
    if env:
        return Path(env).resolve()
    cwd = Path.cwd().resolve()
    if not for_init:
        for d in (cwd, *cwd.parents):
            if (d / ".ralph" / "queue.jsonc").is_file() or (d / CONFIG_PATH).is_file():
                return d
    return _git_toplevel(cwd) or cwd


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print `data` as JSON with `--json`, else `text` (nothing when it is empty)."""
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    elif text:
        print(text)


def common_options() -> argparse.ArgumentParser:
    """`--json` and `--repo`, accepted after any subcommand as well as before it."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    common.add_argument(
        "--repo",
        default=argparse.SUPPRESS,
        help="repository holding .ralph/ (default: found from env/cwd)",
    )
    return common
