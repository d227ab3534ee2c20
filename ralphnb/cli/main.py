"""The `ralphnb` console command: the parser and the error handling around every subcommand.

Owns: the top-level parser (`--json`/`--repo` before the subcommand; `common` lets them follow
it too), wiring in the subcommands of `queue_cmds`, `task_cmds`, `loop_cmds`, `review_cmds`,
`sweep_cmds` and `doctor`, and turning errors into one line on stderr: exit 1 for a `RalphError`
or an OS error, 130 on Ctrl-C, 0 when the reader of our output went away (`ralphnb queue list |
head`).
Never: does the work of a subcommand itself.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import RalphError
from . import doctor, loop_cmds, queue_cmds, review_cmds, sweep_cmds, task_cmds
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
    task_cmds.register(sub, common)
    loop_cmds.register(sub, common)
    review_cmds.register(sub, common)
    sweep_cmds.register(sub, common)
    doctor.register(sub, common)
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
