"""`task_diff`: a workspace branch's change against the target branch, with real git."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from ralphnb.errors import WorkspaceError
from ralphnb.workspace.diff import parse_patch, task_diff
from tests.conftest import git


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "keep.txt").write_text("one\ntwo\nthree\n")
    (repo / "gone.txt").write_text("bye\n")
    (repo / "old name.txt").write_text("".join(f"line {i}\n" for i in range(20)))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "init")
    return repo


def _branch_with_changes(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "ralph/RQ-0001")
    (repo / "keep.txt").write_text("one\n2\nthree\nfour\n")
    (repo / "gone.txt").unlink()
    git(repo, "mv", "old name.txt", "new name.txt")
    (repo / "new.txt").write_text("<b>&</b>\n")
    (repo / "blob.bin").write_bytes(bytes(range(256)))
    (repo / ".ralph").mkdir()
    (repo / ".ralph" / "queue.jsonc").write_text("{}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "work")


def test_each_file_has_its_status_counts_and_patch(tmp_path):
    repo = _repo(tmp_path)
    _branch_with_changes(repo)
    d = task_diff("RQ-0001", repo, "main")
    by_path = {f.path: f for f in d.files}
    assert set(by_path) == {"keep.txt", "gone.txt", "new name.txt", "new.txt", "blob.bin"}
    assert (by_path["keep.txt"].status, by_path["keep.txt"].added) == ("modified", 2)
    assert by_path["keep.txt"].removed == 1
    assert "+four" in by_path["keep.txt"].patch and "-two" in by_path["keep.txt"].patch
    assert (by_path["gone.txt"].status, by_path["gone.txt"].removed) == ("deleted", 1)
    renamed = by_path["new name.txt"]
    assert (renamed.status, renamed.old_path, renamed.added) == ("renamed", "old name.txt", 0)
    assert by_path["new.txt"].status == "added" and by_path["new.txt"].added == 1
    assert by_path["blob.bin"].binary and by_path["blob.bin"].added is None
    assert (d.added, d.removed) == (3, 2)


def test_ralphs_own_files_are_left_out_as_the_merge_leaves_them_out(tmp_path):
    repo = _repo(tmp_path)
    _branch_with_changes(repo)
    d = task_diff("RQ-0001", repo, "main")
    assert not [f for f in d.files if f.path.startswith(".ralph")]
    assert ".ralph" not in d.patch


def test_stat_is_a_small_typed_frame(tmp_path):
    repo = _repo(tmp_path)
    _branch_with_changes(repo)
    stat = task_diff("RQ-0001", repo, "main").stat
    assert list(stat.columns) == ["path", "status", "added", "removed"]
    assert str(stat["added"].dtype) == "Int64" and len(stat) == 5
    assert stat.set_index("path").loc["blob.bin", "added"] is pd.NA


def test_the_change_is_against_the_merge_base_not_the_moving_target(tmp_path):
    repo = _repo(tmp_path)
    _branch_with_changes(repo)
    git(repo, "checkout", "-q", "main")
    (repo / "elsewhere.txt").write_text("someone else's work\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "meanwhile on main")
    git(repo, "checkout", "-q", "ralph/RQ-0001")
    d = task_diff("RQ-0001", repo, "main")
    assert "elsewhere.txt" not in {f.path for f in d.files}


def test_no_diff_driver_or_textconv_of_the_repository_runs(tmp_path):
    repo = _repo(tmp_path)
    marker = tmp_path / "ran"
    script = tmp_path / "evil.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\n")
    script.chmod(0o755)
    git(repo, "config", "diff.external", str(script))
    git(repo, "config", "diff.evil.textconv", str(script))
    (repo / ".gitattributes").write_text("* diff=evil\n")
    _branch_with_changes(repo)
    d = task_diff("RQ-0001", repo, "main")
    assert d.files and not marker.exists()


def test_a_workspace_with_no_commit_is_an_error_naming_the_task(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=empty, check=True)
    with pytest.raises(WorkspaceError, match="RQ-0009"):
        task_diff("RQ-0009", empty, "main")


def test_parse_patch_counts_only_hunk_lines():
    patch = (
        "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-a\n+b\n c\n"
        "diff --git a/y b/y\nnew file mode 100644\n--- /dev/null\n+++ b/y\n@@ -0,0 +1 @@\n+--\n"
    )
    files = parse_patch(patch, [("modified", "x", None), ("added", "y", None)])
    assert [(f.path, f.added, f.removed) for f in files] == [("x", 1, 1), ("y", 1, 0)]
    assert files[1].patch.startswith("diff --git a/y b/y")
