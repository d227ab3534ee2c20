"""`.ralph/config.jsonc` `queue` settings: file paths and id prefix/width, as ralph reads them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ralphnb.cli.main import main
from ralphnb.errors import QueueError
from ralphnb.queue.config import QueueSettings, load_queue_settings
from ralphnb.queue.ids import is_task_id, validate_task_id
from ralphnb.queue.rules import next_id
from ralphnb.queue.store import Queue, init

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ralph"


def _repo(tmp_path: Path, queue: dict | None, *, comment: bool = True) -> Path:
    repo = tmp_path / "repo"
    (repo / ".ralph").mkdir(parents=True)
    if queue is not None:
        text = json.dumps({"version": 2, "queue": queue}, indent=2)
        if comment:  # JSONC: comments and a trailing comma
            text = "// repo config\n" + text.replace('"version": 2', '"version": 2 /* v */')
            text = text[: text.rindex("}")] + ",\n}\n"
        (repo / ".ralph" / "config.jsonc").write_text(text)
    return repo


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None):
    full = {k: v for k, v in os.environ.items() if not k.startswith("RALPHNB_")}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "ralphnb", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_configured_prefix_and_width_name_new_tasks(tmp_path: Path):
    repo = _repo(tmp_path, {"id_prefix": "TASK", "id_width": 3})
    q = init(repo)
    assert not (repo / ".ralph" / "config.jsonc").read_text().count("RQ")
    assert q.add("first").id == "TASK-001"
    assert q.add("second").id == "TASK-002"
    assert [t.id for t in Queue(repo).tasks] == ["TASK-001", "TASK-002"]


def test_a_lower_case_prefix_is_read_as_ralph_reads_it(tmp_path: Path):
    # crates/ralph/src/config/resolution.rs resolve_id_prefix: trimmed, upper-cased
    repo = _repo(tmp_path, {"id_prefix": " task ", "id_width": 3})
    assert load_queue_settings(repo).prefix == "TASK"
    assert init(repo).add("first").id == "TASK-001"


def test_next_id_uses_the_configured_prefix_and_width_and_never_overflows():
    # crates/ralph/src/queue/id.rs next_id_across: highest non-rejected number + 1
    tasks = [{"id": "TASK-007"}, {"id": "TASK-009", "status": "rejected"}]
    assert next_id(tasks, [], prefix="TASK", width=3) == "TASK-008"
    assert next_id(tasks, [{"id": "TASK-008"}], prefix="TASK", width=3) == "TASK-010"
    assert next_id([], [], prefix="AB", width=2) == "AB-01"
    with pytest.raises(QueueError, match="id_width"):  # ralph would write AB-100, then refuse it
        next_id([{"id": "AB-99"}], [], prefix="AB", width=2)


def test_custom_files_are_used_by_add_complete_and_next(tmp_path: Path):
    repo = _repo(
        tmp_path, {"file": "tasks/open.jsonc", "done_file": "./tasks/../tasks/closed.jsonc"}
    )
    q = init(repo)
    assert q.queue_path == repo / "tasks" / "open.jsonc"
    assert q.done_path == repo / "tasks" / "closed.jsonc"
    assert not (repo / ".ralph" / "queue.jsonc").exists()
    assert not (repo / ".ralph" / "done.jsonc").exists()
    a, b = q.add("a"), q.add("b", depends_on=["RQ-0001"])
    assert (a.id, b.id) == ("RQ-0001", "RQ-0002")
    assert q.next().id == "RQ-0001"
    q.complete("RQ-0001", "ok")
    fresh = Queue(repo)
    assert fresh.next().id == "RQ-0002"
    on_disk = json.loads((repo / "tasks" / "closed.jsonc").read_text())
    assert [t["id"] for t in on_disk["tasks"]] == ["RQ-0001"]
    assert [t["id"] for t in json.loads(q.queue_path.read_text())["tasks"]] == ["RQ-0002"]
    assert (repo / ".ralph" / "lock").exists() is False  # lock taken and released in .ralph/
    assert not (repo / ".ralph" / "queue.jsonc").exists()


def test_cli_uses_the_configured_files(tmp_path: Path, capsys):
    repo = _repo(
        tmp_path,
        {"file": "work/q.jsonc", "done_file": "work/d.jsonc", "id_prefix": "JOB", "id_width": 2},
    )
    (repo / "src").mkdir()
    config_before = (repo / ".ralph" / "config.jsonc").read_bytes()
    assert main(["init", "--repo", str(repo)]) == 0
    assert (repo / "work" / "q.jsonc").is_file() and (repo / "work" / "d.jsonc").is_file()
    assert not (repo / ".ralph" / "queue.jsonc").exists()
    assert main(["task", "add", "first", "--repo", str(repo)]) == 0
    assert main(["task", "add", "second", "--repo", str(repo)]) == 0
    capsys.readouterr()
    sub = repo / "src"  # real processes, repo found from a subdirectory via .ralph/config.jsonc
    r = _run(["queue", "list"], sub)
    assert r.returncode == 0, r.stderr
    assert [ln.split()[0] for ln in r.stdout.splitlines()] == ["JOB-01", "JOB-02"]
    r = _run(["task", "done", "JOB-01", "--note", "did it"], sub)
    assert r.returncode == 0 and "archived to d.jsonc" in r.stdout, r.stderr
    done = json.loads((repo / "work" / "d.jsonc").read_text())["tasks"]
    assert [t["id"] for t in done] == ["JOB-01"] and done[0]["notes"] == ["did it"]
    assert main(["queue", "next", "--repo", str(repo)]) == 0
    assert capsys.readouterr().out.split()[0] == "JOB-02"
    assert (repo / ".ralph" / "config.jsonc").read_bytes() == config_before


def test_init_writes_no_config(tmp_path: Path):
    repo = tmp_path / "repo"
    repo.mkdir()
    assert _run(["init"], repo).returncode == 0
    assert sorted(p.name for p in (repo / ".ralph").iterdir()) == ["done.jsonc", "queue.jsonc"]


@pytest.mark.parametrize(
    ("queue", "key"),
    [
        ({"id_width": "3"}, "queue.id_width"),
        ({"id_width": True}, "queue.id_width"),
        ({"id_width": 0}, "queue.id_width"),
        ({"id_prefix": 7}, "queue.id_prefix"),
        ({"id_prefix": "  "}, "queue.id_prefix"),
        ({"id_prefix": "1AB"}, "queue.id_prefix"),
        ({"id_width": 13}, "queue.id_width"),
        ({"file": ""}, "queue.file"),
        ({"file": 3}, "queue.file"),
        ({"file": "../outside.jsonc"}, "queue.file"),
        ({"done_file": "a/../../outside.jsonc"}, "queue.done_file"),
        ({"done_file": "/tmp/done.jsonc"}, "queue.done_file"),
        ({"file": ".ralph/lock/q.jsonc"}, "queue.file"),
        ({"file": "x.jsonc", "done_file": "./x.jsonc"}, "queue.done_file"),
    ],
)
def test_bad_config_names_file_and_key_and_touches_nothing(tmp_path: Path, capsys, queue, key):
    repo = _repo(tmp_path, None)
    q = init(repo)
    q.add("keep me")
    cfg = repo / ".ralph" / "config.jsonc"
    cfg.write_text(json.dumps({"version": 2, "queue": queue}))
    before = {p: p.read_bytes() for p in (repo / ".ralph").rglob("*") if p.is_file()}
    with pytest.raises(QueueError) as e:
        Queue(repo)
    assert e.value.path == cfg and e.value.field == key
    assert str(cfg) in str(e.value) and key in str(e.value)
    with pytest.raises(QueueError):
        init(repo)
    for argv in (["task", "add", "never"], ["queue", "list"], ["task", "done", "RQ-0001"]):
        assert main([*argv, "--repo", str(repo)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("ralphnb: error: ") and key in err and str(cfg) in err
    after = {p: p.read_bytes() for p in (repo / ".ralph").rglob("*") if p.is_file()}
    assert after == before
    assert not (tmp_path / "outside.jsonc").exists()


def test_unparseable_config_is_a_queue_error_naming_the_file(tmp_path: Path):
    repo = _repo(tmp_path, None)
    init(repo)
    cfg = repo / ".ralph" / "config.jsonc"
    cfg.write_text('{"queue": {"file": }')
    with pytest.raises(QueueError) as e:
        Queue(repo)
    assert e.value.path == cfg and e.value.line == 1


def test_the_example_ralph_config_loads_with_queue_defaults(tmp_path: Path):
    repo = _repo(tmp_path, None)
    shutil.copy(FIXTURES / "config.jsonc", repo / ".ralph" / "config.jsonc")
    assert load_queue_settings(repo) == QueueSettings()
    q = init(repo)
    assert q.queue_path == repo / ".ralph" / "queue.jsonc"
    assert q.done_path == repo / ".ralph" / "done.jsonc"
    assert q.add("x").id == "RQ-0001"


def test_null_queue_settings_mean_ralphs_defaults(tmp_path: Path):
    nulls = {"file": None, "done_file": None, "id_prefix": None, "id_width": None}
    repo = _repo(tmp_path, {**nulls, "aging_thresholds": None, "max_dependency_depth": 10})
    s = load_queue_settings(repo)
    assert s == QueueSettings() and (s.file, s.done_file) == (
        ".ralph/queue.jsonc",
        ".ralph/done.jsonc",
    )
    assert (s.prefix, s.width) == ("RQ", 4)
    (repo / ".ralph" / "config.jsonc").write_text('{"queue": []}')
    with pytest.raises(QueueError) as e:
        load_queue_settings(repo)
    assert e.value.field == "queue" and "config.jsonc" in str(e.value)
    (repo / ".ralph" / "config.jsonc").write_text("[1]")
    with pytest.raises(QueueError):
        load_queue_settings(repo)


def test_the_schema_has_no_lock_setting():
    schema = json.loads((FIXTURES / "config.schema.json").read_text())
    queue_keys = set(schema["$defs"]["QueueConfig"]["properties"])
    assert {"file", "done_file", "id_prefix", "id_width"} <= queue_keys
    assert not any("lock" in k for k in queue_keys)


def test_configured_ids_are_valid_task_ids_for_workspaces():
    for tid in ("TASK-001", "JOB-01", "AB-1", "X9-000000000001"):
        assert is_task_id(tid) and validate_task_id(tid) == tid
    for bad in ("task-001", "TASK_001", "TASK-", "-001", "TASK-001/x"):
        assert not is_task_id(bad)


def test_workspaces_accept_configured_ids(tmp_path: Path, monkeypatch):
    from ralphnb.workspace.git import run_git
    from ralphnb.workspace.workspaces import Workspaces

    for k, v in {
        "GIT_AUTHOR_NAME": "T",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "T",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": str(tmp_path / "no-global"),
        "GIT_CONFIG_NOSYSTEM": "1",
    }.items():
        monkeypatch.setenv(k, v)
    repo = _repo(tmp_path, {"id_prefix": "TASK", "id_width": 3})
    tid = init(repo).add("x").id
    (repo / "README").write_text("hi\n")
    run_git(["init", "-q"], repo)
    run_git(["add", "README"], repo)
    run_git(["commit", "-q", "-m", "init"], repo)
    wss = Workspaces(repo, root=tmp_path / "ws")
    ws = wss.create(tid)
    assert ws.path == (tmp_path / "ws" / "TASK-001").resolve() and (ws.path / "README").is_file()
    wss.remove(ws, delete_branch=True)
