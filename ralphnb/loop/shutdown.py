"""Loops still running when the interpreter exits are stopped, and their workers with them.

Owns: the weak set of started loops (`track`), the one atexit hook that stops them
(`arm_exit_hook`) and `quiet`, a call whose exception does not matter. The hook is registered
when the first worker starts, after the worker module registered its own sweep: atexit runs
hooks in reverse order, so loops are stopped cleanly (tasks put back) before any last-resort
kill. Invariants: holds no strong reference to a loop; the hook never raises.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol


class Stoppable(Protocol):
    """What the exit hook needs of a loop."""

    @property
    def running(self) -> bool: ...
    def stop_all(self, *, wait: bool = True) -> None: ...
    def wait(self, timeout: float | None = None) -> bool: ...


_LIVE: weakref.WeakSet[Any] = weakref.WeakSet()
_ARMED = False
_ARM_LOCK = threading.Lock()


def quiet(fn: Callable[[], Any]) -> None:
    """Call `fn`, ignoring any exception (teardown and fire-and-forget paths)."""
    try:
        fn()
    except Exception:
        pass


def track(loop: Stoppable) -> None:
    """Stop `loop` at interpreter exit if it is still running then."""
    _LIVE.add(loop)


def arm_exit_hook() -> None:
    """Register the exit hook (once), after the first worker exists."""
    global _ARMED
    with _ARM_LOCK:
        if not _ARMED:
            _ARMED = True
            atexit.register(stop_loops_at_exit)


def stop_loops_at_exit() -> None:
    """Stop every tracked loop that is still running and wait for it (briefly)."""
    for loop in list(_LIVE):
        if loop.running:
            quiet(loop.stop_all)
            loop.wait(10)
