"""The `ralphnb` console command: queue and task operations (the loop adds its own commands).

Owns: argument parsing, finding the repository, human and `--json` output, one-line errors
with a non-zero exit. Every operation is a call on `ralphnb.queue`; nothing here touches files.

Repository: `--repo`, else env `RALPHNB_REPO` (set by the loop for workers), else the nearest
directory upwards holding `.ralph/queue.jsonc` or `.ralph/config.jsonc` (whose `queue` settings
may move the queue files), else the git toplevel, else the cwd. With env
`RALPHNB_WORKER` set, `task done` leaves the task in queue.jsonc (the loop archives it after
merging the worker's work).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import RalphError
from . import loop_cmds, queue_cmds
from .common import common_options


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    p = argparse.ArgumentParser(
        prog="ralphnb", description="Run AI coding-agent loops over a ralph queue."
    )
    # Own actions here: the shared `common` actions must keep their SUPPRESS defaults.
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--repo", help="repository holding .ralph/ (default: found from env/cwd)")
    sub = p.add_subparsers(dest="command", required=True)

    queue_cmds.register(sub, common)
    loop_cmds.register(sub, common)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RalphError as e:
        msg = " ".join(str(e).split())
        print(f"ralphnb: error: {msg}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `ralphnb queue list | head`
        return 0
    except OSError as e:
        print(f"ralphnb: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
