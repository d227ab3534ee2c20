"""ralph's checks of the links across both task files: the errors it raises and its warnings.

Owns: `check_links` (duplicate ids across the files, `depends_on`, `blocks`, `relates_to`,
`duplicates` naming the task itself or a missing task, dependency, blocking and parent cycles)
and `link_warnings` with its `ValidationWarning`s (carried by `Validation`, what
`Queue.validate()` returns) (a dependency on a rejected task, a chain
deeper than queue.max_dependency_depth, a blocked dependency chain, a duplicate of a finished
task, a task that is its own parent, a missing parent). Rules follow ralph's
crates/ralph/src/queue/validation/{queue_files,dependency_graph,relationships,parent}.rs.

Invariants: pure functions on task lists that passed `validation.check_doc`; links are compared
trimmed and blank entries are ignored, as ralph does; graphs are walked iteratively (no
recursion limit on long chains).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .rules import TERMINAL, link
from .validation import task_error


@dataclass(frozen=True)
class ValidationWarning:
    """A problem ralph reports but does not refuse (its `ValidationWarning`)."""

    task_id: str
    message: str
    path: Path | None = None

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{where}task {self.task_id}: {self.message}"


class Validation(int):
    """What `Queue.validate()` returns: the number of tasks in both files -- an `int`, as it
    always was -- carrying ralph's non-blocking `warnings` (a tuple of `ValidationWarning`).

    `warnings` may be given as a list, or as a function that computes them: then they are
    computed the first time `.warnings` is read (validation that only wants the errors does not
    pay for the link warnings), once."""

    def __new__(
        cls,
        tasks: int,
        warnings: Sequence[ValidationWarning] | Callable[[], Sequence[ValidationWarning]] = (),
    ) -> Validation:
        obj = super().__new__(cls, tasks)
        if callable(warnings):
            obj._compute = warnings
            obj._warnings = None
        else:
            obj._compute = None
            obj._warnings = tuple(warnings)
        return obj

    @property
    def warnings(self) -> tuple[ValidationWarning, ...]:
        if self._warnings is None:
            compute, self._compute = self._compute, None
            self._warnings = tuple(compute() if compute is not None else ())
        return self._warnings

    @property
    def tasks(self) -> int:
        return int(self)

    __str__ = int.__repr__

    def __repr__(self) -> str:
        return f"Validation(tasks={int(self)}, warnings={len(self.warnings)})"


class _Catalog:
    """Both files' tasks: in order, and by id (a later task wins, as in ralph's map)."""

    def __init__(self, open_tasks: list[dict], done_tasks: list[dict], qpath, dpath) -> None:
        self.tasks = [*open_tasks, *done_tasks]
        self.active = open_tasks
        self.by_id = {t["id"]: t for t in self.tasks}
        self.paths = (qpath, dpath)

    @functools.cached_property
    def _open_ids(self) -> set[str]:
        return {t["id"] for t in self.active}

    def file(self, tid: str) -> Path | None:
        """The file of a task (the queue's when its id is in both): for messages only."""
        return self.paths[0] if tid in self._open_ids else self.paths[1]


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One cycle of a directed graph as a path (`a -> b -> a`), or None (iterative DFS)."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = finished
    for root in graph:
        if state.get(root):
            continue
        stack = [(root, iter(graph.get(root, ())))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                path = [n for n, _ in stack]
                return path[path.index(nxt) :] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(graph.get(nxt, ()))))
    return None


def _clean(value: str | list[str]) -> list[str]:
    """A link field (a list, or `parent_id`/`duplicates`) as ralph reads it: trimmed, blank
    entries dropped."""
    return [x for x in map(link, [value] if type(value) is str else value) if x]


def check_links(
    open_tasks: list[dict], done_tasks: list[dict], qpath: Path | None, dpath: Path | None
) -> None:
    """ralph's cross-file errors, in its order: duplicate ids across the files (rejected tasks
    excepted); `depends_on` naming itself or a missing task, and dependency cycles; per task
    `blocks`, `relates_to` and `duplicates` naming itself or a missing task, and blocking
    cycles; a `parent_id` cycle of two or more tasks (one task as its own parent only warns)."""
    cat = _Catalog(open_tasks, done_tasks, qpath, dpath)
    if len(cat.by_id) < len(cat.tasks):  # some id is used twice: is it across the files?
        active = {t["id"] for t in open_tasks if t.get("status") != "rejected"}
        for t in done_tasks:
            if t.get("status") != "rejected" and t["id"] in active:
                raise task_error(dpath, t["id"], "id", f"duplicate id (also in {qpath})")
    deps: dict[str, list[str]] = {}
    for t in cat.tasks:
        if t.get("depends_on"):
            for other in _clean(t["depends_on"]):
                _link_target(cat, t, "depends_on", other, "depends on")
                deps.setdefault(t["id"], []).append(other)
    _refuse_cycle(cat, deps, "depends_on", "dependency cycle")
    blocks: dict[str, list[str]] = {}
    parents: dict[str, list[str]] = {}
    for t in cat.tasks:  # per task, as ralph: blocks, relates_to, duplicates
        if t.get("blocks"):
            for other in _clean(t["blocks"]):
                _link_target(cat, t, "blocks", other, "blocks")
                blocks.setdefault(t["id"], []).append(other)
        if t.get("relates_to"):
            for other in _clean(t["relates_to"]):
                _link_target(cat, t, "relates_to", other, "relates to")
        if t.get("duplicates") is not None:
            dup = link(t["duplicates"])
            if not dup:
                raise task_error(cat.file(t["id"]), t["id"], "duplicates", "is blank")
            _link_target(cat, t, "duplicates", dup, "duplicates")
        if t.get("parent_id"):
            parent = link(t["parent_id"])
            if parent and parent != t["id"] and parent in cat.by_id:
                parents[t["id"]] = [parent]
    _refuse_cycle(cat, blocks, "blocks", "blocking cycle")
    _refuse_cycle(cat, parents, "parent_id", "parent cycle")


def _refuse_cycle(cat: _Catalog, graph: dict[str, list[str]], key: str, kind: str) -> None:
    cycle = _find_cycle(graph)
    if cycle:
        raise task_error(cat.file(cycle[0]), cycle[0], key, f"{kind}: " + " -> ".join(cycle))


def _link_target(cat: _Catalog, t: dict, key: str, other: str, what: str) -> None:
    tid = t["id"]
    if other == tid:
        raise task_error(cat.file(tid), tid, key, f"task {tid} {what} itself")
    if other not in cat.by_id:
        raise task_error(
            cat.file(tid), tid, key, f"{what} {other}, which is in neither queue nor done file"
        )


def link_warnings(
    open_tasks: list[dict],
    done_tasks: list[dict],
    qpath: Path | None,
    dpath: Path | None,
    *,
    max_dependency_depth: int = 10,
) -> list[ValidationWarning]:
    """ralph's warnings on files that passed `check_links`, in ralph's order: a dependency on
    a rejected task; an open task's dependency chain deeper than `max_dependency_depth`
    (queue.max_dependency_depth); an open task whose every dependency path ends at an unfinished
    or rejected task; a duplicate of a done/rejected task; a task that is its own parent; a
    parent that does not exist. (One function, longer than most, so that ralph's order of the
    warnings reads from top to bottom.)"""
    cat = _Catalog(open_tasks, done_tasks, qpath, dpath)
    out: list[ValidationWarning] = []

    def warn(tid: str, message: str) -> None:
        out.append(ValidationWarning(tid, message, cat.file(tid)))

    graph: dict[str, list[str]] = {}
    dups: list[tuple[str, str]] = []
    parents: list[tuple[str, str]] = []
    for t in cat.tasks:  # one pass collects every link the warnings look at
        tid, deps, dup, parent = (
            t["id"],
            t.get("depends_on"),
            t.get("duplicates"),
            t.get("parent_id"),
        )
        if deps:
            for dep in _clean(deps):
                if cat.by_id[dep].get("status") == "rejected":
                    warn(tid, f"depends on rejected task {dep}; this will never be satisfied")
                graph.setdefault(tid, []).append(dep)
        if dup and link(dup):
            dups.append((tid, link(dup)))
        if parent and link(parent):
            parents.append((tid, link(parent)))
    depth, blocked = _chains(graph, cat.by_id)
    for t in cat.active:
        d = depth.get(t["id"], 0)
        if d > max_dependency_depth:
            warn(
                t["id"],
                f"has a dependency chain {d} deep, more than queue.max_dependency_depth "
                f"({max_dependency_depth})",
            )
    for t in cat.active:
        deps = graph.get(t["id"])
        if deps and blocked[t["id"]]:
            stuck = ", ".join(d for d in deps if blocked[d])
            warn(
                t["id"],
                "is blocked: every dependency path ends at an unfinished or rejected task "
                f"({stuck})",
            )
    for tid, dup in dups:
        status = cat.by_id[dup].get("status")
        if status in TERMINAL:
            warn(tid, f"duplicates {dup}, which is already {status}")
    for tid, parent in parents:
        if parent == tid:
            warn(tid, "is its own parent; remove parent_id or name another task")
        elif parent not in cat.by_id:
            warn(tid, f"has parent {parent}, which is in neither queue nor done file")
    return out


def _post_order(graph: dict[str, list[str]]) -> list[str]:
    """Every node reachable in `graph` (acyclic), each after all its successors."""
    order: list[str] = []
    seen: set[str] = set()
    for root in graph:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(graph.get(root, ())))]
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                order.append(node)
                stack.pop()
            elif nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, iter(graph.get(nxt, ()))))
    return order


def _chains(
    graph: dict[str, list[str]], by_id: dict[str, dict]
) -> tuple[dict[str, int], dict[str, bool]]:
    """For every task in the dependency graph: the longest chain below it (0 without
    dependencies), and ralph's "blocked" (a task without dependencies is blocked unless done;
    one with dependencies is blocked when all of them are)."""
    depth: dict[str, int] = {}
    blocked: dict[str, bool] = {}
    for node in _post_order(graph):
        deps = graph.get(node)
        if deps:
            depth[node] = 1 + max(depth[d] for d in deps)
            blocked[node] = all(blocked[d] for d in deps)
        else:
            depth[node] = 0
            blocked[node] = by_id[node].get("status") != "done"
    return depth, blocked
