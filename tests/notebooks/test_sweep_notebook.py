"""`notebooks/sweep.ipynb` in a real kernel: a sweep, its summary and plots, the winners merged."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tests.notebooks.test_notebooks import (
    NOTEBOOKS,
    VIEW_MIME,
    cells_tagged,
    errors_of,
    execute,
    outputs_with,
    summary_of,
)


@pytest.mark.slow
def test_sweep_notebook_compares_variants_plots_and_merges_the_winners(tmp_path: Path) -> None:
    nb = execute(NOTEBOOKS / "sweep.ipynb", cwd=tmp_path, timeout=300)
    assert not errors_of(nb), errors_of(nb)
    s = summary_of(nb)
    assert s["runs"] == 3 * 3 * 2, s
    assert s["pass_rate"] == {"cheap": 1.0, "lazy": 0.0, "pricey": 1.0}, s
    assert s["median_cost"]["pricey"] == pytest.approx(3 * s["median_cost"]["cheap"], rel=1e-3)
    assert s["winners"] == ["cheap"] and s["merged"] == ["integrated"] * 3, s
    assert s["queue_open"] == 0 and s["workspaces_left"] == 0, s
    assert outputs_with(nb, VIEW_MIME), "the dashboard was not displayed"
    assert len(outputs_with(nb, "image/png")) >= 1  # the plot
    assert len(outputs_with(nb, "text/html")) >= 3  # results, summary, winners


def test_sweep_notebook_is_committed_clean_with_a_summary_cell() -> None:
    nb = nbformat.read(NOTEBOOKS / "sweep.ipynb", as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert len(cells_tagged(nb, "summary")) == 1
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
