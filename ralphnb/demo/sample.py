"""A sample repository for demos and tests: a real git repo with a ralph queue of demo tasks.

Owns: `create_sample_repo(path, n_tasks=6, ...)`. The tasks carry `demo.*` custom fields that
tell the demo agent what to edit, and a few `depends_on` links, so a loop over them shows
parallel work, waiting on dependencies, and a task that needs two iterations.
Invariants: `ralphnb.queue.init` makes `.ralph/`; the tasks are written in one atomic write
(not one locked write per task, which costs an fsync each) through ralph's serialiser
(`queue.ralphjson`: ralph's field order, timestamps and layout, so the files are byte for byte
what ralph writes) and then validated by `Queue`;
git identity comes from env variables for the commit, never from global config.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from ..loop.choice import SAMPLE_MARK
from ..queue.ids import format_task_id
from ..queue.jsonio import atomic_write_bytes
from ..queue.ralphjson import canonical_task, dumps_queue_file, stamp_now
from ..queue.store import init

FILES = {
    "README.md": "# Sample project\n\nA tiny project that the ralphnb demo agent works on.\n",
    "src/app.py": 'def main() -> None:\n    print("hello")\n\n\nif __name__ == "__main__":\n'
    "    main()\n",
    "docs/index.md": "# Docs\n",
    ".gitignore": ".ralph/cache/\n.ralph/lock/\n",
}

# (title, custom fields, indexes of tasks it depends on)
TASKS: list[tuple[str, dict[str, str], list[int]]] = [
    (
        "Add a greeting module",
        {"demo.file": "src/greeting.py", "demo.content": 'GREETING = "Hello from ralphnb"'},
        [],
    ),
    (
        "Add a changelog",
        {"demo.file": "CHANGELOG.md", "demo.content": "## 0.1.0 - first release"},
        [],
    ),
    (
        "Document the greeting",
        {"demo.file": "docs/greeting.md", "demo.content": "The greeting lives in src/greeting.py."},
        [0],
    ),
    (
        "Add a contributing guide",
        {
            "demo.file": "CONTRIBUTING.md",
            "demo.content": "Open a task in .ralph/queue.jsonc.",
            "demo.iterations": "2",
        },
        [],
    ),
    (
        "Write a test for the greeting",
        {
            "demo.file": "tests/test_greeting.py",
            "demo.content": "def test_greeting():\n    assert True",
            "demo.finish": "promise",
        },
        [0],
    ),
    (
        "Link the docs from the README",
        {"demo.file": "README.md", "demo.content": "See docs/index.md and docs/greeting.md."},
        [2],
    ),
]


# SAMPLE_MARK, written into every sample repo (git-ignored), lets `python -m ralphnb.demo`
# replace a previous demo repo without ever deleting a user's own repository that merely uses
# ralph, and lets a Loop there run the demo agent when no runner is named (loop.choice).


def is_sample_repo(path: str | os.PathLike[str]) -> bool:
    """True only for a directory `create_sample_repo` made (marker file, or for repos made
    before the marker existed, the sample README the demo agent only appends to)."""
    p = Path(path)
    if (p / SAMPLE_MARK).is_file():
        return True
    try:
        readme = (p / "README.md").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return (p / ".ralph").is_dir() and readme.startswith(FILES["README.md"])


def _git(repo: Path, *args: str) -> None:
    env = dict(os.environ)
    env.setdefault("GIT_AUTHOR_NAME", "ralphnb sample")
    env.setdefault("GIT_AUTHOR_EMAIL", "sample@ralphnb.invalid")
    env.setdefault("GIT_COMMITTER_NAME", env["GIT_AUTHOR_NAME"])
    env.setdefault("GIT_COMMITTER_EMAIL", env["GIT_AUTHOR_EMAIL"])
    subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL
    )


def sample_tasks(n_tasks: int = 6, *, duration: float | None = None) -> list[dict[str, Any]]:
    """The task specs (title, custom_fields, depends_on as indexes) for `n_tasks` tasks."""
    out: list[dict[str, Any]] = []
    for i in range(n_tasks):
        if i < len(TASKS):
            title, fields, deps = TASKS[i]
        else:
            title = f"Add note {i + 1}"
            fields = {"demo.file": f"notes/note-{i + 1:03d}.md", "demo.content": f"Note {i + 1}"}
            deps = [] if i % 3 else [i - 3]
        fields = dict(fields)
        if duration is not None:
            fields["demo.duration"] = f"{duration:g}"
        out.append({"title": title, "custom_fields": fields, "deps": [d for d in deps if d < i]})
    return out


def create_sample_repo(
    path: str | os.PathLike[str] = "demo-repo",
    n_tasks: int = 6,
    *,
    duration: float | None = None,
    git: bool = True,
    track_queue: bool = True,
) -> Path:
    """Create `path` (must not exist or be empty) as a sample repo with `n_tasks` demo tasks.

    `duration`: seconds each demo task takes (default: the agent's own, about 2 s).
    `git=False` makes a plain directory; `track_queue=False` leaves `.ralph/` untracked.
    """
    repo = Path(path).resolve()
    if repo.exists() and any(repo.iterdir()):
        raise FileExistsError(f"{repo} exists and is not empty; choose another path")
    repo.mkdir(parents=True, exist_ok=True)
    for rel, text in FILES.items():
        f = repo / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text, encoding="utf-8")
    q = init(repo)
    (repo / SAMPLE_MARK).parent.mkdir(parents=True, exist_ok=True)
    (repo / SAMPLE_MARK).write_text("made by ralphnb.demo.sample.create_sample_repo\n")
    now = stamp_now()
    tasks: list[dict[str, Any]] = []
    for i, spec in enumerate(sample_tasks(n_tasks, duration=duration)):
        task: dict[str, Any] = {
            "id": format_task_id(i + 1),
            "status": "todo",
            "title": spec["title"],
            "priority": "medium",
            "created_at": now,
            "updated_at": now,
        }
        if spec["deps"]:
            task["depends_on"] = [format_task_id(d + 1) for d in spec["deps"]]
        task["custom_fields"] = spec["custom_fields"]
        tasks.append(canonical_task(task))
    atomic_write_bytes(q.queue_path, dumps_queue_file({"version": 1, "tasks": tasks}))
    q.validate()
    if git:
        _git(repo, "init", "-q", "-b", "main")
        if not track_queue:
            with (repo / ".gitignore").open("a", encoding="utf-8") as fh:
                fh.write(".ralph/\n")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "Sample project with a ralph task queue")
    return repo
