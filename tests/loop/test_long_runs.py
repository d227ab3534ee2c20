"""Long runs: memory stays flat and cost linear in output; the journal stays compact and still
rebuilds the live table exactly; `loop.events` reads past its in-memory window."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from ralphnb.loop.core import Loop
from ralphnb.loop.events import Event, EventWindow, Journal
from ralphnb.loop.runs import Run
from ralphnb.queue.store import init
from ralphnb.runners import Command
from tests.conftest import demo, make_repo

# Prints `n` Claude stream-json turns (text, tool_use of the same message, tool_result), then
# sleeps `idle` seconds, then a result line. argv: n, idle.
AGENT = r"""
import sys, time
n, idle = int(sys.argv[1]), float(sys.argv[2])
out = sys.stdout
out.write('{"type":"system","subtype":"init","session_id":"s-1"}\n')
turn = ('{"type":"assistant","message":{"id":"m%(i)d","model":"x","content":[{"type":"text",'
        '"text":"step %(i)d"}],"usage":{"input_tokens":10,"output_tokens":1}},'
        '"parent_tool_use_id":null}\n'
        '{"type":"assistant","message":{"id":"m%(i)d","model":"x","content":[{"type":"tool_use",'
        '"name":"Edit","input":{}}],"usage":{"input_tokens":10,"output_tokens":2}},'
        '"parent_tool_use_id":null}\n'
        '{"type":"user","message":{"role":"user","content":[{"type":"tool_result","content":"ok"}]}}\n')
for start in range(0, n, 200):
    out.write("".join(turn % {"i": i} for i in range(start, min(n, start + 200))))
out.flush()
time.sleep(idle)
out.write('{"type":"result","subtype":"success","is_error":false,"num_turns":%d,'
          '"result":"all done <promise>COMPLETE</promise>","session_id":"s-1",'
          '"total_cost_usd":0.5,"usage":{"input_tokens":%d,"output_tokens":%d}}\n'
          % (n, 10 * n, 2 * n))
"""


def flood_repo(tmp_path: Path, tasks: int) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "README.md").write_text("x\n")
    q = init(repo)
    for i in range(tasks):
        q.add(f"flood {i}")
    return repo


def flood_loop(repo: Path, turns: int, idle: float = 0.0, parallel: int = 2, **kw) -> Loop:
    runner = Command([sys.executable, "-S", "-c", AGENT, str(turns), str(idle)], parser="claude")
    return Loop(
        repo, runner=runner, parallel=parallel, max_iterations=1, workspace_mode="copy", **kw
    )


def frame(df):
    return df.drop(columns=["cpu_percent", "rss_mb"])


# ------------------------------------------------------------------ the event window


def test_event_window_keeps_the_last_events_and_reads_older_ones_from_the_journal(tmp_path):
    journal = Journal(tmp_path / "events.jsonl")
    window = EventWindow(3)
    events = [Event("output", "RQ-0001", "RQ-0001#1", data={"i": i}) for i in range(10)]
    for ev in events:
        window.append(ev, journal.append(ev))
    journal.close()
    assert len(window) == 3
    assert window.events(journal.path) == events


def test_event_window_an_event_never_journaled_is_not_read_twice(tmp_path):
    journal = Journal(tmp_path / "events.jsonl")
    window = EventWindow(2)
    early = Event("paused")  # emitted before the run had a journal
    window.append(early, False)
    later = [Event("resumed", data={"i": i}) for i in range(3)]
    for ev in later:
        window.append(ev, journal.append(ev))
    assert window.events(journal.path) == later


def test_loop_events_beyond_the_window_come_back_from_the_journal(tmp_path, fast_demo):
    repo = make_repo(tmp_path, [demo("one"), demo("two")])
    loop = Loop(repo, runner="demo", parallel=2, events_window=5)
    loop.run()
    assert loop.run_dir is not None
    on_disk = list(Journal.read(loop.run_dir / "events.jsonl"))
    assert len(on_disk) > 5 and loop._sink.held == 5
    assert loop.events == on_disk


# ------------------------------------------------------------------ compact journal, same table


def test_a_flood_of_output_is_journaled_compactly_and_rebuilds_the_same_table(tmp_path):
    repo = flood_repo(tmp_path, 2)
    loop = flood_loop(repo, 10_000)
    df = loop.run()
    assert list(df.status) == ["integrated", "integrated"]
    assert list(df.turns) == [10_000, 10_000]
    assert list(df.tokens_in) == [100_000, 100_000] and list(df.tokens_out) == [20_000] * 2
    assert loop.run_dir is not None
    journal = loop.run_dir / "events.jsonl"
    assert sum(1 for _ in journal.open("rb")) < 2 * 30_001 / 20  # well under 1 event per line
    assert frame(Run.load(loop.run_dir).df).equals(frame(df))


def test_an_idle_agents_last_words_reach_the_row_while_it_waits(tmp_path):
    repo = flood_repo(tmp_path, 1)
    loop = flood_loop(repo, 50, idle=3.0, parallel=1).start()
    try:
        deadline = time.monotonic() + 2.5  # the agent sleeps 3 s after its last turn
        row = None
        while time.monotonic() < deadline:
            rows = loop.snapshot(sample=False)
            row = rows[0] if rows else None
            if row and row["last_message"] == "[tool] Edit" and row["tokens_out"] == 100:
                break
            time.sleep(0.05)
        assert row is not None and row["status"] == "running"
        assert row["last_message"] == "[tool] Edit" and row["tokens_out"] == 100
    finally:
        loop.wait(30)


# ------------------------------------------------------------------ soak


@pytest.mark.slow
def test_soak_a_million_output_lines_keep_the_loops_memory_flat(tmp_path):
    """4 workers print 1,000,002 lines of Claude stream-json (plus init and result lines): the
    loop's RSS grows by less than 50 MB, and the journal rebuilds the same table."""
    repo = flood_repo(tmp_path, 4)
    turns = 1_000_002 // 3 // 4
    loop = flood_loop(repo, turns, parallel=4, max_log_bytes=1 << 20)
    me = psutil.Process()
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            peak[0] = max(peak[0], me.memory_info().rss)

    base = me.memory_info().rss
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    df = loop.run()
    stop.set()
    sampler.join()
    growth_mb = (max(peak[0], me.memory_info().rss) - base) / 2**20
    assert list(df.turns) == [turns] * 4
    assert growth_mb < 50, f"the loop's RSS grew by {growth_mb:.0f} MB"
    assert loop.run_dir is not None
    assert frame(Run.load(loop.run_dir).df).equals(frame(df))
