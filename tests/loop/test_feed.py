"""The numbered event feed a subscribe connection streams, and the socket that streams it."""

from __future__ import annotations

import os
import threading
import time

from ralphnb.loop.control import ControlServer, open_stream
from ralphnb.loop.events import Event
from ralphnb.loop.feed import EventFeed


def events(msgs) -> list[tuple[int, str]]:
    return [(m["seq"], m["event"]["kind"]) for m in msgs if "event" in m]


def test_a_stream_resumes_after_the_last_seq_and_ends_after_loop_finished():
    feed = EventFeed()
    for kind in ("loop_started", "queued", "started", "exited", "loop_finished"):
        feed(Event(kind))
    msgs = list(feed.stream(since=2, heartbeat=0.01))
    assert msgs[0] == {"ping": 2}
    assert events(msgs) == [(3, "started"), (4, "exited"), (5, "loop_finished")]


def test_a_reconnect_older_than_the_window_is_told_which_events_it_missed():
    feed = EventFeed(keep=3)
    for n in range(6):
        feed(Event("output", data={"n": n}))
    feed(Event("loop_finished"))
    msgs = list(feed.stream(since=1, heartbeat=0.01))
    assert {"gap": [2, 4]} in msgs
    assert events(msgs) == [(5, "output"), (6, "output"), (7, "loop_finished")]


def test_a_stream_from_now_gets_only_new_events_live_and_pings_while_idle():
    feed = EventFeed()
    feed(Event("loop_started"))
    got: list[dict] = []
    stream = feed.stream(heartbeat=0.05)
    t = threading.Thread(target=lambda: got.extend(stream), daemon=True)
    t.start()
    time.sleep(0.2)  # idle: pings only
    feed(Event("started"))
    feed(Event("loop_finished"))
    t.join(5)
    assert not t.is_alive()
    assert events(got) == [(2, "started"), (3, "loop_finished")]
    assert sum("ping" in m for m in got) >= 2


def test_the_server_ends_a_stream_whose_client_went_away():
    feed = EventFeed()
    server = ControlServer(f"feed-{os.getpid()}", lambda req: feed.stream(heartbeat=0.05))
    try:
        stream = open_stream(server.address, {"op": "subscribe"})
        assert next(stream) == {"ping": 0}
        assert feed.streams == 1
        stream.close()  # the client goes away without a word
        assert feed.drain(5), "the server kept streaming to a client that was gone"
        with_client = open_stream(server.address, {"op": "subscribe"})
        next(with_client)
        feed(Event("loop_finished"))
        assert [m["event"]["kind"] for m in with_client if "event" in m] == ["loop_finished"]
    finally:
        server.close()
