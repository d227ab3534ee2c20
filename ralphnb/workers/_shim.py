"""Per-worker supervisor shim: run one agent command and never leave a descendant behind.

Run as `python -I -S _shim.py [--status-fd N] -- ARGV...` by `workers.process.Worker` in a new
session (the shim is session and process-group leader). Owns: the agent process and every
process it spawns. Invariants:
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
Stdlib only (os, signal, sys, time, ctypes) so it starts fast; imports nothing from ralphnb.
"""

import os
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
OURS = {signal.SIGINT, signal.SIGTERM, signal.SIGUSR1}
_state = {"agent": 0, "kill_all": False, "pending": 0}


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


def _parse(argv: list[str]) -> tuple[int, list[str]]:
    """`[--status-fd N] [--] ARGV...` -> (N or -1, ARGV); exits 2 without a command."""
    status_fd = -1
    if argv[:1] == ["--status-fd"] and len(argv) > 1:
        status_fd = int(argv[1])
        os.set_inheritable(status_fd, False)  # the agent must not hold it
        argv = argv[2:]
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        os.write(2, b"ralphnb shim: no command given\n")
        os._exit(2)
    return status_fd, argv


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


def _wait_agent(pid: int, status_fd: int) -> int | None:
    """Reap children until the agent is reaped; its raw wait status, told to the parent at once
    (before any sweeping). Other children reaped meanwhile are orphans re-parented to us."""
    while True:
        try:
            done, st = os.waitpid(-1, 0)
        except ChildProcessError:  # cannot happen while the agent lives; be safe
            return None
        if done == pid:
            _report(status_fd, b"%d\n" % st)
            if status_fd >= 0:
                try:
                    os.close(status_fd)
                except OSError:
                    pass
            return st


def main() -> None:
    status_fd, argv = _parse(sys.argv[1:])
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
