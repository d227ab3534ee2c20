"""Which agent a loop runs when its caller names none: there is no silent default.

Owns: `choose_runner(repo, runner)` -> (Runner, where the choice came from), in this order: the
argument; else `agent.runner` of ralph's configuration (`configured_runner`, through the queue
room's resolver: the project's `.ralph/config.jsonc`, else the user's global ralph config); else the
demo agent, but only in the sample repository `ralphnb.demo` makes (`has_sample_mark`, the
marker file `SAMPLE_MARK` it writes); else a `RunnerError` of one line saying how to choose.
Also the pure order of that choice (`pick_runner`).
A configured runner is built by `runner_from_config` from the keys a user set (`user_agent`:
`runner`, `model`, the `<runner>_bin` paths such as `pi_bin`), never from ralph's defaults.
Invariants: only reads files; a missing file or a null/absent key means "not configured"; a
value of the wrong type or a file that does not parse is an error naming the file (and key).
A task's own `agent.runner` still wins per task (the driver).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import RunnerError
from ..queue.config import resolve_config
from ..runners import get_runner, runner_from_config
from ..runners.base import Runner

#: Written (git-ignored) into every repository `ralphnb.demo.sample.create_sample_repo` makes.
SAMPLE_MARK = Path(".ralph") / "cache" / "ralphnb" / "sample-repo"

SAMPLE_SOURCE = "sample repository"
ARGUMENT_SOURCE = "argument"

HOW_TO_CHOOSE = (
    'choose one with runner="claude" (Python), --runner claude (ralphnb run), '
    'or agent.runner in .ralph/config.jsonc ({"agent": {"runner": "claude"}})'
)


#: The `agent` keys that choose and locate a runner.
RUNNER_KEYS = ("runner", "model") + tuple(
    f"{n}_bin" for n in ("claude", "codex", "gemini", "opencode", "cursor", "pi", "kimi")
)


def user_agent(cfg: Any) -> dict[str, Any]:
    """The `RUNNER_KEYS` of a resolved config that a user set (not ralph's defaults)."""
    return {
        k: getattr(cfg.agent, k)
        for k in RUNNER_KEYS
        if cfg.source(f"agent.{k}") not in (None, "default") and getattr(cfg.agent, k)
    }


def configured_runner(repo: str | Path) -> tuple[str, str] | None:
    """(runner name, the config file it came from) from ralph's configuration, resolved as ralph
    resolves it (`ralphnb.config`: the project's file wins over the user's global one, under
    ralph's trust rules; a bad config is an error naming file and key); None when none is set."""
    cfg = resolve_config(repo, warn=False)
    name = cfg.agent.runner
    if name is None:
        return None
    source = cfg.source("agent.runner") or "config"
    return name, str(cfg.files.get(source, source))


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
        if source not in (ARGUMENT_SOURCE, SAMPLE_SOURCE):  # from configuration: its bins too
            return runner_from_config(user_agent(resolve_config(repo, warn=False))), source
        return get_runner(what), source
    except RunnerError as exc:
        if source in (ARGUMENT_SOURCE, SAMPLE_SOURCE):
            raise
        raise RunnerError(f"{exc} (agent.runner in {source})", runner=str(what)) from None
