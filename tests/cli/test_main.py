"""The `ralphnb` command's entry point: one-line errors and exit codes, whatever the subcommand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ralphnb.queue.store import init
from tests.cli.ralphnb_process import run_cli


def test_errors_are_one_line_with_nonzero_exit(tmp_path: Path):
    repo = tmp_path / "repo"
    repo.mkdir()
    r = run_cli(["queue", "list"], repo)
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert r.stderr.startswith("ralphnb: error:") and "init" in r.stderr
    run_cli(["init"], repo)
    r = run_cli(["task", "done", "RQ-0042"], repo)
    assert r.returncode == 1 and "RQ-0042" in r.stderr and r.stderr.count("\n") == 1
    (repo / ".ralph" / "queue.jsonc").write_text('{"version": 1,\n "tasks": [,]}')
    r = run_cli(["queue", "validate"], repo)
    assert r.returncode == 1 and ":2:" in r.stderr and r.stderr.count("\n") == 1


def test_a_reader_that_goes_away_is_not_an_error(tmp_path: Path):
    # `ralphnb queue list | head -1`: the list is larger than a pipe's buffer, so the write
    # fails once the reader has gone
    repo = tmp_path / "repo"
    repo.mkdir()
    q = init(repo)
    stamp = "2026-01-01T00:00:00Z"
    tasks = [
        {"id": f"RQ-{i:04d}", "title": "t" * 60, "created_at": stamp, "updated_at": stamp}
        for i in range(1, 3001)
    ]
    q.queue_path.write_text(json.dumps({"version": 1, "tasks": tasks}))
    p = subprocess.Popen(
        [sys.executable, "-m", "ralphnb", "queue", "list", "--repo", str(repo)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert p.stdout is not None and p.stdout.readline().startswith("RQ-0001")
    p.stdout.close()
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0 and err == ""
