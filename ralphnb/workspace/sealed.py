"""Git with the repository's own configuration set aside: `Sealed`.

Owns: a throwaway git directory of ralphnb's own (a private temp dir holding HEAD, an
allow-listed config and nothing else) through which ralphnb runs every git command that reads
or writes file contents, merges or commits: hash-object, read-tree (checkouts), diff-files,
merge-tree, commit-tree, ... Such a command borrows the repository's object store
(`GIT_OBJECT_DIRECTORY`) and, when it needs them, a working tree and an index (`GIT_WORK_TREE`,
`GIT_INDEX_FILE`), but reads no config, attributes file or hook of the repository, and neither
the user's global nor the system config. So no filter, diff or merge driver, gpg program,
`include`, or anything else configured can run, whoever wrote it: there is no list of bad keys
to keep up to date. Also `index_lock`: git's own lock protocol, for an index ralphnb replaces.

Kept from the repository (`LAYOUT_KEYS`, read from its resolved config): the few keys that
change how files are laid out on disk and name no program (`core.symlinks`, `core.autocrlf`,
sparse checkout, ...), plus its object format and `shallow` file.
Never: writes a ref (refs stay in the real repository, moved with `run_git` there); runs a
program named by any configuration; leaves its directory behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from .git import git_env, run_git

# Keys copied into the sealed config: layout only, none of them names a program (not the
# core.protect* keys: git's defaults keep names that alias `.git` on NTFS/HFS out).
LAYOUT_KEYS: tuple[str, ...] = (
    "core.symlinks",
    "core.filemode",
    "core.ignorecase",
    "core.precomposeunicode",
    "core.autocrlf",
    "core.eol",
    "core.safecrlf",
    "core.checkroundtripencoding",
    "core.sparsecheckout",
    "core.sparsecheckoutcone",
)
_LAYOUT_RE = "^(" + "|".join(re.escape(k) for k in LAYOUT_KEYS) + ")$"
_SCRUB = ("GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT", "GIT_CONFIG", "GIT_ATTR_SOURCE")
ZERO = "0" * 40


@dataclass(frozen=True)
class Layout:
    """What a sealed command needs to know about one checkout (or repository)."""

    objects: Path
    index: Path
    config: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # relative to the git dir
    top: Path | None = None  # the working tree


def layout(path: str | Path) -> Layout:
    """Read (never run) the facts of the checkout at `path` that sealed commands need."""
    out = run_git(
        [
            "rev-parse",
            "--path-format=absolute",
            "--git-path",
            "objects",
            "--git-path",
            "index",
            "--git-path",
            "info/sparse-checkout",
            "--git-path",
            "shallow",
            "--show-object-format",
            "--show-toplevel",  # ralphnb works in checkouts only (bare repos are refused)
        ],
        path,
    ).stdout.splitlines()
    objects, index, sparse, shallow, fmt, top_ = out[:6]
    top = Path(top_)
    r = run_git(["config", "-z", "--get-regexp", _LAYOUT_RE], path, check=False)
    config: dict[str, str] = {}
    for item in r.stdout.split("\0"):
        if item:
            key, _, value = item.partition("\n")
            config[key] = value
    if fmt != "sha1":
        config["extensions.objectformat"] = fmt
    files: dict[str, bytes] = {}
    for rel, src in (("info/sparse-checkout", sparse), ("shallow", shallow)):
        with contextlib.suppress(OSError):
            files[rel] = Path(src).read_bytes()
    return Layout(Path(objects), Path(index), config, files, top)


class Sealed:
    """A git directory of ralphnb's own, borrowing `lay`'s objects; use as a context manager.

    `git(args)` runs in it; `work_tree=True` adds the checkout's working tree and index.
    """

    def __init__(self, lay: Layout, *, work_tree: bool = False) -> None:
        self.layout = lay
        self.work_tree = work_tree
        self.dir: Path | None = None

    def __enter__(self) -> Sealed:
        self.dir = Path(tempfile.mkdtemp(prefix="ralphnb-git-"))
        (self.dir / "refs").mkdir()
        (self.dir / "objects").mkdir()
        (self.dir / "HEAD").write_text("ref: refs/heads/ralphnb-sealed\n")
        conf = dict(self.layout.config)
        conf["core.bare"] = "true"
        if "extensions.objectformat" in conf:
            conf["core.repositoryformatversion"] = "1"
        lines = []
        for key, value in sorted(conf.items()):
            section, _, name = key.rpartition(".")
            quoted = value.replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'[{section}]\n\t{name} = "{quoted}"\n')
        (self.dir / "config").write_text("".join(lines))
        for rel, data in self.layout.files.items():
            dst = self.dir / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(data)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    @property
    def scratch_index(self) -> Path:
        """A private index for building trees, inside the sealed directory."""
        assert self.dir is not None
        return self.dir / "scratch-index"

    def env(
        self, *, index: Path | None = None, extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        assert self.dir is not None, "use Sealed as a context manager"
        env = {k: v for k, v in git_env().items() if k not in _SCRUB}
        env.update(
            GIT_DIR=str(self.dir),
            GIT_OBJECT_DIRECTORY=str(self.layout.objects),
            GIT_CONFIG_GLOBAL=os.devnull,
            GIT_CONFIG_NOSYSTEM="1",
            GIT_ATTR_NOSYSTEM="1",
        )
        if self.work_tree and self.layout.top is not None:
            env["GIT_WORK_TREE"] = str(self.layout.top)
        if index is not None or self.work_tree:
            env["GIT_INDEX_FILE"] = str(index if index is not None else self.layout.index)
        env.update(extra or {})
        return env

    def git(
        self,
        args: Sequence[str],
        *,
        check: bool = True,
        index: Path | None = None,
        input: str | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `git <args>` sealed; `index` replaces the checkout's index for this call."""
        assert self.dir is not None
        cwd = self.layout.top if self.work_tree and self.layout.top else self.dir
        return run_git(
            args,
            cwd,
            check=check,
            env=self.env(index=index, extra=extra_env),
            input=input,
            errors="surrogateescape",
        )

    def out(self, args: Sequence[str], **kw) -> str:
        return self.git(args, **kw).stdout.strip()

    # ------------------------------------------------------------------ building blocks

    def hash_files(self, paths: Sequence[Path]) -> list[str]:
        """Write each file (or symlink, as its target) as a blob, with no filter: -> ids.

        Regular files go to one `hash-object --stdin-paths` call; symlinks and names with a
        newline (which that line-based input cannot carry) one call each.
        """
        ids: dict[int, str] = {}
        batch = [i for i, p in enumerate(paths) if "\n" not in str(p) and not p.is_symlink()]
        if batch:
            text = "".join(f"{paths[i]}\n" for i in batch)
            got = self.out(["hash-object", "-w", "--no-filters", "--stdin-paths"], input=text)
            ids.update(zip(batch, got.split(), strict=True))
        for i, p in enumerate(paths):
            if i in ids:
                continue
            if p.is_symlink():
                ids[i] = self.out(["hash-object", "-w", "--stdin"], input=os.readlink(p))
            else:
                ids[i] = self.out(["hash-object", "-w", "--no-filters", "--", str(p)])
        return [ids[i] for i in range(len(paths))]

    def tree_with(self, base: str | None, entries: Mapping[str, tuple[str, str] | None]) -> str:
        """The tree of `base` (None: empty) with `entries` (path -> (mode, blob) or None to
        delete) applied, built in the scratch index: -> tree id."""
        idx = self.scratch_index
        idx.unlink(missing_ok=True)
        if base is not None:
            self.git(["read-tree", base], index=idx)
        else:
            self.git(["read-tree", "--empty"], index=idx)
        gone = [f"0 {ZERO}\t{p}\0" for p, e in entries.items() if e is None]
        added = [f"{e[0]} {e[1]}\t{p}\0" for p, e in entries.items() if e is not None]
        if gone or added:  # deletions first: a file may become a directory of the same name
            info = "".join(gone + added)
            self.git(["update-index", "-z", "--index-info"], index=idx, input=info)
        return self.out(["write-tree"], index=idx)

    def commit(
        self, tree: str, parents: Sequence[str], message: str, identity: Mapping[str, str]
    ) -> str:
        """A commit of `tree`, never signed: -> commit id."""
        args = ["commit-tree", "--no-gpg-sign", tree]
        for p in parents:
            args += ["-p", p]
        return self.out([*args, "-m", message], extra_env=identity)


_LOCK_MARK = "ralphnb index lock"


def _owner_mark() -> str:
    me = psutil.Process()
    return f"{_LOCK_MARK} pid={me.pid} start={me.create_time()}\n"


def _stale_ralphnb_lock(lock: Path) -> bool:
    """Is `lock` one a ralphnb process took and died holding (killed mid-merge)? Git's own
    locks hold index data, never this mark, so they are never judged."""
    try:
        text = lock.read_bytes()[:200].decode("ascii")
    except (OSError, UnicodeDecodeError):
        return False
    if not text.startswith(_LOCK_MARK):
        return False
    fields = dict(f.split("=", 1) for f in text.split()[3:] if "=" in f)
    try:
        pid, start = int(fields["pid"]), float(fields["start"])
        return abs(psutil.Process(pid).create_time() - start) > 0.01
    except (KeyError, ValueError):
        return False
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


@contextlib.contextmanager
def index_lock(index: Path) -> Iterator[bool]:
    """Hold `<index>.lock` as git does (create-exclusive; removed on exit). Yields False when
    another git process holds it: the caller must then not touch the index. The lock names its
    owner (pid and start time), so one left by a ralphnb process that was killed holding it is
    cleared instead of blocking the checkout for ever."""
    lock = index.with_name(index.name + ".lock")
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            break
        except FileExistsError:
            if not _stale_ralphnb_lock(lock):
                yield False
                return
            with contextlib.suppress(OSError):
                lock.unlink()
    else:
        yield False
        return
    try:
        os.write(fd, _owner_mark().encode())
    finally:
        os.close(fd)
    try:
        yield True
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()


def replace_index(index: Path, new: Path) -> None:
    """Install `new` as `index` atomically (call while holding `index_lock(index)`)."""
    os.replace(new, index)


def parse_z_pairs(text: str) -> Iterator[tuple[str, str]]:
    """Pairs of (header, path) from git's `-z` raw output: `:<modes> <ids> <status>\\0<path>\\0`."""
    items = text.split("\0")
    i = 0
    while i + 1 < len(items):
        head = items[i]
        if not head.startswith(":"):
            i += 1
            continue
        yield head, items[i + 1]
        i += 2
