"""One task as `Queue` hands it out: `Task`, a read-only view of a task dict in ralph's form.

Owns: attribute access with ralph's defaults, `to_dict`, equality and repr. Never: reads or
writes a file; a `Task` is a snapshot (a copy), changed only through `Queue`.
"""

from __future__ import annotations

import copy
from typing import Any

from .ralphjson import scalar_text
from .rules import ALLOWED, DEFAULTS


class Task:
    """One task. Every ralph field is an attribute (with ralph's default when absent)."""

    __slots__ = ("_data", "file")

    def __init__(self, data: dict[str, Any], file: str = "queue") -> None:
        self._data = data
        self.file = file  # "queue" or "done": which file it was read from

    def __getattr__(self, name: str) -> Any:
        if name in DEFAULTS or name in ALLOWED:
            value = self._data.get(name, DEFAULTS.get(name))
            if name == "custom_fields":
                return {k: scalar_text(v) for k, v in (value or {}).items()}
            return copy.deepcopy(value) if isinstance(value, list | dict) else value
        raise AttributeError(name)

    def to_dict(self) -> dict[str, Any]:
        """The task's JSON form as ralph holds it (a copy, in ralph's field order)."""
        return copy.deepcopy(self._data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Task) and other._data == self._data

    def __repr__(self) -> str:
        return (
            f"Task({self._data.get('id')!r}, {self._data.get('status', 'todo')!r}, "
            f"{self._data.get('title')!r})"
        )
