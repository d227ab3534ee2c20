"""A task's phases and passes, as ralph's worker runs them, and each phase's prompt.

Owns: `TaskPhases` (for one task: how many phases -- 1 implement; 2 plan, implement; 3 plan,
implement, review --, how many passes, the runner of each phase, the attempts allowed),
`task_phases` (resolved from the task's `agent` block, the Loop's arguments and ralph's
configuration, in that order), `Step`/`steps` (the fixed order of phase runs; only the final
pass's last phase is judged: gate, completion, retries), `phase_prompt` (its text) and the plan
file (`plan_file`, `keep_plan`: where ralph keeps it, `.ralph/cache/plans/<ID>.md`).

Names: ralph's `agent.iterations` is `passes` here (N fixed passes over a task, only the last
may complete it); ralphnb's `max_iterations` stays "attempts until done" (a retry after a pass
that did not finish, or after a failed gate, counts one).
Invariants: ralph's built-in defaults (3 phases, `make ci`) never apply unasked: a value counts
only when a user set it (global or project config, a profile, the task); else 1 phase, 1 pass.
Everything but `task_phases` (reads configuration) and the plan file helpers is pure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..queue.config import resolve_config
from ..runners import build_prompt, runner_for_task
from ..runners.base import Runner
from ..runners.names import runner_from_config
from ..runners.phase_prompts import instructions_block, prompt_kind, render, template_for
from ..runners.prompt import TASK_HEADER
from .check import CheckRun
from .choice import user_agent
from .gate import GateResult, failure_report

#: Phase names by phase count.
PHASES: dict[int, tuple[str, ...]] = {
    1: ("implement",),
    2: ("plan", "implement"),
    3: ("plan", "implement", "review"),
}

#: The base prompt of a phase that must not finish the task (plan; implement before a review;
#: any phase of a pass that is not the last): the task and the workspace rules only.
TASK_ONLY = (
    TASK_HEADER
    + """\
- Do not mark the task done and do not print the completion promise in this phase.
"""
)


@dataclass(frozen=True)
class Step:
    """One phase run in a task's fixed order. `judged`: the final pass's last phase, whose claim
    of done is checked (gate) and decides completion; it is the one repeated on a retry."""

    phase: str
    pass_no: int
    judged: bool


def steps(phases: int, passes: int) -> list[Step]:
    """Every phase of every pass, in order."""
    names = PHASES[phases]
    return [
        Step(name, p, p == passes and i == len(names) - 1)
        for p in range(1, passes + 1)
        for i, name in enumerate(names)
    ]


def _user_set(config: Any | None, key: str) -> bool:
    return config is not None and config.source(key) not in (None, "default")


def pick_count(task_value: Any, argument: int | None, configured: int | None, top: int) -> int:
    """A task's own value, else the Loop's argument, else configuration, else 1 (clamped to
    1..top). Pure."""
    for v in (task_value, argument, configured):
        if isinstance(v, int) and not isinstance(v, bool) and v >= 1:
            return min(int(v), top)
    return 1


@dataclass(frozen=True)
class TaskPhases:
    """How one task is worked: phases, passes, attempts allowed, the runner of each phase."""

    phases: int
    passes: int
    max_attempts: int
    runners: Mapping[str, Runner]
    instructions: str = ""  # the user's instruction files, put before every prompt
    gate_command: str = ""  # the configured CI gate as text, for prompts
    config: Any = field(default=None, compare=False, repr=False)

    def steps(self) -> list[Step]:
        return steps(self.phases, self.passes)


def _phase_runner(base: Runner, config: Any | None, number: int) -> Runner:
    """`agent.phase_overrides.phaseN` (runner, model, reasoning_effort) applied to `base`."""
    overrides = getattr(config.agent, "phase_overrides", None) if config is not None else None
    ov = getattr(overrides, f"phase{number}", None) if overrides is not None else None
    if ov is None:
        return base
    runner = base
    if ov.runner and ov.runner != base.name:
        runner = runner_from_config({**_bins(config), "runner": ov.runner})
    changes: dict[str, Any] = {}
    if ov.model:
        changes["model"] = ov.model
    if ov.reasoning_effort and hasattr(runner, "effort"):
        changes["effort"] = ov.reasoning_effort
    return runner.with_options(**changes) if changes else runner


def _bins(config: Any) -> dict[str, str]:
    """The `<runner>_bin` paths a user configured."""
    return {k: v for k, v in user_agent(config).items() if k.endswith("_bin")}


def _task_runner(runner: Runner, task: Mapping[str, Any], config: Any) -> Runner:
    """The loop's runner, or the task's `agent.runner` built from configuration (its `_bin`),
    with the task's model and effort (`runner_for_task`)."""
    agent = task.get("agent") if isinstance(task.get("agent"), Mapping) else {}
    name = agent.get("runner")
    if isinstance(name, str) and name and name != runner.name:
        runner = runner_from_config({**_bins(config), "runner": name})
    rest = {k: v for k, v in agent.items() if k != "runner"}
    return runner_for_task(runner, {**task, "agent": rest})


def settings_phases(settings: Any, task: Mapping[str, Any]) -> TaskPhases:
    """`task_phases` with the run's own choices (`DriverSettings`: runner, phases, passes,
    max_iterations)."""
    return task_phases(
        settings.repo,
        task,
        runner=settings.runner,
        phases=settings.phases,
        passes=settings.passes,
        max_iterations=settings.max_iterations,
    )


def task_phases(
    repo: Path,
    task: Mapping[str, Any],
    *,
    runner: Runner,
    phases: int | None,
    passes: int | None,
    max_iterations: int,
) -> TaskPhases:
    """The phases, passes and runners of `task` (see the module docstring for the order).
    A bad task `agent` block or configuration raises (a `ConfigError`/`RunnerError`)."""
    agent = task.get("agent") if isinstance(task.get("agent"), Mapping) else None
    cfg = resolve_config(repo, task_agent=agent, task_label=f"task {task.get('id')}", warn=False)
    agent = agent or {}
    n = pick_count(
        agent.get("phases"), phases, cfg.agent.phases if _user_set(cfg, "agent.phases") else None, 3
    )
    p = pick_count(
        agent.get("iterations"),
        passes,
        cfg.agent.iterations if _user_set(cfg, "agent.iterations") else None,
        255,
    )
    base = _task_runner(runner, task, cfg)
    names = PHASES[n]
    runners = {name: _phase_runner(base, cfg, i) for i, name in enumerate(names, start=1)}
    gate = cfg.agent.ci_gate
    gate_cmd = " ".join(gate.argv) if gate is not None and gate.argv and gate.enabled else ""
    return TaskPhases(
        phases=n,
        passes=p,
        max_attempts=max(1, int(max_iterations)),
        runners=runners,
        instructions=instructions_block(repo, cfg.agent.instruction_files),
        gate_command=gate_cmd,
        config=cfg,
    )


def iteration_context(step: Step, passes: int, attempt: int, why_again: str) -> str:
    """What a prompt says about where this run stands (pass N of M; an earlier attempt)."""
    parts = []
    if passes > 1:
        parts.append(f"This is pass {step.pass_no} of {passes} over this task.")
        if step.pass_no > 1:
            parts.append("Earlier passes worked on it already: build on what is in the workspace.")
    if attempt > 1 and why_again:
        parts.append(f"Attempt {attempt}: the previous attempt did not finish ({why_again}).")
    return " ".join(parts)


def phase_prompt(
    task: Mapping[str, Any],
    step: Step,
    tp: TaskPhases,
    *,
    repo: Path,
    workspace: Path,
    completion_promise: str,
    template: str | None,
    iteration: int,
    plan_text: str = "",
    handoff: str = "",
    context: str = "",
) -> str:
    """The prompt of one phase run: the phase template (a `.ralph/prompts/` override, else the
    built-in one) around the base prompt (`build_prompt`, which `template` customises; a phase
    that must not finish gets `TASK_ONLY` unless the user gave a template)."""
    kind = prompt_kind(step.phase, tp.phases)
    finishes = step.pass_no == tp.passes and step.phase == PHASES[tp.phases][-1]
    base = build_prompt(
        task,
        workspace=workspace,
        completion_promise=completion_promise,
        template=template if (template is not None or finishes) else TASK_ONLY,
        iteration=iteration,
    )
    text, where = template_for(repo, kind)
    if kind == "single" and where.startswith("ralphnb") and not context and finishes:
        return f"{tp.instructions}\n{base}" if tp.instructions else base  # as before phases
    tid = str(task.get("id", ""))
    not_last = (
        ""
        if step.pass_no == tp.passes
        else "This is not the last pass: do NOT mark the task done and do NOT print the "
        "completion promise; commit this pass's work and stop."
    )
    values = {
        "TASK_ID": tid,
        "TOTAL_PHASES": str(tp.phases),
        "BASE_WORKER_PROMPT": base.strip(),
        "ITERATION_CONTEXT": context,
        "ITERATION_COMPLETION_BLOCK": not_last,
        "PLAN_PATH": str(plan_file(workspace, tid)),
        "PLAN_TEXT": plan_text.strip() or "(no plan was written)",
        "PHASE2_FINAL_RESPONSE": handoff.strip() or "(phase 2 gave no summary)",
        "CI_GATE_HINT": f" (the CI gate is `{tp.gate_command}`)" if tp.gate_command else "",
        "config.agent.ci_gate_command": tp.gate_command or "(none)",
        "config.agent.ci_gate_display": tp.gate_command or "(none)",
    }
    body = render(text, values, where=where)
    return f"{tp.instructions}\n{body}" if tp.instructions else body


@dataclass
class Handoffs:
    """What one task's phases hand on: the plan, phase 2's summary for the review, why the last
    attempt did not finish, the gate failure and the session it happened in. One per driver,
    touched only by its thread."""

    repo: Path
    task_id: str
    plan_text: str = ""
    handoff: str = ""
    why_again: str = ""
    gate_failure: CheckRun | None = None
    session_id: str | None = None

    def take(self, phase: str, workspace: Path, parser: Any) -> str:
        """After a phase that is not judged ended well: keep what it hands on; an error when
        it handed on nothing it must (a plan phase that wrote no plan)."""
        self.why_again = ""  # an earlier failure is behind it
        if phase == "plan":
            self.plan_text = read_plan(workspace, self.task_id, parser.last_message)
            if not self.plan_text:
                return f"the plan phase wrote no plan to {plan_file(workspace, self.task_id)}"
            keep_plan(self.repo, self.task_id, self.plan_text)
        elif phase == "implement":
            self.handoff = parser.last_message or ""
        return ""

    def judged(self, reason: str, gate: GateResult | None, session_id: str | None) -> None:
        """After a judged run: remember why it did not finish and a gate failure, if any."""
        self.why_again = reason
        self.gate_failure = gate.run if gate is not None and not gate.ok else None
        self.session_id = session_id

    def resume_session(self, runner: Runner, step: Step) -> str | None:
        """The session to continue: the judged phase's, after its gate failed, when the runner
        can resume one (else a fresh session gets the failure in its prompt)."""
        if not (step.judged and self.gate_failure is not None and self.session_id):
            return None
        return self.session_id if runner.supports_resume else None

    def prompt(
        self, task: Mapping[str, Any], step: Step, tp: TaskPhases, *, resumed: bool, **kw: Any
    ) -> str:
        """The prompt of the next run: the gate's failure report alone for a resumed session;
        else the phase prompt (with the failure report after it when there is one)."""
        report = ""
        if step.judged and self.gate_failure is not None:
            report = failure_report(self.task_id, self.gate_failure, resumed=resumed)
        if resumed:
            return report
        context = iteration_context(step, tp.passes, kw.pop("attempt"), self.why_again)
        text = phase_prompt(
            task,
            step,
            tp,
            plan_text=self.plan_text,
            handoff=self.handoff,
            context=context,
            repo=self.repo,
            **kw,
        )
        return f"{text}\n{report}" if report else text


def phase_env(step: Step, tp: TaskPhases | None, workspace: Any, task_id: str) -> dict[str, str]:
    """What a worker is told of its phase: `RALPHNB_PHASE` (plan/implement/review),
    `RALPHNB_PHASES`, `RALPHNB_PASS` and `RALPHNB_PLAN_FILE` (where the plan goes)."""
    if tp is None:
        return {}
    return {
        "RALPHNB_PHASE": step.phase,
        "RALPHNB_PHASES": str(tp.phases),
        "RALPHNB_PASS": str(step.pass_no),
        "RALPHNB_PLAN_FILE": str(plan_file(workspace, task_id)),
    }


def plan_file(workspace: str | Path, task_id: str) -> Path:
    """Where the plan phase writes its plan: ralph's `.ralph/cache/plans/<ID>.md`, in the
    task's workspace (the agent works only there; `.ralph/` is never merged)."""
    return Path(workspace) / ".ralph" / "cache" / "plans" / f"{task_id}.md"


def read_plan(workspace: str | Path, task_id: str, last_message: str | None) -> str:
    """The plan the plan phase wrote, else its last message (an agent that printed the plan);
    empty when there is neither."""
    try:
        text = plan_file(workspace, task_id).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        text = ""
    return text or (last_message or "").strip()


def keep_plan(repo: Path, task_id: str, text: str) -> Path:
    """Keep the plan where ralph keeps it in the user's checkout (`.ralph/cache/plans/<ID>.md`,
    git-ignored), atomically; returns the path."""
    path = plan_file(repo, task_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".md.tmp{os.getpid()}")
    tmp.write_text(text.rstrip() + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


__all__ = [
    "settings_phases",
    "PHASES",
    "Handoffs",
    "Step",
    "TaskPhases",
    "keep_plan",
    "phase_env",
    "phase_prompt",
    "pick_count",
    "plan_file",
    "read_plan",
    "steps",
    "task_phases",
]
