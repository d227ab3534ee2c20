"""A parent that starts one worker, reports it, then waits to be killed (or exits).

`orphaner.py REGISTRY_DIR LOG_DIR (hang|detached|forked|exit) [CHILD_ARGS...]`: runs `child.py
CHILD_ARGS` (default `escapee`) as its worker and prints `token=<token> pid=<shim pid>`.
`detached` starts the worker with `die_with_owner=False`, so it outlives this process;
`forked` then forks a child that sleeps without exec (its pid printed as `forked=<pid>`).
"""

import os
import sys
import threading
import time
from pathlib import Path

from ralphnb.workers.process import Worker, build_env
from ralphnb.workers.registry import Registry

here = Path(__file__).parent
registry, logs, how = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
child = sys.argv[4:] or ["escapee"]
ready = threading.Event()
opts = {"die_with_owner": False} if how == "detached" else {}
w = Worker(
    [sys.executable, str(here / "child.py"), *child],
    cwd=logs,
    env=build_env(),
    log_path=logs / "w.log",
    worker_id="w1",
    registry=Registry(registry),
    on_line=lambda line: ready.set(),
    **opts,
)
w.start()
ready.wait(20)
forked = ""
if how == "forked":
    pid = os.fork()
    if pid == 0:
        time.sleep(600)
        os._exit(0)
    forked = f" forked={pid}"
print(f"token={w.token} pid={w.pid}{forked}", flush=True)
if how != "exit":
    threading.Event().wait(600)
