"""A sweep through the real Claude Code CLI and the real Codex CLI, offline against scripted
model servers on loopback: both variants pass, each reports (or estimates) its cost, the budget
marks the estimate, and the cheaper winner is merged."""

from __future__ import annotations

import pytest

from ralphnb.experiments import Sweep
from ralphnb.queue.store import Queue
from ralphnb.testing import text
from ralphnb.testing.model_server import ScriptedAnthropicServer
from tests.conftest import git, make_repo
from tests.runners.claude_fixtures import WRITE_SCRIPT, WRITTEN, claude_runner, require_claude
from tests.runners.cli_fixtures import KITS, PROMISE

pytestmark = [pytest.mark.slow, pytest.mark.claude, pytest.mark.codex]


def test_claude_and_codex_variants_compared_and_the_winner_merged(tmp_path):
    require_claude()
    kit = KITS["codex"]
    repo = make_repo(tmp_path, [{"title": "Write hello.txt"}])
    codex_script = [kit.write(), text(f"Wrote hello.txt. {PROMISE}")]
    with ScriptedAnthropicServer(WRITE_SCRIPT) as cs, kit.server(codex_script) as xs:
        variants = {
            "claude": claude_runner(cs, tmp_path / "claude-home"),
            "codex": kit.runner(xs, tmp_path),
        }
        sweep = Sweep(repo, variants=variants, parallel=2, max_cost_usd=50.0)
        res = sweep.run().set_index("variant")
    assert res.passed.all(), res[["passed", "error"]]
    assert (res.cost_usd > 0).all() and (res.turns >= 1).all() and (res.tokens_in > 0).all()
    assert (res.files_changed == 1).all() and (res.lines_added == 1).all()
    assert sweep.budget.estimated  # codex reports tokens only: its cost is an estimate
    assert sweep.budget.spent == pytest.approx(res.cost_usd.sum())
    assert git(repo, "ls-tree", "--name-only", "main").split() == [".gitignore", "f.txt"]
    out = sweep.merge()
    assert list(out.status) == ["integrated"]
    assert git(repo, "show", "main:hello.txt") == WRITTEN
    assert Queue(repo).tasks == []
