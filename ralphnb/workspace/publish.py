"""Publishing a finished task's work as ralph's `git_publish_mode` says: off, commit, or push.

Owns: the three modes (`PUBLISH_MODES`; `commit` is ralphnb's default, the merge into the target
branch), `keep_on_branch` (mode `off`: the work is committed on the task branch `ralph/<ID>`
and nothing is merged), and `push_target` (mode `commit_and_push`, after the merge: push the
target branch to its upstream; a push rejected because the remote moved is followed by a fetch,
a merge of the remote's branch into the target and another push, waiting ralph's backoff
(`parallel.push_backoff_ms`, up to `parallel.max_push_attempts` pushes) between tries). The
pure parts -- the wait before a retry, what a rejection means -- are functions of their own.
Never: pushes unless a caller asks (the loop only does for `commit_and_push`), forces a push,
rewrites the target's history (the remote's work is merged, never rebased away), or raises for
a refused push (the `PushResult` says what happened; the work stays on the target branch).
Network commands go through `git.run_git(..., network=True)`: hooks stay off, and the user's
own transports and credential helper are allowed, as their own `git push` would use them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .git import GitError, run_git
from .merge import MergeResult, commit_workspace, identity_env, merge_branch, rev
from .workspaces import BRANCH_PREFIX, Workspace, Workspaces

PUBLISH_MODES: tuple[str, ...] = ("off", "commit", "commit_and_push")
DEFAULT_MODE = "commit"  # what ralphnb did before the mode existed: merge, never push
DEFAULT_ATTEMPTS = 50  # ralph's parallel.max_push_attempts
DEFAULT_BACKOFF_MS: tuple[int, ...] = (500, 2000, 5000, 10000)  # ralph's push_backoff_ms


@dataclass(frozen=True)
class PushPolicy:
    """How often to push (`attempts`, at least 1) and how long to wait before each retry
    (`backoff_ms[i]` before retry i+1; the last value repeats)."""

    attempts: int = DEFAULT_ATTEMPTS
    backoff_ms: tuple[int, ...] = DEFAULT_BACKOFF_MS


@dataclass
class PushResult:
    """`pushed`, `failed` (message says why; nothing more will be tried) or `stopped` (the
    caller asked to stop between tries). `attempts`: pushes tried; `remote`/`branch`: where."""

    status: str
    message: str
    attempts: int = 0
    remote: str | None = None
    branch: str | None = None


def backoff_s(policy: PushPolicy, retry: int) -> float:
    """Seconds to wait before retry number `retry` (0 = the first retry). Pure."""
    if not policy.backoff_ms:
        return 0.0
    return policy.backoff_ms[min(retry, len(policy.backoff_ms) - 1)] / 1000.0


def remote_moved(stderr: str) -> bool:
    """Was a push rejected because the remote has commits the target lacks (so fetching and
    merging them may let the next push through)? A hook's or the server's refusal
    (`[remote rejected]`, `pre-receive hook declined`) is not: retrying cannot help. Pure."""
    low = stderr.lower()
    if "remote rejected" in low or "hook declined" in low:
        return False
    return any(
        s in low for s in ("non-fast-forward", "fetch first", "[rejected]", "updates were rejected")
    )


def upstream_of(repo: str | Path, branch: str) -> tuple[str, str] | None:
    """(remote, branch on the remote) the local `branch` tracks, or None when it tracks none."""
    remote = run_git(["config", "--get", f"branch.{branch}.remote"], repo, check=False)
    merge = run_git(["config", "--get", f"branch.{branch}.merge"], repo, check=False)
    name, ref = remote.stdout.strip(), merge.stdout.strip()
    if remote.returncode != 0 or merge.returncode != 0 or not name or name == ".":
        return None
    return name, ref.removeprefix("refs/heads/")


def keep_on_branch(workspaces: Workspaces, ws: Workspace | None, *, task_id: str, title: str):
    """Mode `off`: commit what the agent left in the workspace onto its branch and leave it
    there (a clone's branch is fetched into the repository first); nothing is merged. The
    branch is handed to the user (`Workspaces.keep_branch`): no later run deletes it.
    A MergeResult: `kept` with a message saying where the work is, or `blocked`."""
    branch = ws.branch if ws is not None and ws.branch else BRANCH_PREFIX + task_id
    try:
        if ws is not None:  # None: recovered after its workspace was removed
            commit_workspace(ws.path, f"{task_id}: {title}", env=identity_env(workspaces.repo))
            if ws.kind == "clone":
                workspaces.sync_branch(ws)
    except (GitError, OSError) as exc:
        return MergeResult("blocked", message=f"could not commit the work in {ws.path}: {exc}")
    tip = rev(workspaces.repo, f"refs/heads/{branch}")
    if tip is None:
        return MergeResult("noop", message=f"nothing to keep: branch {branch} is gone")
    workspaces.keep_branch(task_id)
    return MergeResult(
        "kept",
        commit=tip,
        message=f"git_publish_mode off: the work is on branch {branch}, not merged "
        f"(merge it yourself: git merge {branch})",
    )


def push_target(
    repo: str | Path,
    target: str,
    *,
    policy: PushPolicy = PushPolicy(),
    should_stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
) -> PushResult:
    """Push `target` to its upstream (see the module docstring). Never raises for git."""
    repo = Path(repo)
    up = upstream_of(repo, target)
    if up is None:
        return PushResult(
            "failed",
            f"{target} has no upstream to push to; set one (git branch -u origin/{target}) "
            "or use git_publish_mode commit",
        )
    remote, branch = up
    where = f"{remote}/{branch}"
    last = ""
    for attempt in range(1, max(1, policy.attempts) + 1):
        r = run_git(
            ["push", "--porcelain", remote, f"{target}:{branch}"], repo, check=False, network=True
        )
        if r.returncode == 0:
            return PushResult("pushed", f"pushed {target} to {where}", attempt, remote, branch)
        refs = [ln for ln in r.stdout.splitlines() if ln.startswith("!")]  # --porcelain
        last = _first_lines("\n".join([*refs, r.stderr]))
        if not remote_moved(r.stderr + r.stdout):
            return PushResult(
                "failed", f"push of {target} to {where} refused: {last}", attempt, remote, branch
            )
        if attempt == policy.attempts:
            break
        if _wait(backoff_s(policy, attempt - 1), should_stop, sleep):
            return PushResult(
                "stopped",
                f"stopped before pushing {target} to {where} again",
                attempt,
                remote,
                branch,
            )
        merged = _merge_remote(repo, target, remote, branch)
        if merged is not None:
            return PushResult("failed", merged, attempt, remote, branch)
    return PushResult(
        "failed",
        f"push of {target} to {where} still rejected after {policy.attempts} tries: {last}",
        policy.attempts,
        remote,
        branch,
    )


def push_report(res: PushResult) -> dict[str, str]:
    """The event data a push's outcome goes on a row with: `published` says what happened;
    a failure is the row's error and says that the work stays on the target branch. Pure."""
    if res.status == "pushed":
        return {"published": "pushed", "message": res.message}
    return {
        "published": "push_" + res.status,
        "error": f"{res.message}; the work stays merged on the target branch, unpushed",
    }


def _merge_remote(repo: Path, target: str, remote: str, branch: str) -> str | None:
    """Fetch the remote's branch and merge it into `target`; None when done, else why not."""
    tracking = f"refs/remotes/{remote}/{branch}"
    f = run_git(
        ["fetch", "-q", "--no-tags", remote, f"+refs/heads/{branch}:{tracking}"],
        repo,
        check=False,
        network=True,
    )
    if f.returncode != 0:
        return f"could not fetch {remote}/{branch}: {_first_lines(f.stderr)}"
    res = merge_branch(
        repo, tracking, target, message=f"Merge {remote}/{branch} into {target}", keep_out=()
    )
    if res.status in ("integrated", "noop"):
        return None
    what = f"conflict in {', '.join(res.paths)}" if res.paths else res.message
    return f"{remote}/{branch} moved and could not be merged into {target} ({what}); not pushed"


def _wait(seconds: float, should_stop: Callable[[], bool], sleep: Callable[[float], None]) -> bool:
    """Sleep `seconds` in short slices; True as soon as `should_stop()` says so."""
    end = time.monotonic() + seconds
    while True:
        if should_stop():
            return True
        left = end - time.monotonic()
        if left <= 0:
            return False
        sleep(min(left, 0.1))


def _first_lines(text: str, n: int = 3) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines[:n]) or "(git said nothing)"
