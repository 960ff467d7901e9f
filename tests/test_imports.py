"""Imports inside the package point one way: no module reaches, even lazily or for annotations only
(`if TYPE_CHECKING:`), one that imports it; and the pure core (docs/architecture.md) runs on itself alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "exporter"


# Data in, data out: no threads, sockets or subprocesses of their own (docs/architecture.md, "Pure core").
PURE_CORE = {
    "framing", "ordering", "patterns", "builtin_patterns", "events", "state", "lifecycle", "inventory", "notify_rules",
    "status", "metrics", "bridge_metrics", "config", "yamlfile", "safefile", "cookies", "redaction",
    "timestamps", "exit_cause", "__init__",
}
# The arrows out of it that docs/architecture.md names and explains.
PURE_CORE_EXCEPTIONS = {("config", "notify_send"), ("config", "capture"), ("inventory", "bridge")}


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(path: Path, runtime_only: bool = False) -> set[str]:
    """The package modules `path` imports, at any depth (`runtime_only`: not those for annotations)."""
    tree = ast.parse(path.read_text(), str(path))
    skipped = {id(n) for block in ast.walk(tree) if runtime_only and _type_checking(block) for n in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node.level != 1 or id(node) in skipped:
            continue
        if node.module:
            found.add(node.module.split(".")[0])
        else:
            found.update(alias.name for alias in node.names)
    return found


def _graph(runtime_only: bool = False) -> dict[str, set[str]]:
    modules = {p.stem: p for p in PACKAGE.glob("*.py")}
    return {
        name: {m for m in _imports(path, runtime_only) if m in modules and m != name and m != "__init__"}
        for name, path in modules.items()
    }


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


def test_the_pure_core_imports_only_the_pure_core() -> None:
    graph = _graph(runtime_only=True)
    assert PURE_CORE <= set(graph), "a pure-core module was renamed: update PURE_CORE and docs/architecture.md"
    upward = sorted((name, target) for name in PURE_CORE for target in graph[name] - PURE_CORE)
    assert [arrow for arrow in upward if arrow not in PURE_CORE_EXCEPTIONS] == []


def test_annotations_alone_do_not_count_as_runtime_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from typing import TYPE_CHECKING\nfrom .state import Snapshot\nif TYPE_CHECKING:\n    from .supervisor import S\n")
    assert _imports(module) == {"state", "supervisor"}
    assert _imports(module, runtime_only=True) == {"state"}
