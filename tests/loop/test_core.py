"""The Loop end to end: real git, real processes, the demo agent (fast via RALPHNB_DEMO_SPEED)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jsonschema
import pandas as pd
import psutil
import pytest

from ralphnb.demo.sample import create_sample_repo
from ralphnb.errors import QueueError, RalphError
from ralphnb.loop.core import Loop
from ralphnb.loop.runs import Run
from ralphnb.queue.jsonio import read_jsonc
from ralphnb.queue.store import Queue, init
from tests.conftest import demo, git, make_repo, ralph_fixtures_dir

SCHEMA = ralph_fixtures_dir() / "queue.schema.json"


pytestmark = pytest.mark.usefixtures("fast_demo")


def assert_queue_files_valid(repo: Path, n_done: int) -> None:
    schema = read_jsonc(SCHEMA) if SCHEMA.exists() else None
    ids = []
    for name in ("queue.jsonc", "done.jsonc"):
        text = (repo / ".ralph" / name).read_text()
        assert "<<<<<<<" not in text and ">>>>>>>" not in text
        doc = read_jsonc(repo / ".ralph" / name)
        if schema is not None:
            jsonschema.validate(doc, schema)
        ids += [t["id"] for t in doc["tasks"]]
    assert len(ids) == len(set(ids)), ids
    assert len(Queue(repo).done) == n_done


def no_process(pids) -> bool:
    return all(
        not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE for p in pids
    )


# ------------------------------------------------------------------ end to end


@pytest.mark.slow
def test_six_tasks_with_deps_parallel_3_tracked_queue(tmp_path):
    repo = create_sample_repo(tmp_path / "repo", 6)
    assert ".ralph/queue.jsonc" in git(repo, "ls-files")
    # the user's own work in progress, in files no task touches: unstaged, staged, untracked
    with open(repo / "src" / "app.py", "a") as fh:
        fh.write("# user edit\n")
    (repo / "user.txt").write_text("staged by the user\n")
    git(repo, "add", "user.txt")
    (repo / "scratch.txt").write_text("untracked\n")
    mine = git(repo, "status", "--porcelain"), git(repo, "diff"), git(repo, "diff", "--cached")
    seen: list = []
    loop = Loop(repo, runner="demo", parallel=3)
    unsub = loop.subscribe(seen.append)
    df = loop.run()
    unsub()
    last = df.drop_duplicates("task_id", keep="last").set_index("task_id")
    assert set(last.status) == {"integrated"}, df[["worker_id", "status", "error"]]
    assert len(last) == 6
    assert Queue(repo).tasks == []
    assert_queue_files_valid(repo, 6)
    # dependencies: a dependent starts only after its dependency is integrated
    q = {t.id: t for t in Queue(repo).done}
    integrated_at = {e.task_id: e.time for e in loop.events if e.kind == "integrated"}
    for tid, t in q.items():
        for dep in t.depends_on or []:
            assert df[df.task_id == tid].started_at.min() > integrated_at[dep]
    # never more than 3 at once
    spans = [(r.started_at, r.ended_at) for r in df.itertuples()]
    assert max(sum(1 for s, e in spans if s <= t0 < e) for t0, _ in spans) <= 3
    # every change went through subscribers and the journal; replay gives the same frame
    assert len(seen) == len(loop.events)
    pd.testing.assert_frame_equal(Run.load(loop.run_dir).df, loop.df)
    # bookkeeping committed (only the queue files): the user's changes are exactly as they were
    assert (
        git(repo, "status", "--porcelain"),
        git(repo, "diff"),
        git(repo, "diff", "--cached"),
    ) == mine
    for name in ("queue.jsonc", "done.jsonc"):
        text = git(repo, "show", f"HEAD:.ralph/{name}")
        assert "<<<<<<<" not in text
    assert "RQ-0003: Document the greeting" in git(repo, "log", "--format=%s")
    assert not (tmp_path / ".workspaces" / "repo" / "RQ-0001").exists()
    assert "integrated 6" in repr(loop)


def test_never_completing_task_stops_at_max_iterations(tmp_path):
    repo = make_repo(tmp_path, [demo("Never", finish="none")])
    loop = Loop(repo, runner="demo", parallel=1, max_iterations=2)
    df = loop.run()
    assert list(df.worker_id) == ["RQ-0001#1", "RQ-0001#2"]
    assert df.status.iloc[-1] == "failed"
    assert "not complete after 2 iteration" in df.error.iloc[-1]
    t = Queue(repo).get("RQ-0001")
    assert t.status == "todo" and "not complete after 2" in t.notes[-1]
    assert (tmp_path / ".workspaces" / "repo" / "RQ-0001").is_dir()  # kept for a later run


def test_task_agent_iterations_are_ralphs_passes_not_attempts(tmp_path):
    task = demo("Twice", finish="none")
    task["agent"] = {"iterations": 2}  # two fixed passes; max_iterations still counts attempts
    repo = make_repo(tmp_path, [task])
    df = Loop(repo, runner="demo", max_iterations=1).run()
    assert list(df.worker_id) == ["RQ-0001#1", "RQ-0001#2"]
    assert list(df.status) == ["succeeded", "failed"]


@pytest.mark.slow
def test_check_fails_then_passes(tmp_path):
    repo = make_repo(tmp_path, [demo("Checked")])
    counter = tmp_path / "count"
    script = (
        "import pathlib, sys; p = pathlib.Path(sys.argv[1]); "
        "n = int(p.read_text()) if p.exists() else 0; p.write_text(str(n + 1)); "
        "print('checked', n); sys.exit(0 if n >= 1 else 3)"
    )
    loop = Loop(
        repo, runner="demo", check=[sys.executable, "-c", script, str(counter)], max_iterations=3
    )
    df = loop.run()
    assert list(df.status) == ["check_failed", "integrated"]
    assert df.check_exit_code.tolist() == [3, 0]
    ends = [e for e in loop.events if e.kind == "iteration_end"]
    assert ends[0].data["check_ok"] is False and "exited 3" in ends[0].data["reason"]
    assert ends[1].data["check_ok"] is True
    assert counter.read_text() == "2"
    assert [t.id for t in Queue(repo).done] == ["RQ-0001"]


def test_callable_check_gets_the_workspace(tmp_path):
    repo = make_repo(tmp_path, [demo("Callable")])
    seen = []

    def check(ws: Path) -> bool:
        seen.append(ws)
        return (ws / "Callable.txt").exists()

    df = Loop(repo, runner="demo", check=check).run()
    assert df.status.iloc[-1] == "integrated" and seen[0].name == "RQ-0001"


@pytest.mark.slow
def test_same_line_one_integrates_other_conflicts(tmp_path):
    repo = make_repo(
        tmp_path,
        [
            {
                "title": "A",
                "custom_fields": {"demo.file": "f.txt", "demo.line": "1", "demo.content": "by A"},
            },
            {
                "title": "B",
                "custom_fields": {"demo.file": "f.txt", "demo.line": "1", "demo.content": "by B"},
            },
        ],
    )
    loop = Loop(repo, runner="demo", parallel=2)
    df = loop.run()
    st = dict(zip(df.task_id, df.status, strict=True))
    assert sorted(st.values()) == ["conflict", "integrated"]
    pd.testing.assert_frame_equal(Run.load(loop.run_dir).df, df)
    loser = next(t for t, s in st.items() if s == "conflict")
    row = df[df.task_id == loser].iloc[-1]
    assert "f.txt" in row.error
    t = Queue(repo).get(loser)
    assert t.status == "todo" and "merge conflict" in t.notes[-1]
    assert (tmp_path / ".workspaces" / "repo" / loser).is_dir()
    text = (repo / "f.txt").read_text()
    assert "<<<<<<<" not in text and text.splitlines()[0] in ("by A", "by B")


@pytest.mark.slow
def test_stop_and_kill_single_workers_while_others_continue(tmp_path):
    repo = make_repo(
        tmp_path,
        [
            demo("Hang one", hang="1"),
            demo("Hang two", hang="1", ignore_sigint="1", children="2"),
            demo("Fine one"),
            demo("Fine two", duration="10"),
        ],
    )
    loop = Loop(repo, runner="demo", parallel=4, grace=0.3).start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        df = loop.df  # one snapshot: two may differ by a row that started in between
        st = dict(zip(df.task_id, df.status, strict=True))
        if st.get("RQ-0001") == "running" and st.get("RQ-0002") == "running":
            break
        time.sleep(0.05)
    pids = {r.task_id: r.pid for r in loop.df.itertuples()}
    tree = [p.pid for p in psutil.Process(pids["RQ-0002"]).children(recursive=True)]
    loop.stop("RQ-0001")
    loop.kill("RQ-0002")
    assert loop.wait(30)
    df = loop.df
    st = dict(zip(df.task_id, df.status, strict=True))
    assert st == {
        "RQ-0001": "stopped",
        "RQ-0002": "killed",
        "RQ-0003": "integrated",
        "RQ-0004": "integrated",
    }
    pd.testing.assert_frame_equal(Run.load(loop.run_dir).df, df)
    assert no_process([pids["RQ-0001"], pids["RQ-0002"], *tree])
    q = Queue(repo)
    assert q.get("RQ-0001").status == "todo" and "stopped by the user" in q.get("RQ-0001").notes[-1]
    assert q.get("RQ-0002").status == "todo" and "killed" in q.get("RQ-0002").notes[-1]
    with pytest.raises(RalphError):
        loop.stop("RQ-0003")


@pytest.mark.slow
def test_dirty_checkout_untouched_and_blocked_merge_waits(tmp_path):
    repo = make_repo(
        tmp_path, [demo("Other"), demo("Touch", file="f.txt", line="2", content="agent")]
    )
    (repo / "notes.txt").write_text("untracked\n")
    (repo / "staged.txt").write_text("staged\n")
    git(repo, "add", "staged.txt")
    (repo / "f.txt").write_text("line one\nuser edit\n")  # in the way of task 2
    before = git(repo, "diff"), git(repo, "diff", "--cached")
    loop = Loop(repo, runner="demo", parallel=2).start()
    deadline = time.monotonic() + 20
    row = None
    while time.monotonic() < deadline:
        df = loop.df
        rows, other = df[df.task_id == "RQ-0002"], df[df.task_id == "RQ-0001"]
        # wait for the other task's merge too: mid-merge, git's index runs ahead of HEAD
        if (
            len(rows)
            and rows.status.iloc[-1] == "integrating"
            and rows.error.notna().iloc[-1]
            and len(other)
            and other.status.iloc[-1] == "integrated"
        ):
            row = rows.iloc[-1]
            break
        time.sleep(0.05)
    assert row is not None and "uncommitted" in row.error
    assert not loop.finished
    assert (git(repo, "diff"), git(repo, "diff", "--cached")) == before
    assert (repo / "notes.txt").read_text() == "untracked\n"
    git(repo, "checkout", "--", "f.txt")  # the user clears the way
    assert loop.wait(20)
    df = loop.df
    assert set(df.status) == {"integrated"}
    assert (repo / "f.txt").read_text() == "line one\nagent\n"
    assert git(repo, "diff", "--cached") == before[1]
    assert (repo / "notes.txt").read_text() == "untracked\n"


def test_missing_executable_is_a_row_error_and_the_loop_goes_on(tmp_path):
    from ralphnb.runners import Command

    repo = make_repo(tmp_path, [demo("X"), demo("Y")])
    loop = Loop(repo, runner=Command(["definitely-not-a-program-ralphnb", "{task_id}"]), parallel=2)
    df = loop.run()
    assert list(df.status) == ["failed", "failed"]
    assert df.error.str.contains("definitely-not-a-program-ralphnb").all()
    assert {t.status for t in Queue(repo).tasks} == {"todo"}


def test_consecutive_failures_halt_the_loop(tmp_path):
    repo = make_repo(tmp_path, [demo(f"F{i}", fail="2") for i in range(4)])
    loop = Loop(repo, runner="demo", parallel=1, max_iterations=1, max_consecutive_failures=2)
    df = loop.run()
    assert len(df) == 2 and "consecutive" in loop.halt_reason
    assert df.status.tolist() == ["failed", "failed"] and (df.exit_code == 2).all()
    assert df.error.str.contains("demo runner").all()  # the runner's one-line diagnosis
    assert loop.events[-1].data["reason"] == loop.halt_reason


def test_wall_time_limit_times_out_workers(tmp_path):
    repo = make_repo(tmp_path, [demo("Slow", hang="1")])
    t0 = time.monotonic()
    df = Loop(repo, runner="demo", max_wall_time=0.8, grace=0.2).run()
    assert time.monotonic() - t0 < 10
    assert df.status.iloc[-1] == "timed_out"
    assert Queue(repo).get("RQ-0001").status == "todo"


@pytest.mark.slow
def test_pause_resume_and_one_loop_per_repo(tmp_path):
    repo = make_repo(tmp_path, [demo("P1"), demo("P2")])
    loop = Loop(repo, runner="demo", parallel=1)
    loop.pause()
    loop.start()
    with pytest.raises(RalphError, match="another loop"):
        Loop(repo, runner="demo").start()
    time.sleep(0.3)
    assert len(loop.df) == 0 and not loop.finished
    loop.resume()
    assert loop.wait(60)  # two demo attempts; generous for a loaded machine
    assert list(loop.df.status) == ["integrated", "integrated"]
    assert Loop(repo, runner="demo").run().empty  # the lock is released; nothing left to do


def test_blocking_run_interrupted_stops_workers(tmp_path):
    repo = make_repo(tmp_path, [demo("Hang", hang="1")])
    loop = Loop(repo, runner="demo", grace=0.2)
    main = threading.get_ident()

    def interrupt() -> None:
        while not (len(loop.df) and loop.df.status.iloc[0] == "running"):
            time.sleep(0.05)
        assert threading.get_ident() != main
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C / a kernel interrupt delivers

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        loop.run()
    assert loop.finished and loop.df.status.iloc[0] == "stopped"
    assert no_process([int(loop.df.pid.iloc[0])])


def test_arun_from_asyncio(tmp_path):
    import asyncio

    repo = make_repo(tmp_path, [demo("Async")])
    df = asyncio.run(Loop(repo, runner="demo").arun())
    assert df.status.iloc[-1] == "integrated"


def test_repr_and_mimebundle_without_a_kernel(tmp_path):
    repo = make_repo(tmp_path, [demo("R")])
    loop = Loop(repo, runner="demo")
    assert "not started" in repr(loop) and loop.df.empty
    loop.run()
    bundle = loop._repr_mimebundle_()
    assert "RQ-0001" in bundle["text/plain"] and "<table" in bundle["text/html"]
    assert loop.progress == (1, 1) and loop.finished and loop.logs("RQ-0001")


def test_importing_the_loop_imports_no_widgets_and_patches_no_asyncio():
    code = (
        "import asyncio, sys; before = asyncio.run; import ralphnb, ralphnb.loop; "
        "assert 'ipywidgets' not in sys.modules, 'widgets imported'; "
        "assert asyncio.run is before; print('ok')"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "ok", r.stderr


def test_cost_limit_halts_before_the_next_attempt(tmp_path):
    repo = make_repo(tmp_path, [demo("C1"), demo("C2"), demo("C3")])
    loop = Loop(repo, runner="demo", parallel=1, max_cost_usd=0.001)
    df = loop.run()
    assert len(df) == 1 and df.cost_usd.iloc[0] > 0.001
    assert "max_cost_usd" in loop.halt_reason
    assert [t.status for t in Queue(repo).tasks] == ["todo", "todo"]


@pytest.mark.slow
def test_scheduled_start_is_a_deadline_not_a_poll(tmp_path):
    from datetime import timedelta

    from ralphnb._time import format_time, utcnow

    at = utcnow() + timedelta(seconds=1.0)
    task = demo("Later")
    task["scheduled_start"] = format_time(at)
    repo = make_repo(tmp_path, [task])
    df = Loop(repo, runner="demo").run()
    assert df.status.iloc[-1] == "integrated"
    assert df.started_at.iloc[0] >= pd.Timestamp(at)


@pytest.mark.slow
def test_clone_workspaces_integrate_through_the_users_repo(tmp_path):
    repo = make_repo(tmp_path, [demo("Cloned")])
    df = Loop(repo, runner="demo", workspace_mode="clone").run()
    assert df.status.iloc[-1] == "integrated", df[["status", "error"]].to_string()
    assert git(repo, "show", "main:Cloned.txt").strip() == "Cloned"
    assert "ralph/RQ-0001" not in git(repo, "branch")


def test_recovered_done_task_without_workspace_merges_its_branch(tmp_path):
    repo = make_repo(tmp_path, [demo("Orphan branch")])
    git(repo, "branch", "ralph/RQ-0001")
    wt = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", str(wt), "ralph/RQ-0001")
    (wt / "orphan.txt").write_text("work\n")
    git(wt, "add", "orphan.txt")
    git(wt, "commit", "-q", "-m", "RQ-0001: work")
    git(repo, "worktree", "remove", str(wt))
    Queue(repo).complete("RQ-0001", archive=False)  # the agent said done, then the loop died
    loop = Loop(repo, runner="demo")
    df = loop.run()
    assert df.status.tolist() == ["integrated"]
    assert git(repo, "show", "main:orphan.txt") == "work\n"
    assert [t.id for t in Queue(repo).done] == ["RQ-0001"]


def test_secret_values_are_redacted_from_the_table_and_journal(tmp_path):
    from ralphnb.runners import Command

    secret = "sk-test-0123456789abcdef"
    repo = make_repo(tmp_path, [demo("S")])
    script = (
        "import os, sys; sys.stderr.write('401: bad key ' + os.environ['MY_API_KEY']"
        " + '\\n'); raise SystemExit(1)"
    )
    runner = Command([sys.executable, "-c", script], env={"MY_API_KEY": secret})
    loop = Loop(repo, runner=runner, max_iterations=1)
    df = loop.run()
    text = df.to_string() + (loop.run_dir / "events.jsonl").read_text()
    assert secret not in text
    assert df.status.iloc[0] == "failed" and "bad key [redacted]" in df.error.iloc[0]


def test_short_secrets_and_url_passwords_are_redacted_too(tmp_path):
    from ralphnb.runners import Command

    repo = make_repo(tmp_path, [demo("S")])
    script = (
        "import os, sys; sys.stderr.write('denied: ' + os.environ['MY_TOKEN'] + ' at '"
        " + os.environ['DATABASE_URL'] + '\\n'); raise SystemExit(1)"
    )
    env = {"MY_TOKEN": "abc12", "DATABASE_URL": "postgres://app:hunter2@db/prod"}
    loop = Loop(repo, runner=Command([sys.executable, "-c", script], env=env), max_iterations=1)
    df = loop.run()
    text = df.to_string() + (loop.run_dir / "events.jsonl").read_text()
    assert "abc12" not in text and "hunter2" not in text
    assert "denied: [redacted] at postgres://app:[redacted]@db/prod" in df.error.iloc[0]


def test_executor_seam_spec_is_plain_data_and_callbacks_come_back(tmp_path):
    import pickle

    from ralphnb.workers.executors import (
        Callbacks,
        Executor,
        LocalExecutor,
        WorkerHandle,
        WorkerSpec,
    )

    spec = WorkerSpec(
        worker_id="RQ-0001#1",
        task_id="RQ-0001",
        iteration=1,
        argv=(sys.executable, "-c", "print('hi')"),
        cwd=str(tmp_path),
        env={"PATH": os.environ["PATH"]},
        log_path=str(tmp_path / "l.log"),
        registry_path=str(tmp_path / "workers"),
    )
    assert pickle.loads(pickle.dumps(spec)) == spec
    lines, exits = [], []
    ex = LocalExecutor()
    assert isinstance(ex, Executor)
    h = ex.spawn(spec, Callbacks(on_line=lines.append, on_exit=exits.append))
    assert isinstance(h, WorkerHandle)
    info = h.wait(30)
    assert info is not None and info.returncode == 0 and exits == [info]
    assert lines == ["hi"] and h.tail(5) == ["hi"]
    assert not list((tmp_path / "workers").glob("*.json"))  # registry record removed on exit


def test_unknown_or_finished_task_id_is_an_error_not_an_empty_run(tmp_path):
    repo = make_repo(tmp_path, [demo("one"), demo("two")])
    q = Queue(repo)
    q.complete("RQ-0002")
    with pytest.raises(QueueError, match=r"queue\.jsonc: cannot run RQ-0099: no such task"):
        Loop(repo, runner="demo", tasks=["RQ-0001", "RQ-0099"])
    with pytest.raises(QueueError, match=r"RQ-0002: it is already done \(in done\.jsonc\)"):
        Loop(repo, runner="demo", tasks=["RQ-0002"])
    Loop(repo, runner="demo", tasks=["RQ-0001"])  # an open task is fine


def test_stop_between_attempts_of_a_paused_loop_acts_now_and_closes_the_row(tmp_path):
    repo = make_repo(tmp_path, [demo("never", finish="none", duration="20")])
    started1, queued2, closed2 = threading.Event(), threading.Event(), threading.Event()

    def on_event(ev):
        if ev.kind == "started" and ev.worker_id == "RQ-0001#1":
            started1.set()
        elif ev.kind == "queued" and ev.worker_id == "RQ-0001#2":
            queued2.set()
        elif ev.kind == "status" and ev.worker_id == "RQ-0001#2":
            closed2.set()

    loop = Loop(repo, runner="demo", max_iterations=3)
    loop.subscribe(on_event)
    loop.start()
    assert started1.wait(30)
    loop.pause()  # attempt 1 runs on; attempt 2 waits for resume()
    assert queued2.wait(30)
    loop.stop("RQ-0001")
    # acted on at once, while still paused: back to todo with a note, row no longer "queued"
    assert closed2.wait(10), loop.snapshot()
    assert not loop.wait(0.2)  # still paused: a paused loop ends on resume() or stop_all()
    loop.resume()
    assert loop.wait(10)
    assert Queue(repo).get("RQ-0001").status == "todo"
    assert "stopped by the user" in Queue(repo).get("RQ-0001").notes[-1]
    rows = {r["worker_id"]: r["status"] for r in loop.snapshot()}
    assert rows == {"RQ-0001#1": "succeeded", "RQ-0001#2": "stopped"}


def test_a_start_that_fails_leaves_the_repo_unlocked(tmp_path):
    from ralphnb.loop.runs import runs_root

    repo = make_repo(tmp_path, [demo("one")])
    runs = runs_root(repo)
    runs.parent.mkdir(parents=True, exist_ok=True)
    runs.write_text("not a directory")  # the run directory cannot be made
    failed = Loop(repo, runner="demo")  # still referenced, as a notebook variable would be
    with pytest.raises(RalphError, match="cannot start a run in .*: Not a directory"):
        failed.start()
    runs.unlink()
    loop = Loop(repo, runner="demo").start()  # same process: not "another loop is running"
    assert loop.wait(60)
    assert loop.df.status.iloc[-1] == "integrated"


def test_a_repo_without_commits_is_refused_up_front_and_the_queue_left_alone(tmp_path):
    from ralphnb.errors import RalphError

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    q = init(repo)
    q.add("one")
    before = (repo / ".ralph" / "queue.jsonc").read_bytes()
    with pytest.raises(RalphError, match=r"branch 'main' has no commit yet; commit something"):
        Loop(repo, runner="demo").run()
    assert (repo / ".ralph" / "queue.jsonc").read_bytes() == before


def test_max_log_bytes_caps_each_attempts_log_and_the_work_still_completes(tmp_path):
    from ralphnb.runners import Command

    repo = make_repo(tmp_path, [demo("Loud")])
    script = (
        "import sys\n"
        "for i in range(200_000): print(f'line {i:06d} ' + 'x' * 40)\n"
        "print('<promise>COMPLETE</promise>')\n"
    )
    loop = Loop(repo, runner=Command([sys.executable, "-c", script]), max_log_bytes=64 * 1024)
    df = loop.run()
    assert df.status.iloc[-1] == "integrated"
    log = next((loop.run_dir / "logs" / "RQ-0001").glob("*.log"))
    text = log.read_text()
    assert log.stat().st_size < 80 * 1024  # ~10 MB of output, capped
    assert "line 000000" in text and "<promise>COMPLETE</promise>" in text  # head and tail
    assert "dropped" in text
