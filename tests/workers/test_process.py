"""Real-process tests of workers.process: exit codes, signals, escapees, output, leftovers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from ralphnb.errors import WorkerError
from ralphnb.workers.exits import ExitInfo
from ralphnb.workers.logfile import DEFAULT_MAX_LOG_BYTES
from ralphnb.workers.process import Worker, build_env, stop_all
from ralphnb.workers.registry import (
    TOKEN_VAR,
    Registry,
    find_leftovers,
    reap_leftovers,
    sweep_token,
)

HELPERS = Path(__file__).resolve().parents[1] / "helpers"
CHILD = str(HELPERS / "child.py")
pytestmark = pytest.mark.timeout(60)


def survivors(token: str) -> list[psutil.Process]:
    """Every process carrying the worker token, found with psutil alone."""
    out = []
    for p in psutil.process_iter():
        try:
            if p.pid != os.getpid() and p.environ().get(TOKEN_VAR) == token:
                out.append(p)
        except psutil.Error:
            continue
    return out


@pytest.fixture(autouse=True)
def _no_leaks():
    """A failing test must not leave workers that make later tests fail too."""
    yield
    stop_all(grace=0.0)


def zombies() -> list[psutil.Process]:
    """Unreaped children of this process (a worker's shim must always be reaped)."""
    out = []
    for p in psutil.Process().children():
        try:
            if p.status() == psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            continue
    return out


class Run:
    """A worker on a helper mode, with its events recorded."""

    def __init__(self, tmp_path: Path, *args: str, argv: list[str] | None = None, **kw) -> None:
        self.exits: list[ExitInfo] = []
        self.exit_ns: list[int] = []
        self.lines: list[str] = []
        self.ready = threading.Event()

        def on_line(line: str) -> None:
            self.lines.append(line)
            if "ready" in line:
                self.ready.set()

        def on_exit(info: ExitInfo) -> None:
            self.exit_ns.append(time.monotonic_ns())
            self.exits.append(info)

        self.worker = Worker(
            argv or [sys.executable, CHILD, *args],
            cwd=tmp_path,
            env=kw.pop("env", build_env()),
            log_path=tmp_path / "logs" / "1.log",
            worker_id="w1",
            task_id="RQ-0001",
            on_line=on_line,
            on_exit=on_exit,
            **kw,
        )

    def start(self, wait_ready: bool = True) -> Worker:
        self.worker.start()
        if wait_ready:
            assert self.ready.wait(20), f"child never got ready: {self.worker.stderr_tail()}"
        return self.worker

    def check_clean(self) -> None:
        assert self.worker.wait(10) is not None
        assert len(self.exits) == 1, self.exits
        deadline = time.monotonic() + 2
        while survivors(self.worker.token) and time.monotonic() < deadline:
            time.sleep(0.02)  # a SIGKILLed process may take a moment to vanish
        assert survivors(self.worker.token) == []
        assert zombies() == []


def test_exit_zero_reports_code_log_and_tail(tmp_path):
    r = Run(tmp_path, "exit", "0")
    w = r.start(wait_ready=False)
    info = w.wait(20)
    assert info is not None and info.returncode == 0 and info.signal is None
    assert info.reason is None and info.task_id == "RQ-0001" and info.pid == w.pid
    assert info.ended_at >= info.started_at
    assert r.exits == [info]
    assert (tmp_path / "logs" / "1.log").read_bytes() == b"hello from child\n"
    assert w.tail() == ["hello from child"] and r.lines == ["hello from child"]
    r.check_clean()


def test_exit_three_is_reported_as_three(tmp_path):
    r = Run(tmp_path, "exit", "3")
    info = r.start(wait_ready=False).wait(20)
    assert info is not None and info.returncode == 3 and info.signal is None and not info.ok
    r.check_clean()


def test_stop_honoured_sigint_returns_fast_with_its_exit_code(tmp_path):
    r = Run(tmp_path, "honour-int")
    w = r.start()
    t0 = time.monotonic()
    info = w.stop(grace=5.0)
    assert time.monotonic() - t0 < 2.0
    assert info.returncode == 0, (w.tail(), w.stderr_tail())
    assert info.reason == "stop"
    assert "got SIGINT, exiting" in w.tail()
    r.check_clean()


def test_stop_ignored_sigint_kills_after_grace(tmp_path):
    r = Run(tmp_path, "ignore-int")
    w = r.start()
    t0 = time.monotonic()
    info = w.stop(grace=0.5)
    took = time.monotonic() - t0
    assert 0.45 <= took < 3.0, took
    assert info.signal == signal.SIGKILL and info.returncode is None and info.reason == "stop"
    r.check_clean()


def test_kill_takes_down_twenty_grandchildren(tmp_path):
    r = Run(tmp_path, "fork", "20")
    w = r.start()
    res = w.resources()
    assert res["num_procs"] == 21 and res["rss_mb"] > 0
    assert len(survivors(w.token)) == 22  # shim, child, 20 grandchildren
    info = w.kill()
    assert info.signal == signal.SIGKILL and info.reason == "kill"
    r.check_clean()


def test_stop_takes_down_twenty_grandchildren(tmp_path):
    r = Run(tmp_path, "fork", "20")
    w = r.start()
    info = w.stop(grace=2.0)  # SIGINT reaches the whole group
    assert info.signal == signal.SIGINT
    r.check_clean()


def test_setsid_escapee_holding_stdout_dies_when_agent_exits(tmp_path):
    r = Run(tmp_path, "escapee", "exit")
    w = r.start()
    assert w.wait(0.4) is not None  # the escapee held the pipe; the shim killed it at once
    info = r.exits[0]
    assert info.returncode == 0
    r.check_clean()


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_setsid_escapee_is_killed_by_stop_and_kill(tmp_path, how):
    r = Run(tmp_path, "escapee")
    w = r.start()
    # The middle process of the double fork may still be on its way out: wait for it to go.
    deadline = time.monotonic() + 5
    while len(procs := survivors(w.token)) != 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(procs) == 3
    sids = {p.pid: os.getsid(p.pid) for p in procs}
    assert len(set(sids.values())) == 2  # the escapee left the worker's session
    escapee = next(p for p in procs if os.getsid(p.pid) != w.pid)
    assert escapee.ppid() == w.pid  # orphaned, it re-parented to the subreaper shim
    info = w.stop(grace=0.3) if how == "stop" else w.kill()
    assert info.reason == how
    r.check_clean()


def test_escapee_swept_by_token_when_shim_itself_is_sigkilled(tmp_path):
    r = Run(tmp_path, "escapee")
    w = r.start()
    assert w.pid is not None
    os.kill(w.pid, signal.SIGKILL)  # the shim dies without sweeping: belt and braces
    info = w.wait(10)
    assert info is not None and info.signal == signal.SIGKILL and info.reason is None
    r.check_clean()


def test_sigterm_to_the_shim_alone_reaches_the_agent(tmp_path):
    r = Run(tmp_path, "exit-on-term")
    w = r.start()
    assert w.agent_pid == psutil.Process(w.pid).children()[0].pid
    os.kill(w.pid, signal.SIGTERM)  # what `kill <pid>` from a terminal does
    info = w.wait(10)
    assert info is not None and info.returncode == 7 and "got SIGTERM" in w.tail()
    r.check_clean()


def test_exit_event_is_immediate_not_polled(tmp_path):
    r = Run(tmp_path, "honour-int")
    w = r.start()
    agent = psutil.Process(w.pid).children()[0]
    t0 = time.monotonic_ns()
    agent.send_signal(signal.SIGINT)
    assert r.worker._exited.wait(5)
    assert (r.exit_ns[0] - t0) / 1e6 < 500  # ms; python child shutdown dominates
    r.check_clean()


def test_exits_before_monitor_thread_starts(tmp_path, monkeypatch):
    def hold(worker: Worker) -> None:  # let the shim exit before the monitor exists
        p = psutil.Process(worker.pid)
        deadline = time.monotonic() + 10
        while p.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.01)
        assert p.status() == psutil.STATUS_ZOMBIE

    monkeypatch.setattr(Worker, "_pre_monitor_hook", hold)
    r = Run(tmp_path, "exit", "5")
    info = r.start(wait_ready=False).wait(20)
    assert info is not None and info.returncode == 5
    r.check_clean()


def test_stopped_twice_concurrently_returns_one_exit(tmp_path):
    r = Run(tmp_path, "ignore-int")
    w = r.start()
    results: list[ExitInfo] = []
    threads = [threading.Thread(target=lambda: results.append(w.stop(grace=0.3))) for _ in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(results) == 2 and results[0] is results[1]
    assert results[0].signal == signal.SIGKILL
    assert w.stop() is results[0] and w.kill() is results[0]  # repeated calls: same answer
    r.check_clean()


def test_kill_during_stop_grace_escalates_at_once(tmp_path):
    r = Run(tmp_path, "ignore-int")
    w = r.start()
    got: list[ExitInfo] = []
    t = threading.Thread(target=lambda: got.append(w.stop(grace=20)))
    t.start()
    time.sleep(0.1)
    t0 = time.monotonic()
    info = w.kill()
    assert time.monotonic() - t0 < 2.0 and info.reason == "kill"
    t.join(5)
    assert got == [info]
    r.check_clean()


def test_sigkill_is_reported_as_signal_nine_not_zero(tmp_path):
    r = Run(tmp_path, "selfkill")
    info = r.start(wait_ready=False).wait(20)
    assert info is not None and info.signal == 9 and info.returncode is None
    r.check_clean()


def test_missing_executable_is_a_clear_error(tmp_path):
    for exe in ["ralphnb-no-such-agent", "./bin/no-such-agent"]:
        w = Worker(
            [exe, "--x"],
            cwd=tmp_path,
            env=build_env(),
            log_path=tmp_path / "l.log",
            worker_id="w9",
            task_id="RQ-0009",
        )
        with pytest.raises(WorkerError, match="no-such-agent.*not found") as exc:
            w.start()
        assert exc.value.task_id == "RQ-0009" and w.pid is None


def test_exec_failure_after_spawn_exits_127_with_message(tmp_path):
    script = tmp_path / "agent"
    script.write_text("#!/nonexistent/interpreter\n")
    script.chmod(0o755)
    r = Run(tmp_path, argv=[str(script)])
    info = r.start(wait_ready=False).wait(20)
    assert info is not None and info.returncode == 127
    assert "cannot execute" in r.worker.stderr_tail()
    r.check_clean()


def test_env_is_allow_listed_plus_extras(tmp_path, monkeypatch):
    monkeypatch.setenv("RALPHNB_TEST_SECRET", "hunter2")
    monkeypatch.setenv("LC_TEST_THING", "kept")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test Author")
    env = build_env({"ANTHROPIC_API_KEY": "k", "HOME": None})
    assert "RALPHNB_TEST_SECRET" not in env and "HOME" not in env
    assert env["LC_TEST_THING"] == "kept" and env["GIT_AUTHOR_NAME"] == "Test Author"
    r = Run(tmp_path, "env", env=env)
    r.start(wait_ready=False).wait(20)
    seen = dict(line.split("=", 1) for line in r.lines)
    assert "RALPHNB_TEST_SECRET" not in seen and "hunter2" not in "".join(r.lines)
    assert seen["ANTHROPIC_API_KEY"] == "k" and seen["PATH"] == os.environ["PATH"]
    assert seen[TOKEN_VAR] == r.worker.token
    assert set(seen) <= set(env) | {TOKEN_VAR, "PWD", "SHLVL", "_", "LC_CTYPE"}
    assert build_env(base={"PATH": "/x", "SECRET": "s"}) == {"PATH": "/x"}
    r.check_clean()


def test_stdin_is_closed_or_given_file(tmp_path):
    r = Run(tmp_path, argv=["cat"])
    assert r.start(wait_ready=False).wait(20).returncode == 0 and r.lines == []
    (tmp_path / "prompt.txt").write_text("the prompt\n")
    r2 = Run(tmp_path, argv=["cat"], stdin_path=tmp_path / "prompt.txt")
    r2.start(wait_ready=False).wait(20)
    assert r2.lines == ["the prompt"]


@pytest.mark.slow
def test_one_gigabyte_of_output_keeps_memory_and_the_log_bounded(tmp_path):
    # Before the cap: the log of this attempt was 1 GiB, all of the output (1 of 1 tries).
    total, width = 1 << 30, 1024
    count = [0]
    r = Run(tmp_path, "bytes", str(total), str(width), tail_lines=100)
    r.worker.on_line = lambda line: count.__setitem__(0, count[0] + 1)
    me = psutil.Process()
    base = me.memory_info().rss
    peak = base
    w = r.start(wait_ready=False)
    while w.wait(0.05) is None:
        peak = max(peak, me.memory_info().rss)
    info = w.exit_info
    assert info is not None and info.returncode == 0
    assert (peak - base) / 1e6 < 64, f"parent RSS grew {(peak - base) / 1e6:.0f} MB"
    log_file = tmp_path / "logs" / "1.log"
    assert log_file.stat().st_size <= DEFAULT_MAX_LOG_BYTES  # 64 MiB: the head and the tail
    with open(log_file, "rb") as f:
        f.seek(DEFAULT_MAX_LOG_BYTES // 2 - 4096)
        assert b" bytes of output dropped here" in f.read(8192)
    assert count[0] == total // width and w.bytes_seen == total  # every line parsed
    assert len(w.tail(1000)) == 100
    r.check_clean()


def test_leftovers_of_a_sigkilled_parent_are_found_and_reaped(tmp_path):
    reg, logs = tmp_path / "workers", tmp_path / "logs"
    logs.mkdir()
    parent = subprocess.Popen(
        [sys.executable, str(HELPERS / "orphaner.py"), str(reg), str(logs), "detached"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = parent.stdout.readline()
        token = line.split()[0].split("=", 1)[1]
        shim_pid = int(line.split()[1].split("=", 1)[1])
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
    finally:
        parent.kill()
    time.sleep(0.5)
    assert len(survivors(token)) == 3  # detached from their owner: they outlive it
    found = find_leftovers(reg)
    live = {p.pid for p in survivors(token)}
    assert shim_pid in live and live <= {p.pid for p in found}
    assert reap_leftovers(reg) >= 3
    deadline = time.monotonic() + 3
    while survivors(token) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert survivors(token) == [] and find_leftovers(reg) == []
    assert list(reg.glob("*.json")) == []


def orphan(
    tmp_path: Path, *child: str, how: str = "hang"
) -> tuple[subprocess.Popen[str], str, dict[str, str]]:
    """A process owning one worker (`child.py CHILD...`): (the owner, the worker's token, what
    the owner reported)."""
    reg, logs = tmp_path / "workers", tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    argv = [sys.executable, str(HELPERS / "orphaner.py"), str(reg), str(logs), how, *child]
    owner = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    line = owner.stdout.readline()
    assert line, "the owner never reported its worker"
    said = dict(word.split("=", 1) for word in line.split())
    return owner, said["token"], said


def gone_within(token: str, seconds: float) -> tuple[list[psutil.Process], float]:
    """(processes carrying `token` still alive after `seconds`, seconds until none were)."""
    t0 = time.monotonic()
    while (left := survivors(token)) and time.monotonic() - t0 < seconds:
        time.sleep(0.02)
    return left, time.monotonic() - t0


# Before the lifeline: 3 of 3 processes (shim, agent, setsid escapee) and 2 of 2 (shim, agent
# ignoring SIGINT; also with a forked child of the owner alive) outlived their killed owner, in
# 3 of 3 tries each. After: none, in 5 of 5 tries each.
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_owner_killed_stops_the_agent_gracefully_and_sweeps_escapees(tmp_path, sig):
    marker = tmp_path / "sigint.txt"
    owner, token, _ = orphan(tmp_path, "int-file", str(marker))  # the agent has a setsid escapee
    try:
        deadline = time.monotonic() + 5  # the middle process of the double fork is on its way
        while len(survivors(token)) != 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(survivors(token)) == 3
        owner.send_signal(sig)
        owner.wait(10)
        left, _ = gone_within(token, 1.5 + 1.0)  # the Worker's default grace, + 1 s
    finally:
        owner.kill()
        sweep_token(token)
    assert left == [], f"{len(left)} of 3 worker processes outlived their owner"
    assert marker.read_text() == "got SIGINT\n"  # stopped gracefully first: SIGINT, not a kill
    # its stdout still worked while it stopped, and what it said then is in its log, with why
    log_lines = (tmp_path / "logs" / "w.log").read_text().splitlines()
    assert log_lines[0] == "ready" and log_lines[-1] == "got SIGINT, stopping", log_lines
    assert log_lines[1].startswith("[ralphnb: the worker's owner process is gone; stopping")


def test_owner_killed_kills_an_agent_ignoring_sigint_after_grace(tmp_path):
    owner, token, _ = orphan(tmp_path, "ignore-int")
    try:
        assert len(survivors(token)) == 2
        owner.kill()
        owner.wait(10)
        left, took = gone_within(token, 1.5 + 1.0)
    finally:
        owner.kill()
        sweep_token(token)
    assert left == [], f"{len(left)} of 2 worker processes outlived their owner"
    assert took >= 1.5 - 0.1, f"killed after {took:.2f}s, before the grace of 1.5s ran out"


def test_a_forked_child_of_the_owner_does_not_keep_its_workers_alive(tmp_path):
    # A child forked without exec (multiprocessing's fork start method) would inherit the
    # lifeline's write end; it closes it at fork, so the owner's death is still seen.
    owner, token, said = orphan(tmp_path, "ignore-int", how="forked")
    forked = int(said["forked"])
    try:
        assert psutil.Process(forked).status() != psutil.STATUS_ZOMBIE
        owner.kill()
        owner.wait(10)
        left, _ = gone_within(token, 1.5 + 1.0)
        assert psutil.pid_exists(forked)  # it still runs: only the lifeline told the shim
    finally:
        owner.kill()
        sweep_token(token)
        with contextlib.suppress(ProcessLookupError):
            os.kill(forked, signal.SIGKILL)
    assert left == [], f"{len(left)} of 2 worker processes outlived their owner"


def test_normal_interpreter_exit_stops_workers(tmp_path):
    reg, logs = tmp_path / "workers", tmp_path / "logs"
    logs.mkdir()
    out = subprocess.run(
        [sys.executable, str(HELPERS / "orphaner.py"), str(reg), str(logs), "exit"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    token = out.stdout.split()[0].split("=", 1)[1]
    assert survivors(token) == [] and find_leftovers(reg) == []
    assert list(reg.glob("*.json")) == []


def test_registry_record_lifecycle_and_live_workers_not_leftovers(tmp_path):
    reg = Registry(tmp_path / "workers")
    r = Run(tmp_path, "ignore-int", registry=reg)
    w = r.start()
    recs = reg.records()
    assert [x["pid"] for x in recs] == [w.pid] and recs[0]["token"] == w.token
    assert find_leftovers(reg.path) == []  # still supervised by this process
    w.kill()
    assert reg.records() == []
    r.check_clean()


def test_argv_must_be_a_list():
    with pytest.raises(WorkerError):
        Worker("echo hi", cwd=".", log_path="x.log", worker_id="w")


def _catches(pid: int, sig: int) -> bool:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


def test_stop_before_the_agent_exists_still_honours_sigint(tmp_path):
    env = build_env({"RALPHNB_SHIM_FORK_DELAY": "0.5"})
    r = Run(tmp_path, argv=["sleep", "600"], env=env)
    w = r.start(wait_ready=False)
    deadline = time.monotonic() + 10
    while not _catches(w.pid, signal.SIGUSR1) and time.monotonic() < deadline:
        time.sleep(0.005)  # the shim's handlers are in place; the agent is not forked yet
    assert psutil.Process(w.pid).children() == []
    t0 = time.monotonic()
    info = w.stop(grace=5.0)
    assert time.monotonic() - t0 < 2.0 and info.signal == signal.SIGINT, info
    r.check_clean()


def test_kill_right_after_start_is_sigkill_never_sigusr1(tmp_path):
    # The kill request may land before the shim's Python has even started: the shim must
    # still die of SIGKILL (not of SIGUSR1's default action) and leave nothing behind.
    for _ in range(30):
        r = Run(tmp_path, argv=["sleep", "600"])
        w = r.start(wait_ready=False)
        info = w.kill()
        assert info.signal == signal.SIGKILL and info.reason == "kill", info
        r.check_clean()


def test_stop_right_after_start_is_sigint_or_sigkill_never_sigusr1(tmp_path):
    for _ in range(30):
        r = Run(tmp_path, argv=["sleep", "600"])
        w = r.start(wait_ready=False)
        info = w.stop(grace=0.2)
        assert info.signal in (signal.SIGINT, signal.SIGKILL) and info.reason == "stop", info
        r.check_clean()


def test_agent_starts_with_default_signal_dispositions_and_mask(tmp_path):
    # Python (the shim) ignores SIGPIPE and SIGXFSZ and blocks our signals around the fork;
    # an agent must inherit none of that, or `yes | head` style pipelines misbehave in it.
    r = Run(tmp_path, argv=["cat", "/proc/self/status"])
    extra = {signal.SIGRTMIN + 2}  # e.g. a notebook started under a parent that blocks one
    old = signal.pthread_sigmask(signal.SIG_BLOCK, extra)
    try:
        r.start(wait_ready=False)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    r.worker.wait(20)
    status = dict(line.split(":", 1) for line in r.lines if ":" in line)
    ignored = int(status["SigIgn"], 16)
    ours = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGPIPE, signal.SIGXFSZ)
    assert not [s.name for s in ours if ignored & (1 << (s - 1))], status["SigIgn"]
    assert int(status["SigBlk"], 16) == 0, status["SigBlk"]  # empty, whatever the parent had
    r.check_clean()
