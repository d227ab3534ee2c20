"""CPU and memory figures of process trees, from one shared, short-lived process-table snapshot.

Owns: the snapshot of the process table (pid -> ppid, start time, CPU seconds, RSS) and the
previous CPU sample of every process seen, keyed by (pid, create_time), so a CPU percentage can
be computed on the next sample. On Linux one `listdir("/proc")` plus one small read of
`/proc/<pid>/stat` per process gives everything; elsewhere one `psutil.process_iter` pass does.
Does not own: which tree belongs to which worker (`process.Worker.resources` names the root).
Invariants:
- One scan serves every tree sampled within `WINDOW` seconds: a burst of samples (a `loop.df`,
  a dashboard refresh over many workers) costs one walk of the table, not one per worker.
  Figures are at most `WINDOW` old; a root started after the snapshot began forces a fresh
  scan (a root missing from a newer snapshot has exited: zeros, no scan).
- A reused pid never inherits another process's figures: every per-process record is keyed by
  (pid, create_time) read in the same stat read as its figures, so a new process with an old
  pid starts a new CPU history (its first sample reports 0 %, like psutil's first call).
- CPU % is per process since its previous sample in an *older* snapshot; two samplers in the
  same window (say `loop.df` and the dashboard) both get the same figure, neither resets the
  other's interval to nothing. Records of processes gone from the table are dropped at each scan.
- Thread-safe: one lock guards the snapshot and the CPU history; a caller arriving during a
  scan waits for it and reuses it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field

import psutil

WINDOW = 0.25  # seconds one snapshot serves

_LINUX = sys.platform.startswith("linux") and os.path.isdir("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if _LINUX else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if _LINUX else 4096

Key = tuple[int, float]  # (pid, create_time): create_time in the snapshot's own clock


@dataclass
class Snapshot:
    """The process table at one instant: per pid its parent, start time, CPU seconds and RSS."""

    taken: float  # time.monotonic() when the scan finished
    began: float = 0.0  # time.time() when the scan started
    ppid: dict[int, int] = field(default_factory=dict)
    start: dict[int, float] = field(default_factory=dict)
    cpu: dict[int, float] = field(default_factory=dict)  # user + system seconds
    rss: dict[int, int] = field(default_factory=dict)  # bytes
    _kids: dict[int, list[int]] | None = None

    def children(self) -> dict[int, list[int]]:
        if self._kids is None:
            kids: dict[int, list[int]] = {}
            for pid, parent in self.ppid.items():
                kids.setdefault(parent, []).append(pid)
            self._kids = kids
        return self._kids

    def descendants(self, root: int) -> list[int]:
        """Pids whose parent chain leads to `root` (not `root` itself)."""
        kids, out, todo = self.children(), [], [root]
        while todo:
            for child in kids.get(todo.pop(), ()):
                out.append(child)
                todo.append(child)
        return out


_lock = threading.Lock()
_current: Snapshot | None = None
_prev: dict[Key, tuple[float, float, float]] = {}  # key -> (cpu seconds, taken, last percent)
_scans = 0


def scan_count() -> int:
    """How many times the process table was walked (tests and benchmarks count scans)."""
    return _scans


def invalidate() -> None:
    """Forget the current snapshot: the next sample scans afresh (the CPU history is kept)."""
    global _current
    with _lock:
        _current = None


def _scan_proc() -> Snapshot:
    snap = Snapshot(taken=0.0)
    try:
        names = os.listdir("/proc")
    except OSError:
        return snap
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open("/proc/" + name + "/stat", "rb") as f:
                stat = f.read()
        except OSError:  # gone since the listdir, or not ours to read
            continue
        # after "pid (comm) ": state ppid ... utime(11) stime(12) ... starttime(19) vsize rss(21)
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) < 22:
            continue
        pid = int(name)
        snap.ppid[pid] = int(fields[1])
        snap.start[pid] = int(fields[19]) / _TICKS
        snap.cpu[pid] = (int(fields[11]) + int(fields[12])) / _TICKS
        snap.rss[pid] = int(fields[21]) * _PAGE
    return snap


def _scan_psutil() -> Snapshot:
    snap = Snapshot(taken=0.0)
    attrs = ["pid", "ppid", "create_time", "cpu_times", "memory_info"]
    for p in psutil.process_iter(attrs, ad_value=None):
        info = p.info
        if info.get("ppid") is None or info.get("create_time") is None:
            continue
        pid = info["pid"]
        snap.ppid[pid] = info["ppid"]
        snap.start[pid] = info["create_time"]
        times, mem = info.get("cpu_times"), info.get("memory_info")
        snap.cpu[pid] = times.user + times.system if times is not None else 0.0
        snap.rss[pid] = mem.rss if mem is not None else 0
    return snap


def _refresh() -> Snapshot:
    """Scan the table (caller holds `_lock`) and drop the CPU history of vanished processes."""
    global _current, _scans
    began = time.time()
    snap = _scan_proc() if _LINUX else _scan_psutil()
    snap.began = began
    snap.taken = time.monotonic()
    _scans += 1
    for key in [k for k in _prev if snap.start.get(k[0]) != k[1]]:
        del _prev[key]
    _current = snap
    return snap


def snapshot(*, max_age: float = WINDOW, not_before: float | None = None) -> Snapshot:
    """The shared snapshot, rescanned if older than `max_age` seconds or if it began before
    `not_before` (a `time.time()` value, e.g. when the process of interest was started)."""
    with _lock:
        snap = _current
        if (
            snap is None
            or time.monotonic() - snap.taken > max_age
            or (not_before is not None and snap.began < not_before)
        ):
            snap = _refresh()
        return snap


def _percent(snap: Snapshot, pid: int) -> float:
    """CPU % of `pid` since its sample in an older snapshot (caller holds `_lock`)."""
    key = (pid, snap.start[pid])
    now = snap.cpu[pid]
    prev = _prev.get(key)
    if prev is None:
        _prev[key] = (now, snap.taken, 0.0)
        return 0.0
    cpu0, t0, last = prev
    if snap.taken <= t0:  # same snapshot sampled again: same answer
        return last
    pct = max(0.0, 100.0 * (now - cpu0) / (snap.taken - t0))
    _prev[key] = (now, snap.taken, pct)
    return pct


def tree_usage(
    root: int, *, started: float | None = None, include_root: bool = False
) -> dict[str, float | int]:
    """{"cpu_percent", "rss_mb", "num_procs"} summed over the descendants of `root`.

    `started` (`time.time()` when `root` was spawned) makes sure the snapshot can know `root`;
    `include_root` adds `root` itself. All zeros if `root` is not running. Never raises.
    """
    out: dict[str, float | int] = {"cpu_percent": 0.0, "rss_mb": 0.0, "num_procs": 0}
    snap = snapshot(not_before=started)
    if root not in snap.ppid:
        return out
    pids = snap.descendants(root)
    if include_root:
        pids.append(root)
    cpu = 0.0
    with _lock:
        for pid in pids:
            cpu += _percent(snap, pid)
    out["cpu_percent"] = cpu
    out["rss_mb"] = sum(snap.rss[p] for p in pids) / 1e6
    out["num_procs"] = len(pids)
    return out
