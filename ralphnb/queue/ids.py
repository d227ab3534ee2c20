"""Task ids: the one place that decides what a valid id looks like.

Owns: the `RQ-NNNN` pattern (prefix and digits configurable like ralph's), ralph's rule that
every id has the configured prefix and exactly the configured width (`id_problem`), parsing the
number out of an id, and formatting the next one. An id that passes `validate_task_id` is safe
to use as a path component and inside a git branch name.

ralph trims an id and upper-cases its prefix before comparing; ralphnb takes the id as written
(no blanks, upper-case prefix), because it becomes a path and a branch name.
"""

from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=16)
def id_matcher(prefix: str, width: int):  # noqa: ANN201 - a compiled pattern's bound match
    """`match` of the ids ralph accepts for this prefix and width (`RQ`, 4 -> `RQ-0001`)."""
    return re.compile(rf"{re.escape(prefix)}-[0-9]{{{width}}}\Z").match


def id_problem(value: object, prefix: str, width: int) -> str | None:
    """Why `value` is not an id of this queue (ralph's messages), or None when it is one."""
    if id_matcher(prefix, width)(value) if isinstance(value, str) else False:
        return None
    example = format_task_id(1, prefix=prefix, width=width)
    if not isinstance(value, str) or not value.strip():
        return f"must be a task id like {example}"
    head, dash, digits = value.partition("-")
    if not dash:
        return f"{value!r} has no '-': ids are PREFIX-NUMBER, like {example}"
    if head != prefix:
        return (
            f"{value!r} has prefix {head!r} but this queue's prefix is {prefix!r} "
            f"(queue.id_prefix); ids look like {example}"
        )
    if not digits.isascii() or not digits.isdigit():
        return f"{value!r} has non-digits after the '-'; ids look like {example}"
    return (
        f"{value!r} has {len(digits)} digits but this queue's ids have {width} "
        f"(queue.id_width); pad it like {example}"
    )
