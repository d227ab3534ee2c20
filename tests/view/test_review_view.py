"""The review in a notebook without a kernel: the diff's HTML, and the dashboard's Review button
and panel clicked with `button.click()` on a real review loop (real git, demo workers)."""

from __future__ import annotations

import time

import pytest

from ralphnb.loop.core import Loop
from ralphnb.queue.store import Queue
from ralphnb.view.diffview import DiffView, diff_html, diff_view
from ralphnb.view.widgets import dashboard
from ralphnb.workspace.diff import Diff, FileDiff
from tests.conftest import demo, git, make_repo


def _until(pred, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return bool(pred())


def _diff() -> Diff:
    patch = (
        "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1,2 +1,2 @@\n"
        "-x = '<old>'\n+x = '<new>'\n same\n"
    )
    files = (
        FileDiff("a.py", "modified", 1, 1, patch),
        FileDiff("img.png", "added", None, None, "diff --git a/img.png b/img.png\n"),
    )
    return Diff("RQ-0003", "main", "a" * 40, "b" * 40, files)


def test_the_html_has_a_file_list_and_coloured_escaped_lines():
    html = diff_html(_diff())
    assert html.index('href="#rnb-RQ-0003-0"') < html.index('id="rnb-RQ-0003-0"')
    assert '<span class="d">-x = &#x27;&lt;old&gt;&#x27;</span>' in html
    assert '<span class="a">+x = &#x27;&lt;new&gt;&#x27;</span>' in html
    assert '<span class="h">@@ -1,2 +1,2 @@</span>' in html
    assert "<old>" not in html and ">binary<" in html
    assert "2 files changed, +1 -1 against main" in html


def test_a_long_file_is_cut_with_a_note_and_an_empty_diff_says_so():
    body = "".join(f"+{i}\n" for i in range(50))
    big = FileDiff("big", "added", 50, 0, "diff --git a/big b/big\n@@ -0,0 +1,50 @@\n" + body)
    html = diff_html(Diff("RQ-0001", "main", "a", "b", (big,)), max_lines=10)
    assert "42 more lines not shown" in html
    assert "No change" in diff_html(Diff("RQ-0001", "main", "a", "b", ()))


def test_a_diff_view_is_the_same_diff_with_a_notebook_display():
    view = diff_view(_diff())
    assert isinstance(view, DiffView) and view.files == _diff().files
    assert view._repr_html_() == diff_html(_diff())
    assert repr(view) == repr(_diff()) and len(view.stat) == 2


@pytest.mark.slow
def test_review_button_opens_the_diff_and_the_panel_buttons_decide(tmp_path, fast_demo):
    repo = make_repo(tmp_path, [demo("alpha")])
    loop = Loop(repo, runner="demo", parallel=1, review=True).start()
    dash = dashboard(loop, start=False)
    try:
        assert _until(lambda: "RQ-0001" in set(loop.reviews().task_id))
        dash.refresh()
        row = dash._rows["RQ-0001"]
        assert row.review.tooltip == "Review RQ-0001" and row.review.layout.display == ""
        row.review.click()
        panel = dash.review
        assert panel.layout.display == "" and panel.accept.tooltip == "Accept RQ-0001"
        assert panel.discard.tooltip == "Discard RQ-0001"
        assert panel.request.tooltip == "Request changes RQ-0001"
        assert _until(lambda: "alpha.txt" in panel.view.value)
        panel.request.click()  # no text yet: nothing is decided
        assert "write what should change" in panel.status.value
        panel.text.value = "also say hello"
        panel.request.click()
        assert _until(lambda: "RQ-0001#2" in set(loop.df.worker_id))
        assert _until(lambda: "RQ-0001" in set(loop.reviews().task_id))
        dash.refresh()
        row.review.click()
        assert _until(lambda: "alpha.txt" in panel.view.value)
        panel.accept.click()
        assert loop.wait(60)
        dash.refresh()
        assert row.review.layout.display == "none"
        assert "alpha.txt" in git(repo, "ls-tree", "--name-only", "main")
        assert [t.id for t in Queue(repo).done] == ["RQ-0001"]
        last = loop.df.drop_duplicates("task_id", keep="last").iloc[0]
        assert last.status == "integrated" and last.worker_id == "RQ-0001#2"
    finally:
        loop.stop_all()
        loop.wait(30)
        dash.close()
