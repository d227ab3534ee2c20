"""Which agent a loop runs when its caller names none: there is no silent default.

Owns: `choose_runner(repo, runner)` -> (Runner, where the choice came from), in this order: the
argument; else `agent.runner` of ralph's configuration (`configured_runner`: the project's
`.ralph/config.jsonc`, else the user's global ralph config, `global_config_path`); else the
demo agent, but only in the sample repository `ralphnb.demo` makes (`has_sample_mark`, the
marker file `SAMPLE_MARK` it writes); else a `RunnerError` of one line saying how to choose.
Also the pure order of that choice (`pick_runner`).
Invariants: only reads files; a missing file or a null/absent key means "not configured"; a
value of the wrong type or a file that does not parse is an error naming the file (and key).
`configured_runner` is deliberately this small: the queue room's full ralph configuration
resolver replaces it later. A task's own `agent.runner` still wins per task (the driver).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import RalphError, RunnerError
from ..queue.config import CONFIG_PATH
from ..queue.jsonio import read_jsonc
from ..runners import get_runner
from ..runners.base import Runner

#: Written (git-ignored) into every repository `ralphnb.demo.sample.create_sample_repo` makes.
SAMPLE_MARK = Path(".ralph") / "cache" / "ralphnb" / "sample-repo"

SAMPLE_SOURCE = "sample repository"
ARGUMENT_SOURCE = "argument"

HOW_TO_CHOOSE = (
    'choose one with runner="claude" (Python), --runner claude (ralphnb run), '
    'or agent.runner in .ralph/config.jsonc ({"agent": {"runner": "claude"}})'
)


def global_config_path(env: Mapping[str, str] | None = None) -> Path:
    """The user's global ralph config: `$XDG_CONFIG_HOME/ralph/config.jsonc`, else
    `~/.config/ralph/config.jsonc` (a relative XDG_CONFIG_HOME is ignored, as XDG says)."""
    env = os.environ if env is None else env
    xdg = env.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path(os.path.expanduser("~")) / ".config"
    return base / "ralph" / "config.jsonc"


def _runner_in(path: Path) -> str | None:
    """`agent.runner` of the config file `path`; None when the file or the key is absent."""
    if not path.is_file():
        return None
    doc = read_jsonc(path)  # a syntax error names the file, line and column
    agent = doc.get("agent") if isinstance(doc, dict) else None
    name = agent.get("runner") if isinstance(agent, dict) else None
    if name is None:
        return None
    if not isinstance(name, str) or not name.strip():
        raise RalphError(f'{path}: agent.runner must be a runner name such as "claude"')
    return name


def configured_runner(repo: str | Path) -> tuple[str, str] | None:
    """(runner name, the config file it came from) from ralph's configuration: the project's
    `.ralph/config.jsonc` wins over the user's global one; None when neither sets one."""
    for path in (Path(repo) / CONFIG_PATH, global_config_path()):
        name = _runner_in(path)
        if name is not None:
            return name, str(path)
    return None


def has_sample_mark(repo: str | Path) -> bool:
    """True for a repository `ralphnb.demo` made (its marker file; never a look-alike)."""
    return (Path(repo) / SAMPLE_MARK).is_file()


def pick_runner(
    argument: Any, configured: tuple[str, str] | None, sample: bool
) -> tuple[Any, str] | None:
    """(what to run, where it came from) in the order of the module docstring; None when
    nothing chose one. Pure."""
    if argument is not None:
        return argument, ARGUMENT_SOURCE
    if configured is not None:
        return configured
    if sample:
        return "demo", SAMPLE_SOURCE
    return None


def choose_runner(repo: str | Path, runner: Any = None) -> tuple[Runner, str]:
    """The loop's runner and where it came from (see the module docstring), or RunnerError."""
    configured = configured_runner(repo) if runner is None else None
    picked = pick_runner(runner, configured, runner is None and has_sample_mark(repo))
    if picked is None:
        raise RunnerError(f"{repo}: no agent runner chosen; {HOW_TO_CHOOSE}")
    what, source = picked
    try:
        return get_runner(what), source
    except RunnerError as exc:
        if source in (ARGUMENT_SOURCE, SAMPLE_SOURCE):
            raise
        raise RunnerError(f"{exc} (agent.runner in {source})", runner=str(what)) from None
