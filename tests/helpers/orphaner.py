"""A parent that starts one worker, reports it, then waits to be SIGKILLed (or exits).

`orphaner.py REGISTRY_DIR LOG_DIR (hang|exit)`: prints `token=<token> pid=<shim pid>`.
"""

import sys
import threading
from pathlib import Path

from ralphnb.workers.process import Worker, build_env
from ralphnb.workers.registry import Registry

here = Path(__file__).parent
registry, logs, how = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
ready = threading.Event()
w = Worker(
    [sys.executable, str(here / "child.py"), "escapee"],
    cwd=logs,
    env=build_env(),
    log_path=logs / "w.log",
    worker_id="w1",
    registry=Registry(registry),
    on_line=lambda line: ready.set(),
)
w.start()
ready.wait(20)
print(f"token={w.token} pid={w.pid}", flush=True)
if how == "hang":
    threading.Event().wait(600)
