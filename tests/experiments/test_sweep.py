"""Sweeps end to end with the demo agent: real git, real processes, variants that pass, fail and
cost differently; nothing merged or marked done until `merge()`; `Sweep.load` from the journal."""

from __future__ import annotations

import time

import pytest

from ralphnb.errors import RalphError
from ralphnb.experiments import Sweep
from ralphnb.experiments.variants import Variant, variants_from
from ralphnb.queue.store import Queue
from ralphnb.runners.demo import Demo
from tests.conftest import demo, git, make_repo

pytestmark = pytest.mark.usefixtures("fast_demo")

VARIANTS = {
    "cheap": Demo(),
    "pricey": Demo(env={"RALPHNB_DEMO_PRICE": "3"}),
    "lazy": Demo(env={"RALPHNB_DEMO_FINISH": "none"}),
}


def _repo(tmp_path, n=2):
    return make_repo(tmp_path, [demo(f"T{i}") for i in range(1, n + 1)])


def test_every_run_has_its_row_and_variants_pass_fail_and_cost_as_they_do(tmp_path):
    repo = _repo(tmp_path)
    head = git(repo, "rev-parse", "main").strip()
    sweep = Sweep(repo, variants=VARIANTS, repeats=2, parallel=3)
    res = sweep.run()
    assert len(res) == 2 * 3 * 2 and sweep.finished
    by = res.groupby("variant")
    assert by["passed"].all().to_dict() == {"cheap": True, "lazy": False, "pricey": True}
    cost = by["cost_usd"].median()
    assert cost["pricey"] == pytest.approx(3 * cost["cheap"], rel=1e-3)
    assert (res[res.passed]["files_changed"] == 1).all()
    assert res[~res.passed]["error"].str.contains("neither marked").all()
    # nothing merged, nothing marked done, every run from the same base
    assert git(repo, "rev-parse", "main").strip() == head
    assert [t.status for t in Queue(repo).tasks] == ["todo", "todo"]
    assert {w.base for w in sweep.workspaces.existing()} == {head}
    assert sweep.discard() == 12 and sweep.workspaces.existing() == []
    assert "ralph/" not in git(repo, "branch", "--list")


def test_summary_best_and_merge_integrate_only_the_winners(tmp_path):
    repo = _repo(tmp_path)
    sweep = Sweep(repo, variants=VARIANTS, repeats=1, parallel=3)
    sweep.run()
    summ = sweep.summary()
    assert summ.loc["cheap", "pass_rate"] == 1.0 and summ.loc["lazy", "pass_rate"] == 0.0
    assert summ.index[0] == "cheap"  # same pass rate as pricey, cheaper per pass
    best = sweep.best()
    assert list(best.variant) == ["cheap", "cheap"] and list(best.task_id) == ["RQ-0001", "RQ-0002"]
    out = sweep.merge(best)
    assert list(out.status) == ["integrated", "integrated"]
    assert (repo / "T1.txt").exists() and (repo / "T2.txt").exists()
    q = Queue(repo)
    assert q.tasks == [] and [t.status for t in q.done] == ["done", "done"]
    assert sweep.workspaces.existing() == []  # losers' workspaces are gone too
    assert "ralph/" not in git(repo, "branch", "--list")


def test_load_rebuilds_results_and_df_from_the_journal(tmp_path):
    repo = _repo(tmp_path, 1)
    sweep = Sweep(repo, variants={"a": Demo(), "b": Demo(env={"RALPHNB_DEMO_PRICE": "2"})})
    res = sweep.run()
    back = Sweep.load(sweep.run_dir)
    assert back.results.equals(res)
    assert back.df.drop(columns=["cpu_percent", "rss_mb"]).equals(
        sweep.df.drop(columns=["cpu_percent", "rss_mb"])
    )
    assert back.merge().status.tolist() == ["integrated"]
    assert (repo / "T1.txt").exists()


def test_the_budget_halts_a_blocking_sweep_and_says_why(tmp_path):
    repo = _repo(tmp_path, 3)
    sweep = Sweep(repo, variants={"a": Demo()}, parallel=1, max_cost_usd=0.001)
    res = sweep.run()
    assert res.passed.notna().sum() == 1 and "budget reached" in sweep.halt_reason
    assert any(e.kind == "budget_reached" for e in sweep.events)


def test_a_started_sweep_held_by_the_budget_goes_on_when_it_is_raised(tmp_path):
    repo = _repo(tmp_path, 3)
    sweep = Sweep(repo, variants={"a": Demo()}, parallel=1, max_cost_usd=0.001).start()
    try:
        reached = lambda: any(e.kind == "budget_reached" for e in sweep.events)  # noqa: E731
        assert _wait_for(lambda: reached() and sweep.progress[0] == 1)
        time.sleep(0.5)  # held: nothing more starts
        assert not sweep.finished and sweep.progress == (1, 3) and len(sweep.df) == 1
        sweep.budget.set(100.0)
        assert sweep.wait(60)
    finally:
        sweep.stop_all()
    assert sweep.results.passed.all() and sweep.halt_reason is None


def test_variants_by_name_and_bad_names(tmp_path):
    v = variants_from(["demo", "demo:demo-agent-2"])
    assert list(v) == ["demo", "demo-demo-agent-2"]
    assert v["demo-demo-agent-2"].runner.model == "demo-agent-2"
    assert isinstance(v["demo"], Variant)
    with pytest.raises(RalphError, match="variant name"):
        variants_from({"a b": Demo()})
    repo = _repo(tmp_path, 1)
    with pytest.raises(RalphError, match="RQ-0009"):
        Sweep(repo, tasks=["RQ-0009"], variants={"a": Demo()})


def _wait_for(pred, timeout=60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False
