"""The repository's ralph configuration: the `queue` object of `.ralph/config.jsonc`.

Owns: `CONFIG_PATH`, the `QueueSettings` ralphnb honours (queue file, done file, id prefix and
id width) and how they are read: `queue_settings` (pure: a parsed config in, settings out) and
`load_queue_settings` (reads the repo's `.ralph/config.jsonc` as JSONC).

Invariants: only the repository's own config file is read -- never a user or global one; a
missing file, a missing `queue` object or a null/absent key means ralph's default. Every value
is type-checked; a bad one raises `QueueError` naming the config file and the key
(`queue.<key>`), before anything is written. Configured paths are repo-relative and stay
inside the repo lexically (not absolute, no `..` escape, not under the lock directory), the
two files differ, and a configured prefix is one `ralphnb.ids` accepts. The lock directory
`.ralph/lock/` is not configurable (it is not in ralph either). Other keys are left to ralph.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import QueueError
from .ids import DEFAULT_PREFIX, DEFAULT_WIDTH, MAX_WIDTH, is_id_prefix
from .jsonio import read_jsonc

CONFIG_PATH = ".ralph/config.jsonc"
DEFAULT_QUEUE_FILE = ".ralph/queue.jsonc"
DEFAULT_DONE_FILE = ".ralph/done.jsonc"
_LOCK_DIR = ".ralph/lock"


@dataclass(frozen=True)
class QueueSettings:
    """The queue settings ralphnb uses. Paths are normalized, repo-relative, `/`-separated.

    `id_prefix`/`id_width` are None when the config does not set them; `prefix`/`width` are
    what every id must have (ralph's `RQ`/4 when unset). `max_dependency_depth` is where
    ralph starts warning about dependency chains.
    """

    file: str = DEFAULT_QUEUE_FILE
    done_file: str = DEFAULT_DONE_FILE
    id_prefix: str | None = None
    id_width: int | None = None
    max_dependency_depth: int = 10

    @property
    def prefix(self) -> str:
        """The prefix for an empty queue (the configured one, else ralph's default)."""
        return self.id_prefix or DEFAULT_PREFIX

    @property
    def width(self) -> int:
        return self.id_width or DEFAULT_WIDTH


def _where(path: object) -> str:
    return str(path) if path is not None else CONFIG_PATH


def task_error(path: object, key: str, why: str) -> QueueError:
    return QueueError(
        f"{_where(path)}: queue.{key} {why}",
        path=path,  # type: ignore[arg-type]
        field=f"queue.{key}",
    )


def _rel_path(value: object, key: str, path: object) -> str:
    if not isinstance(value, str):
        raise task_error(
            path, key, f"must be a path relative to the repo root (a string), not {value!r}"
        )
    if not value.strip() or "\0" in value:
        raise task_error(
            path, key, f"must be a non-empty path relative to the repo root, not {value!r}"
        )
    text = value.replace("\\", "/")
    if text.startswith(("/", "~")) or (len(text) > 1 and text[1] == ":"):
        raise task_error(path, key, f"must be relative to the repo root, not {value!r}")
    norm = posixpath.normpath(text)
    if norm in (".", "..") or norm.startswith("../"):
        raise task_error(
            path, key, f"{value!r} is outside the repository; paths must stay inside it"
        )
    if norm == _LOCK_DIR or norm.startswith(_LOCK_DIR + "/"):
        raise task_error(path, key, f"{value!r} is inside the lock directory {_LOCK_DIR}/")
    return norm


def queue_settings(config: Any, *, path: str | Path | None = None) -> QueueSettings:
    """The `queue` settings of a parsed ralph config (`path` names the file in errors)."""
    if config is None:
        return QueueSettings()
    if not isinstance(config, dict):
        raise QueueError(
            f"{_where(path)}: the config must be a JSON object, not {type(config).__name__}",
            path=path,
        )
    q = config.get("queue")
    if q is None:
        return QueueSettings()
    if not isinstance(q, dict):
        raise QueueError(
            f"{_where(path)}: queue must be an object, not {q!r}", path=path, field="queue"
        )
    file = DEFAULT_QUEUE_FILE if q.get("file") is None else _rel_path(q["file"], "file", path)
    done = (
        DEFAULT_DONE_FILE
        if q.get("done_file") is None
        else _rel_path(q["done_file"], "done_file", path)
    )
    if file == done:
        raise task_error(path, "done_file", f"is the same file as queue.file ({file!r})")
    prefix = q.get("id_prefix")
    if isinstance(prefix, str):
        prefix = prefix.strip().upper()  # as ralph's resolve_id_prefix reads it
    if prefix is not None and not is_id_prefix(prefix):
        raise task_error(
            path,
            "id_prefix",
            f"must be an uppercase letter then up to 15 uppercase "
            f"letters or digits (like RQ), not {prefix!r}",
        )
    width = q.get("id_width")
    if width is not None and (type(width) is not int or not 1 <= width <= MAX_WIDTH):
        raise task_error(
            path, "id_width", f"must be an integer from 1 to {MAX_WIDTH}, not {width!r}"
        )
    depth = q.get("max_dependency_depth")
    if depth is not None and (type(depth) is not int or not 1 <= depth <= 100):
        raise task_error(
            path, "max_dependency_depth", f"must be an integer from 1 to 100, not {depth!r}"
        )
    return QueueSettings(
        file=file,
        done_file=done,
        id_prefix=prefix,
        id_width=width,
        max_dependency_depth=10 if depth is None else depth,
    )


def load_queue_settings(repo: str | Path) -> QueueSettings:
    """The queue settings of `repo`'s `.ralph/config.jsonc` (defaults when there is none)."""
    p = Path(repo) / CONFIG_PATH
    if not p.exists() and not p.is_symlink():
        return QueueSettings()
    if p.is_dir():
        raise QueueError(f"{p}: is a directory, not a config file", path=p)
    return queue_settings(read_jsonc(p), path=p)
