"""The review gate end to end: real git, real demo-agent processes, a person's decisions."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from ralphnb.errors import RalphError
from ralphnb.loop.core import Loop
from ralphnb.loop.phases import Handoffs, task_phases
from ralphnb.loop.runs import Run
from ralphnb.loop.spawn import phase_command
from ralphnb.queue.store import Queue
from ralphnb.runners.command import Command
from tests.conftest import demo, git, make_repo

pytestmark = pytest.mark.usefixtures("fast_demo")


def wait_for(pred, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def waiting(loop: Loop) -> set[str]:
    return set(loop.reviews().task_id)


def task(repo: Path, task_id: str):
    q = Queue(repo)
    return next(t for t in [*q.tasks, *q.done] if t.id == task_id)


@pytest.fixture
def two_waiting(tmp_path):
    """A review loop with parallel=1 whose two tasks both finished and wait."""
    repo = make_repo(tmp_path, [demo("alpha"), demo("beta")])
    loop = Loop(repo, runner="demo", parallel=1, review=True).start()
    wait_for(lambda: waiting(loop) == {"RQ-0001", "RQ-0002"})
    yield repo, loop
    loop.stop_all()
    loop.wait(30)


@pytest.mark.slow
def test_finished_work_waits_and_nothing_reaches_the_target_until_accepted(two_waiting):
    repo, loop = two_waiting
    # parallel=1 and both tasks finished: the first one waiting held no worker slot
    head = git(repo, "rev-parse", "main").strip()
    assert git(repo, "log", "--format=%s", "main").split("\n")[0] == "init"
    latest = loop.df.drop_duplicates("task_id", keep="last").set_index("task_id")
    assert list(latest.status) == ["review", "review"]
    assert task(repo, "RQ-0001").status == "doing"  # never done before a person says so
    assert not loop.wait(0.5)  # the loop does not finish while work waits
    assert loop.diff("RQ-0001").stat.path.tolist() == ["alpha.txt"]
    loop.accept("RQ-0001")
    assert git(repo, "rev-parse", "main").strip() != head
    assert (repo / "alpha.txt").read_text().strip() == "alpha"
    assert task(repo, "RQ-0001").status == "done"
    assert "beta.txt" not in git(repo, "ls-tree", "--name-only", "main")
    assert loop.df.set_index("worker_id").loc["RQ-0001#1", "status"] == "integrated"


@pytest.mark.slow
def test_discard_drops_the_workspace_and_returns_the_task_to_todo_with_the_note(two_waiting):
    repo, loop = two_waiting
    ws = Path(loop.df.set_index("worker_id").loc["RQ-0002#1", "workspace"])
    assert ws.is_dir()
    loop.discard("RQ-0002", note="not what we need")
    assert not ws.exists()
    assert "ralph/RQ-0002" not in git(repo, "branch", "--list")
    t = task(repo, "RQ-0002")
    assert t.status == "todo" and "discarded in review: not what we need" in t.notes[-1]
    assert loop.df.set_index("worker_id").loc["RQ-0002#1", "status"] == "discarded"
    assert "beta.txt" not in git(repo, "ls-tree", "--name-only", "main")


@pytest.mark.slow
def test_requeue_runs_again_in_the_same_workspace_with_the_feedback_in_the_prompt(two_waiting):
    repo, loop = two_waiting
    ws = loop.df.set_index("worker_id").loc["RQ-0001#1", "workspace"]
    loop.requeue("RQ-0001", feedback="name the file in upper case")
    wait_for(lambda: "RQ-0001#2" in set(loop.df.worker_id) and "RQ-0001" in waiting(loop))
    rows = loop.df.set_index("worker_id")
    assert rows.loc["RQ-0001#2", "workspace"] == ws
    assert rows.loc["RQ-0001#1", "status"] == "succeeded"
    assert "changes requested" in rows.loc["RQ-0001#1", "last_message"]
    prompt = (loop.run_dir / "prompts" / "RQ-0001" / "2.md").read_text()
    assert "name the file in upper case" in prompt and "<review-feedback>" in prompt
    assert "review-feedback" not in (loop.run_dir / "prompts" / "RQ-0001" / "1.md").read_text()
    loop.accept("RQ-0001")
    assert task(repo, "RQ-0001").status == "done"


@pytest.mark.slow
def test_stopping_the_loop_keeps_waiting_work_and_says_so_in_the_task(two_waiting):
    repo, loop = two_waiting
    ws = Path(loop.df.set_index("worker_id").loc["RQ-0001#1", "workspace"])
    loop.stop_all()
    assert loop.wait(30)
    t = task(repo, "RQ-0001")
    assert t.status == "todo" and "awaited review" in t.notes[-1] and str(ws) in t.notes[-1]
    assert ws.is_dir() and "ralph/RQ-0001" in git(repo, "branch", "--list")
    assert git(repo, "log", "--format=%s", "main").strip() == "init"
    # the journal rebuilds the same table
    assert list(Run.load(loop.run_dir).df.status) == list(loop.df.status)


@pytest.mark.slow
def test_the_next_run_resumes_a_task_whose_review_was_cut_short(two_waiting):
    repo, loop = two_waiting
    loop.stop_all()
    assert loop.wait(30)
    again = Loop(repo, runner="demo", parallel=2, review=True, tasks=["RQ-0001"]).start()
    wait_for(lambda: waiting(again) == {"RQ-0001"})
    assert again.diff("RQ-0001").stat.path.tolist() == ["alpha.txt"]
    again.accept("RQ-0001")
    assert again.wait(30)
    # the kept work was the start of the next attempt (the demo agent appends its line)
    assert (repo / "alpha.txt").read_text().split() == ["alpha", "alpha"]


@pytest.mark.slow
def test_decisions_need_a_waiting_task_and_a_review_loop(tmp_path):
    repo = make_repo(tmp_path, [demo("alpha")])
    plain = Loop(repo, runner="demo")
    with pytest.raises(RalphError, match="review=True"):
        plain.accept("RQ-0001")
    loop = Loop(repo, runner="demo", review=True).start()
    try:
        with pytest.raises(RalphError, match="does not wait for review"):
            loop.accept("RQ-0007")
    finally:
        loop.stop_all()
        loop.wait(30)


def test_a_requeued_attempt_resumes_the_session_where_the_runner_can(tmp_path):
    repo = make_repo(tmp_path, [demo("alpha")])
    task = Queue(repo).get("RQ-0001").to_dict()
    resumable = Command(["{python}", "-c", "pass", "{session_id}"])
    tp = task_phases(repo, task, runner=resumable, phases=1, passes=None, max_iterations=3)
    settings = SimpleNamespace(
        run_dir=tmp_path / "run",
        completion_promise="<promise>COMPLETE</promise>",
        prompt_template=None,
    )

    def command(session: str) -> tuple[list[str], str]:
        spec, _ = phase_command(
            resumable,
            task,
            tp.steps()[0],
            tp,
            Handoffs(repo, "RQ-0001"),
            settings,
            resume=session,
            feedback="use a dataclass",
            workspace=repo,
            iteration=2,
            attempt=2,
        )
        return list(spec.argv), (tmp_path / "run" / "prompts" / "RQ-0001" / "2.md").read_text()

    argv, prompt = command("abc-123")
    assert argv[-1] == "abc-123" and "use a dataclass" in prompt
    argv, prompt = command("bad id; rm -rf /")
    assert argv[-1] == "" and "use a dataclass" in prompt  # refused id: fresh session, same words


@pytest.mark.slow
def test_a_requeued_attempt_waits_for_a_free_worker_slot(tmp_path):
    repo = make_repo(tmp_path, [demo("alpha"), demo("beta", duration="600")])
    loop = Loop(repo, runner="demo", parallel=1, review=True).start()
    try:
        wait_for(lambda: waiting(loop) == {"RQ-0001"})
        wait_for(lambda: "running" in set(loop.df.status))  # beta holds the one slot
        loop.requeue("RQ-0001", feedback="again")
        time.sleep(1.0)
        assert "RQ-0001#2" not in set(loop.df.worker_id)  # parallel=1 holds
        loop.stop("RQ-0002")
        wait_for(lambda: "RQ-0001#2" in set(loop.df.worker_id))
        wait_for(lambda: waiting(loop) == {"RQ-0001"})
    finally:
        loop.stop_all()
        loop.wait(30)
