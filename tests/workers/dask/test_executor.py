"""DaskExecutor on a real LocalCluster with process workers: lines and exits come back, stop and
kill reach the remote process tree (escapees included), a SIGKILLed Dask worker or a closed
cluster gives a `lost` exit and leaves no agent process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import new_cluster, require_module

distributed = require_module("distributed")

from ralphnb.workers.dask.executor import DaskExecutor  # noqa: E402
from ralphnb.workers.dask.remote import reap_dead_workers  # noqa: E402
from ralphnb.workers.executors import Callbacks, WorkerSpec  # noqa: E402
from ralphnb.workers.process import build_env  # noqa: E402

# A misbehaving agent: N sleeping children and a grandchild that leaves the session (setsid),
# all pids printed as one JSON line; optionally ignores SIGINT.
TREE = textwrap.dedent(
    """
    import json, os, signal, subprocess, sys, time
    n, ignore = int(sys.argv[1]), sys.argv[2] == "ignore"
    if ignore:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGINT, lambda *a: sys.exit(130))
    kids = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
            for _ in range(n)]
    esc = subprocess.Popen([sys.executable, "-c",
        "import os, subprocess, sys, time\\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import os, time\\\\nos.setsid()\\\\n"
        "time.sleep(600)'])\\n"
        "print(p.pid, flush=True)\\ntime.sleep(600)"], stdout=subprocess.PIPE, text=True)
    escapee = int(esc.stdout.readline())
    print(json.dumps({"pids": [os.getpid(), esc.pid, escapee] + [k.pid for k in kids]}),
          flush=True)
    while True:
        time.sleep(600)
    """
)


def no_survivor(pids: list[int], timeout: float = 5.0) -> list[int]:
    """Pids still running after `timeout` (a zombie waiting for PID 1 counts as dead)."""
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        still = []
        for pid in alive:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    still.append(pid)
            except psutil.Error:
                pass
        alive = still
        if alive:
            time.sleep(0.05)
    return alive


class Recorder:
    """Callbacks that record lines and exits, and can wait for a line."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.order: list[str] = []
        self.exits: list = []
        self.cond = threading.Condition()

    def callbacks(self) -> Callbacks:
        return Callbacks(on_line=self._line, on_exit=self._exit, on_drained=self._drained)

    def _line(self, line: str) -> None:
        with self.cond:
            self.lines.append(line)
            self.order.append("line")
            self.cond.notify_all()

    def _exit(self, info) -> None:
        self.order.append("exit")
        self.exits.append(info)

    def _drained(self, info) -> None:
        self.order.append("drained")

    def wait_line(self, pred, timeout: float = 20.0) -> str:
        with self.cond:
            ok = self.cond.wait_for(lambda: any(pred(x) for x in self.lines), timeout)
            assert ok, f"no matching line in {self.lines!r}"
            return next(x for x in self.lines if pred(x))


def spec(tmp: Path, name: str, argv: list[str], **kw) -> WorkerSpec:
    return WorkerSpec(
        worker_id=name,
        task_id="RQ-0001",
        iteration=1,
        argv=tuple(argv),
        cwd=str(tmp),
        env=build_env(),
        log_path=str(tmp / f"{name}.log"),
        **kw,
    )


def tree_pids(rec: Recorder) -> list[int]:
    return json.loads(rec.wait_line(lambda x: x.startswith('{"pids"')))["pids"]


def queue_bytes(repo: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((repo / ".ralph").glob("*.jsonc"))}


@pytest.fixture
def executor(client):
    ex = DaskExecutor(client)
    yield ex
    ex.close()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    p = tmp_path / "tree.py"
    p.write_text(TREE)
    return p


@pytest.mark.slow
def test_lines_and_true_exit_code_come_back_in_order(executor, tmp_path):
    rec = Recorder()
    code = "import sys\nfor i in range(1200): print('line', i)\nsys.exit(3)"
    h = executor.spawn(spec(tmp_path, "w1", [sys.executable, "-c", code]), rec.callbacks())
    info = h.wait(30)
    assert info is not None and info.returncode == 3 and info.signal is None
    assert info.reason is None and info.pid == h.pid
    assert rec.lines == [f"line {i}" for i in range(1200)]  # all of them, in order, before exit
    assert rec.order[-2:] == ["exit", "drained"] and rec.order.count("exit") == 1
    assert h.tail(2) == ["line 1198", "line 1199"]
    assert (tmp_path / "w1.log").read_text().splitlines()[-1] == "line 1199"
    assert not h.alive and h.address in executor.client.scheduler_info()["workers"]


@pytest.mark.slow
def test_stop_sigint_honoured_exits_130(executor, tmp_path, tree):
    rec = Recorder()
    h = executor.spawn(
        spec(tmp_path, "w2", [sys.executable, str(tree), "1", "honour"]), rec.callbacks()
    )
    pids = tree_pids(rec)
    t0 = time.monotonic()
    info = h.stop(grace=5.0)
    assert time.monotonic() - t0 < 3.0  # it honoured SIGINT, no need for the grace period
    assert info.returncode == 130 and info.reason == "stop"
    assert rec.exits == [info]
    assert no_survivor(pids + [h.pid]) == []


@pytest.mark.slow
def test_stop_of_sigint_ignoring_tree_kills_everything_after_grace(executor, tmp_path, tree):
    rec = Recorder()
    h = executor.spawn(
        spec(tmp_path, "w3", [sys.executable, str(tree), "3", "ignore"]), rec.callbacks()
    )
    pids = tree_pids(rec)
    deadline = time.monotonic() + 10  # the owner sends a resource sample about once a second
    while h.resources()["num_procs"] < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    res = h.resources()
    assert res["num_procs"] >= 5 and res["rss_mb"] > 0
    t0 = time.monotonic()
    info = h.stop(grace=0.3)
    took = time.monotonic() - t0
    assert info.reason == "stop" and info.signal == signal.SIGKILL and 0.3 <= took < 3.0
    assert no_survivor(pids + [h.pid]) == []  # the setsid escapee too
    assert h.resources()["num_procs"] == 0


@pytest.mark.slow
def test_kill_reaches_the_remote_tree_at_once(executor, tmp_path, tree):
    rec = Recorder()
    h = executor.spawn(
        spec(tmp_path, "w4", [sys.executable, str(tree), "2", "ignore"]), rec.callbacks()
    )
    pids = tree_pids(rec)
    t0 = time.monotonic()
    info = h.kill()
    assert time.monotonic() - t0 < 2.0
    assert info.reason == "kill" and info.signal is not None and info.returncode is None
    assert no_survivor(pids + [h.pid]) == []
    assert h.kill() is info  # idempotent once exited


@pytest.mark.slow
def test_missing_executable_raises_at_spawn_naming_it(executor, tmp_path):
    from ralphnb.errors import WorkerError

    rec = Recorder()
    with pytest.raises(WorkerError, match="no-such-agent-cli"):
        executor.spawn(spec(tmp_path, "w5", ["no-such-agent-cli"]), rec.callbacks())
    assert rec.exits == [] and executor.running == []


@pytest.mark.slow
def test_missing_executable_without_waiting_gives_exit_127(client, tmp_path):
    ex = DaskExecutor(client, wait_started=False)
    rec = Recorder()
    h = ex.spawn(spec(tmp_path, "w5b", ["no-such-agent-cli"]), rec.callbacks())
    info = h.wait(20)
    ex.close()
    assert info is not None and info.returncode == 127 and rec.exits == [info]
    assert "no-such-agent-cli" in h.tail(1)[0] and h.detail


@pytest.mark.slow
def test_cancelled_future_kills_the_agent(executor, tmp_path, tree):
    rec = Recorder()
    h = executor.spawn(
        spec(tmp_path, "w6", [sys.executable, str(tree), "1", "ignore"]), rec.callbacks()
    )
    pids = tree_pids(rec)
    h.future.cancel()  # what a user might do by hand: Future.cancel() alone would not interrupt
    info = h.wait(20)
    assert info is not None and info.reason == "lost" and "cancelled" in (h.detail or "")
    assert no_survivor(pids + [h.pid]) == []


@pytest.mark.slow
def test_dask_worker_sigkilled_or_restarted_mid_task_gives_lost_exit_and_no_orphan(tmp_path, tree):
    with new_cluster() as cluster, distributed.Client(cluster) as c:
        ex = DaskExecutor(c)
        rec = Recorder()
        h = ex.spawn(
            spec(tmp_path, "w7", [sys.executable, str(tree), "2", "ignore"]), rec.callbacks()
        )
        pids = tree_pids(rec)
        dask_pid = c.run(os.getpid, workers=[h.address])[h.address]
        os.kill(dask_pid, signal.SIGKILL)
        info = h.wait(20)
        assert info is not None and info.reason == "lost" and info.signal == signal.SIGKILL
        assert h.address in h.detail and "removed" in h.detail
        assert info.detail == h.detail and info.address == h.address  # DaskExitInfo says why
        assert rec.lines[-1].startswith("[ralphnb] Dask worker")  # the reason, in the tail
        log_end = (tmp_path / "w7.log").read_text().splitlines()[-1]
        assert log_end == rec.lines[-1]  # and at the end of the log file
        assert no_survivor(pids + [h.pid]) == []
        # the cluster goes on: a new agent runs on a surviving or restarted worker
        rec2 = Recorder()
        h2 = ex.spawn(spec(tmp_path, "w8", [sys.executable, "-c", "print('ok')"]), rec2.callbacks())
        assert h2.wait(30).returncode == 0 and rec2.lines == ["ok"]
        # client.restart() alone orphans a task's children; the worker plugin kills them
        rec3 = Recorder()
        h3 = ex.spawn(
            spec(tmp_path, "w9", [sys.executable, str(tree), "1", "ignore"]), rec3.callbacks()
        )
        pids3 = tree_pids(rec3)
        c.restart()
        info3 = h3.wait(20)
        assert info3 is not None and info3.reason == "lost"
        assert no_survivor(pids3 + [h3.pid]) == []
        ex.close()


@pytest.mark.slow
def test_cluster_closed_while_agents_run_leaves_no_orphans(tmp_path, tree):
    cluster = new_cluster()
    c = distributed.Client(cluster)
    ex = DaskExecutor(c)
    recs = [Recorder() for _ in range(2)]
    hs = [
        ex.spawn(spec(tmp_path, f"c{i}", [sys.executable, str(tree), "2", "ignore"]), r.callbacks())
        for i, r in enumerate(recs)
    ]
    pids = [p for r in recs for p in tree_pids(r)] + [h.pid for h in hs]
    assert {h.address for h in hs} == set(c.scheduler_info()["workers"])  # one on each
    cluster.close()
    infos = [h.wait(20) for h in hs]
    assert all(i is not None and i.reason == "lost" for i in infos)
    assert no_survivor(pids) == []
    c.close()
    ex.close()


def test_reap_dead_workers_sweeps_agents_of_a_dead_dask_worker_process(tmp_path):
    """The plugin's setup (and the client, via a surviving worker) reaps what a SIGKILLed Dask
    worker left: here a parent that records its agent the same way, then dies by SIGKILL. (Its
    agents stop themselves when their owner dies; a detached one shows the reaping still works
    for whatever survives, e.g. a shim that was stopped itself.)"""
    root = tmp_path / "reg"
    code = textwrap.dedent(
        f"""
        import os, sys, time
        from pathlib import Path
        from ralphnb.workers.dask.remote import proc_tag
        from ralphnb.workers.process import Worker, build_env
        from ralphnb.workers.registry import Registry
        reg = Registry(Path({str(root)!r}) / proc_tag(os.getpid()))
        w = Worker(["sleep", "600"], cwd={str(tmp_path)!r}, env=build_env(),
                   log_path={str(tmp_path / "o.log")!r}, worker_id="o", registry=reg,
                   die_with_owner=False).start()
        import psutil
        while not psutil.Process(w.pid).children():  # the shim has forked the agent
            time.sleep(0.01)
        print(w.pid, psutil.Process(w.pid).children()[0].pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    shim, agent = (int(x) for x in parent.stdout.readline().split())
    assert reap_dead_workers(root) == 0  # its owner is alive: left alone
    parent.kill()
    parent.wait()
    time.sleep(0.2)
    assert psutil.Process(agent).status() != psutil.STATUS_ZOMBIE  # orphaned, still running
    assert reap_dead_workers(root) >= 1
    assert no_survivor([shim, agent]) == []
    assert list(root.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("queue_writes", ["client", "direct"])
def test_demo_agent_marks_its_task_done_in_a_stub_or_the_users_queue(
    client, tmp_path, queue_writes
):
    """The demo agent edits a copy of the repo on the Dask worker and runs `ralphnb task done`;
    its parsed stream comes back live. With queue_writes="client" the agent marks a stub queue
    on the worker and the marks come back in the exit for the loop to apply; with "direct" it
    marks the user's queue itself."""
    import shutil

    from ralphnb.demo.sample import create_sample_repo
    from ralphnb.queue.store import Queue
    from ralphnb.runners import get_runner
    from ralphnb.runners.prompt import build_prompt

    repo = create_sample_repo(tmp_path / "repo", n_tasks=2, git=False)
    ws = tmp_path / "ws"
    shutil.copytree(repo, ws, ignore=shutil.ignore_patterns(".ralph"))
    q = Queue(repo)
    task = q.start(q.next().id)
    prompt = tmp_path / "prompt.md"
    prompt.write_text(build_prompt(task, workspace=ws, completion_promise="<promise>X</promise>"))
    runner = get_runner("demo")
    runner.speed = 0.05
    cmd = runner.command(task, workspace=ws, prompt_file=prompt, iteration=1)
    before = queue_bytes(repo)
    env = build_env(
        {
            **cmd.env,
            "RALPHNB_REPO": str(repo),
            "RALPHNB_WORKER": "w-demo",
            "RALPHNB_TASK_ID": task.id,
            "RALPHNB_ITERATION": "1",
        }
    )
    parser, events = runner.parser(), []
    rec = Recorder()
    cbs = rec.callbacks()
    cbs.on_line = lambda line: (events.extend(parser.feed(line)), rec._line(line))
    ex = DaskExecutor(client, queue_writes=queue_writes)
    try:
        h = ex.spawn(
            WorkerSpec(
                worker_id="w-demo",
                task_id=task.id,
                iteration=1,
                argv=tuple(cmd.argv),
                cwd=str(ws),
                env=env,
                log_path=str(tmp_path / "demo.log"),
                task=task.to_dict(),
            ),
            cbs,
        )
        info = h.wait(60)
    finally:
        ex.close()
    assert info is not None and info.returncode == 0, h.tail(20)
    kinds = {e["type"] for e in events}
    assert {"session", "result"} <= kinds
    assert (ws / "src/greeting.py").read_text().strip().endswith('"Hello from ralphnb"')
    assert not (repo / "src/greeting.py").exists()  # the user's checkout is not touched
    if queue_writes == "client":  # marked in a stub queue; the marks come back with the exit
        assert info.queue_marks is not None and info.queue_marks["status"] == "done"
        assert queue_bytes(repo) == before
    else:  # the agent wrote the user's queue itself
        assert info.queue_marks is None and Queue(repo).get(task.id).status == "done"


@pytest.mark.slow
def test_a_second_executor_on_the_same_client_leaves_running_agents_alone(client, tmp_path):
    first = DaskExecutor(client)
    rec = Recorder()
    h = first.spawn(spec(tmp_path, "x1", ["sleep", "30"]), rec.callbacks())
    second = DaskExecutor(client)  # registers the worker plugin again
    try:
        assert h.wait(1.0) is None and h.alive  # still running
        assert psutil.Process(h.pid).status() != psutil.STATUS_ZOMBIE
    finally:
        assert h.kill().reason == "kill"
        first.close()
        second.close()


@pytest.mark.slow
def test_agents_die_when_the_client_process_is_sigkilled(client, tmp_path, tree):
    """A kernel killed with SIGKILL: the scheduler drops its tasks, and each agent's supervisor
    on the Dask worker sees its task cancelled and kills the tree."""
    code = textwrap.dedent(
        f"""
        import json, sys, threading
        from distributed import Client
        from ralphnb.workers.dask.executor import DaskExecutor
        from ralphnb.workers.executors import Callbacks, WorkerSpec
        from ralphnb.workers.process import build_env
        c = Client({client.scheduler.address!r})
        ex = DaskExecutor(c)
        got = threading.Event()
        pids = []
        def on_line(line):
            if line.startswith('{{"pids"'):
                pids.extend(json.loads(line)["pids"])
                got.set()
        h = ex.spawn(WorkerSpec(worker_id="k", task_id="RQ-0001", iteration=1,
                                argv=(sys.executable, {str(tree)!r}, "2", "ignore"),
                                cwd={str(tmp_path)!r}, env=build_env(),
                                log_path={str(tmp_path / "k.log")!r}), Callbacks(on_line=on_line))
        got.wait(30)
        print(json.dumps(pids + [h.pid]), flush=True)
        threading.Event().wait()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pids = json.loads(proc.stdout.readline())
        assert len(pids) >= 5 and no_survivor(pids, timeout=0.5) == pids  # all running
    finally:
        proc.kill()
        proc.wait()
    assert no_survivor(pids, timeout=15) == []


@pytest.mark.slow
def test_an_agent_queued_behind_busy_workers_is_stopped_without_ever_running(executor, tmp_path):
    """More agents than Dask worker threads: spawn returns at once for the queued one, and
    stopping it cancels it there (no process ever starts), confirmed by an exit."""
    recs = [Recorder() for _ in range(3)]
    busy = [
        executor.spawn(spec(tmp_path, f"b{i}", ["sleep", "30"]), recs[i].callbacks())
        for i in range(2)
    ]
    t0 = time.monotonic()
    queued = executor.spawn(spec(tmp_path, "q", ["sleep", "31.5"]), recs[2].callbacks())
    assert time.monotonic() - t0 < 2.0 and queued.pid is None and queued.alive
    info = queued.stop(grace=0.5)
    assert info.reason == "stop" and "before it started" in queued.detail
    assert recs[2].exits == [info]
    for h in busy:
        assert h.kill().reason == "kill"
    time.sleep(0.5)
    strays = [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "31.5"]]
    assert strays == []


@pytest.mark.slow
def test_ship_mode_kill_leaves_no_process_and_no_remote_copy(client, tmp_path, tree):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "keep.txt").write_text("as it was\n")
    ex = DaskExecutor(client, workspace="ship")
    rec = Recorder()
    argv = [sys.executable, str(tree), "2", "ignore"]  # the script travels with the task
    h = ex.spawn(
        WorkerSpec(
            worker_id="s1",
            task_id="RQ-0001",
            iteration=1,
            argv=tuple(argv),
            cwd=str(ws),
            env=build_env(),
            log_path=str(tmp_path / "s1.log"),
        ),
        rec.callbacks(),
    )
    pids = tree_pids(rec)
    remote_cwd = psutil.Process(pids[0]).cwd()
    assert remote_cwd != str(ws) and Path(remote_cwd, "keep.txt").is_file()
    info = h.kill()
    ex.close()
    assert info.reason == "kill" and info.log_path == tmp_path / "s1.log"
    assert no_survivor(pids + [h.pid]) == []
    assert not Path(remote_cwd).exists()  # the worker's copy is gone
    assert (ws / "keep.txt").read_text() == "as it was\n"  # killed: the tree came back as is
    assert (tmp_path / "s1.log").read_text().startswith('{"pids"')  # log written by the client


@pytest.mark.slow
def test_agent_queue_commands_come_back_as_queue_marks_and_the_users_queue_is_untouched(
    client, tmp_path
):
    """With queue_writes="client" an agent's `ralphnb task add` and `task done --note` go to a
    stub queue on the Dask worker, built from `spec.task`; what the agent did comes back in the
    exit's `queue_marks` for the loop to apply. The executor never writes the user's queue."""
    from ralphnb.queue.store import init

    repo = tmp_path / "repo"
    repo.mkdir()
    q = init(repo)
    q.add("Existing")
    task = q.start(q.add("Ours").id)
    before = queue_bytes(repo)
    script = tmp_path / "agent.py"
    script.write_text(
        textwrap.dedent(
            """
        import os, subprocess, sys
        tid = os.environ["RALPHNB_TASK_ID"]
        run = lambda *a: subprocess.run([sys.executable, "-m", "ralphnb", "task", *a], check=True)
        run("add", "Follow-up found by the agent", "--depends-on", tid, "--tag", "followup")
        run("done", tid, "--note", "did it")
        print(os.environ["RALPHNB_REPO"])
        """
        )
    )
    env = build_env(
        {
            "RALPHNB_REPO": str(repo),
            "RALPHNB_WORKER": "w#1",
            "RALPHNB_TASK_ID": task.id,
            "PYTHONPATH": os.pathsep.join(sys.path),
        }
    )
    ex = DaskExecutor(client)
    rec = Recorder()
    h = ex.spawn(
        WorkerSpec(
            worker_id="w#1",
            task_id=task.id,
            iteration=1,
            argv=(sys.executable, str(script)),
            cwd=str(tmp_path),
            env=env,
            log_path=str(tmp_path / "a.log"),
            task=task.to_dict(),
        ),
        rec.callbacks(),
    )
    info = h.wait(60)
    ex.close()
    assert info is not None and info.returncode == 0, h.tail(20)
    assert rec.lines[-1] != str(repo)  # the agent saw a stub, not the user's repo
    marks = info.queue_marks
    assert marks is not None and marks["status"] == "done" and marks["notes"] == ["did it"]
    (follow,) = marks["added"]
    assert follow["title"] == "Follow-up found by the agent" and follow["tags"] == ["followup"]
    assert follow["depends_on"] == [task.id] and follow["status"] == "todo"
    assert queue_bytes(repo) == before  # byte-identical: only the loop applies the marks


@pytest.mark.slow
def test_a_queued_agent_reports_its_late_start_through_on_start(executor, tmp_path):
    recs = [Recorder() for _ in range(3)]
    busy = [
        executor.spawn(spec(tmp_path, f"c{i}", ["sleep", "30"]), recs[i].callbacks())
        for i in range(2)
    ]
    started = []
    cbs = recs[2].callbacks()
    cbs.on_start = started.append  # optional callback: not part of Callbacks yet
    queued = executor.spawn(spec(tmp_path, "cq", ["sleep", "30"]), cbs)
    assert queued.pid is None
    busy[0].kill()
    wait_until = time.monotonic() + 20
    while not started and time.monotonic() < wait_until:
        time.sleep(0.05)
    try:
        assert started == [queued.pid] and queued.pid is not None
        assert psutil.Process(queued.pid).is_running()
    finally:
        for h in (busy[1], queued):
            h.kill()
