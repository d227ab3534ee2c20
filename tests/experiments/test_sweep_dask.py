"""A sweep of 3 tasks x 3 variants x 3 repeats on 2 Dask workers (a real LocalCluster)."""

from __future__ import annotations

import pytest

from tests.conftest import git, make_repo, require_module
from tests.experiments.test_sweep import VARIANTS

distributed = require_module("distributed")

from ralphnb.experiments import Sweep  # noqa: E402
from ralphnb.queue.store import Queue  # noqa: E402
from ralphnb.workers.dask.executor import DaskExecutor  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fast_demo")]


def test_a_3x3x3_sweep_on_two_dask_workers(client, tmp_path):
    repo = make_repo(
        tmp_path,
        [
            {"title": f"D{i}", "custom_fields": {"demo.file": f"D{i}.txt", "demo.content": f"D{i}"}}
            for i in (1, 2, 3)
        ],
    )
    head = git(repo, "rev-parse", "main").strip()
    sweep = Sweep(repo, variants=VARIANTS, repeats=3, parallel=4, executor=DaskExecutor(client))
    res = sweep.run()
    assert len(res) == 27 and res.passed.notna().all()
    assert res.groupby("variant").passed.mean().to_dict() == {
        "cheap": 1.0,
        "lazy": 0.0,
        "pricey": 1.0,
    }
    assert git(repo, "rev-parse", "main").strip() == head  # nothing merged yet
    hosts = {str(p) for p in sweep.df.pid}  # every run had a real process
    assert len(hosts) == 27
    out = sweep.merge()
    assert list(out.status) == ["integrated"] * 3 and list(out.variant) == ["cheap"] * 3
    assert Queue(repo).tasks == [] and sweep.workspaces.existing() == []
    assert {f"D{i}.txt" for i in (1, 2, 3)} <= set(
        git(repo, "ls-tree", "--name-only", "HEAD").split()
    )
