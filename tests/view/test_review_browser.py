"""The review gate in a real browser: JupyterLab on loopback, Debian's Chromium via Playwright.

Opens a copy of `notebooks/review.ipynb` cut just before its `waiting` cell (a review loop
with its dashboard on two demo tasks), runs all its cells, then, as a person would: clicks the
`Review RQ-0001` button, reads the diff that opens under the table, types a request into the
text box and clicks `Request changes RQ-0001`; once the new attempt waits again, opens the
review again and clicks `Accept RQ-0001`. Checks that the target branch, the queue, the
kernel's `loop.df` and the dashboard's rows agree. Saves tests/artifacts/review.png.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import nbformat
import pytest

from tests.view.browser_support import (
    chromium,
    kernel_client,
    lab_server,
    open_and_run_all,
    run_in_kernel,
)
from tests.view.test_browser import ARTIFACTS, ROOT, _need_browser

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STATE = """
import json
print(json.dumps({"waiting": list(loop.reviews().task_id), "repo": str(repo),
                  "rows": {r["worker_id"]: r["status"] for r in loop.snapshot(sample=False)}}))
"""


def _notebook_until_waiting(dest: Path) -> None:
    nb = nbformat.read(ROOT / "notebooks" / "review.ipynb", as_version=4)
    cut = next(i for i, c in enumerate(nb.cells) if "waiting" in c.metadata.get("tags", []))
    nb.cells = nb.cells[:cut]
    nbformat.write(nb, dest)


def _state(kc, until, timeout: float = 120.0) -> dict:
    end = time.monotonic() + timeout
    info = None
    while time.monotonic() < end:
        try:
            info = json.loads(run_in_kernel(kc, STATE).strip().splitlines()[-1])
        except RuntimeError:  # cells still running: `loop` not defined yet
            info = None
        if info is not None and until(info):
            return info
        time.sleep(0.5)
    raise AssertionError(f"the loop never got there: {info}")


def test_request_changes_then_accept_in_jupyterlab(tmp_path: Path) -> None:
    _need_browser()
    from playwright.sync_api import sync_playwright

    root = tmp_path / "notebooks"
    root.mkdir()
    _notebook_until_waiting(root / "review.ipynb")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with lab_server(root, log=tmp_path / "lab.log") as lab, sync_playwright() as pw:
        browser = chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1200})
            kernel = open_and_run_all(page, lab, "review.ipynb")
            kc = kernel_client(lab, kernel["id"])
            try:
                info = _state(kc, lambda s: "RQ-0001" in s["waiting"])
                repo = Path(info["repo"])
                review = page.locator('button[title="Review RQ-0001"]')
                review.wait_for(state="visible", timeout=30_000)
                review.click()
                panel = page.locator(".ralphnb-review")
                panel.locator(".rnb-diff").wait_for(timeout=30_000)
                assert "src/greeting.py" in panel.locator(".rnb-files").inner_text()
                assert panel.locator(".rnb-diff span.a").count() >= 1  # an added line, green
                panel.locator("textarea").fill("Also export GREETING in __all__.")
                page.locator('button[title="Request changes RQ-0001"]').click()

                info = _state(kc, lambda s: "RQ-0001#2" in s["rows"] and "RQ-0001" in s["waiting"])
                assert info["rows"]["RQ-0001#1"] == "succeeded"
                prompt = run_in_kernel(
                    kc, 'print((loop.run_dir / "prompts" / "RQ-0001" / "2.md").read_text())'
                )
                assert "Also export GREETING in __all__." in prompt
                head = subprocess.run(
                    ["git", "log", "--format=%s", "main"],
                    cwd=repo,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                assert "RQ-0001" not in head  # nothing reached the target branch yet

                review.wait_for(state="visible", timeout=30_000)
                review.click()
                panel.locator(".rnb-diff").wait_for(timeout=30_000)
                page.locator('button[title="Accept RQ-0001"]').click()
                page.wait_for_selector(
                    'tr[data-task="RQ-0001"][data-status="integrated"]', timeout=60_000
                )
                page.locator(".ralphnb-dashboard").first.screenshot(
                    path=str(ARTIFACTS / "review.png")
                )
                by_df = json.loads(
                    run_in_kernel(
                        kc,
                        "print(loop.df.groupby('task_id', observed=True)['status'].last()"
                        ".astype(str).to_json())",
                    )
                )
                done = run_in_kernel(kc, "print([t.id for t in ralphnb.Queue(repo).done])")
            finally:
                kc.stop_channels()
        finally:
            browser.close()
    files = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", "main"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert by_df["RQ-0001"] == "integrated" and "src/greeting.py" in files
    assert "RQ-0001" in done
    assert by_df["RQ-0002"] != "integrated" and "CHANGELOG.md" not in files  # not accepted
    assert (ARTIFACTS / "review.png").stat().st_size > 1000
