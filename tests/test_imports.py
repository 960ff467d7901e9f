"""Imports inside the package point one way: no module reaches, even lazily or for annotations only
(`if TYPE_CHECKING:`), one that imports it; and the pure core (docs/architecture.md) runs on itself alone.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO, RUNS

PACKAGE = Path(__file__).resolve().parents[1] / "exporter"


# Data in, data out: no threads, sockets or subprocesses of their own (docs/architecture.md, "Pure core").
PURE_CORE = {
    "framing", "ordering", "patterns", "builtin_patterns", "events", "state", "lifecycle", "inventory", "notify_rules",
    "status", "metrics", "bridge_metrics", "config", "yamlfile", "safefile", "cookies", "redaction",
    "timestamps", "exit_cause", "errors", "environment", "__init__",
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


# What only the daemon (or another command) needs: `replay` starts without them (issue 15: start-up time).
NOT_FOR_REPLAY = {
    "exporter.daemon", "exporter.service", "exporter.supervisor", "exporter.reloading", "exporter.preflight",
    "exporter.http", "exporter.web", "exporter.store", "exporter.webconfig", "exporter.status",
    "exporter.config_cli", "exporter.login_cli", "exporter.settings_file", "exporter.launcher",
    "exporter.config", "exporter.demo", "exporter.notify_send",
    "sqlite3", "bcrypt", "psutil",
}


def _loaded_by(tmp_path: Path, *argv: str) -> tuple[int, set[str]]:
    """`twitchminert ARGV` run in a fresh interpreter: its exit code and every module loaded by its end."""
    modules = tmp_path / "modules.json"
    code = (
        "import json, sys\n"
        "from exporter import cli\n"
        "code = cli.main(sys.argv[2:])\n"
        "open(sys.argv[1], 'w').write(json.dumps(sorted(sys.modules)))\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(modules), *argv], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    return result.returncode, set(json.loads(modules.read_text()))


def test_replay_imports_none_of_the_daemon(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    log.write_bytes((RUNS / "E_restore_cookie_vvv" / "log.txt").read_bytes()[:1000])
    code, modules = _loaded_by(tmp_path, "replay", str(log), "--timezone", "UTC")
    assert code == 0
    assert {"exporter.pipeline", "exporter.metrics", "prometheus_client"} <= modules  # it did replay
    assert sorted(NOT_FOR_REPLAY & modules) == []


def test_a_command_imports_its_module_when_it_runs(tmp_path: Path) -> None:
    """The check above sees lazy imports: `config validate` loads its own module and the start-up checks."""
    config = tmp_path / "twitchminert.yaml"
    config.write_text(f"storage:\n  path: {tmp_path / 'data'}\n")
    code, modules = _loaded_by(tmp_path, "config", "validate", str(config))
    assert code == 0
    assert {"exporter.config_cli", "exporter.preflight"} <= modules
    assert "exporter.pipeline" not in modules


def test_every_error_the_command_line_reports_is_a_user_error() -> None:
    """cli.main catches UserError (one line, exit 2) without importing where each is defined."""
    from exporter.cli import UsageError
    from exporter.config import ConfigError
    from exporter.errors import UserError
    from exporter.patterns import PatternError
    from exporter.settings_file import SettingsUnreadable
    from exporter.store import StoreError
    from exporter.webconfig import WebConfigError

    for error in (UsageError, ConfigError, PatternError, SettingsUnreadable, WebConfigError, StoreError):
        assert issubclass(error, UserError), error
    for error in (ConfigError, PatternError, SettingsUnreadable, WebConfigError):
        assert issubclass(error, ValueError), error  # still caught where a ValueError is (reloads, the daemon)
