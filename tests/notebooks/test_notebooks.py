"""The notebooks in `notebooks/`, executed with nbclient in a real kernel, outputs asserted.

Each notebook ends with a cell tagged `summary` that prints one line
`RALPHNB_SUMMARY {json}`; the tests parse it and check what the notebook claims against the
world (processes gone via psutil, statuses in the final DataFrame, plots drawn).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
SUMMARY = "RALPHNB_SUMMARY "
VIEW_MIME = "application/vnd.jupyter.widget-view+json"


def execute(
    path: Path,
    *,
    cwd: Path,
    timeout: int = 180,
    kernel_name: str = "python3",
    params: str | None = None,
) -> nbformat.NotebookNode:
    """Run every cell of a copy of `path` in a fresh kernel started in `cwd`.

    `params` (Python source) is appended to the cell tagged `parameters`, papermill style.
    """
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", "kernelspec missing"
    if params:
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        cell.source += "\n" + params
    client = NotebookClient(
        nb, timeout=timeout, kernel_name=kernel_name, resources={"metadata": {"path": str(cwd)}}
    )
    client.execute()
    return nb


def cells_tagged(nb: nbformat.NotebookNode, tag: str) -> list[Any]:
    return [c for c in nb.cells if tag in c.metadata.get("tags", [])]


def stdout_of(cell: Any) -> str:
    return "".join(
        o.get("text", "")
        for o in cell.get("outputs", [])
        if o.get("output_type") == "stream" and o.get("name") == "stdout"
    )


def summary_of(nb: nbformat.NotebookNode) -> dict[str, Any]:
    (cell,) = cells_tagged(nb, "summary")
    lines = [ln for ln in stdout_of(cell).splitlines() if ln.startswith(SUMMARY)]
    assert lines, f"no summary printed: {stdout_of(cell)!r}"
    return json.loads(lines[-1][len(SUMMARY) :])


def outputs_with(nb: nbformat.NotebookNode, mime: str) -> list[Any]:
    return [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if mime in o.get("data", {})
    ]


def errors_of(nb: nbformat.NotebookNode) -> list[str]:
    return [
        f"{o.get('ename')}: {o.get('evalue')}"
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]


def check_quickstart(nb: nbformat.NotebookNode) -> dict[str, Any]:
    """What the quickstart must show; shared with the Binder test."""
    assert not errors_of(nb), errors_of(nb)
    s = summary_of(nb)
    statuses = s["statuses"]
    assert statuses[s["stopped_task"]] == "stopped", statuses
    assert statuses[s["killed_task"]] == "killed", statuses
    others = {t: st for t, st in statuses.items() if t not in (s["stopped_task"], s["killed_task"])}
    assert others and set(others.values()) == {"integrated"}, others
    for pid in s["pids"]:  # the stopped and killed workers' whole trees
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie", pid
    assert s["queue_done"] == len(others)
    # the dashboard cell displayed the widget view AND the static table
    views = outputs_with(nb, VIEW_MIME)
    assert views and "<table" in views[0]["data"]["text/html"]
    assert "RQ-" in views[0]["data"]["text/plain"]
    assert len(outputs_with(nb, "image/png")) >= 1  # the plot
    return s


@pytest.mark.slow
def test_quickstart_runs_stops_kills_and_plots(tmp_path: Path) -> None:
    nb = execute(NOTEBOOKS / "quickstart.ipynb", cwd=tmp_path)
    s = check_quickstart(nb)
    assert s["seconds"] < 60, s


@pytest.mark.slow
def test_analysis_notebook_reads_past_runs(tmp_path: Path) -> None:
    nb = execute(NOTEBOOKS / "analysis.ipynb", cwd=tmp_path)
    assert not errors_of(nb), errors_of(nb)
    s = summary_of(nb)
    assert s["runs"] >= 2 and set(s["runners"]) >= {"demo"}, s
    rates = s["success_rate"]
    assert all(0.0 <= v <= 1.0 for v in rates.values()), rates
    assert s["attempts"] >= s["tasks"] >= 1
    assert len(outputs_with(nb, "image/png")) >= 2


@pytest.mark.slow
def test_phases_notebook_plans_implements_reviews_and_fixes_a_failed_gate(tmp_path: Path) -> None:
    nb = execute(NOTEBOOKS / "phases.ipynb", cwd=tmp_path)
    assert not errors_of(nb), errors_of(nb)
    s = summary_of(nb)
    assert s["phases"] == ["plan", "implement", "review", "review"], s
    assert s["statuses"] == ["succeeded", "succeeded", "check_failed", "integrated"], s
    assert s["same_session"] and s["plan_kept"] and s["resume_prompt_has_failure"], s
    assert s["on_main"] == "fixed", s  # the fix, merged


def _claude() -> str | None:
    exe = os.environ.get("RALPHNB_CLAUDE") or shutil.which("claude")
    return exe if exe and os.access(exe, os.X_OK) else None


@pytest.mark.slow
@pytest.mark.claude
@pytest.mark.codex
@pytest.mark.gemini
@pytest.mark.opencode
@pytest.mark.pi
@pytest.mark.kimi
def test_real_agents_notebook_runs_every_cli_against_scripted_servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.runners.cli_fixtures import KIMI_NOTE, KITS, cli_executable

    if _claude() is None:
        if os.environ.get("CI"):
            pytest.fail("RALPHNB_CLAUDE not set: `make test` installs the Claude Code CLI")
        pytest.skip("Claude Code CLI not installed (set RALPHNB_CLAUDE)")
    found = {name: cli_executable(name) for name in KITS}
    for name, exe in found.items():
        if exe is not None:
            monkeypatch.setenv(f"RALPHNB_{name.upper()}", exe)
        elif os.environ.get("CI"):
            note = f"; {KIMI_NOTE}" if name == "kimi" else ""
            pytest.fail(f"the {name} CLI is not installed: `make test` installs it{note}")
    nb = execute(NOTEBOOKS / "real-agents.ipynb", cwd=tmp_path, timeout=600)
    assert not errors_of(nb), errors_of(nb)
    s = summary_of(nb)
    assert s["status"] == "integrated", s
    assert s["file_written"] and s["runner"] == "claude", s
    assert s["turns"] >= 1 and s["session_id"], s
    assert set(s["runners"]) == {name for name, exe in found.items() if exe}, s
    for name, row in s["runners"].items():
        assert row["status"] == "integrated" and row["file_written"], (name, row)
        assert row["turns"] >= 1 and row["tokens_in"] > 0 and row["session_id"], (name, row)
        assert row["cost_usd"] and row["cost_usd"] > 0, (name, row)


def test_every_notebook_has_a_kernelspec_and_a_summary_cell() -> None:
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert {"analysis.ipynb", "quickstart.ipynb", "real-agents.ipynb"} <= set(names)
    for name in names:  # every notebook: JupyterLab must not ask for a kernel
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata["kernelspec"]["name"] == "python3", name
    for name in ("analysis.ipynb", "quickstart.ipynb", "real-agents.ipynb", "phases.ipynb"):
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        assert len(cells_tagged(nb, "summary")) == 1, name
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
            f"{name}: commit notebooks without outputs"
        )
