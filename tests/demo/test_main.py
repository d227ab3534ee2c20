"""`python -m ralphnb.demo` (what `make demo` runs): a fresh sample repo, a real loop over it,
and never a user's own repository replaced."""

from __future__ import annotations

import pytest

from ralphnb.demo import create_sample_repo
from ralphnb.demo.__main__ import main as demo_main
from ralphnb.demo.__main__ import prepare
from ralphnb.queue.store import Queue, init


def test_prepare_replaces_only_a_previous_demo_repo(tmp_path):
    target = tmp_path / "demo-repo"
    prepare(target, 3, duration=None)
    prepare(target, 2, duration=None)  # a previous demo repo is replaced
    assert len(Queue(target).tasks) == 2
    other = tmp_path / "not-a-demo"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        prepare(other, 2, duration=None)
    assert (other / "keep.txt").read_text() == "mine"


@pytest.mark.slow
def test_make_demo_entry_point_runs_the_sample_queue(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RALPHNB_DEMO_SPEED", "0")  # git identity: conftest's git_identity
    target = tmp_path / "demo-repo"
    assert demo_main([str(target), "--tasks", "3"]) == 0
    out = capsys.readouterr().out
    assert "RQ-0003" in out and "Add a greeting module" in out
    assert Queue(target).tasks == [] and len(Queue(target).done) == 3
    assert (target / "src/greeting.py").exists() and (target / "docs/greeting.md").exists()


def test_demo_never_deletes_a_users_own_repository_that_uses_ralph(tmp_path, capsys):
    """`python -m ralphnb.demo .` run in a real project with a ralph queue must refuse, not
    replace it: only a directory made by `create_sample_repo` counts as a previous demo."""
    mine = tmp_path / "my-project"
    mine.mkdir()
    (mine / "README.md").write_text("# My project\n")
    (mine / "main.py").write_text("print('precious')\n")
    init(mine).add("my own task")
    assert demo_main([str(mine), "--tasks", "2"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (mine / "main.py").read_text() == "print('precious')\n"
    assert [t.title for t in Queue(mine).tasks] == ["my own task"]
    # A demo repo the agent already worked on (README appended to) is still recognised.
    demo = create_sample_repo(tmp_path / "demo-repo", n_tasks=2)
    (demo / "SAMPLE_MARK_GONE").write_text("")
    (demo / ".ralph" / "cache" / "ralphnb" / "sample-repo").unlink()  # made before the marker
    with (demo / "README.md").open("a") as fh:
        fh.write("See docs/index.md.\n")
    prepare(demo, 3, duration=None)
    assert len(Queue(demo).tasks) == 3 and not (demo / "SAMPLE_MARK_GONE").exists()
