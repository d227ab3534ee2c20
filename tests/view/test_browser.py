"""End to end in a real browser: JupyterLab on loopback, Debian's Chromium through Playwright.

Opens a copy of `notebooks/quickstart.ipynb` cut just before its `control` cell (where the
notebook stops and kills from code), runs all its cells — a loop with long-running demo workers
and the dashboard — then clicks the rendered `Kill` and `Stop` buttons (found by their tooltip,
the DOM `title`), and checks the DOM, the kernel's own `loop.df`, and psutil. Saves a
screenshot to tests/artifacts/dashboard.png. A second case attaches a notebook to a loop
detached by the test process and clicks Kill in that dashboard. Skipped only off CI when
Chromium or Playwright is missing; in CI it must run.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from tests.view.browser_support import (
    chromium,
    chromium_path,
    kernel_client,
    lab_server,
    open_and_run_all,
    run_in_kernel,
)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _need_browser() -> None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "playwright (pip install '.[browser]')"
    else:
        missing = None if chromium_path() else "chromium (apt-get install chromium)"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser test cannot run in CI: {missing} is missing")
        pytest.skip(f"{missing} not installed")


def _notebook_until_control(dest: Path) -> None:
    nb = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    cut = next(i for i, c in enumerate(nb.cells) if "control" in c.metadata.get("tags", []))
    nb.cells = nb.cells[:cut]
    nbformat.write(nb, dest)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


KERNEL_TREE = """
import json, psutil
def _tree(pid):
    try:
        return [pid] + [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
_rows = {r["task_id"]: r for r in loop.snapshot()}
print(json.dumps({"long": long_task.id, "stuck": stuck_task.id,
                  "status": {t: r["status"] for t, r in _rows.items()},
                  "trees": {t: _tree(int(r["pid"])) for t, r in _rows.items()
                            if r["pid"] is not None and r["status"] == "running"}}))
"""


def test_kill_and_stop_buttons_in_jupyterlab(tmp_path: Path) -> None:
    _need_browser()
    from playwright.sync_api import sync_playwright

    root = tmp_path / "notebooks"
    root.mkdir()
    _notebook_until_control(root / "quickstart.ipynb")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with lab_server(root, log=tmp_path / "lab.log") as lab, sync_playwright() as pw:
        browser = chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            kernel = open_and_run_all(page, lab, "quickstart.ipynb")

            # both long-running workers are up, with their buttons live, in the dashboard
            kc = kernel_client(lab, kernel["id"])
            try:
                deadline = time.monotonic() + 120
                while True:
                    try:
                        info = json.loads(run_in_kernel(kc, KERNEL_TREE))
                    except RuntimeError:  # cells still running: `loop` not defined yet
                        info = None
                    if info and info["stuck"] in info["trees"] and info["long"] in info["trees"]:
                        break
                    assert time.monotonic() < deadline, f"workers never ran: {info}"
                    time.sleep(0.5)
                long_id, stuck_id = info["long"], info["stuck"]
                # the stuck agent's two children are up (shim -> agent -> 2 sleepers)
                while len(info["trees"].get(stuck_id, [])) < 4:
                    assert time.monotonic() < deadline, f"children never started: {info}"
                    time.sleep(0.2)
                    info = json.loads(run_in_kernel(kc, KERNEL_TREE))
                kill_btn = page.locator(f'button[title="Kill {stuck_id}"]')
                stop_btn = page.locator(f'button[title="Stop {long_id}"]')
                kill_btn.wait_for(state="visible", timeout=30_000)
                page.wait_for_function(
                    "([a, b]) => [a, b].every(t => { const e = document.querySelector("
                    '`button[title="${t}"]`); return e && !e.disabled; })',
                    arg=[f"Kill {stuck_id}", f"Stop {long_id}"],
                    timeout=30_000,
                )
                stuck_tree, long_tree = info["trees"][stuck_id], info["trees"][long_id]
                assert all(_alive(p) for p in stuck_tree + long_tree)

                kill_btn.click()
                stop_btn.click()
                page.wait_for_selector(
                    f'tr[data-task="{stuck_id}"][data-status="killed"]', timeout=30_000
                )
                page.wait_for_selector(
                    f'tr[data-task="{long_id}"][data-status="stopped"]', timeout=30_000
                )
                assert page.locator(f'button[title="Kill {stuck_id}"]').is_disabled()
                assert page.locator(f'button[title="Stop {long_id}"]').is_disabled()
                end = time.monotonic() + 10
                while any(_alive(p) for p in stuck_tree + long_tree) and time.monotonic() < end:
                    time.sleep(0.1)
                assert not [p for p in stuck_tree + long_tree if _alive(p)]

                # the kernel's own table agrees, and the other workers finish normally
                out = run_in_kernel(
                    kc,
                    "loop.wait(timeout=120)\nimport json\nprint(json.dumps("
                    "{r['task_id']: r['status'] for r in loop.snapshot()}))",
                    timeout=150,
                )
                final = json.loads(out.strip().splitlines()[-1])
                df_out = run_in_kernel(
                    kc,
                    "print(loop.df.groupby('task_id', observed=True)['status'].last()"
                    ".astype(str).to_json())",
                )
                by_df = json.loads(df_out)
            finally:
                kc.stop_channels()
            assert final[stuck_id] == by_df[stuck_id] == "killed", final
            assert final[long_id] == by_df[long_id] == "stopped", final
            others = {t: s for t, s in by_df.items() if t not in (stuck_id, long_id)}
            assert others and set(others.values()) == {"integrated"}, by_df
            for t in others:
                page.wait_for_selector(
                    f'tr[data-task="{t}"][data-status="integrated"]', timeout=15_000
                )
            # button rows line up with the table rows they act on
            row = page.locator(f'tr[data-task="{stuck_id}"]').bounding_box()
            btn = page.locator(f'button[title="Kill {stuck_id}"]').bounding_box()
            assert row and btn
            assert row["y"] <= btn["y"] + btn["height"] / 2 <= row["y"] + row["height"]
            # open the killed worker's log: its transcript shows below the table (what the agent
            # said, as text), and its raw stream-json lines one toggle away
            page.locator(f'button[title="Log {stuck_id}"]').click()
            page.wait_for_function(
                "t => [...document.querySelectorAll('.ralphnb-dashboard')]"
                ".some(e => e.textContent.includes(t))",
                arg=f"Reading task {stuck_id}",
                timeout=15_000,
            )
            page.locator('button[title="Raw log lines instead of the transcript"]').click()
            page.wait_for_function(
                "t => [...document.querySelectorAll('.ralphnb-dashboard pre')]"
                ".some(e => e.textContent.includes(t))",
                arg='"session_id"',
                timeout=15_000,
            )
            shot = ARTIFACTS / "dashboard.png"
            page.locator(".ralphnb-dashboard").first.screenshot(path=str(shot))
        finally:
            browser.close()
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 1000


def test_kill_button_of_an_attached_loop_in_jupyterlab(tmp_path: Path, fast_demo: None) -> None:
    """A loop detached by another process, attached in a notebook: its dashboard's Kill button
    kills that worker's whole tree in the loop's process; the other worker runs on."""
    _need_browser()
    from playwright.sync_api import sync_playwright

    from ralphnb.loop.core import Loop
    from tests.conftest import demo, make_repo

    hang = {"hang": "1", "duration": "2000", "children": "2"}
    repo = make_repo(tmp_path, [demo("a", **hang), demo("b", **hang)])
    owner = Loop(repo, runner="demo", parallel=2, grace=0.5, detach=True).start()
    root = tmp_path / "notebooks"
    root.mkdir()
    nb = nbformat.v4.new_notebook()
    spec = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata = {"kernelspec": spec}  # or Lab asks which kernel to start
    nb.cells = [
        nbformat.v4.new_code_cell(f"import ralphnb\nloop = ralphnb.attach({str(repo)!r})\nloop")
    ]
    nbformat.write(nb, root / "attached.ipynb")
    try:
        end = time.monotonic() + 60
        running: dict[str, int] = {}
        while len(running) < 2:
            assert time.monotonic() < end, "workers never ran"
            time.sleep(0.2)
            recs = owner.snapshot(sample=False)
            running = {r["task_id"]: r["pid"] for r in recs if r["status"] == "running"}
        tree: list[int] = []
        while len(tree) < 4:  # shim -> agent -> 2 sleepers
            assert time.monotonic() < end, f"children never started: {tree}"
            tree = [running["RQ-0001"]]
            tree += [c.pid for c in psutil.Process(running["RQ-0001"]).children(recursive=True)]
            time.sleep(0.2)
        with lab_server(root, log=tmp_path / "lab.log") as lab, sync_playwright() as pw:
            browser = chromium(pw)
            try:
                page = browser.new_page(viewport={"width": 1600, "height": 900})
                open_and_run_all(page, lab, "attached.ipynb")
                page.wait_for_function(
                    't => { const e = document.querySelector(`button[title="${t}"]`);'
                    " return e && !e.disabled; }",
                    arg="Kill RQ-0001",
                    timeout=60_000,
                )
                page.wait_for_selector('tr[data-task="RQ-0002"][data-status="running"]')
                page.locator('button[title="Kill RQ-0001"]').click()
                page.wait_for_selector(
                    'tr[data-task="RQ-0001"][data-status="killed"]', timeout=30_000
                )
                assert page.locator('button[title="Kill RQ-0001"]').is_disabled()
                end = time.monotonic() + 10
                while any(_alive(p) for p in tree) and time.monotonic() < end:
                    time.sleep(0.1)
                assert not [p for p in tree if _alive(p)]
                assert _alive(running["RQ-0002"])  # the other worker runs on
                status = {r["task_id"]: r["status"] for r in owner.snapshot()}
                assert status == {"RQ-0001": "killed", "RQ-0002": "running"}
                shot = ARTIFACTS / "attached-dashboard.png"
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                page.locator(".ralphnb-dashboard").first.screenshot(path=str(shot))
            finally:
                browser.close()
    finally:
        owner.stop_all()
        owner.wait(60)
