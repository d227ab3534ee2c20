"""notebooks/review.ipynb, executed in a real kernel: what it claims is checked against git and
the queue."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.notebooks.test_notebooks import NOTEBOOKS, errors_of, execute, outputs_with, summary_of


@pytest.mark.slow
def test_review_notebook_requests_changes_accepts_and_discards(tmp_path: Path) -> None:
    nb = execute(NOTEBOOKS / "review.ipynb", cwd=tmp_path, timeout=300)
    assert errors_of(nb) == []
    s = summary_of(nb)
    first, second = s["first"], s["second"]
    assert s["statuses"] == {
        f"{first}#1": "succeeded",
        f"{second}#1": "discarded",
        f"{first}#2": "integrated",
    }
    assert s["done"] == [first] and s["open"] == {second: "todo"}
    assert "not needed for this release" in s["second_note"]
    assert s["diff_files"] and set(s["diff_files"]) <= set(s["main_files"])
    assert s["feedback_in_prompt"] and s["finished"]
    # the diff rendered as HTML with its file list
    html = [o["data"]["text/html"] for o in outputs_with(nb, "text/html")]
    assert any('class="rnb-files"' in h and s["diff_files"][0] in h for h in html)
