"""The demo agent: a deterministic stand-in for an AI coding agent, run as its own process.

`python -m ralphnb.demo.agent --prompt-file PROMPT` (env RALPHNB_TASK_ID, RALPHNB_ITERATION,
RALPHNB_REPO, RALPHNB_WORKER). It reads its task from the prompt's JSON block (else from the
queue in RALPHNB_REPO), makes a real edit in its working directory, commits it when in git, and
marks the task done (`<python> -m ralphnb task done ID`) or prints the completion promise.
It writes Claude Code stream-json (system init, assistant text/tool_use, user tool_result,
result with num_turns, usage, total_cost_usd). No network; same task + iteration -> same output.

Task `custom_fields` (all strings): demo.file, demo.content (create the file or append a line),
demo.line (replace that 1-based line instead), demo.duration (seconds, default 2),
demo.iterations (iterations needed before finishing), demo.finish ("cli" default | "promise" |
"none"), demo.fail (exit code, e.g. "1"), demo.hang, demo.ignore_sigint, demo.children (N
sleeping children), demo.escape (a grandchild that calls setsid), demo.fix (the content it
writes instead when its prompt reports a failed CI gate: the fix). Stuck modes, in real seconds
whatever the speed: demo.silent (no output, no file change, until stopped), demo.repeat (the
same Read tool call over and over, every demo.step seconds), demo.steady=N (N steps of
demo.step seconds, default 0.5, each printing and appending a line to the task's file, then
finishing as usual). RALPHNB_DEMO_SPEED multiplies
every delay (0 = no delays). SIGINT exits 130 unless demo.ignore_sigint. Per agent, not per task
(what makes variants of one sweep differ): RALPHNB_DEMO_PRICE multiplies the reported cost
(default 1), RALPHNB_DEMO_FINISH overrides every task's demo.finish ("none": never finishes).

Phases (env RALPHNB_PHASE, RALPHNB_PHASES, RALPHNB_PLAN_FILE, set by the loop): `plan` writes a
plan to the plan file and changes nothing else; `implement` of a 3-phase task edits and commits
but leaves finishing to `review`, which reviews and finishes. `--resume ID` continues session
ID (its stream keeps that id). RALPHNB_DEMO_RECORD=<file>: each run appends one JSON line (its
argv, phase, session and prompt) to that file, for tests and demos to show what it was given.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..runners.phase_prompts import GATE_FAILED
from ..runners.prompt import task_from_prompt
from .modes import misbehave

PROMISE = "<promise>COMPLETE</promise>"
TRUTHY = ("1", "true", "yes", "on")
_SLEEPER = "import time\nwhile True: time.sleep(3600)"
_ESCAPER = (
    "import subprocess, sys\n"
    "p = subprocess.Popen([sys.executable, '-c', 'import os, time\\nos.setsid()\\n"
    "while True: time.sleep(3600)'], start_new_session=False,\n"
    "    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "print(p.pid, flush=True)\n"
)


class Agent:
    def __init__(
        self,
        task: dict[str, Any],
        *,
        iteration: int,
        cwd: Path,
        speed: float,
        model: str = "demo-agent-1",
        session_id: str | None = None,
        prompt: str = "",
    ) -> None:
        self.task = task
        self.tid = str(task.get("id", "RQ-0000"))
        self.title = str(task.get("title", ""))
        cf = task.get("custom_fields") or {}
        self.cf = {
            k[5:]: str(v) for k, v in cf.items() if isinstance(k, str) and k.startswith("demo.")
        }
        self.iteration = iteration
        self.cwd = cwd
        self.speed = speed
        self.model = model
        seed = f"ralphnb-demo/{self.tid}/{iteration}"
        self.session_id = session_id or str(uuid.uuid5(uuid.NAMESPACE_URL, seed))
        self.prompt = prompt
        self.phase = os.environ.get("RALPHNB_PHASE", "")
        self.phases = os.environ.get("RALPHNB_PHASES", "1")
        self.turns = 0
        self.tokens_in = 0
        self.tokens_out = 0
        self.started = time.monotonic()
        self.duration = self.float_field("duration", 2.0)

    # -- output ------------------------------------------------------------------------------
    def emit(self, obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    def sleep(self, seconds: float) -> None:
        if seconds > 0 and self.speed > 0:
            time.sleep(seconds * self.speed)

    def float_field(self, key: str, default: float) -> float:
        try:
            return float(self.cf.get(key, default))
        except ValueError:
            return default

    def int_field(self, key: str, default: int) -> int:
        try:
            return int(self.cf.get(key, default))
        except ValueError:
            return default

    def flag(self, key: str) -> bool:
        return self.cf.get(key, "").strip().lower() in TRUTHY

    def assistant(self, block: dict[str, Any]) -> None:
        self.turns += 1
        tin = 900 + 40 * self.turns + len(self.title)
        tout = 30 + len(json.dumps(block)) // 4
        self.tokens_in += tin
        self.tokens_out += tout
        self.emit(
            {
                "type": "assistant",
                "message": {
                    "id": f"msg_demo_{self.tid}_{self.iteration}_{self.turns}",
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [block],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": tin,
                        "output_tokens": tout,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                    },
                },
                "parent_tool_use_id": None,
                "session_id": self.session_id,
            }
        )

    def say(self, text: str) -> None:
        self.assistant({"type": "text", "text": text})

    def tool(
        self, name: str, tool_input: dict[str, Any], result: str, *, is_error: bool = False
    ) -> None:
        tool_id = f"toolu_demo_{self.turns + 1:02d}"
        self.assistant({"type": "tool_use", "id": tool_id, "name": name, "input": tool_input})
        self.emit(
            {
                "type": "user",
                "message": {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": tool_id,
                            "content": result,
                            "is_error": is_error,
                        }
                    ],
                },
                "parent_tool_use_id": None,
                "session_id": self.session_id,
            }
        )

    def result(self, text: str, *, is_error: bool = False) -> None:
        cost = round(
            (self.tokens_in * 3e-6 + self.tokens_out * 15e-6) * _env_float("PRICE", 1.0), 6
        )
        self.emit(
            {
                "type": "result",
                "subtype": "error_during_execution" if is_error else "success",
                "is_error": is_error,
                "duration_ms": int((time.monotonic() - self.started) * 1000),
                "duration_api_ms": int((time.monotonic() - self.started) * 800),
                "num_turns": self.turns,
                "result": text,
                "session_id": self.session_id,
                "total_cost_usd": cost,
                "usage": {
                    "input_tokens": self.tokens_in,
                    "output_tokens": self.tokens_out,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                },
            }
        )

    # -- actions -----------------------------------------------------------------------------
    def target(self) -> Path:
        rel = self.cf.get("file") or f"demo/{self.tid}.txt"
        path = (self.cwd / rel).resolve()
        if Path(rel).is_absolute() or not path.is_relative_to(self.cwd.resolve()):
            raise ValueError(f"demo.file {rel!r} is outside the workspace")
        return path

    def edit(self, content: str | None = None) -> str:
        path = self.target()
        content = content or self.cf.get("content") or f"{self.tid}: {self.title}"
        path.parent.mkdir(parents=True, exist_ok=True)
        rel = path.relative_to(self.cwd.resolve()).as_posix()
        if "line" in self.cf and path.exists():
            lines = path.read_text(encoding="utf-8").splitlines()
            n = max(1, self.int_field("line", 1))
            while len(lines) < n:
                lines.append("")
            lines[n - 1] = content
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            self.tool(
                "Edit",
                {"file_path": rel, "line": n, "new_string": content},
                f"The file {rel} has been updated.",
            )
        elif path.exists():
            old = path.read_text(encoding="utf-8")
            sep = "" if not old or old.endswith("\n") else "\n"
            path.write_text(old + sep + content + "\n", encoding="utf-8")
            self.tool(
                "Edit", {"file_path": rel, "append": content}, f"The file {rel} has been updated."
            )
        else:
            path.write_text(content + "\n", encoding="utf-8")
            self.tool(
                "Write",
                {"file_path": rel, "content": content + "\n"},
                f"File created successfully at: {rel}",
            )
        return rel

    def git(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        for k, v in (
            ("GIT_AUTHOR_NAME", "ralphnb demo agent"),
            ("GIT_AUTHOR_EMAIL", "demo-agent@ralphnb.invalid"),
        ):
            env.setdefault(k, v)
            env.setdefault(k.replace("AUTHOR", "COMMITTER"), env[k])
        return subprocess.run(
            ["git", *args],
            cwd=self.cwd,
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def commit(self, rel: str) -> None:
        if self.git("rev-parse", "--is-inside-work-tree").returncode != 0:
            return
        cmd = f'git add -- {rel} && git commit -m "{self.tid}: {self.title}"'
        add = self.git("add", "--", rel)
        out = add if add.returncode else self.git("commit", "-q", "-m", f"{self.tid}: {self.title}")
        msg = (out.stdout + out.stderr).strip() or "committed"
        self.tool("Bash", {"command": cmd}, msg, is_error=out.returncode != 0)

    def mark_done(self) -> bool:
        argv = [sys.executable, "-m", "ralphnb", "task", "done", self.tid]
        p = subprocess.run(
            argv,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        msg = (p.stdout + p.stderr).strip() or f"exit {p.returncode}"
        self.tool(
            "Bash", {"command": f"ralphnb task done {self.tid}"}, msg, is_error=p.returncode != 0
        )
        return p.returncode == 0

    def spawn_children(self) -> None:
        pids: list[int] = []
        for _ in range(self.int_field("children", 0)):
            p = subprocess.Popen(
                [sys.executable, "-c", _SLEEPER],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            pids.append(p.pid)
        escaped: list[int] = []
        if self.flag("escape"):
            p = subprocess.run(
                [sys.executable, "-c", _ESCAPER],
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                check=False,
            )
            escaped = [int(x) for x in p.stdout.split() if x.isdigit()]
        if pids or escaped:
            self.emit(
                {
                    "type": "system",
                    "subtype": "demo_children",
                    "session_id": self.session_id,
                    "pids": pids,
                    "escaped_pids": escaped,
                }
            )

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> int:
        self.emit(
            {
                "type": "system",
                "subtype": "init",
                "cwd": str(self.cwd),
                "session_id": self.session_id,
                "model": self.model,
                "tools": ["Bash", "Edit", "Read", "Write"],
                "permissionMode": "default",
                "apiKeySource": "none",
                "demo": True,
            }
        )
        self.spawn_children()
        step = self.duration / 4
        self.sleep(step)
        self.say(f"Reading task {self.tid}: {self.title} (iteration {self.iteration}).")
        code = misbehave(self, step)  # the modes tests use: silent, repeat, steady, hang, fail
        if code is not None:
            return code
        if self.phase == "plan":
            return self.plan()
        fixing = GATE_FAILED in self.prompt and "fix" in self.cf
        if self.phase == "review" and not fixing:
            self.sleep(step)
            self.say(f"Reviewed the changes for {self.tid}: they do what the task asks.")
            return self.finish(step, "reviewed")
        needed = max(1, self.int_field("iterations", 1))
        if self.iteration < needed:
            self.sleep(step * 2)
            msg = (
                f"Made progress on {self.tid} (iteration {self.iteration} of {needed}); "
                "not finished yet."
            )
            self.say(msg)
            self.result(msg)
            return 0
        self.sleep(step)
        if "# The plan" in self.prompt or "## The plan" in self.prompt:
            self.say(f"Following the plan for {self.tid}.")
        try:
            rel = self.edit(self.cf["fix"] if fixing else None)
        except (ValueError, OSError) as exc:
            msg = f"Cannot edit for {self.tid}: {exc}"
            self.say(msg)
            self.result(msg, is_error=True)
            return 2
        self.sleep(step)
        self.commit(rel)
        if self.phase == "implement" and self.phases == "3":  # the review phase finishes
            text = f"Implemented {self.tid}: edited {rel} and committed; ready for review."
            self.say(text)
            self.result(text)
            return 0
        return self.finish(step, rel)

    def plan(self) -> int:
        """The plan phase: write the plan file, change nothing else."""
        path = Path(os.environ.get("RALPHNB_PLAN_FILE") or f".ralph/cache/plans/{self.tid}.md")
        rel = self.cf.get("file") or f"demo/{self.tid}.txt"
        plan = f"# Plan for {self.tid}: {self.title}\n\n1. Edit {rel}.\n2. Commit it.\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(plan, encoding="utf-8")
        self.tool("Write", {"file_path": str(path), "content": plan}, f"Wrote {path}")
        text = f"Plan for {self.tid} written to {path}."
        self.say(text)
        self.result(text)
        return 0

    def finish(self, step: float, rel: str) -> int:
        """Mark the task done (or print the promise, or neither), as demo.finish says."""
        finish = (os.environ.get("RALPHNB_DEMO_FINISH") or self.cf.get("finish", "cli")).strip()
        finish = finish.lower()
        text = f"Done: {self.tid} ({rel})."
        if finish == "cli" and not self.mark_done():
            text += " Could not mark it done with the ralphnb command."
        elif finish == "promise":
            text += f" {PROMISE}"
        self.sleep(step)
        self.say(text)
        self.result(text)
        return 0


def _env_float(name: str, default: float) -> float:
    """RALPHNB_DEMO_<name> as a float (default when unset or not a number)."""
    try:
        return float(os.environ.get(f"RALPHNB_DEMO_{name}", default))
    except ValueError:
        return default


def _load_task(prompt_file: str | None) -> dict[str, Any]:
    if prompt_file:
        task = task_from_prompt(Path(prompt_file).read_text(encoding="utf-8"))
        if task is not None:
            return task
    tid = os.environ.get("RALPHNB_TASK_ID")
    repo = os.environ.get("RALPHNB_REPO")
    if tid and repo:
        from ..queue.store import Queue

        return Queue(repo).get(tid).to_dict()
    raise SystemExit(
        "demo agent: no task found (no JSON block in the prompt file and no "
        "RALPHNB_TASK_ID/RALPHNB_REPO)"
    )


def _record(agent: Agent, argv: Sequence[str], resumed: str | None) -> None:
    """With RALPHNB_DEMO_RECORD set: append what this run was given, as one JSON line."""
    path = os.environ.get("RALPHNB_DEMO_RECORD")
    if not path:
        return
    line = {
        "task_id": agent.tid,
        "iteration": agent.iteration,
        "phase": agent.phase,
        "argv": list(argv),
        "resumed": resumed,
        "session_id": agent.session_id,
        "prompt": agent.prompt,
    }
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ralphnb.demo.agent", description=__doc__)
    ap.add_argument("--prompt-file")
    ap.add_argument("--model", default="demo-agent-1")
    ap.add_argument("--resume", help="continue this session")
    args = ap.parse_args(argv)
    task = _load_task(args.prompt_file)
    prompt = Path(args.prompt_file).read_text(encoding="utf-8") if args.prompt_file else ""
    try:
        speed = float(os.environ.get("RALPHNB_DEMO_SPEED", "1"))
    except ValueError:
        speed = 1.0
    iteration = int(os.environ.get("RALPHNB_ITERATION", "1") or 1)
    agent = Agent(
        task,
        iteration=iteration,
        cwd=Path.cwd(),
        speed=speed,
        model=args.model,
        session_id=args.resume,
        prompt=prompt,
    )
    _record(agent, sys.argv if argv is None else ["agent", *argv], args.resume)
    if agent.flag("ignore_sigint"):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    else:

        def on_sigint(signum: int, frame: Any) -> None:
            sys.stdout.write(
                json.dumps(
                    {"type": "system", "subtype": "interrupted", "session_id": agent.session_id}
                )
                + "\n"
            )
            sys.stdout.flush()
            os._exit(130)

        signal.signal(signal.SIGINT, on_sigint)
    try:
        return agent.run()
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
