"""Loop subcommands of the `ralphnb` command (`run`, `status`, `stop`, `kill`).

Owns: nothing yet; `register(subparsers)` is the hook `cli.py` calls.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:  # noqa: ARG001
    """Add the loop subcommands to the `ralphnb` parser."""
