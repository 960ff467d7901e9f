"""Imports inside the package point one way: no module reaches, even lazily or for annotations only
(`if TYPE_CHECKING:`), one that imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "exporter"


def _imports(path: Path) -> set[str]:
    """The package modules `path` imports, at any depth."""
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node.level != 1:
            continue
        if node.module:
            found.add(node.module.split(".")[0])
        else:
            found.update(alias.name for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {p.stem: p for p in PACKAGE.glob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checker_finds_a_cycle() -> None:
    assert _cycle({"config": {"http"}, "http": {"metrics"}, "metrics": {"config"}}) == ["config", "http", "metrics", "config"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_capture_and_the_server_stay_at_the_bottom() -> None:
    """capture runs inside TDM's interpreter (standard library only); http is a plain server."""
    graph = _graph()
    assert graph["capture"] == set()
    assert graph["http"] <= {"webconfig"}
    assert "daemon" not in set().union(*(targets for name, targets in graph.items() if name not in ("service", "cli")))
