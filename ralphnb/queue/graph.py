"""The dependency graph of both task files, drawn as ralph's `queue graph` draws it.

Owns: `TaskGraph` (built from the task dicts of queue.jsonc and done.jsonc), ralph's queries on
it (roots, critical paths, runnable and blocked tasks) and its renderings: the text tree (ralph's
default format), one task's upstream or downstream tree, JSON and Graphviz DOT. Rules and formats
follow ralph's crates/ralph/src/queue/graph/{build,algorithms,types}.rs and
crates/ralph/src/cli/queue/graph.rs. In a notebook a `TaskGraph` shows as its text tree
(`_repr_html_` puts it in a `<pre>`; no new dependency).

Never: reads or writes a file. Differences from ralph, on purpose: ralph keeps its nodes in a
hash map, so the order of its roots changes from run to run; here roots and tasks come in file
order (queue, then done), so the drawing is stable. A title is drawn on one line.

Invariants: pure; links are trimmed and blank entries ignored as ralph does; a task id missing
from both files counts as completed (ralph's `is_task_completed`); graphs are walked without
recursion limits (iteratively, or by memoised depth on the acyclic graphs validation allows).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .rules import TERMINAL, link

#: ralph's status markers in the tree (cli/queue/graph.rs `status_to_emoji`).
STATUS_MARK = {"todo": "⏳", "doing": "🔄", "done": "✅", "rejected": "❌", "draft": "📝"}
_LEGEND = "\nLegend:\n  * = on critical path\n  ⏳ = todo, 🔄 = doing, ✅ = done, ❌ = rejected"


def _ids(value: Any) -> list[str]:
    values = [value] if isinstance(value, str) else (value or [])
    return [x for x in (link(v) for v in values if isinstance(v, str)) if x]


@dataclass
class _Node:
    task: dict[str, Any]
    dependencies: list[str]
    blocks: list[str]
    relates_to: list[str]
    duplicates: str | None
    dependents: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.task.get("status", "todo")

    @property
    def title(self) -> str:
        return " ".join(str(self.task.get("title", "")).split())


@dataclass(frozen=True)
class CriticalPath:
    """A longest dependency chain: ids from a root down to a task without dependencies."""

    path: tuple[str, ...]
    blocked: bool  # some task on it is neither done nor rejected

    @property
    def length(self) -> int:
        return len(self.path)


class TaskGraph:
    """Every task of both files with its links; `str()` (and a notebook) shows ralph's tree."""

    def __init__(
        self,
        open_tasks: Sequence[dict[str, Any]],
        done_tasks: Sequence[dict[str, Any]] = (),
        *,
        include_done: bool = False,
    ) -> None:
        self.include_done = include_done
        self.nodes: dict[str, _Node] = {}
        for t in (*open_tasks, *done_tasks):
            tid = link(t["id"])
            dup = _ids(t.get("duplicates"))
            self.nodes[tid] = _Node(
                t,
                _ids(t.get("depends_on")),
                _ids(t.get("blocks")),
                _ids(t.get("relates_to")),
                dup[0] if dup else None,
            )
        for tid, node in self.nodes.items():
            for dep in node.dependencies:
                if dep in self.nodes:
                    self.nodes[dep].dependents.append(tid)
        self._longest: dict[str, tuple[str, ...]] = {}

    # -- ralph's queries -----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.nodes)

    def completed(self, tid: str) -> bool:
        """Done or rejected; an id in neither file counts as completed, as in ralph."""
        node = self.nodes.get(tid)
        return node is None or node.status in TERMINAL

    @property
    def roots(self) -> list[str]:
        """Tasks nothing depends on (the tops of the chains), in file order."""
        return [tid for tid, n in self.nodes.items() if not n.dependents]

    def runnable(self) -> list[str]:
        """`todo` tasks whose dependencies are all completed (ralph's `get_runnable_tasks`)."""
        return [
            tid
            for tid, n in self.nodes.items()
            if n.status == "todo" and all(self.completed(d) for d in n.dependencies)
        ]

    def blocked(self) -> list[str]:
        """`todo`/`doing` tasks with a dependency not completed (ralph's `get_blocked_tasks`)."""
        return [
            tid
            for tid, n in self.nodes.items()
            if n.status in ("todo", "doing") and not all(self.completed(d) for d in n.dependencies)
        ]

    def longest_path(self, tid: str) -> tuple[str, ...]:
        """The longest chain down the dependencies from `tid` (the first one found on a tie)."""
        if tid in self._longest:
            return self._longest[tid]
        stack = [tid]  # post-order without recursion: each node after its dependencies
        while stack:
            cur = stack[-1]
            deps = (
                [d for d in self.nodes[cur].dependencies if d in self.nodes]
                if cur in self.nodes
                else []
            )
            todo = [d for d in deps if d not in self._longest and d not in stack]
            if todo:
                stack.extend(todo)
                continue
            stack.pop()
            best: tuple[str, ...] = ()
            for d in deps:
                sub = self._longest.get(d, (d,))
                if len(sub) > len(best):
                    best = sub
            self._longest[cur] = (cur, *best)
        return self._longest[tid]

    def critical_paths(self) -> list[CriticalPath]:
        """Every longest chain starting at a root (ralph's `find_critical_paths`)."""
        paths = [self.longest_path(r) for r in self.roots]
        if not paths:
            return []
        longest = max(len(p) for p in paths)
        return [
            CriticalPath(p, any(not self.completed(t) for t in p))
            for p in paths
            if len(p) == longest
        ]

    def _critical_ids(self) -> set[str]:
        return {t for cp in self.critical_paths() for t in cp.path}

    def _shown(self, tid: str) -> bool:
        return self.include_done or not self.completed(tid)

    # -- text ----------------------------------------------------------------------------
    def _line(self, tid: str, prefix: str, branch: str, marker: str) -> str:
        n = self.nodes[tid]
        return f"{prefix}{branch}{marker}{tid}: {n.title} [{STATUS_MARK.get(n.status, '?')}]"

    def _upstream(self, root: str, critical: set[str]) -> list[str]:
        """ralph's `render_dependencies_tree` from `root`, iteratively."""
        out: list[str] = []
        stack = [(root, "", True)]
        while stack:
            tid, prefix, last = stack.pop()
            node = self.nodes.get(tid)
            if node is None or (node.status in TERMINAL and not self.include_done):
                continue
            branch = "" if not prefix else ("└─ " if last else "├─ ")
            out.append(self._line(tid, prefix, branch, "* " if tid in critical else "  "))
            deps = [d for d in node.dependencies if self._shown(d)]
            child = prefix + ("   " if last else "│  ")
            stack.extend((d, child, i == len(deps) - 1) for i, d in reversed(list(enumerate(deps))))
        return out

    def _downstream(self, root: str, critical: set[str]) -> list[str]:
        """ralph's `render_dependents_tree` below `root` (what waits on it), iteratively."""
        out: list[str] = []

        def children(tid: str, prefix: str) -> list[tuple[str, str, bool]]:
            deps = [d for d in self.nodes[tid].dependents if self._shown(d)]
            return [(d, prefix, i == len(deps) - 1) for i, d in reversed(list(enumerate(deps)))]

        stack = children(root, "")
        while stack:
            tid, prefix, last = stack.pop()
            marker = "* " if tid in critical else "  "
            out.append(self._line(tid, prefix, "└─ " if last else "├─ ", marker))
            stack += children(tid, prefix + ("   " if last else "│  "))
        return out

    def tree(self) -> str:
        """The whole graph as ralph's default `queue graph` output."""
        if not self.nodes:
            return "No tasks found in queue."
        critical = self.critical_paths()
        ids = {t for cp in critical for t in cp.path}
        lines = [
            "Task Dependency Graph",
            "",
            "Summary:",
            f"  Total tasks: {len(self)}",
            f"  Ready to run: {len(self.runnable())}",
            f"  Blocked: {len(self.blocked())}",
        ]
        if critical:
            lines.append(f"  Critical path length: {critical[0].length}")
        lines += ["", "Dependency Chains:", ""]
        roots = self.roots
        for i, root in enumerate(roots):
            if not self._shown(root):
                continue
            lines += self._upstream(root, ids)
            if i < len(roots) - 1:
                lines.append("")
        return "\n".join(lines) + "\n" + _LEGEND

    def task_tree(self, task_id: str, *, reverse: bool = False) -> str:
        """One task's dependencies (upstream), or with `reverse` what waits on it, as ralph
        draws `queue graph --task ID [--reverse]`."""
        tid = link(task_id)
        if tid not in self.nodes:
            raise KeyError(tid)
        ids = self._critical_ids()
        lines = [f"Dependency tree for {tid}: {self.nodes[tid].title}", ""]
        if reverse:
            lines.append("Tasks blocked by this task (downstream):")
            lines += [self._line(tid, "", "", "* "), *self._downstream(tid, ids)]
        else:
            lines.append("Tasks this task depends on (upstream):")
            lines += self._upstream(tid, ids)
        path = self.longest_path(tid)
        if len(path) > 1:
            lines += ["", f"Critical path from this task: {len(path)} tasks"]
            blocked = any(not self.completed(t) for t in path)
            lines.append(
                "  Status: BLOCKED (incomplete dependencies)" if blocked else "  Status: Unblocked"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """ralph's `queue graph --format json` document."""
        critical = self.critical_paths()
        ids = {t for cp in critical for t in cp.path}
        return {
            "summary": {
                "total_tasks": len(self),
                "runnable_tasks": len(self.runnable()),
                "blocked_tasks": len(self.blocked()),
            },
            "critical_paths": [
                {"path": list(cp.path), "length": cp.length, "blocked": cp.blocked}
                for cp in critical
            ],
            "tasks": [
                {
                    "id": tid,
                    "title": n.task.get("title", ""),
                    "status": n.status,
                    "dependencies": n.dependencies,
                    "dependents": n.dependents,
                    "critical": tid in ids,
                }
                for tid, n in self.nodes.items()
                if self._shown(tid)
            ],
        }

    def dot(self) -> str:
        """Graphviz DOT as ralph's `queue graph --format dot` writes it."""
        ids = self._critical_ids()
        shown = [tid for tid in self.nodes if self._shown(tid)]
        inside = set(shown)
        colors = {"done": "green", "rejected": "gray", "doing": "orange", "draft": "yellow"}
        out = ["digraph dependencies {", "  rankdir=TB;", "  node [shape=box, style=rounded];", ""]
        for tid in shown:
            n = self.nodes[tid]
            crit = tid in ids
            color = colors.get(n.status, "red" if crit else "lightblue")
            style = ", style=filled, fillcolor=red, fontcolor=white" if crit else ""
            title = str(n.task.get("title", "")).replace('"', '\\"').replace("\n", "\\n")
            out.append(f'  "{tid}" [label="{tid}\\n{title}", color={color}{style}];')
        out.append("")
        for tid in shown:
            for dep in self.nodes[tid].dependencies:
                if dep in inside:
                    red = " [color=red, penwidth=2]" if tid in ids and dep in ids else ""
                    out.append(f'  "{tid}" -> "{dep}"{red};')
        for tid in shown:
            for other in self.nodes[tid].blocks:
                if other in inside:
                    out.append(
                        f'  "{tid}" -> "{other}" [style=dashed, color=orange, label="blocks"];'
                    )
        for tid in shown:
            for other in self.nodes[tid].relates_to:
                if other in inside and tid < other:
                    out.append(
                        f'  "{tid}" -> "{other}" [style=dotted, color=blue, label="relates"];'
                    )
        for tid in shown:
            dup = self.nodes[tid].duplicates
            if dup in inside:
                out.append(f'  "{tid}" -> "{dup}" [style=bold, color=red, label="duplicates"];')
        out.append("}")
        return "\n".join(out)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    # -- display -------------------------------------------------------------------------
    def __str__(self) -> str:
        return self.tree()

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(self.tree())}</pre>"
