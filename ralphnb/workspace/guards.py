"""What never lands in the user's checkout from a task's branch, decided before any merge.

Owns: `drop_kept_out` (a child of the branch's tip in which `.ralph/` and the queue files are as at
the merge base, and the list of paths so dropped), `link_escapes` (pure: does a symlink lead
outside the tree or into `.git`), and `needs_filter` (which paths need a filter driver
configured for the repository to be checked out, which ralphnb never runs).
Never: moves a ref or touches a working tree; runs a driver (attributes are only read).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .git import git_env, run_git
from .sealed import Sealed


def link_escapes(path: str, target: str) -> bool:
    """Whether a symlink at `path` (relative to the tree's top) pointing at `target` leads
    outside the tree or into a `.git` directory. Pure."""
    if not target or target.startswith("/") or "\0" in target:
        return True
    stack: list[str] = []
    for part in [*path.split("/")[:-1], *target.split("/")]:
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                return True
            stack.pop()
        elif part == ".git":
            return True
        else:
            stack.append(part)
    return False


def kept_out(path: str, keep_out: Iterable[str]) -> bool:
    """Whether `path` is one of `keep_out` or under one of them (literal paths). Pure."""
    return any(path == k or path.startswith(k.rstrip("/") + "/") for k in keep_out)


def drop_kept_out(
    s: Sealed,
    tip: str,
    changes: list[tuple[str, str]],
    keep_out: Iterable[str],
    ident: dict[str, str],
) -> tuple[str, list[str], list[tuple[str, str]]]:
    """Undo the `keep_out` part of `changes` (raw `diff-tree -r` pairs from the merge base to
    `tip`): -> (`tip` or a child of it with those paths as at the merge base, the paths so
    dropped, the changes that remain)."""
    keep = tuple(keep_out)
    gone = [(raw, p) for raw, p in changes if kept_out(p, keep)]
    if not gone:
        return tip, [], changes
    back: dict[str, tuple[str, str] | None] = {}
    for raw, p in gone:  # raw fields: src mode, dst mode, src id, dst id, status
        f = raw[1:].split()
        back[p] = None if f[0] == "000000" else (f[0], f[2])
    tree = s.tree_with(tip, back)
    msg = "ralphnb: keep " + ", ".join(sorted(set(keep))) + " out of the merge"
    rest = [(raw, p) for raw, p in changes if not kept_out(p, keep)]
    return s.commit(tree, [tip], msg, ident), sorted(back), rest


def needs_filter(repo: Path, s: Sealed, commit: str, paths: list[str]) -> dict[str, str]:
    """Those of `paths` whose `filter` attribute (in `commit`'s tree, the repository's
    info/attributes, the user's attributes file) names a configured filter driver -> driver."""
    r = run_git(
        ["config", "-z", "--get-regexp", r"^filter\..*\.(clean|smudge|process)$"], repo, check=False
    )
    drivers = set()
    for item in r.stdout.split("\0"):
        key, _, value = item.partition("\n")
        if key and value.strip():
            drivers.add(key[len("filter.") :].rsplit(".", 1)[0])
    if not drivers or not paths:
        return {}
    attr_index = s.scratch_index.with_name("attr-index")
    s.git(["read-tree", commit], index=attr_index)  # sealed, no -u: nothing checked out
    env = {**git_env(), "GIT_INDEX_FILE": str(attr_index)}
    out = run_git(
        ["check-attr", "--cached", "-z", "--stdin", "filter"],
        repo,
        env=env,
        input="".join(p + "\0" for p in paths),
        errors="surrogateescape",
    ).stdout.split("\0")
    found = {out[i]: out[i + 2] for i in range(0, len(out) - 2, 3)}
    return {p: d for p, d in found.items() if d in drivers}
