"""notebooks/dask.ipynb executed in a real kernel (nbclient) on a LocalCluster; its claims are
checked against the world: statuses in the final DataFrame, a `lost` exit in the journal, and
psutil finding none of the killed processes."""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest

from tests.conftest import require_module

require_module("distributed")
nbformat = require_module("nbformat")
nbclient = require_module("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "dask.ipynb"
SUMMARY = "RALPHNB_SUMMARY "


def stdout_of(cell) -> str:
    return "".join(
        o.get("text", "")
        for o in cell.get("outputs", [])
        if o.get("output_type") == "stream" and o.get("name") == "stdout"
    )


def tagged(nb, tag: str):
    (cell,) = [c for c in nb.cells if tag in c.metadata.get("tags", [])]
    return cell


@pytest.mark.slow
def test_dask_notebook_runs_kills_and_recovers_a_lost_worker(tmp_path, monkeypatch):
    for k in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.setenv(k, "ralphnb test")
    for k in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(k, "test@ralphnb.invalid")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    nbclient.NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    errors = [
        f"{o.get('ename')}: {o.get('evalue')}"
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors, errors

    lines = [ln for ln in stdout_of(tagged(nb, "summary")).splitlines() if ln.startswith(SUMMARY)]
    s = json.loads(lines[-1][len(SUMMARY) :])
    statuses = s["statuses"]
    assert statuses[s["killed_task"]] == "killed"
    assert s["lost_rows"] == ["failed", "integrated"]  # lost with its worker, then retried
    assert s["lost_events"] == 1
    others = {t: st for t, st in statuses.items() if t != s["killed_task"]}
    assert set(others.values()) == {"integrated"}, statuses
    assert s["lost_task"] in s["queue_done"] and s["killed_task"] not in s["queue_done"]
    alive = [
        p
        for p in s["pids"]
        if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
    ]
    assert len(s["pids"]) >= 4 and alive == []

    kill_out = stdout_of(tagged(nb, "kill"))
    assert "survivors: []" in kill_out
    journal_out = stdout_of(tagged(nb, "journal"))
    assert "'reason': 'lost'" in journal_out and "removed from the cluster" in journal_out
    dashboard = tagged(nb, "dashboard")["outputs"]
    assert dashboard and any(
        "text/html" in o.get("data", {}) or "text/plain" in o.get("data", {}) for o in dashboard
    )
