"""Task ids: the one place that decides what a valid id looks like.

Owns: the `RQ-NNNN` pattern (prefix and digits configurable like ralph's), parsing the number
out of an id, and formatting the next one. An id that passes `validate_task_id` is safe to use
as a path component and inside a git branch name.
"""

from __future__ import annotations

import re

from ..errors import QueueError

DEFAULT_PREFIX = "RQ"
DEFAULT_WIDTH = 4
MAX_WIDTH = 12  # digits an id may have
_PREFIX = r"[A-Z][A-Z0-9]{0,15}"
_ID_RE = re.compile(rf"^(?P<prefix>{_PREFIX})-(?P<num>[0-9]{{1,{MAX_WIDTH}}})\Z")
_PREFIX_RE = re.compile(rf"^{_PREFIX}\Z")


def is_task_id(value: object) -> bool:
    """True when `value` is a string like `RQ-0001`."""
    return isinstance(value, str) and _ID_RE.match(value) is not None


def is_id_prefix(value: object) -> bool:
    """True when `value` can prefix an id (`RQ`, `TASK`): any prefix, not only the default."""
    return isinstance(value, str) and _PREFIX_RE.match(value) is not None


def validate_task_id(value: object, *, path: object = None) -> str:
    """Return `value` if it is a valid task id, else raise `QueueError` naming it."""
    if not is_task_id(value):
        raise QueueError(
            f"{value!r} is not a task id: ids look like RQ-0001 (a prefix, '-', digits)",
            path=path,  # type: ignore[arg-type]
            task_id=str(value),
            field="id",
        )
    return value  # type: ignore[return-value]


def id_number(task_id: str) -> int:
    """The numeric part of a valid id (`RQ-0042` -> 42)."""
    m = _ID_RE.match(task_id)
    if m is None:
        raise QueueError(f"{task_id!r} is not a task id", task_id=task_id, field="id")
    return int(m.group("num"))


def format_task_id(number: int, *, prefix: str = DEFAULT_PREFIX, width: int = DEFAULT_WIDTH) -> str:
    """`format_task_id(7)` -> `RQ-0007`."""
    return f"{prefix}-{number:0{width}d}"
