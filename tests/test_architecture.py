"""The house rules, checked on the source: imports run one way, no circles, small rooms.

Ranks (an import may only go to the same rank or below): cli, demo, the package face ->
view -> experiments -> loop -> workers, workspace, runners, queue -> errors, _time, _paths. The
loop's one lazy hook into the view (its notebook display) is the documented exception.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "ralphnb"
RANK = {"cli": 6, "demo": 6, "ralphnb": 6, "__main__": 6, "view": 5, "experiments": 4,
        "loop": 3, "workers": 2, "workspace": 2, "runners": 2, "queue": 2, "testing": 2,
        "errors": 1, "_time": 1, "_paths": 1}  # fmt: skip
HOOK = ("ralphnb.loop.viewhook", "ralphnb.view.widgets")  # a loop's display: the one upward import


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _imports(name: str, path: Path) -> set[str]:
    """Every ralphnb module `name` imports: top level, in functions, under TYPE_CHECKING."""
    mods = _modules()
    is_pkg = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in mods else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.startswith("ralphnb")} - {name}


def _group(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "ralphnb"


def test_imports_run_one_way_down():
    wrong = []
    for name, path in _modules().items():
        for target in _imports(name, path):
            if (name, target) == HOOK or target == "ralphnb" and _group(name) == "demo":
                continue
            if RANK[_group(target)] > RANK[_group(name)]:
                wrong.append(f"{name} -> {target}")
    assert wrong == []


def test_workers_never_touch_the_queue_files():
    for name, path in _modules().items():
        if name.startswith("ralphnb.workers"):
            assert not [t for t in _imports(name, path) if t.startswith("ralphnb.queue")], name


def test_no_import_circles():
    graph = {name: _imports(name, path) for name, path in _modules().items()}
    graph[HOOK[0]].discard(HOOK[1])
    cycles = []

    def visit(node: str, stack: list[str], done: set[str]) -> None:
        for nxt in graph.get(node, ()):
            if nxt in stack:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in done:
                done.add(nxt)
                visit(nxt, [*stack, nxt], done)

    for start in graph:
        visit(start, [start], {start})
    # a package's __init__ re-exporting its modules is not a circle of dependencies
    real = [c for c in cycles if not any(_modules()[m].name == "__init__.py" for m in c[:-1])]
    assert real == []


def test_every_room_is_small_enough_to_read_in_one_sitting():
    big = {n: len(p.read_text().splitlines()) for n, p in _modules().items()}
    assert {n: lines for n, lines in big.items() if lines > 500} == {}
