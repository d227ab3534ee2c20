"""Starting a loop in its own background process: `DetachedLoop` and `spawn_detached`.

Owns: the caller's end of a detached loop -- the options pickled to a new process
(`python -m ralphnb.loop.detached`, in its own session: `start_new_session`, so neither a
kernel restart nor a terminal's hangup reaches it), the one-line "ready" handshake it answers
on its stdout (the run directory, or the error that stopped it from starting, raised here as
the same `RalphError` subclass), and the thread that reaps it if it ends while we live.
`DetachedLoop` is what `Loop(..., detach=True)` returns: an `attached.AttachedLoop` whose
`start()` spawns the process.
Never: keeps a pipe, a lifeline or a lock shared with the detached process once it is ready --
nothing the caller does (exiting, being killed) changes the loop.
"""

from __future__ import annotations

import json
import os
import pickle
import selectors
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from .. import errors
from ..errors import RalphError
from .attached import AttachedLoop

READY_TIMEOUT = 120.0  # s: the loop's checks up front (queue, runner, workspaces) and its start


def _ready_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """The first line of the process's stdout, or b"" if it closed or `timeout` passed."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return b""
    return proc.stdout.readline()


def _raise_error(reply: dict[str, Any]) -> None:
    cls = getattr(errors, str(reply.get("type")), RalphError)
    if not (isinstance(cls, type) and issubclass(cls, RalphError)):
        cls = RalphError
    raise cls(str(reply["error"]))


def spawn_detached(
    repo: str | Path,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    *,
    runner_options: dict[str, Any] | None = None,
    timeout: float = READY_TIMEOUT,
) -> dict[str, Any]:
    """Start `Loop(repo, *args, **kwargs)` in a new background process; its ready message
    (`run_dir`, `pid`, `control`) once the loop has started. Raises what stopped it."""
    spec = {
        "repo": str(Path(repo).resolve()),
        "args": tuple(args),
        "kwargs": dict(kwargs or {}),
        "runner_options": dict(runner_options or {}),
    }
    try:
        payload = pickle.dumps(spec)
    except Exception as exc:  # a lambda check, an object of a notebook's own class, ...
        raise RalphError(
            f"a detached loop's options must be picklable ({type(exc).__name__}: {exc}); "
            "pass the check as a command, or a function importable from a module"
        ) from None
    proc = subprocess.Popen(
        [sys.executable, "-m", "ralphnb.loop.detached"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own session: the caller's death does not reach it
        cwd=os.getcwd(),
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        proc.stdin.write(payload)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    line = _ready_line(proc, timeout)
    proc.stdout.close()
    if not line:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        err = proc.stderr.read().decode(errors="replace").strip().splitlines()
        proc.stderr.close()
        raise RalphError(
            f"the detached loop did not start within {timeout:.0f} s"
            + (f": {err[-1]}" if err else "")
        )
    proc.stderr.close()
    threading.Thread(target=proc.wait, name="ralphnb-detached-reaper", daemon=True).start()
    reply = json.loads(line)
    if "error" in reply:
        _raise_error(reply)
    return reply


class DetachedLoop(AttachedLoop):
    """`Loop(..., detach=True)`: the options now, the background process on `start()`, which
    returns this object, attached to it (the interface of `Loop`)."""

    def __init__(self, repo: str | Path = ".", *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self._spec = (repo, args, kwargs)

    def start(self) -> DetachedLoop:
        """Start the loop in its own process; return at once (attached to it)."""
        if self.run_dir is not None:
            raise RalphError("this Loop was already started; create a new Loop for a new run")
        repo, args, kwargs = self._spec
        reply = spawn_detached(repo, args, kwargs)
        self._bind(Path(reply["run_dir"]))
        return self

    def run(self) -> Any:
        if self.run_dir is None:
            self.start()
        return super().run()

    async def arun(self) -> Any:
        if self.run_dir is None:
            self.start()
        return await super().arun()


__all__ = ["DetachedLoop", "READY_TIMEOUT", "spawn_detached"]
