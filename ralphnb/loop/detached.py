"""The background process of a detached loop: `python -m ralphnb.loop.detached`.

Owns: the process's life -- read the pickled options (`launch.spawn_detached` writes them to
stdin), build and start the `Loop`, answer one ready line on stdout (`{"run_dir", "pid"}`,
or `{"error", "type"}` if the loop could not start), then run until the loop finishes. Its
stdout/stderr then go to `<run_dir>/detached.log`; SIGTERM/SIGINT stop the loop cleanly
(workers stopped, tasks back to `todo`); SIGHUP is ignored.
Invariants: this process is the owner of the loop's workers (their lifelines), so they die when
it dies, however it dies; it is in its own session, so its caller's death does not reach it;
it exits after the loop finished and its event streams drained (a few seconds at most).
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import sys
import threading
from typing import Any

from .core import Loop
from .feed import feed_of

DRAIN = 3.0  # s: how long finished streams may take to deliver `loop_finished`


def _say(msg: dict[str, Any]) -> None:
    os.write(1, (json.dumps(msg, default=str) + "\n").encode())


def _redirect(fd: int, path: str) -> None:
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(target, fd)
    os.close(target)


def _start(raw: bytes) -> Loop:
    spec = pickle.loads(raw)
    loop = Loop(spec["repo"], *spec["args"], **spec["kwargs"])
    if spec.get("runner_options"):
        loop.runner = loop.runner.with_options(**spec["runner_options"])
    feed_of(loop)  # before start: event numbers count from the run's first event
    return loop.start()


def main() -> int:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    raw = sys.stdin.buffer.read()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    try:
        loop = _start(raw)
    except BaseException as exc:  # the caller raises it: say what and of which kind
        _say({"error": f"{exc}" or type(exc).__name__, "type": type(exc).__name__})
        return 1
    assert loop.run_dir is not None

    def stop(_sig: int, _frame: Any) -> None:  # not in the handler: stop_all waits for workers
        threading.Thread(target=loop.stop_all, name="ralphnb-stop", daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log = str(loop.run_dir / "detached.log")
    _redirect(2, log)
    _say({"run_dir": str(loop.run_dir), "pid": os.getpid()})
    _redirect(1, log)
    while not loop.wait(1.0):  # a timed wait: signal handlers run between the waits
        pass
    feed_of(loop).drain(DRAIN)
    return 0


if __name__ == "__main__":
    sys.exit(main())
