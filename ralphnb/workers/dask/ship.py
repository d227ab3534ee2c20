"""Shipping a workspace to a Dask worker that does not share the client's filesystem, and back.

Owns: packing a directory (without its `.git`) into a tar.gz in memory, unpacking it on the
worker, mirroring the agent's result back over the client's workspace, and rewriting the paths
of a spec (workspace, prompt file, stdin, run dir, log) to a placeholder the worker resolves.
Invariants: `.git` is never shipped nor touched on the way back (the client's worktree keeps its
history; what the agent changed comes back as uncommitted changes the loop commits); extraction
refuses absolute paths, `..` and links pointing outside (tarfile's "data" filter).
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

PLACEHOLDER = "@@RALPHNB_SHIP@@"
SKIP = (".git",)


def pack_dir(root: str | Path) -> bytes:
    """tar.gz of everything under `root` except a top-level `.git`."""
    root = Path(root)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        for entry in sorted(os.listdir(root)):
            if entry not in SKIP:
                tar.add(root / entry, arcname=entry)
    return buf.getvalue()


def unpack_dir(data: bytes, dest: str | Path) -> None:
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")


def _entries(root: Path) -> set[str]:
    out: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel == ".":
            dirnames[:] = [d for d in dirnames if d not in SKIP]
            filenames = [f for f in filenames if f not in SKIP]
        for name in dirnames + filenames:
            out.add(os.path.normpath(os.path.join(rel, name)))
    return out


def sync_back(data: bytes, workspace: str | Path) -> int:
    """Make `workspace` (minus `.git`) equal to the shipped-back tree; returns paths changed."""
    ws = Path(workspace)
    with tempfile.TemporaryDirectory(prefix=".ralphnb-ship-", dir=ws.parent) as tmp:
        new = Path(tmp)
        unpack_dir(data, new)
        theirs, ours = _entries(new), _entries(ws)
        changed = 0
        for rel in sorted(ours - theirs, reverse=True):  # deepest first
            p = ws / rel
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            changed += 1
        for rel in sorted(theirs):
            src, dst = new / rel, ws / rel
            if src.is_dir() and not src.is_symlink():
                if dst.is_symlink() or (dst.exists() and not dst.is_dir()):
                    dst.unlink()
                dst.mkdir(exist_ok=True)
                continue
            if dst.is_dir() and not dst.is_symlink():
                shutil.rmtree(dst)
            elif (
                (dst.exists() or dst.is_symlink())
                and not src.is_symlink()
                and not dst.is_symlink()
                and _same(src, dst)
            ):
                continue
            os.replace(src, dst)
            changed += 1
        return changed


def _same(a: Path, b: Path) -> bool:
    sa, sb = a.stat(), b.stat()
    if sa.st_size != sb.st_size or (sa.st_mode & 0o777) != (sb.st_mode & 0o777):
        return False
    return a.read_bytes() == b.read_bytes()


def ship_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with client paths rewritten under PLACEHOLDER, plus the files to ship."""
    ws = str(Path(spec["cwd"]))
    files: dict[str, bytes] = {}
    mapping: dict[str, str] = {ws: f"{PLACEHOLDER}/ws"}

    def ship_file(path: str) -> str:
        if path in mapping:
            return mapping[path]
        name = f"f{len(files)}-{Path(path).name}"
        files[name] = Path(path).read_bytes()
        mapping[path] = f"{PLACEHOLDER}/files/{name}"
        return mapping[path]

    def remap(value: str) -> str:
        for client_path, remote in mapping.items():
            if value == client_path or value.startswith(client_path + os.sep):
                return remote + value[len(client_path) :]
        return value

    argv = []
    for a in spec["argv"]:
        if (
            os.path.isabs(a)
            and os.path.isfile(a)
            and not remap(a).startswith(PLACEHOLDER)
            and not os.access(a, os.X_OK)
        ):
            a = ship_file(a)  # a prompt or instructions file named on the command line
        argv.append(remap(a))
    out = dict(spec)
    out["argv"] = argv
    if spec.get("stdin_path"):
        out["stdin_path"] = ship_file(spec["stdin_path"])
    env = {k: remap(v) for k, v in spec["env"].items()}
    if "RALPHNB_RUN_DIR" in env:
        env["RALPHNB_RUN_DIR"] = f"{PLACEHOLDER}/run"
    out.update(env=env, cwd=f"{PLACEHOLDER}/ws", log_path=f"{PLACEHOLDER}/logs/agent.log")
    out["ship"] = {"workspace": pack_dir(ws), "files": files}
    return out


def resolve(spec: dict[str, Any], base: Path) -> dict[str, Any]:
    """On the worker: unpack the shipped files under `base` and resolve the placeholder."""
    ship = spec["ship"]
    unpack_dir(ship["workspace"], base / "ws")
    (base / "files").mkdir(parents=True, exist_ok=True)
    (base / "run").mkdir(exist_ok=True)
    for name, data in ship["files"].items():
        (base / "files" / name).write_bytes(data)

    def fix(v: Any) -> Any:
        return v.replace(PLACEHOLDER, str(base)) if isinstance(v, str) else v

    out = {k: fix(v) for k, v in spec.items() if k != "ship"}
    out["argv"] = [fix(a) for a in spec["argv"]]
    out["env"] = {k: fix(v) for k, v in spec["env"].items()}
    return out
