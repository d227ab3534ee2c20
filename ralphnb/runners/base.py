"""The runner interface: what every agent CLI adapter provides, and the tolerant stream parser.

Owns: `CommandSpec` (argv + environment additions + optional stdin file), `Runner` (executable
lookup, environment pass-through, argument validation, `resume_command`, `diagnose`),
`StreamParser` (one per attempt; turns output lines into normalized event dicts; estimates a
cost from a price table only when the CLI reports none, and marks it `cost_estimated`) and
`TextParser`.
Invariants: argv is always a list (never a shell string); values a task controls (model, session
id) are validated and passed as `--flag=value`; `StreamParser.feed` never raises — a line that is
not JSON, or JSON it does not understand, becomes a `{"type": "text"}` event or nothing.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, ClassVar

import orjson

from ..errors import RunnerError
from .prices import Price, estimate_cost

#: Longest text kept in one event (bounded memory per worker; the log file has everything).
MAX_TEXT = 4000

#: Variables every CLI runner passes through when set: proxies and CA bundles.
NETWORK_ENV = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    "REQUESTS_CA_BUNDLE",
)

_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:/@+\-\[\]]{0,199}$")


@dataclass
class CommandSpec:
    """What to spawn: `argv`, `env` additions on top of `process.build_env()`, and stdin."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    stdin_path: Path | None = None


def task_dict(task: Any) -> dict[str, Any]:
    """A task as a plain dict, whether given a dict or an object with `to_dict()`."""
    if isinstance(task, Mapping):
        return dict(task)
    to_dict = getattr(task, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    raise TypeError(f"expected a task dict or Task, got {type(task).__name__}")


def check_value(runner: str, what: str, value: str) -> str:
    """Reject a flag value that could be read as another flag or is not a plain identifier."""
    value = str(value)
    if not _SAFE_VALUE.match(value):
        raise RunnerError(
            f"{runner} runner: {what} {value!r} is not allowed (letters, digits and ._:/@+-[] "
            "only, not starting with '-'); fix the task's agent field or the runner options.",
            runner=runner,
        )
    return value


def clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def as_int(v: Any) -> int:
    """A token count from a stream field; 0 for anything that is not a number."""
    try:
        return int(v or 0)
    except (TypeError, ValueError):
        return 0


def as_float(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def path_with_ralphnb(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """`{"PATH": ...}` with this interpreter's scripts directory first when the `ralphnb`
    command lives there but is not on PATH (a kernel started from an unactivated venv), so an
    agent can run `ralphnb task done ID`; `{}` when nothing needs changing."""
    environ = os.environ if environ is None else environ
    path = environ.get("PATH", os.defpath)
    bindir = os.path.dirname(sys.executable)
    if shutil.which("ralphnb", path=path) or not os.path.exists(os.path.join(bindir, "ralphnb")):
        return {}
    return {"PATH": bindir + os.pathsep + path}


class StreamParser:
    """Turns one attempt's output lines into normalized events; fresh per attempt.

    Events: session, message, tool, usage, result, retry, error, text (see the module contract).
    Subclasses implement `handle(obj)` for JSON objects. Totals seen so far are kept on the
    parser (`session_id`, `turns`, `tokens_in`, `tokens_out`, `cost_usd`, `cost_estimated`,
    `last_message`, `is_error`) and returned by `summary()`. `model` / `price` (USD per million
    input and output tokens): what an estimate uses when the CLI reports no cost.
    """

    runner: ClassVar[str] = "text"

    def __init__(self, *, model: str | None = None, price: Price | None = None) -> None:
        self.model = model
        self.price = price
        self.cost_estimated = False
        self.session_id: str | None = None
        self.turns: int | None = None
        self.tokens_in: int | None = None
        self.tokens_out: int | None = None
        self.cost_usd: float | None = None
        self.last_message: str | None = None
        self.is_error: bool | None = None
        self.result: dict[str, Any] | None = None

    def feed(self, line: str) -> list[dict[str, Any]]:
        """Events for one output line; never raises."""
        stripped = line.strip()
        if not stripped:
            return []
        if stripped[0] != "{":
            return self.text(line)
        try:
            obj = orjson.loads(stripped)  # the per-line cost of a flood of output
        except ValueError:  # orjson is stricter (NaN, huge ints): the standard parser decides
            try:
                obj = json.loads(stripped)
            except ValueError:
                return self.text(line)
        if not isinstance(obj, dict):
            return self.text(line)
        try:
            return self.handle(obj)
        except Exception:  # a shape we did not foresee: keep the line, never crash the loop
            return self.text(line)

    def text(self, line: str) -> list[dict[str, Any]]:
        return [{"type": "text", "text": clip(line.rstrip("\r\n"))}]

    def handle(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        return []

    # -- helpers for subclasses -------------------------------------------------------------
    def _session(self, sid: Any) -> list[dict[str, Any]]:
        if not isinstance(sid, str) or not sid or sid == self.session_id:
            return []
        self.session_id = sid
        return [{"type": "session", "session_id": sid}]

    def _message(self, text: Any) -> list[dict[str, Any]]:
        if not isinstance(text, str) or not text.strip():
            return []
        self.last_message = clip(text.strip())
        return [{"type": "message", "text": self.last_message}]

    def _usage(self) -> dict[str, Any]:
        ev: dict[str, Any] = {
            "type": "usage",
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
        }
        if self.turns is not None:
            ev["turns"] = self.turns
        if self.cost_usd is not None:
            ev["cost_usd"] = self.cost_usd
            if self.cost_estimated:
                ev["cost_estimated"] = True
        return ev

    def _estimate(self) -> None:
        """Fill `cost_usd` from the price table when the CLI reported none (marked estimated)."""
        if self.cost_usd is not None and not self.cost_estimated:
            return
        cost = estimate_cost(self.model, self.tokens_in, self.tokens_out, price=self.price)
        if cost is not None:
            self.cost_usd, self.cost_estimated = cost, True

    def _result(self, *, is_error: bool, text: str | None = None) -> dict[str, Any]:
        self._estimate()
        self.is_error = is_error
        if text:
            self.last_message = clip(text.strip()) or self.last_message
        self.result = {
            "type": "result",
            "turns": self.turns,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": self.cost_usd,
            "is_error": is_error,
            "text": clip(text) if text else self.last_message,
            "session_id": self.session_id,
        }
        if self.cost_estimated:
            self.result["cost_estimated"] = True
        return self.result

    def summary(self) -> dict[str, Any]:
        """Totals seen so far in this attempt."""
        return {
            "session_id": self.session_id,
            "turns": self.turns,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": self.cost_usd,
            "cost_estimated": self.cost_estimated,
            "last_message": self.last_message,
            "is_error": self.is_error,
        }


class TextParser(StreamParser):
    """For plain commands: every line is a `text` event; JSON lines are kept as text too."""

    def handle(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        return self.text(json.dumps(obj))


class Runner:
    """Base class of the agent CLI adapters.

    `executable`: program name or path (default: `default_executables` looked up on PATH);
    `model`: passed as the CLI's model flag; `extra_args`: appended before the prompt;
    `env`: extra variables for the worker. The runner's own variables (`env_passthrough`
    patterns, e.g. `ANTHROPIC_*`) pass through from the parent environment.
    `bypass_permissions`: opt-in to the CLI's "approve everything" mode; never the default.
    """

    name: ClassVar[str] = "runner"
    default_executables: ClassVar[tuple[str, ...]] = ()
    install_hint: ClassVar[str] = ""
    failure_hint: ClassVar[str] = "See the worker's log for what went wrong."
    env_passthrough: ClassVar[tuple[str, ...]] = ()
    #: Can `command(..., session_id=...)` continue an earlier session of this CLI?
    supports_resume: ClassVar[bool] = True

    def __init__(
        self,
        executable: str | os.PathLike[str] | None = None,
        model: str | None = None,
        extra_args: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
        *,
        bypass_permissions: bool = False,
        effort: str | None = None,
    ) -> None:
        self.executable = os.fspath(executable) if executable is not None else None
        self.model = model
        self.extra_args = [str(a) for a in extra_args]
        self.env = {str(k): str(v) for k, v in (env or {}).items()}
        self.bypass_permissions = bool(bypass_permissions)
        self.effort = effort

    def __repr__(self) -> str:
        bits = [f"executable={self.executable!r}"] if self.executable else []
        if self.model:
            bits.append(f"model={self.model!r}")
        return f"{type(self).__name__}({', '.join(bits)})"

    def with_options(self, **changes: Any) -> Runner:
        """A copy with some attributes changed (e.g. `model=` from a task's agent field)."""
        new = copy.copy(self)
        new.extra_args = list(self.extra_args)
        new.env = dict(self.env)
        for k, v in changes.items():
            if not hasattr(new, k):
                raise TypeError(f"{type(self).__name__} has no option {k!r}")
            setattr(new, k, v)
        return new

    # -- lookups -----------------------------------------------------------------------------
    def resolve_executable(self) -> str:
        """The absolute path of the CLI; RunnerError naming it and how to install it."""
        candidates = [self.executable] if self.executable else list(self.default_executables)
        for cand in candidates:
            if os.sep in cand or (os.altsep and os.altsep in cand):
                if os.path.isfile(cand) and os.access(cand, os.X_OK):
                    return os.path.abspath(cand)
                continue
            found = shutil.which(cand)
            if found:
                return found
        names = " or ".join(repr(c) for c in candidates) or "(none configured)"
        hint = f" Install it: {self.install_hint}." if self.install_hint else ""
        raise RunnerError(
            f"{self.name} runner: executable {names} not found on PATH.{hint} "
            f"Or pass executable='/path/to/cli' to ralphnb.{type(self).__name__}(...).",
            runner=self.name,
            command=candidates,
        )

    def passthrough_patterns(self) -> tuple[str, ...]:
        """Names (`fnmatch` patterns) of the parent's variables this CLI needs."""
        return tuple(self.env_passthrough)

    def passthrough_env(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The parent's variables this runner's CLI needs (API keys, base URLs, proxies)."""
        environ = os.environ if environ is None else environ
        patterns = (*self.passthrough_patterns(), *NETWORK_ENV)
        return {k: v for k, v in environ.items() if any(fnmatchcase(k, p) for p in patterns)}

    def base_env(self) -> dict[str, str]:
        env = self.passthrough_env()
        env.update(path_with_ralphnb())
        env.update(self.env)
        return env

    # -- the interface -----------------------------------------------------------------------
    def command(
        self,
        task: Any,
        *,
        workspace: Path,
        prompt_file: Path,
        iteration: int,
        session_id: str | None = None,
    ) -> CommandSpec:
        """The argv, environment additions and stdin for one attempt at `task`.

        `prompt_file` must already hold the prompt (see `build_prompt`).
        """
        raise NotImplementedError

    def resume_command(
        self,
        task: Any,
        *,
        workspace: Path,
        prompt_file: Path,
        iteration: int,
        session_id: str,
    ) -> CommandSpec:
        """The command that continues session `session_id` with the prompt in `prompt_file`
        (e.g. a CI gate's failure report), in the same workspace and config home as before.
        RunnerError when this runner cannot resume or the id is not a plain identifier."""
        if not self.supports_resume:
            raise RunnerError(
                f"{self.name} runner cannot resume a session; run the task again instead",
                runner=self.name,
            )
        if not session_id:
            raise RunnerError(f"{self.name} runner: no session id to resume", runner=self.name)
        check_value(self.name, "session id", session_id)
        return self.command(
            task,
            workspace=workspace,
            prompt_file=prompt_file,
            iteration=iteration,
            session_id=session_id,
        )

    def parser(self) -> StreamParser:
        """A fresh parser for one attempt's output."""
        return TextParser()

    def display_command(self) -> str:
        """The program as a user would type it (for messages)."""
        return os.path.basename(self.executable or (self.default_executables or (self.name,))[0])

    def diagnose(
        self,
        returncode: int | None,
        parser: StreamParser | None = None,
        stderr: str = "",
        *,
        signal: int | None = None,
    ) -> str | None:
        """A one-line explanation of a failed attempt naming the runner, the command and what to
        do; None when the attempt succeeded (exit 0 and no error result)."""
        failed = returncode not in (0, None) or signal is not None
        if not failed and not (parser is not None and parser.is_error):
            return None
        exe = self.display_command()
        how = (
            f"killed by signal {signal}" if signal is not None else f"exited with code {returncode}"
        )
        if not failed:  # exit 0, yet the stream says it failed (a refused write, an API error)
            how += " but failed"
        if parser is not None and parser.is_error and parser.last_message:
            what = f"{how}: {parser.last_message}"
        elif parser is not None and parser.session_id is None and parser.result is None:
            what = f"{how} before starting a session"
        else:
            what = how
        tail = " ".join(stderr.strip().splitlines()[-3:])
        if tail and not what.startswith(f"{how}: "):  # stderr only when the stream said nothing
            what += f" (stderr: {clip(tail, 300)})"
        return f"{self.name} runner: `{exe}` {what}. {self.failure_hint}"

    # -- helpers -----------------------------------------------------------------------------
    def _flag(self, flag: str, what: str, value: str | None) -> list[str]:
        if value is None or value == "":
            return []
        return [f"{flag}={check_value(self.name, what, value)}"]

    @staticmethod
    def _read_prompt(prompt_file: Path) -> str:
        try:
            return Path(prompt_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise RunnerError(f"cannot read prompt file {prompt_file}: {exc}") from exc


__all__ = [
    "MAX_TEXT",
    "CommandSpec",
    "Runner",
    "StreamParser",
    "TextParser",
    "as_float",
    "as_int",
    "check_value",
    "clip",
    "path_with_ralphnb",
    "task_dict",
]
