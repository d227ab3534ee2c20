"""ralph's own project configuration, end to end: `phases: 3`, the `make agent-ci` gate and
`git_publish_mode: commit_and_push`, exactly as ralph's repository sets them
(`../shared/fixtures/ralph/config.jsonc`), with only the runner swapped for the demo agent (the
`runner=` argument wins over `agent.runner`). A real repository, a real `make`, a real bare
remote: plan, implement and review run as their own rows, the gate fails once and the resumed
review session fixes it, and the merged work is pushed."""

from __future__ import annotations

import shutil
import sys

import pytest

from ralphnb.loop.core import Loop
from ralphnb.queue.store import Queue
from tests.conftest import FIXTURES, demo, git, make_repo
from tests.workspace.test_publish import remote_main

RALPH_CONFIG = FIXTURES / "config.jsonc"

# ralph's gate is `make agent-ci`; this repository's target passes once the file says "fixed"
MAKEFILE = (
    "agent-ci:\n"
    f"\t{sys.executable} -c \"import sys; t = open('demo/out.txt').read(); "
    "sys.exit(0 if 'fixed' in t else 'agent-ci: the file says ' + t.strip())\"\n"
)


@pytest.mark.slow
def test_ralphs_own_config_plans_implements_reviews_gates_and_pushes(tmp_path, fast_demo):
    if shutil.which("make") is None:
        pytest.fail("make is not installed: ralph's gate is `make agent-ci`")
    task = demo("one", file="demo/out.txt", content="broken")
    task["custom_fields"]["demo.fix"] = "fixed"
    repo = make_repo(tmp_path, [task])
    shutil.copy(RALPH_CONFIG, repo / ".ralph" / "config.jsonc")
    (repo / ".ralph" / "trust.jsonc").write_text('{"allow_project_commands": true}')
    (repo / "Makefile").write_text(MAKEFILE)
    git(repo, "add", "Makefile")
    git(repo, "commit", "-q", "-m", "the agent-ci target of ralph's gate")
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "-u", "origin", "main")

    loop = Loop(repo, runner="demo", max_iterations=3)
    assert (loop.publish, loop.runner_source) == ("commit_and_push", "argument")
    df = loop.run()

    assert list(df.phase) == ["plan", "implement", "review", "review"]
    gate_failed, fixed = df.iloc[2], df.iloc[3]
    assert gate_failed["status"] == "check_failed" and gate_failed["check_exit_code"] != 0
    assert "agent-ci: the file says broken" in gate_failed["error"]
    assert fixed["status"] == "integrated" and fixed["check_exit_code"] == 0
    assert fixed["session_id"] == gate_failed["session_id"]  # the gate's failure went back to it
    assert (repo / ".ralph" / "cache" / "plans" / "RQ-0001.md").is_file()  # kept where ralph does
    assert (repo / "demo" / "out.txt").read_text() == "broken\nfixed\n"
    assert remote_main(bare) == git(repo, "rev-parse", "main").strip()  # pushed
    pushed = git(bare, "show", "main:demo/out.txt")
    assert pushed == "broken\nfixed\n"
    assert [t.id for t in Queue(repo).done] == ["RQ-0001"]
