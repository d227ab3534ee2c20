"""The output gate: parsed output reaches the sink at a bounded rate, in stream order, and the
last state of every field is always sent."""

from __future__ import annotations

import threading

from ralphnb.loop.outflow import OutputGate


def gate(interval: float = 0.25) -> tuple[OutputGate, list[dict]]:
    sent: list[dict] = []
    return OutputGate(sent.append, interval), sent


def msg(text: str) -> dict:
    return {"type": "message", "text": text}


def test_the_first_update_goes_at_once_and_a_flood_is_held_to_its_latest():
    g, sent = gate()
    g.offer([msg("m0")], now=0.0)
    for i in range(1, 1000):
        g.offer([msg(f"m{i}"), {"type": "usage", "tokens_in": i, "tokens_out": i}], now=0.1)
    assert sent == [msg("m0")]
    g.tick(now=0.2)  # the interval has not passed
    assert len(sent) == 1
    g.tick(now=0.3)
    assert sent[1:] == [msg("m999"), {"type": "usage", "tokens_in": 999, "tokens_out": 999}]


def test_at_most_one_batch_per_interval_while_lines_keep_coming():
    g, sent = gate(interval=1.0)
    for i in range(10_000):
        g.offer([msg(f"m{i}")], now=i / 1000)  # 10 s of lines, 1,000 a second
    assert 10 <= len(sent) <= 11
    g.close()
    assert sent[-1] == msg("m9999")


def test_events_that_must_not_wait_pass_after_what_was_held_in_stream_order():
    g, sent = gate()
    g.offer([msg("first")], now=0.0)
    g.offer([msg("second"), {"type": "tool", "name": "Edit"}], now=0.01)
    g.offer([{"type": "result", "text": "done", "is_error": False}], now=0.02)
    assert sent == [
        msg("first"),
        msg("second"),
        {"type": "tool", "name": "Edit"},
        {"type": "result", "text": "done", "is_error": False},
    ]


def test_held_tool_calls_are_all_counted_in_one_event_named_for_the_last():
    g, sent = gate()
    g.offer([msg("go")], now=0.0)
    for name in ("Read", "Edit", "Read", "Bash"):
        g.offer([{"type": "tool", "name": name}], now=0.1)
    g.close()
    assert sent[-1] == {"type": "tool", "name": "Bash", "calls": {"Read": 2, "Edit": 1, "Bash": 1}}


def test_a_message_after_a_tool_call_is_sent_after_it():
    g, sent = gate()
    g.offer([msg("go")], now=0.0)
    g.offer([{"type": "tool", "name": "Edit"}], now=0.1)
    g.offer([msg("edited")], now=0.1)
    g.close()
    assert sent[1:] == [{"type": "tool", "name": "Edit"}, msg("edited")]


def test_after_close_everything_passes_at_once():
    g, sent = gate()
    g.offer([msg("a")], now=0.0)
    g.offer([msg("b")], now=0.01)
    g.close()
    g.offer([msg("late")], now=0.02)
    assert sent == [msg("a"), msg("b"), msg("late")]
    assert g.held == 0


def test_a_reader_and_a_ticker_never_reorder_what_is_sent():
    sent: list[dict] = []
    g = OutputGate(sent.append, interval=0.0)
    stop = threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            g.tick()

    t = threading.Thread(target=ticker)
    t.start()
    for i in range(20_000):
        g.offer([{"type": "usage", "tokens_in": i, "tokens_out": 0}])
    stop.set()
    t.join()
    g.close()
    seen = [e["tokens_in"] for e in sent]
    assert seen == sorted(seen) and seen[-1] == 19_999
