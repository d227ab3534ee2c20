"""Programs an agent plants in git configuration never run during ralphnb's own git commands.

Each test plays an agent that writes its repository's config (the shared `.git/config` from a
linked worktree; the clone's own config in clone mode) and attributes, then runs the real
workspace flow: create a workspace, commit the agent's files, integrate into the checked-out
target branch (the checkout is updated) and into a branch that is not checked out (the ref is
moved), commit the queue files, create the next workspace. The planted program leaves a marker
file and starts a `setsid` sleeper; neither may ever appear. Before the fix, 11 of the 20 cases
ran a planted program and left its daemon running (filters during `git add` and checkouts,
gpg.program during `git commit`, the merge driver during `git merge-tree`, and each of these
through `include`/`includeIf`), and most clone-mode cases failed earlier on their own; after it,
0 of 20.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import psutil
import pytest

from ralphnb.workspace.merge import commit_bookkeeping, integrate
from ralphnb.workspace.workspaces import Workspaces

pytestmark = pytest.mark.timeout(120)

SHARED = "".join(f"line {i}\n" for i in range(1, 11))


@pytest.fixture
def tag():
    """A unique word in every planted daemon's command line; no such process may exist."""
    word = f"ralphnb-planted-{uuid.uuid4().hex[:10]}"
    yield word
    left = [
        p for p in psutil.process_iter(["cmdline"]) if word in " ".join(p.info["cmdline"] or [])
    ]
    for p in left:
        p.kill()
    assert not left, f"planted daemons outlived the flow: {[p.pid for p in left]}"


def sh(cwd: Path, *args: str, env: dict | None = None) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout


def marker_program(tmp_path: Path, tag: str) -> Path:
    """A program that records that it ran, leaves a daemon behind, and copies stdin to stdout."""
    prog = tmp_path / "bin" / "planted"
    prog.parent.mkdir(exist_ok=True)
    marks = tmp_path / "markers"
    marks.mkdir(exist_ok=True)
    prog.write_text(
        "#!/bin/sh\n"
        f'echo "$0 $*" >> "{marks}/ran.$$"\n'
        f"setsid sh -c 'sleep 600' {tag} </dev/null >/dev/null 2>&1 &\n"
        "exec cat\n"
    )
    prog.chmod(0o755)
    return prog


def ran(tmp_path: Path) -> list[str]:
    marks = tmp_path / "markers"
    return sorted(p.read_text() for p in marks.iterdir()) if marks.is_dir() else []


def plants(kind: str, prog: Path, tmp_path: Path) -> list[tuple[str, str]]:
    """The config keys an agent writes for each kind of attack."""
    p = str(prog)
    plant_hooks(tmp_path / "hooks", prog)
    inc = tmp_path / "agent.inc"
    inc.write_text(
        f'[filter "x"]\n\tclean = {p}\n\tsmudge = {p}\n\trequired = true\n'
        f"[commit]\n\tgpgsign = true\n[gpg]\n\tprogram = {p}\n"
        f'[merge "x"]\n\tdriver = {p} %O %A %B\n[diff]\n\texternal = {p}\n'
    )
    return {
        "filter": [("filter.x.clean", p), ("filter.x.smudge", p), ("filter.x.required", "true")],
        "filter-process": [("filter.x.process", p), ("filter.x.required", "true")],
        "gpg": [
            ("commit.gpgsign", "true"),
            ("tag.gpgsign", "true"),
            ("gpg.program", p),
            ("gpg.ssh.program", p),
            ("merge.verifySignatures", "true"),
        ],
        "merge-driver": [("merge.x.driver", f"{p} %O %A %B"), ("merge.default", "x")],
        "diff": [("diff.external", p), ("diff.x.textconv", p), ("diff.x.command", p)],
        "include": [("include.path", str(inc))],
        "include-if": [("includeIf.gitdir:/.path", str(inc))],
        "transport": [
            ("core.sshCommand", p),
            ("credential.helper", p),
            ("core.askPass", p),
            ("protocol.ext.allow", "always"),
            ("protocol.allow", "always"),
            ("uploadpack.packObjectsHook", p),
            ("core.alternateRefsCommand", p),
        ],
        "editor": [("core.editor", p), ("sequence.editor", p), ("core.pager", p)],
        "index": [("core.fsmonitor", p), ("core.hooksPath", str(tmp_path / "hooks"))],
    }[kind]


def make_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / ".ralph").mkdir(parents=True)
    (repo / "shared.txt").write_text(SHARED)
    (repo / ".ralph" / "queue.jsonc").write_text('{"version": 1, "tasks": []}\n')
    sh(repo, "git", "init", "-q", "-b", "main")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "init")
    sh(repo, "git", "branch", "release")
    return repo


def advance(repo: Path, branch: str, rel: str, text: str) -> None:
    """Commit `rel` = `text` on `branch` with plumbing only: never runs a planted program."""
    idx = repo.parent / "advance.index"
    env = {**os.environ, "GIT_INDEX_FILE": str(idx)}
    g = ["git", "-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null"]
    g += ["-c", "core.fsmonitor=false"]
    old = sh(repo, *g, "rev-parse", branch).strip()
    sh(repo, *g, "read-tree", old, env=env)
    blob = subprocess.run(
        [*g, "hash-object", "-w", "--no-filters", "--stdin"],
        cwd=repo,
        input=text,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    sh(repo, *g, "update-index", "--add", "--cacheinfo", f"100644,{blob},{rel}", env=env)
    tree = sh(repo, *g, "write-tree", env=env).strip()
    new = sh(repo, *g, "commit-tree", "--no-gpg-sign", tree, "-p", old, "-m", "user").strip()
    sh(repo, *g, "update-ref", f"refs/heads/{branch}", new, old)
    idx.unlink()


def plant_hooks(hooks: Path, prog: Path) -> None:
    hooks.mkdir(exist_ok=True)
    for name in HOOKS:
        (hooks / name).unlink(missing_ok=True)
        (hooks / name).symlink_to(prog)


def agent_works(ws: Path, keys: list[tuple[str, str]], n: int, prog: Path) -> None:
    """What a misbehaving agent does in its workspace: plant config and attributes, edit."""
    for k, v in keys:
        sh(ws, "git", "config", "--add", k, v)
    info = Path(sh(ws, "git", "rev-parse", "--path-format=absolute", "--git-common-dir").strip())
    (info / "info").mkdir(exist_ok=True)
    (info / "info" / "attributes").write_text("* filter=x diff=x merge=x\n")
    (ws / ".gitattributes").write_text("* filter=x diff=x merge=x\n")
    plant_hooks(info / "hooks", prog)
    lines = (ws / "shared.txt").read_text().splitlines(keepends=True)
    lines[7] = f"line 8 by agent {n}\n"
    (ws / "shared.txt").write_text("".join(lines))
    (ws / f"agent{n}.txt").write_text(f"agent {n}\n")


HOOKS = (
    "pre-commit",
    "commit-msg",
    "post-commit",
    "post-checkout",
    "post-merge",
    "post-rewrite",
    "reference-transaction",
    "post-index-change",
    "pre-auto-gc",
    "fsmonitor-watchman",
)
KINDS = [
    "filter",
    "filter-process",
    "gpg",
    "merge-driver",
    "diff",
    "include",
    "include-if",
    "transport",
    "editor",
    "index",
]


@pytest.mark.parametrize("mode", ["worktree", "clone"])
@pytest.mark.parametrize(
    "kind",
    [k if k in ("filter", "gpg") else pytest.param(k, marks=pytest.mark.slow) for k in KINDS],
)
def test_planted_programs_never_run_in_the_workspace_flow(tmp_path, tag, kind, mode):
    prog = marker_program(tmp_path, tag)
    repo = make_repo(tmp_path)
    root = tmp_path / "workspaces"
    wss = Workspaces(repo, mode=mode, root=root)
    ws = wss.create("RQ-0001")
    # the user commits line 2 meanwhile: integration is a real three-way merge
    lines = SHARED.splitlines(keepends=True)
    lines[1] = "line 2 by user\n"
    (repo / "shared.txt").write_text("".join(lines))
    sh(repo, "git", "commit", "-q", "-am", "user")
    keys = plants(kind, prog, tmp_path)
    agent_works(ws.path, keys, 1, prog)
    sync = (lambda: wss.sync_branch(ws)) if mode == "clone" else None
    res = integrate(
        repo,
        ws.path,
        branch=ws.branch,
        target="main",
        task_id="RQ-0001",
        title="t1",
        before_merge=sync,
    )
    # worktree mode: the filter is configured for the user's repository too, and ralphnb will
    # not run it to check the agent's files out into the user's checkout: it refuses, clearly
    filtered = mode == "worktree" and kind in ("filter", "filter-process", "include", "include-if")
    if filtered:
        assert res.status == "blocked", res.message
        assert "filter" in res.message and "git merge ralph/RQ-0001" in res.message
    else:
        assert res.status == "integrated", res.message
        shared = (repo / "shared.txt").read_text()
        assert "line 2 by user" in shared and "line 8 by agent 1" in shared
        assert (repo / "agent1.txt").read_text() == "agent 1\n"
        assert sh(repo, "git", "rev-parse", "HEAD") == sh(repo, "git", "rev-parse", "main")
    (repo / ".ralph" / "queue.jsonc").write_text('{"version": 1, "tasks": ["changed"]}\n')
    assert commit_bookkeeping(repo, "ralphnb: queue") is not None

    # the next workspace, on a branch that is not checked out: its ref moves by compare-and-swap
    rel = Workspaces(repo, mode=mode, root=root, target_branch="release")
    ws2 = rel.create("RQ-0002")
    advance(repo, "release", "shared.txt", "".join(lines))
    agent_works(ws2.path, keys, 2, prog)
    sync2 = (lambda: rel.sync_branch(ws2)) if mode == "clone" else None
    res2 = integrate(
        repo,
        ws2.path,
        branch=ws2.branch,
        target="release",
        task_id="RQ-0002",
        title="t2",
        before_merge=sync2,
    )
    if filtered:
        assert res2.status == "blocked", res2.message
    else:
        assert res2.status == "integrated", res2.message
        got = sh(repo, "git", "cat-file", "blob", "release:shared.txt")
        assert "line 2 by user" in got and "line 8 by agent 2" in got
    assert ran(tmp_path) == []


def test_control_plain_git_does_run_what_the_agent_planted(tmp_path, tag):
    """The plants are real: the git commands ralphnb used to run do run them."""
    prog = marker_program(tmp_path, tag)
    repo = make_repo(tmp_path)
    ws = Workspaces(repo, mode="worktree", root=tmp_path / "workspaces").create("RQ-0001")
    agent_works(ws.path, plants("filter", prog, tmp_path), 1, prog)
    sh(ws.path, "git", "add", "-A")
    assert ran(tmp_path) != []
    for p in (tmp_path / "markers").iterdir():
        p.unlink()
    for k, v in plants("gpg", prog, tmp_path):
        sh(repo, "git", "config", k, v)
    r = subprocess.run(
        ["git", "commit", "-qm", "x"], cwd=ws.path, capture_output=True, text=True, check=False
    )
    assert r.returncode != 0 and "gpg failed to sign" in r.stderr
    assert ran(tmp_path) != []
    for p in psutil.process_iter(["cmdline"]):
        if tag in " ".join(p.info["cmdline"] or []):
            p.kill()


def test_a_clone_is_fetched_back_over_a_local_path_only(tmp_path, tag):
    """An agent that rewrites where the clone's URL points (ext::, ssh://) in the user's own
    config gets the fetch refused, not its program run; the result says why and waits."""
    prog = marker_program(tmp_path, tag)
    repo = make_repo(tmp_path)
    wss = Workspaces(repo, mode="clone", root=tmp_path / "workspaces")
    ws = wss.create("RQ-0001")
    (ws.path / "agent.txt").write_text("agent\n")
    for k, v in [
        (f"url.ext::{prog} %S.insteadOf", str(ws.path)),
        ("protocol.ext.allow", "always"),
        ("protocol.allow", "always"),
        ("core.sshCommand", str(prog)),
        ("credential.helper", str(prog)),
        ("core.askPass", str(prog)),
    ]:
        sh(repo, "git", "config", "--add", k, v)
    res = integrate(
        repo,
        ws.path,
        branch=ws.branch,
        target="main",
        task_id="RQ-0001",
        title="t",
        before_merge=lambda: wss.sync_branch(ws),
    )
    assert res.status == "blocked" and "fetch" in res.message, res.message
    sh(repo, "git", "config", "--unset-all", f"url.ext::{prog} %S.insteadOf")
    sh(repo, "git", "config", "--add", "url.ssh://evil.invalid/x.insteadOf", str(ws.path))
    res = integrate(
        repo,
        ws.path,
        branch=ws.branch,
        target="main",
        task_id="RQ-0001",
        title="t",
        before_merge=lambda: wss.sync_branch(ws),
    )
    assert res.status == "blocked", res.message
    assert ran(tmp_path) == []
