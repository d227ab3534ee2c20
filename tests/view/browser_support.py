"""JupyterLab + Chromium plumbing for the browser tests (not a test module).

`lab_server(root)` starts JupyterLab on loopback with a token and yields its base URL;
`chromium(pw)` launches Debian's Chromium through Playwright; `kernel_client(...)` connects a
jupyter_client to the notebook's kernel so a test can ask the kernel itself (e.g. `loop.df`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    proc: subprocess.Popen
    runtime_dir: Path

    def api(self, path: str, method: str = "GET", body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def page_url(self, notebook: str) -> str:
        return f"{self.url}/lab/tree/{notebook}?token={self.token}&reset"

    def kernels(self) -> list[dict[str, Any]]:
        return self.api("/api/kernels")

    def wait_kernel_idle(self, timeout: float = 60.0) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                ks = self.kernels()
            except urllib.error.HTTPError as exc:  # the server may answer 500 while a kernel
                if exc.code < 500:  # is still starting (seen once on a loaded machine)
                    raise
                ks = []
            if ks and all(k.get("execution_state") == "idle" for k in ks):
                return ks[0]
            time.sleep(0.25)
        raise TimeoutError(f"kernel not idle after {timeout}s: {self.kernels()}")


@contextlib.contextmanager
def lab_server(root: Path, *, log: Path) -> Iterator[Lab]:
    """JupyterLab on 127.0.0.1 (free port, random token, --allow-root, no browser)."""
    port, token = free_port(), secrets.token_hex(16)
    runtime = root.parent / "jupyter-runtime"
    settings = root.parent / "lab-settings"
    news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True, exist_ok=True)
    news.write_text('{"fetchNews": "false", "checkForUpdates": false}')  # no news toast
    env = dict(
        os.environ,
        JUPYTER_RUNTIME_DIR=str(runtime),
        JUPYTER_CONFIG_DIR=str(root.parent / "jupyter-config"),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(root.parent / "lab-workspaces"),
    )
    argv = [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--ServerApp.port={port}",
        "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={token}",
        "--allow-root",
        "--no-browser",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.port_retries=0",
        "--LabApp.news_url=",
        "--ServerApp.open_browser=False",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            argv,
            cwd=root,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    lab = Lab(f"http://127.0.0.1:{port}", token, root, proc, runtime)
    try:
        end = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited: {log.read_text()[-2000:]}")
            try:
                lab.api("/api/status")
                break
            except OSError:
                if time.monotonic() > end:
                    tail = log.read_text()[-2000:]
                    raise RuntimeError(f"JupyterLab did not start: {tail}") from None
                time.sleep(0.3)
        yield lab
    finally:
        with contextlib.suppress(Exception):  # shut kernels down cleanly first
            for k in lab.kernels():
                lab.api(f"/api/kernels/{k['id']}", method="DELETE")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def chromium(pw: Any) -> Any:
    return pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)


def open_and_run_all(page: Any, lab: Lab, notebook: str) -> dict[str, Any]:
    """Open `notebook` in JupyterLab, wait for its kernel, click Run > Run All Cells; the kernel."""
    page.goto(lab.page_url(notebook))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    kernel = lab.wait_kernel_idle(timeout=90)
    page.locator('.lm-MenuBar-itemLabel:text-is("Run")').click()
    page.locator('.lm-Menu-itemLabel:text-is("Run All Cells")').click()
    return kernel


def kernel_client(lab: Lab, kernel_id: str) -> Any:
    """A blocking client on the notebook's own kernel (its connection file is local)."""
    from jupyter_client import BlockingKernelClient

    cf = lab.runtime_dir / f"kernel-{kernel_id}.json"
    client = BlockingKernelClient(connection_file=str(cf))
    client.load_connection_file()
    client.start_channels()
    client.wait_for_ready(timeout=30)
    return client


def run_in_kernel(client: Any, code: str, timeout: float = 60.0) -> str:
    """Execute `code` in the kernel; return its stdout (raises on an error reply)."""
    out: list[str] = []
    errors: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        c = msg["content"]
        if msg["msg_type"] == "stream" and c.get("name") == "stdout":
            out.append(c["text"])
        elif msg["msg_type"] == "error":
            errors.append(f"{c['ename']}: {c['evalue']}")

    reply = client.execute_interactive(code, timeout=timeout, output_hook=hook)
    if reply["content"]["status"] != "ok" or errors:
        raise RuntimeError(f"kernel error: {errors or reply['content']}")
    return "".join(out)
