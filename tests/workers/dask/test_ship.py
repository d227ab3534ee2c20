"""Shipping a workspace to a Dask worker without a shared filesystem and mirroring it back:
pure file operations, no cluster."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from ralphnb.workers.dask.ship import (
    PLACEHOLDER,
    pack_dir,
    resolve,
    ship_spec,
    sync_back,
    unpack_dir,
)


def tree(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        out[rel] = "<dir>" if p.is_dir() else p.read_text()
    return out


def make_ws(root: Path) -> Path:
    ws = root / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "src/a.py").write_text("a = 1\n")
    (ws / "old").mkdir()
    (ws / "old/gone.txt").write_text("bye\n")
    (ws / "README.md").write_text("hi\n")
    (ws / ".git").write_text("gitdir: /somewhere/.git/worktrees/ws\n")  # a worktree's .git file
    return ws


def test_round_trip_mirrors_edits_additions_and_deletions_but_never_git(tmp_path):
    ws = make_ws(tmp_path)
    remote = tmp_path / "remote"
    unpack_dir(pack_dir(ws), remote)
    assert not (remote / ".git").exists() and (remote / "src/a.py").read_text() == "a = 1\n"
    (remote / "src/a.py").write_text("a = 2\n")  # edit
    (remote / "src/b.py").write_text("b = 1\n")  # add
    (remote / "docs").mkdir()
    (remote / "docs/x.md").write_text("x\n")  # add in a new directory
    (remote / "old/gone.txt").unlink()  # delete, and its directory
    (remote / "old").rmdir()
    (remote / "README.md").chmod(0o755)  # mode change
    changed = sync_back(pack_dir(remote), ws)
    assert tree(ws) == {
        ".git": "gitdir: /somewhere/.git/worktrees/ws\n",
        "README.md": "hi\n",
        "docs": "<dir>",
        "docs/x.md": "x\n",
        "src": "<dir>",
        "src/a.py": "a = 2\n",
        "src/b.py": "b = 1\n",
    }
    assert os.stat(ws / "README.md").st_mode & 0o777 == 0o755
    assert changed >= 5
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ralphnb-ship")] == []
    assert sync_back(pack_dir(remote), ws) == 0  # nothing left to change


def test_a_tarball_escaping_the_workspace_is_refused(tmp_path):
    ws = make_ws(tmp_path)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"pwned\n"
        info = tarfile.TarInfo("../outside.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(tarfile.TarError):
        sync_back(buf.getvalue(), ws)
    assert not (tmp_path / "outside.txt").exists()
    assert (ws / "src/a.py").read_text() == "a = 1\n"  # untouched


def test_ship_spec_rewrites_client_paths_and_ships_the_prompt(tmp_path):
    ws = make_ws(tmp_path)
    prompt = tmp_path / "run" / "prompts" / "1.md"
    prompt.parent.mkdir(parents=True)
    prompt.write_text("do it")
    spec = {
        "argv": ["/usr/bin/env", "agent", "--prompt-file", str(prompt), "--cwd", str(ws)],
        "env": {
            "RALPHNB_WORKSPACE": str(ws),
            "RALPHNB_RUN_DIR": str(tmp_path / "run"),
            "OTHER": "x",
        },
        "cwd": str(ws),
        "log_path": str(tmp_path / "run" / "log"),
        "stdin_path": None,
        "worker_id": "w",
        "task_id": "RQ-0001",
    }
    shipped = ship_spec(spec)
    assert str(tmp_path) not in repr({k: v for k, v in shipped.items() if k != "ship"})
    assert shipped["argv"][0] == "/usr/bin/env" and shipped["argv"][5] == f"{PLACEHOLDER}/ws"
    base = tmp_path / "worker-side"
    local = resolve(shipped, base)
    assert Path(local["argv"][3]).read_text() == "do it"
    assert local["cwd"] == str(base / "ws") and (base / "ws/src/a.py").is_file()
    assert local["env"]["RALPHNB_WORKSPACE"] == str(base / "ws") and local["env"]["OTHER"] == "x"
    assert Path(local["env"]["RALPHNB_RUN_DIR"]).is_dir()
