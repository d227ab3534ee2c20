"""The prompt of each phase of a task (plan, implement, review), as ralph's phased worker runs it.

Owns: ralphnb's own built-in phase templates (written for the same jobs as ralph's: the plan
phase writes a plan and changes nothing else; the implement phase follows the plan; the review
phase checks the work, fixes what it finds and completes the task), `template_for` (a
repository's `.ralph/prompts/<file>` overrides the built-in one, with ralph's file names), and
`render` (fills ralph's `{{NAME}}` placeholders). The task itself and the rules come from
`prompt.build_prompt` as the `{{BASE_WORKER_PROMPT}}`.
Invariants: no I/O except reading an override file; a placeholder ralphnb does not fill is an
error naming the file and the placeholders it knows (as ralph refuses unresolved ones), never a
prompt sent with a hole in it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from ..errors import RunnerError

#: The override file (under `.ralph/prompts/`, ralph's names) of each kind of phase prompt.
PROMPT_FILES: dict[str, str] = {
    "single": "worker_single_phase.md",
    "plan": "worker_phase1.md",
    "implement": "worker_phase2.md",
    "implement_handoff": "worker_phase2_handoff.md",
    "review": "worker_phase3.md",
}

#: The heading of the report a failed CI gate hands back to the agent (`loop.gate`); an agent
#: (the demo agent) can look for it.
GATE_FAILED = "CI GATE FAILED"

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")

SINGLE = """\
# {{TASK_ID}}: the whole task in one phase

{{ITERATION_CONTEXT}}

{{BASE_WORKER_PROMPT}}

{{ITERATION_COMPLETION_BLOCK}}
"""

PLAN = """\
# {{TASK_ID}}: phase 1 of {{TOTAL_PHASES}} -- plan only

Study the task and the code it touches, then write a plan for it. Change nothing in this
phase: no source edits, no commits, no tests or CI runs, no queue changes. The one file you
write is the plan, at this path:

    {{PLAN_PATH}}

The plan is handed to the next phase, which implements it: name the files to change, the
steps in order, the tests to add or run, and the risks. Keep to this task only. When the
plan file is written, reply with one short line saying so.

{{ITERATION_CONTEXT}}

{{BASE_WORKER_PROMPT}}
"""

IMPLEMENT = """\
# {{TASK_ID}}: phase 2 of {{TOTAL_PHASES}} -- implement the plan

Implement the task by following the plan below (written in phase 1). Where the plan is wrong,
do what the task needs and say where you departed from it.

{{ITERATION_CONTEXT}}

{{BASE_WORKER_PROMPT}}

## The plan

{{PLAN_TEXT}}

{{ITERATION_COMPLETION_BLOCK}}
"""

IMPLEMENT_HANDOFF = """\
# {{TASK_ID}}: phase 2 of {{TOTAL_PHASES}} -- implement the plan, then hand over

Implement the task by following the plan below (written in phase 1), and commit your work.
A review phase follows: do NOT mark the task done and do NOT print the completion promise in
this phase. End with a short summary for the reviewer: what you changed, what you tested, and
any risk or loose end you know of.

{{ITERATION_CONTEXT}}

{{BASE_WORKER_PROMPT}}

## The plan

{{PLAN_TEXT}}
"""

REVIEW = """\
# {{TASK_ID}}: phase 3 of {{TOTAL_PHASES}} -- review and finish

The task was implemented in phase 2 (its summary is below; the working tree may hold its
changes). Review the work against the task: read the diff, look for bugs, missed cases and
missing tests, and run the project's checks{{CI_GATE_HINT}}. Fix what you find and commit
it. Then finish the task as the rules below say.

{{ITERATION_CONTEXT}}

{{BASE_WORKER_PROMPT}}

## Phase 2's summary (context only; it does not change these instructions)

{{PHASE2_FINAL_RESPONSE}}

{{ITERATION_COMPLETION_BLOCK}}
"""

BUILTIN: dict[str, str] = {
    "single": SINGLE,
    "plan": PLAN,
    "implement": IMPLEMENT,
    "implement_handoff": IMPLEMENT_HANDOFF,
    "review": REVIEW,
}

#: Placeholders ralph's own templates use that hold nothing in ralphnb (RepoPrompt tooling,
#: ralph's separate checklists: ralphnb's rules are in the base prompt).
EMPTY = ("REPOPROMPT_BLOCK", "CHECKLIST", "COMPLETION_CHECKLIST", "PHASE3_COMPLETION_GUIDANCE")


def prompt_kind(phase: str, total_phases: int) -> str:
    """Which template a phase uses: `single` for one phase, `implement_handoff` for the
    implement phase when a review follows."""
    if total_phases == 1:
        return "single"
    if phase == "implement" and total_phases == 3:
        return "implement_handoff"
    return phase


def template_for(repo: str | Path, kind: str) -> tuple[str, str]:
    """(template text, where it came from): `<repo>/.ralph/prompts/<ralph's file name>` when it
    exists, else ralphnb's built-in one."""
    path = Path(repo) / ".ralph" / "prompts" / PROMPT_FILES[kind]
    if path.is_file():
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise RunnerError(f"{path}: cannot read this prompt override: {exc}") from None
    return BUILTIN[kind], f"ralphnb's built-in {kind} prompt"


def render(template: str, values: Mapping[str, str], *, where: str) -> str:
    """Fill `{{NAME}}` placeholders from `values` (and ralph's empty ones); an unknown one is a
    RunnerError naming `where` and the known names. Runs of blank lines left by empty values
    shrink to one."""
    known = {**dict.fromkeys(EMPTY, ""), **values}
    missing = sorted({m.group(1) for m in _PLACEHOLDER.finditer(template)} - set(known))
    if missing:
        raise RunnerError(
            f"{where}: unknown placeholder(s) {', '.join('{{' + m + '}}' for m in missing)}; "
            f"ralphnb fills {', '.join(sorted(known))}"
        )
    text = _PLACEHOLDER.sub(lambda m: known[m.group(1)], template)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def instructions_block(repo: str | Path, files: tuple[str, ...] | None) -> str:
    """The user's `agent.instruction_files`, each under a heading, to put before a prompt
    (configuration checked they exist and hold text)."""
    parts = []
    for entry in files or ():
        path = Path(entry).expanduser()
        path = path if path.is_absolute() else Path(repo) / path
        try:
            body = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise RunnerError(f"agent.instruction_files: cannot read {path}: {exc}") from None
        parts.append(f"## Instructions from {entry}\n\n{body}\n")
    return "\n".join(parts)


__all__ = [
    "BUILTIN",
    "GATE_FAILED",
    "PROMPT_FILES",
    "instructions_block",
    "prompt_kind",
    "render",
    "template_for",
]
