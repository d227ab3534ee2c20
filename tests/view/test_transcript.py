"""The notebook rendering of a transcript: messages as text, tool calls collapsed with their
arguments, results clipped, errors in red, only the final usage line; everything escaped."""

from __future__ import annotations

from ralphnb.runners.transcript import Entry, Transcript
from ralphnb.view.transcript import (
    ARGS_CLIP,
    RESULT_CLIP,
    entry_html,
    live_html,
    render,
    transcript_html,
)
from tests.view.fake_loop import FakeLoop


def test_message_is_escaped_text():
    assert entry_html(Entry("message", text="a <b> & c")) == (
        '<div style="white-space:pre-wrap;margin:4px 0">a &lt;b&gt; &amp; c</div>'
    )


def test_tool_call_is_collapsed_with_its_name_and_arguments():
    out = entry_html(Entry("tool_call", tool="Write", args='{"file_path": "<x>.py"}'))
    assert out.startswith("<details") and "<summary" in out and "<b>Write</b>" in out
    assert "&lt;x&gt;.py" in out and "<x>" not in out
    long = entry_html(Entry("tool_call", tool="Write", args="a" * (ARGS_CLIP + 500)))
    assert "… [500 more]" in long


def test_result_is_clipped_and_a_failed_one_is_red():
    out = entry_html(Entry("tool_result", text="x" * (RESULT_CLIP + 10)))
    assert "x" * RESULT_CLIP + "… [10 more]" in out and "#b91c1c" not in out
    assert "#b91c1c" in entry_html(Entry("tool_result", text="no", is_error=True))


def test_error_is_red_and_only_the_final_usage_is_shown():
    assert "color:#b91c1c" in entry_html(Entry("error", text="API error 400"))
    assert entry_html(Entry("usage", tokens_in=5, tokens_out=1)) == ""
    final = entry_html(Entry("usage", turns=2, tokens_in=5, tokens_out=1, cost_usd=0.5, final=True))
    assert "turns 2" in final and "$0.5000" in final


def test_a_transcript_renders_in_order_with_its_title():
    es = [Entry("message", text="first"), Entry("tool_call", tool="Bash", args="{}")]
    t = Transcript("RQ-0007", 2, es, live=True, renderer=render)
    out = t._repr_html_()
    assert "RQ-0007 attempt 2 (live): 2 entries" in out
    assert out.index("first") < out.index("<b>Bash</b>")
    assert transcript_html([]).startswith('<div class="ralphnb-transcript"')


def test_live_view_shows_the_latest_entries_and_says_how_many_more():
    loop = FakeLoop(1)
    out = live_html(loop, "RQ-0001", last=10)
    assert "last 10 of 102 entries" in out and "RQ-0001 line 92" in out
    assert "RQ-0001 line 91<" not in out
    assert "(no transcript:" in live_html(object(), "RQ-0001")
