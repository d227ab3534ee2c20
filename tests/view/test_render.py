"""Worker records as HTML: the static table of the notebook display and the live widget's table."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from ralphnb.view.render import COLOURS, ROW_PX, STUCK_COLOUR, html_table

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _rec(task_id: str, iteration: int, status: str, **fields: object) -> dict[str, object]:
    return {"task_id": task_id, "iteration": iteration, "status": status, **fields}


def test_one_row_per_task_showing_its_latest_attempt() -> None:
    recs = [
        _rec("RQ-0001", 1, "failed"),
        _rec("RQ-0001", 2, "integrated"),
        _rec("RQ-0002", 1, "running"),
    ]
    page = html_table(recs, now=NOW)
    rows = re.findall(r'<tr data-task="([^"]+)" data-status="([^"]+)"', page)
    assert rows == [("RQ-0001", "integrated"), ("RQ-0002", "running")]


def test_static_table_keeps_inline_styles_and_escapes_every_cell() -> None:
    recs = [_rec("RQ-0001", 1, "killed", title="<script>alert(1)</script>")]
    page = html_table(recs, now=NOW, head="<b>head</b>")
    assert "<style>" not in page  # a static render (e.g. on GitHub) drops style blocks
    assert f"background:{COLOURS['killed']}" in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;head&lt;/b&gt;" in page


def test_live_table_has_one_style_block_and_rows_as_high_as_the_buttons() -> None:
    recs = [_rec(f"RQ-{i:04d}", 1, "running", title=f"task {i}") for i in range(1, 4)]
    page = html_table(recs, now=NOW, head="summary", fixed_rows=True)
    assert page.count("<style>") == 1
    assert f"tbody tr{{height:{ROW_PX}px" in page
    assert page.count('<span class="b b-running">') == 3  # class names, not inline styles
    assert 'style="padding' not in page


def test_an_unknown_status_gets_the_neutral_badge() -> None:
    page = html_table([_rec("RQ-0001", 1, "mystery")], now=NOW)
    assert "background:#374151" in page and ">mystery<" in page
    live = html_table([_rec("RQ-0001", 1, "mystery")], now=NOW, fixed_rows=True)
    assert '<span class="b b-">mystery</span>' in live


def test_a_stuck_worker_has_a_stuck_badge_beside_its_status() -> None:
    recs = [_rec("RQ-0001", 1, "running", stuck=True), _rec("RQ-0002", 1, "running", stuck=False)]
    for live in (False, True):
        page = html_table(recs, now=NOW, fixed_rows=live)
        first, second = page.split('data-task="RQ-0002"')
        assert ">stuck</span>" in first and ">stuck</span>" not in second
    assert f"background:{STUCK_COLOUR}" in html_table(recs, now=NOW)
