"""Pointing an agent CLI at the user's own endpoint, and the private config homes that needs.

Owns: `Endpoint` (base URL, API-key variable, config-home root, price, retries — the options the
Codex, Gemini, opencode, pi and kimi runners share), `worker_home` (a private per-worker config
directory: one per runner and workspace, so a resumed session finds its files again) and
`runner_file` (a file the runner writes once per content, e.g. a policy or agent spec).
Invariants: nothing here writes into the user's own CLI config (`~/.codex`, `~/.gemini`,
`~/.config/opencode`, `~/.pi`, `~/.kimi`); private homes live under the root the user gave or
under one temporary directory this process owns and removes at exit; an API key is never
written into a file or argv — configs name the variable, or the key travels in the worker's
environment, where ralphnb redacts it.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import RunnerError
from .prices import Price

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_URL = re.compile(r"^https?://[^\s]+$")
_lock = threading.Lock()
_temp_root: Path | None = None


@dataclass(frozen=True)
class Endpoint:
    """Where a runner's CLI sends its model requests, when not the CLI's own default.

    `base_url`: the API root (e.g. `http://127.0.0.1:8000/v1`); `api_key_env`: the name of the
    variable holding its key (passed through to the worker, never copied into a file);
    `home`: the directory under which private per-worker config homes are made (default: a
    temporary directory when `base_url` is given, else the CLI's usual home); `price`: USD per
    million input/output tokens for cost estimates; `max_retries`: the CLI's API retries
    (0 = none; None = the CLI's default).
    """

    base_url: str | None = None
    api_key_env: str | None = None
    home: str | None = None
    price: Price | None = None
    max_retries: int | None = None

    @classmethod
    def make(
        cls,
        runner: str,
        *,
        base_url: str | None = None,
        api_key_env: str | None = None,
        home: str | os.PathLike[str] | None = None,
        price: Price | None = None,
        max_retries: int | None = None,
    ) -> Endpoint:
        """Validated options (RunnerError naming the runner and the bad value)."""
        if base_url is not None and not _URL.match(str(base_url)):
            raise RunnerError(f"{runner} runner: base_url {base_url!r} is not an http(s) URL")
        if api_key_env is not None and not _ENV_NAME.match(str(api_key_env)):
            raise RunnerError(
                f"{runner} runner: api_key_env {api_key_env!r} must be a variable name "
                "(the key itself stays in your environment)"
            )
        if price is not None:
            price = (float(price[0]), float(price[1]))
        if max_retries is not None and int(max_retries) < 0:
            raise RunnerError(f"{runner} runner: max_retries must be >= 0")
        return cls(
            base_url=str(base_url).rstrip("/") if base_url else None,
            api_key_env=api_key_env,
            home=os.fspath(home) if home is not None else None,
            price=price,
            max_retries=None if max_retries is None else int(max_retries),
        )

    @property
    def private(self) -> bool:
        """Does the runner give its CLI a private config home?"""
        return self.base_url is not None or self.home is not None

    def passthrough(self, patterns: tuple[str, ...]) -> tuple[str, ...]:
        """A runner's passed-through variable patterns plus this endpoint's API-key variable."""
        return (*patterns, self.api_key_env) if self.api_key_env else patterns

    def api_key(self, extra: Mapping[str, str] | None = None) -> str | None:
        """The key's value: from `extra` (a runner's `env=`), else the environment; None when no
        variable is named or it is unset."""
        if not self.api_key_env:
            return None
        return {**os.environ, **(extra or {})}.get(self.api_key_env)


def _owned_root() -> Path:
    """This process's temporary directory for private homes (removed at interpreter exit)."""
    global _temp_root
    with _lock:
        if _temp_root is None or not _temp_root.is_dir():
            _temp_root = Path(tempfile.mkdtemp(prefix="ralphnb-agent-homes-"))
            atexit.register(shutil.rmtree, _temp_root, True)
        return _temp_root


def worker_home(runner: str, workspace: str | os.PathLike[str], root: str | None = None) -> Path:
    """The private config home of `runner` for the worker in `workspace` (created, mode 0700).

    Stable for a workspace, so a later iteration or a resume finds the CLI's session files."""
    ws = Path(workspace).resolve()
    digest = hashlib.sha1(str(ws).encode()).hexdigest()[:10]
    slug = re.sub(r"[^A-Za-z0-9_.-]", "_", ws.name)[:40] or "ws"
    base = Path(root).expanduser() if root is not None else _owned_root()
    home = base / f"{runner}-{slug}-{digest}"
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    return home


def cache_dir() -> Path:
    """ralphnb's own cache directory (`$XDG_CACHE_HOME/ralphnb`, else `~/.cache/ralphnb`), for
    files a CLI refuses to read from a world-writable place such as /tmp."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ralphnb"


def runner_file(name: str, text: str, *, cached: bool = False) -> Path:
    """A file holding `text`, written once per content: in this process's own temporary
    directory, or (`cached`) in ralphnb's cache directory, created mode 0700."""
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    stem, dot, ext = name.partition(".")
    folder = cache_dir() if cached else _owned_root() / "files"
    path = folder / f"{stem}-{digest}{dot}{ext}"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(path.name + f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return path


def write_config(path: Path, text: str) -> Path:
    """Write a config file in a private home (atomically; unchanged content is not rewritten)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.read_text(encoding="utf-8") == text:
            return path
    except OSError:
        pass
    tmp = path.with_name(path.name + f".{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


__all__ = ["Endpoint", "cache_dir", "runner_file", "worker_home", "write_config"]
