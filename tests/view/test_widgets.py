"""Dashboard widgets in plain Python (no kernel): `button.click()` fires the real handlers.

The first half drives the dashboard with `FakeLoop` (tests/view/fake_loop.py), a tiny stand-in
with the methods of `ralphnb.Loop` the view calls, so rendering, throttling and button wiring
are tested on their own. The second half (`real_loop` tests)
uses a real `ralphnb.Loop` with real demo workers and psutil.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import comm
import psutil
import pytest

from ralphnb.demo import create_sample_repo
from ralphnb.loop.core import Loop
from ralphnb.queue.store import Queue
from ralphnb.view import widgets
from tests.view.fake_loop import FakeLoop


class CountingComm(comm.DummyComm):
    """A comm that counts what would be sent to the front end (update/open messages)."""

    sent: list[str] = []

    def publish_msg(
        self,
        msg_type: str,
        data: Any = None,
        metadata: Any = None,
        buffers: Any = None,
        **keys: Any,
    ) -> None:
        CountingComm.sent.append(msg_type)


@pytest.fixture
def counting_comm(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    CountingComm.sent = []
    monkeypatch.setattr(comm, "create_comm", lambda *a, **k: CountingComm(*a, **k))
    return CountingComm.sent


def _until(pred: Any, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return bool(pred())


def test_buttons_have_tooltips_naming_action_and_task() -> None:
    loop = FakeLoop(2)
    dash = widgets.Dashboard(loop, start=False)
    assert {r.stop.tooltip for r in dash._rows.values()} == {"Stop RQ-0001", "Stop RQ-0002"}
    assert {r.kill.tooltip for r in dash._rows.values()} == {"Kill RQ-0001", "Kill RQ-0002"}
    assert all(not r.stop.disabled and not r.kill.disabled for r in dash._rows.values())
    assert 'data-task="RQ-0002"' in dash.table.value
    dash.close()


def test_buttons_are_disabled_once_the_worker_has_ended() -> None:
    loop = FakeLoop(2)
    loop.records["RQ-0002"].update(status="succeeded", ended_at=datetime.now(UTC))
    dash = widgets.Dashboard(loop, start=False)
    assert dash._rows["RQ-0002"].stop.disabled and dash._rows["RQ-0002"].kill.disabled
    assert not dash._rows["RQ-0001"].kill.disabled
    loop.records["RQ-0001"]["status"] = "failed"
    dash.refresh()
    assert dash._rows["RQ-0001"].stop.disabled and dash._rows["RQ-0001"].kill.disabled
    # finished rows stay visible
    assert 'data-task="RQ-0001"' in dash.table.value and 'data-status="failed"' in dash.table.value
    dash.close()


def test_click_calls_stop_and_kill_without_blocking() -> None:
    loop = FakeLoop(3)
    loop.release.clear()  # stop/kill block until released: the click must not
    dash = widgets.Dashboard(loop)
    t0 = time.monotonic()
    dash._rows["RQ-0001"].stop.click()
    dash._rows["RQ-0002"].kill.click()
    assert time.monotonic() - t0 < 0.5
    assert _until(lambda: len(loop.calls) == 2)
    assert sorted(loop.calls) == [("kill", "RQ-0002"), ("stop", "RQ-0001")]
    # a clicked button is disabled at once; Kill stays available while a stop is pending
    assert dash._rows["RQ-0001"].stop.disabled and not dash._rows["RQ-0001"].kill.disabled
    assert dash._rows["RQ-0002"].kill.disabled
    loop.release.set()
    assert _until(lambda: 'data-task="RQ-0002" data-status="killed"' in dash.table.value)
    assert _until(lambda: 'data-task="RQ-0001" data-status="stopped"' in dash.table.value)
    assert dash._rows["RQ-0001"].kill.disabled
    assert not dash._rows["RQ-0003"].stop.disabled
    dash.close()


def test_loop_buttons_call_pause_resume_stop_all() -> None:
    loop = FakeLoop(1)
    dash = widgets.Dashboard(loop)
    dash.pause_button.click()
    assert _until(lambda: dash.resume_button.disabled is False and dash.pause_button.disabled)
    dash.resume_button.click()
    dash.stop_all_button.click()
    assert _until(lambda: ("stop_all", None) in loop.calls)
    assert [c for c, _ in loop.calls] == ["pause", "resume", "stop_all"]
    dash.close()


def test_failed_action_is_reported_not_raised() -> None:
    loop = FakeLoop(1)

    def boom(task_id: str) -> None:
        raise RuntimeError(f"no worker for {task_id}")

    loop.kill = boom  # type: ignore[method-assign]
    dash = widgets.Dashboard(loop, start=False)
    dash._rows["RQ-0001"].kill.click()
    assert _until(lambda: "no worker for RQ-0001" in dash.message.value)
    dash.close()


def test_burst_of_events_is_throttled(counting_comm: list[str]) -> None:
    loop = FakeLoop(20)
    dash = widgets.Dashboard(loop, tick=10.0)  # no clock ticks: count event-driven renders only
    time.sleep(0.3)
    renders0, sent0 = dash.render_count, len(counting_comm)
    t0 = time.monotonic()
    for i in range(1000):
        loop.set(f"RQ-{i % 20 + 1:04d}", turns=i, last_message=f"message {i}")
        if i % 100 == 0:
            time.sleep(0.1)  # the burst spans ~1 s
    burst = time.monotonic() - t0
    time.sleep(0.6)
    span = time.monotonic() - t0
    renders = dash.render_count - renders0
    sent = [m for m in counting_comm[sent0:] if m == "comm_msg"]
    assert "message 999" in dash.table.value  # the last state is rendered
    assert 2 <= renders <= 4.5 * span + 1, (renders, span, burst)
    assert len(sent) <= 1.2 * renders + 1, (len(sent), renders)  # one table message per render
    dash.close()


def test_paused_loop_is_shown_in_the_header() -> None:
    loop = FakeLoop(1)
    dash = widgets.Dashboard(loop, start=False)
    assert "paused" not in dash.table.value and dash.resume_button.disabled
    loop.paused = True
    dash.refresh()
    assert "| paused" in dash.table.value and not dash.resume_button.disabled
    assert dash.pause_button.disabled
    dash.close()


def test_render_thread_ends_after_final_render_when_loop_finishes() -> None:
    loop = FakeLoop(2)
    dash = widgets.Dashboard(loop)
    assert dash.alive and len(loop.subscribers) == 1
    with loop.lock:
        for r in loop.records.values():
            r.update(status="integrated", ended_at=datetime.now(UTC), elapsed_s=3.0)
    loop.finish()
    assert dash.join(timeout=5)
    assert not dash.alive and loop.subscribers == []
    assert dash.table.value.count('data-status="integrated"') == 2
    assert dash.pause_button.disabled and dash.stop_all_button.disabled
    assert all(r.kill.disabled for r in dash._rows.values())
    assert dash._thread is not None and not dash._thread.is_alive()


def test_close_stops_the_thread_and_dashboard_is_one_per_loop() -> None:
    loop = FakeLoop(1)
    d1 = widgets.dashboard(loop)
    assert widgets.dashboard(loop) is d1
    d1.close()
    assert not d1.alive and loop.subscribers == []
    d2 = widgets.dashboard(loop)
    assert d2 is not d1
    d2.close()


def test_close_from_garbage_collection_while_dashboard_lock_is_held() -> None:
    # Widget.__del__ calls close(); GC can run inside dashboard() while it holds its lock
    old, fresh = widgets.Dashboard(FakeLoop(1)), widgets.Dashboard(FakeLoop(1))
    old.close()

    def collect() -> None:
        with widgets._DASH_LOCK:
            old.close()  # second close: a no-op
            fresh.close()  # first close, lock already held by this thread

    t = threading.Thread(target=collect, daemon=True)
    t.start()
    t.join(5)
    assert not t.is_alive(), "close() deadlocked on the dashboard lock"
    assert not fresh.alive


def test_log_view_shows_the_transcript_and_the_raw_tail_one_click_away() -> None:
    loop = FakeLoop(2)
    dash = widgets.Dashboard(loop, start=False)
    assert dash.log_view.layout.display == "none" and dash.log_raw.layout.display == "none"
    dash._rows["RQ-0002"].log.click()
    assert "transcript RQ-0002" in dash.log_title.value
    view = dash.log_view.value
    assert "<details" in view and "<b>Bash</b>" in view  # the tool call, collapsed
    assert "color:#b91c1c" in view and "RQ-0002 &lt;failed&gt;" in view  # the error, in red
    assert dash.log_raw.layout.display == ""
    dash.log_raw.value = True  # the raw log: one click
    assert "log RQ-0002" in dash.log_title.value
    assert "RQ-0002 line 99" in dash.log_view.value
    assert "RQ-0002 line 10\n" not in dash.log_view.value
    assert "<details" not in dash.log_view.value
    assert dash.log_view.layout.display == "block" and "RQ-0002" in dash.log_title.value
    dash.log_close.click()
    assert dash.log_view.layout.display == "none"
    dash.close()


def test_open_log_follows_the_tail_at_most_once_a_second() -> None:
    loop = FakeLoop(1)
    lines: list[str] = []
    loop.logs = lambda task_id: list(lines)  # type: ignore[method-assign]
    dash = widgets.Dashboard(loop)
    dash.show_log("RQ-0001")
    changes: list[str] = []
    dash.log_view.observe(lambda ch: changes.append(ch["new"]), "value")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.0:
        lines.append(f"line {len(lines)}")
        loop.emit()
        time.sleep(0.02)
    assert _until(lambda: f"line {len(lines) - 1}" in dash.log_view.value, 3)
    assert 1 <= len(changes) <= 5, len(changes)  # ~2 s of tailing: not one per render
    dash.show_log(None)
    assert _until(lambda: dash.log_view.value == "", 2)
    dash.close()


def test_mimebundle_outside_a_kernel_is_text_and_html_only() -> None:
    loop = FakeLoop(2)
    loop.records["RQ-0001"]["title"] = "<script>alert(1)</script>"
    data = widgets.mimebundle(loop)
    assert set(data) == {"text/plain", "text/html"}
    assert "RQ-0001" in data["text/plain"] and "running" in data["text/plain"]
    assert "<table" in data["text/html"] and "<script>" not in data["text/html"]
    assert set(widgets.mimebundle(loop, include=["text/plain"])) == {"text/plain"}
    assert set(widgets.mimebundle(loop, exclude=["text/plain"])) == {"text/html"}
    assert not widgets._DASHBOARDS.get(loop)  # no widget, no thread outside a kernel


def test_repr_is_the_text_table_one_row_per_task_latest_attempt() -> None:
    loop = FakeLoop(0)
    loop.records = {
        "a": {"task_id": "RQ-0001", "iteration": 1, "status": "failed", "title": "a"},
        "b": {
            "task_id": "RQ-0001",
            "iteration": 2,
            "status": "integrated",
            "title": "a",
            "cost_usd": 0.5,
            "elapsed_s": 65.0,
        },
        "c": {
            "task_id": "RQ-0002",
            "iteration": 1,
            "status": "killed",
            "title": "b",
            "cost_usd": float("nan"),
        },
    }
    dash = widgets.Dashboard(loop, start=False)
    lines = repr(dash).splitlines()
    dash.close()
    assert len(lines) == 4
    assert "integrated 1" in lines[0] and "killed 1" in lines[0] and "$0.500" in lines[0]
    assert lines[2].split()[:3] == ["RQ-0001", "2", "integrated"] and "1:05" in lines[2]


# ---------------------------------------------------------------- with a real Loop


def _real_loop(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("RALPHNB_DEMO_SPEED", "0.2")
    repo = create_sample_repo(tmp_path / "repo", n_tasks=1)
    q = Queue(repo)
    q.add("long", custom_fields={"demo.hang": "true", "demo.children": "1"})
    q.add("stuck", custom_fields={"demo.hang": "true", "demo.children": "2"})
    return Loop(repo, runner="demo", parallel=3, max_iterations=1)


def _tree(pid: int) -> list[int]:
    try:
        return [pid] + [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
def test_buttons_stop_and_kill_real_demo_workers(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = _real_loop(tmp_path, monkeypatch)
    dash = loop.dashboard()
    assert dash is widgets.dashboard(loop)
    loop.start()
    try:

        def running(tid: str) -> dict | None:
            rows = [r for r in loop.snapshot() if r["task_id"] == tid]
            return rows[-1] if rows and rows[-1]["status"] == "running" else None

        assert _until(lambda: running("RQ-0002") and running("RQ-0003"), timeout=60)
        # the agents have started their children once they report them
        assert _until(lambda: len(_tree(running("RQ-0003")["pid"])) >= 4, timeout=20)
        assert _until(lambda: {"RQ-0002", "RQ-0003"} <= set(dash._rows), timeout=5)
        long_tree = _tree(running("RQ-0002")["pid"])
        stuck_tree = _tree(running("RQ-0003")["pid"])
        rows = dash._rows
        assert rows["RQ-0003"].kill.tooltip == "Kill RQ-0003"
        assert rows["RQ-0002"].stop.tooltip == "Stop RQ-0002"
        assert not rows["RQ-0003"].kill.disabled and not rows["RQ-0002"].stop.disabled
        t0 = time.monotonic()
        rows["RQ-0003"].kill.click()
        rows["RQ-0002"].stop.click()
        assert time.monotonic() - t0 < 0.5  # the handlers returned at once
        assert loop.wait(60)
        assert not [p for p in long_tree + stuck_tree if _alive(p)]
        assert dash.join(5) and not dash.alive
        final = {r["task_id"]: r["status"] for r in loop.snapshot()}
        assert final == {"RQ-0001": "integrated", "RQ-0002": "stopped", "RQ-0003": "killed"}
        html = dash.table.value
        for tid, st in final.items():
            assert f'data-task="{tid}" data-status="{st}"' in html
            assert rows[tid].stop.disabled and rows[tid].kill.disabled
        assert dash.pause_button.disabled and dash.stop_all_button.disabled
        bundle = widgets.mimebundle(loop)
        assert "killed" in bundle["text/plain"] and 'data-status="stopped"' in bundle["text/html"]
    finally:
        loop.stop_all()
        loop.wait(30)
        dash.close()


@pytest.mark.slow
def test_pause_resume_and_stop_all_buttons_on_a_real_loop(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = _real_loop(tmp_path, monkeypatch)
    dash = widgets.Dashboard(loop)
    loop.start()
    try:
        assert _until(lambda: sum(r["status"] == "running" for r in loop.snapshot()) >= 2, 60)
        dash.pause_button.click()
        assert _until(lambda: dash.resume_button.disabled is False, 5)
        assert loop.paused and "| paused" in dash.table.value
        dash.resume_button.click()
        assert _until(lambda: dash.pause_button.disabled is False, 5)
        assert not loop.paused
        # unsampled records: the same workers, without CPU/RSS
        plain = [r for r in loop.snapshot(sample=False) if r["status"] == "running"]
        assert len(plain) >= 2 and all(r["rss_mb"] is None for r in plain)
        assert _until(
            lambda: any(r["rss_mb"] for r in loop.snapshot() if r["status"] == "running"), 5
        )
        dash.stop_all_button.click()
        assert loop.wait(60)
        assert dash.join(5)
        statuses = {r["task_id"]: r["status"] for r in loop.snapshot()}
        assert statuses["RQ-0002"] == statuses["RQ-0003"] == "stopped", statuses
        kinds = [e.kind for e in loop.events]
        assert "paused" in kinds and "resumed" in kinds
    finally:
        loop.stop_all()
        loop.wait(30)
        dash.close()
