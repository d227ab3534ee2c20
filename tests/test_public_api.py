"""The package's public face: the names a notebook user imports from `ralphnb`."""

from __future__ import annotations

import subprocess
import sys

import ralphnb
from ralphnb.demo.sample import create_sample_repo


def test_public_names_are_importable_and_listed():
    for name in (
        "Loop",
        "Queue",
        "Task",
        "Run",
        "init",
        "run",
        "Claude",
        "Command",
        "Demo",
        "RalphError",
        "QueueError",
        "LockError",
        "DaskExecutor",
    ):
        assert name in ralphnb.__all__ and getattr(ralphnb, name) is not None


def test_importing_ralphnb_imports_no_widgets_dask_or_asyncio_patches():
    code = (
        "import asyncio, sys; before = asyncio.run; import ralphnb; "
        "assert asyncio.run is before; "
        "bad = [m for m in ('ipywidgets', 'distributed', 'nest_asyncio') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_run_shorthand_works_a_queue_to_the_end(tmp_path, monkeypatch):
    monkeypatch.setenv("RALPHNB_DEMO_SPEED", "0.05")
    repo = create_sample_repo(tmp_path / "repo", n_tasks=2)
    df = ralphnb.run(repo, runner="demo", parallel=2)
    assert set(df.status) == {"integrated"}
    assert {t.id for t in ralphnb.Queue(repo).done} >= {"RQ-0001", "RQ-0002"}


def test_run_function_does_not_shadow_a_submodule():
    import importlib.util

    import ralphnb.loop.runs as runs_module

    # `import ralphnb.<x> as m` resolves through the package attribute, so no submodule may be
    # named like a public function (a `ralphnb/run.py` would make that import return run()).
    assert importlib.util.find_spec("ralphnb.run") is None
    assert callable(ralphnb.run) and runs_module.Run is ralphnb.Run
