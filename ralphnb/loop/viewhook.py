"""The loop's one lazy hook into the view: the dashboard module, imported only when asked.

Owns: `widgets()`, which the local `Loop` and the attached client (`attached.AttachedLoop`) both
call for `_repr_mimebundle_` and `dashboard`. Invariant: importing the loop imports no widget
library (the view imports the loop, not the other way round); this is the only upward import.
"""

from __future__ import annotations

from types import ModuleType


def widgets() -> ModuleType:
    """`ralphnb.view.widgets`, imported now (it needs ipywidgets)."""
    from ..view import widgets as module

    return module
