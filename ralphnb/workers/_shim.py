"""Per-worker supervisor shim: run one agent command and never leave a descendant behind.

Run as `python -I -S _shim.py [--status-fd N] [--lifeline-fd N --grace S [--output-fd N
--log-fd N]] -- ARGV...` by `workers.process.Worker` in a new session (the shim is session and
process-group leader). Owns: the agent process and every process it spawns. Invariants:
- The shim is a child subreaper (Linux prctl), so a grandchild that calls setsid and is orphaned
  re-parents to the shim instead of PID 1 and can still be found and killed.
- When the agent exits, every remaining descendant is SIGKILLed and reaped, then the shim exits
  with the agent's own status (same exit code, or the same signal re-raised on itself).
- SIGINT/SIGTERM do not stop the shim (they reach the agent through the group; one arriving
  before the agent was forked is passed on to it right after the fork; a SIGTERM sent to the
  shim alone is passed to the agent). SIGUSR1 means "kill everything now": the agent and all
  descendants are SIGKILLed and the shim dies of SIGKILL (at once, without forking, if the
  agent does not exist yet). Exec failure exits 127 (stderr says).
- No window where these signals act by default: the parent execs the shim with SIGINT,
  SIGTERM and SIGUSR1 blocked (the mask survives exec), and the shim unblocks them only once
  its handlers are installed, so one sent during interpreter startup is held, then handled.
- With `--status-fd N`, the agent's pid (`p<pid>` line) is written to fd N after the fork and
  its raw wait status (decimal line) the moment the agent is reaped, so the parent learns of
  the exit before any sweep or shim teardown.
- With `--lifeline-fd N`, the shim dies with its owner: fd N is the read end of a pipe whose
  only write end the owner holds (close-on-exec, closed in its forked children), and nothing
  is ever written to it. EOF therefore means the owner is gone, by any death (SIGKILL
  included: the kernel closes a dead process's fds), and then a watcher thread stops the agent
  as `Worker.stop` would: SIGINT to the group, `--grace S` seconds, then SIGKILL of every
  descendant (setsid escapees included, through the subreaper). Chosen over
  PR_SET_PDEATHSIG, which fires when the parent *thread* that spawned the shim exits (workers
  are spawned from short-lived driver threads) and would not reach the agent's tree anyway.
- After the owner is gone, the agent's stdout stays a working pipe: with `--output-fd N` (the
  read end of the agent's stdout) the watcher drains it, appending at most `AFTER_OWNER_LOG`
  bytes to `--log-fd N` (the attempt's log), so an agent that prints while stopping neither
  dies of a broken pipe nor blocks, and its last words are kept. The shim never reads these
  two fds while the owner lives.
Stdlib only (os, signal, sys, time, ctypes; threading only with a lifeline, after the agent was
forked) so the agent starts fast; imports nothing from ralphnb.
"""

import os
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
OURS = {signal.SIGINT, signal.SIGTERM, signal.SIGUSR1}
FD_OPTIONS = ("--status-fd", "--lifeline-fd", "--output-fd", "--log-fd")
AFTER_OWNER_LOG = 1 << 20  # bytes of output kept after the owner died (the rest is drained)
_state = {"agent": 0, "kill_all": False, "pending": 0}
_reaped: list = []  # the watcher's threading.Event, set once the agent was reaped


def _set_subreaper() -> None:
    try:  # ctypes may be missing or unusable on a minimal or non-Linux Python: best effort
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except Exception:  # not Linux: best effort, the parent's token sweep still applies
        pass


def _descendants(root: int) -> list[int]:
    """Pids whose parent chain leads to `root`, read from /proc (empty off Linux)."""
    parents: dict[int, list[int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open("/proc/" + name + "/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1:
            parents.setdefault(int(fields[1]), []).append(int(name))
    out: list[int] = []
    todo = [root]
    while todo:
        for child in parents.get(todo.pop(), ()):
            out.append(child)
            todo.append(child)
    return out


def _kill_tree() -> None:
    for pid in _descendants(os.getpid()):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _on_usr1(signum, frame) -> None:
    _state["kill_all"] = True
    _kill_tree()


def _forward(signum, frame) -> None:
    """SIGINT/SIGTERM. A group signal reached the agent already; one that came before the agent
    existed is remembered and passed on right after the fork (a stop during startup). SIGTERM
    sent to the shim alone (`kill <pid>`) is passed to the agent, so it can exit gracefully."""
    if not _state["agent"]:
        _state["pending"] = signum
    elif signum == signal.SIGTERM:
        try:
            os.kill(_state["agent"], signal.SIGTERM)
        except OSError:
            pass


def _reap_all() -> None:
    """SIGKILL and reap every descendant until the shim has no child left."""
    while True:
        _kill_tree()
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return
        while True:  # drain whatever else is ready before the next /proc scan
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                break


def _exit_like(status: int) -> None:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):  # SIGKILL/SIGSTOP cannot be handled anyway
            pass
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def _parse(argv: list[str]) -> tuple[dict[str, float], list[str]]:
    """`[--NAME VALUE]... [--] ARGV...` -> ({--NAME: VALUE}, ARGV), fds -1 when not given;
    exits 2 without a command. The agent inherits none of the fds given."""
    opts = {name: -1.0 for name in FD_OPTIONS}
    opts["--grace"] = 1.5
    while len(argv) > 1 and argv[0] in opts:
        opts[argv[0]] = float(argv[1])
        argv = argv[2:]
    for name in FD_OPTIONS:
        if opts[name] >= 0:
            os.set_inheritable(int(opts[name]), False)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        os.write(2, b"ralphnb shim: no command given\n")
        os._exit(2)
    return opts, argv


def _report(status_fd: int, data: bytes) -> None:
    if status_fd >= 0:
        try:
            os.write(status_fd, data)
        except OSError:
            pass


def _fork_agent(argv: list[str]) -> int:
    """Fork and exec the agent with default signal handling and an empty mask; its pid.

    Our signals are blocked across the fork: the child must not run the shim's handlers, and a
    SIGINT/SIGTERM that lands before the agent exists is passed on (`_pass_on_held`), not lost.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, OURS)
    pid = os.fork()
    if pid == 0:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        # the agent starts with an empty mask, whatever the parent had blocked (a pending
        # signal of ours now acts by default)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        try:
            os.execvp(argv[0], argv)
        except OSError as exc:
            os.write(2, f"ralphnb shim: cannot execute {argv[0]!r}: {exc}\n".encode())
        os._exit(127)
    return pid


def _pass_on_held(pid: int) -> None:
    """Give the new agent a stop that came before it existed, then let held signals run."""
    held = signal.sigpending()
    stops = [s for s in (signal.SIGINT, signal.SIGTERM) if s in held]
    forward = _state["pending"] or (stops[0] if stops else 0)
    if forward and not _state["kill_all"]:
        try:
            os.kill(pid, forward)
        except OSError:
            pass
    signal.pthread_sigmask(signal.SIG_UNBLOCK, OURS)  # a held SIGUSR1 now runs its handler
    if _state["kill_all"]:
        _kill_tree()


def _watch_owner(lifeline: int, grace: float, output: int, log: int) -> None:
    """Block until every write end of the lifeline is closed (the owner is gone), then stop
    the agent: SIGINT to our group, `grace` seconds, then SIGKILL of every descendant."""
    try:
        while os.read(lifeline, 64):  # nothing is ever written: only EOF (or an error) ends it
            pass
    except OSError:
        pass
    reaped = _reaped[0]
    if reaped.is_set():  # the agent is gone already; the main thread sweeps the rest
        return
    if log >= 0:  # say why in the log, before whatever the agent says while stopping
        note = "[ralphnb: the worker's owner process is gone; stopping the agent (SIGINT, "
        _append(log, f"{note}kill after {grace:g}s)]\n".encode())
    if output >= 0:
        import threading  # loaded already by `_start_watcher`

        threading.Thread(target=_drain_output, args=(output, log), daemon=True).start()
    try:
        os.killpg(os.getpgrp(), signal.SIGINT)  # the agent's group (ours: `_forward` is a no-op)
    except OSError:
        pass
    if not reaped.wait(grace):
        _state["kill_all"] = True  # as SIGUSR1 would: the main thread then reaps everything
        _kill_tree()


def _start_watcher(opts: dict[str, float]) -> None:
    """Start `_watch_owner` with our signals blocked in it (and in the thread it starts): a
    signal caught on another thread would not interrupt the main thread's `waitpid`, so its
    handler would wait for the agent's exit. Held here, they stay for the main thread."""
    import threading  # here, not at the top: the agent's start does not wait for it

    _reaped.append(threading.Event())
    fds = [int(opts[n]) for n in ("--lifeline-fd", "--output-fd", "--log-fd")]
    old = signal.pthread_sigmask(signal.SIG_BLOCK, OURS)
    try:
        watch = threading.Thread(target=_watch_owner, args=(fds[0], opts["--grace"], *fds[1:]))
        watch.daemon = True
        watch.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _append(log: int, data: bytes) -> int:
    """Append `data` to the log (its owner is gone: nobody else writes it); bytes written, 0 on
    any error."""
    try:
        os.lseek(log, 0, os.SEEK_END)
        return os.write(log, data)
    except OSError:
        return 0


def _drain_output(output: int, log: int) -> None:
    """Read the agent's stdout to its end once the owner is gone: the first `AFTER_OWNER_LOG`
    bytes appended to the log (errors ignored), the rest dropped."""
    budget = AFTER_OWNER_LOG if log >= 0 else 0
    while True:
        try:
            chunk = os.read(output, 65536)
        except OSError:
            return
        if not chunk:
            return
        if budget > 0:
            written = _append(log, chunk[:budget])
            budget = budget - written if written else 0


def _wait_agent(pid: int, status_fd: int) -> int | None:
    """Reap children until the agent is reaped; its raw wait status, told to the parent at once
    (before any sweeping). Other children reaped meanwhile are orphans re-parented to us."""
    while True:
        try:
            done, st = os.waitpid(-1, 0)
        except ChildProcessError:  # cannot happen while the agent lives; be safe
            return None
        if done == pid:
            for event in _reaped:  # the watcher's, when there is one
                event.set()
            _report(status_fd, b"%d\n" % st)
            if status_fd >= 0:
                try:
                    os.close(status_fd)
                except OSError:
                    pass
            return st


def main() -> None:
    opts, argv = _parse(sys.argv[1:])
    status_fd = int(opts["--status-fd"])
    _set_subreaper()
    signal.signal(signal.SIGINT, _forward)
    signal.signal(signal.SIGTERM, _forward)
    signal.signal(signal.SIGUSR1, _on_usr1)
    # The parent spawned us with these blocked, so one sent while the interpreter was still
    # starting is held, not acted on by default. With our handlers in place, let it run them.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, OURS)
    delay = os.environ.get("RALPHNB_SHIM_FORK_DELAY")  # tests: widen the pre-fork window
    if delay:
        time.sleep(float(delay))
    if _state["kill_all"]:  # killed before the agent existed: nothing to start or sweep
        os.kill(os.getpid(), signal.SIGKILL)
    pid = _fork_agent(argv)
    _state["agent"] = pid
    _report(status_fd, b"p%d\n" % pid)  # the agent's pid, for the parent's records
    _pass_on_held(pid)
    if opts["--lifeline-fd"] >= 0:  # started after the fork: the agent never has this thread
        _start_watcher(opts)
    status = _wait_agent(pid, status_fd)
    if _state["kill_all"]:
        _reap_all()
        status = 9  # raw wait status of a SIGKILLed process
    else:
        try:
            more, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            more = -1
        if more != -1:  # descendants are left: kill and reap them before exiting
            _reap_all()
    _exit_like(status if status is not None else 0)


if __name__ == "__main__":
    main()
