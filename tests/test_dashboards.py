"""Grafana dashboards: the JSON model's structure, the datasource/instance variables, and every query.

Each PromQL expression (panel targets, variable queries, annotations) must select only metrics the
exporter exports or recording rules from prometheus/rules, and must parse: the expressions, with
Grafana's variables replaced by concrete values, are written into a temporary rules file that
`promtool check rules` validates. Without promtool that part skips, except under CI (CI=true).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import exported_metrics, metric_names, promtool

REPO = Path(__file__).resolve().parents[1]
DASHBOARDS = sorted((REPO / "grafana" / "dashboards").glob("*.json"))
RULE_FILES = sorted((REPO / "prometheus" / "rules").glob("*.yml"))
PROVIDER = REPO / "grafana" / "provisioning" / "dashboards" / "twitchminert.yml"
DATASOURCES = REPO / "grafana" / "provisioning" / "datasources" / "prometheus.yml"

PANEL_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Grafana's built-in variables, as promtool-friendly values.
BUILTIN_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__interval_ms": "60000",
    "__range": "1d",
    "__range_s": "86400",
    "__range_ms": "86400000",
}
_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


# -- helpers ------------------------------------------------------------------------------------


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def all_panels(dashboard: dict) -> list[dict]:
    """Every panel, including those nested in collapsed rows."""
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def variables(dashboard: dict) -> dict[str, dict]:
    return {variable["name"]: variable for variable in dashboard["templating"]["list"]}


def variable_query(variable: dict) -> str:
    query = variable.get("query", "")
    return query.get("query", "") if isinstance(query, dict) else query


def expressions(dashboard: dict) -> list[tuple[str, str]]:
    """(where, PromQL) for every query of the dashboard."""
    found = []
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            found.append((f"panel {panel['id']} {panel['title']!r} {target.get('refId')}", target.get("expr", "")))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable_query(variable)
            match = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", query)
            found.append((f"variable {variable['name']}", match.group(1) if match else query))
    for annotation in dashboard["annotations"]["list"]:
        if annotation.get("expr"):
            found.append((f"annotation {annotation['name']!r}", annotation["expr"]))
    return found


def concrete(expr: str) -> str:
    """The expression with Grafana variables replaced: built-ins by values, ours by a regex."""
    return _VARIABLE.sub(lambda match: BUILTIN_VARIABLES.get(match.group(1) or match.group(2), ".*"), expr)


def allowed_metrics() -> set[str]:
    exported = exported_metrics()
    recorded = {
        rule["record"]
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    return exported | recorded


# -- structure ------------------------------------------------------------------------------------


def test_there_are_an_overview_and_a_fleet_dashboard():
    assert {path.name for path in DASHBOARDS} >= {"twitchminert-overview.json", "twitchminert-fleet.json"}


def test_uids_are_fixed_and_unique():
    uids = [load(path).get("uid") for path in DASHBOARDS]
    assert all(isinstance(uid, str) and re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", uid) for uid in uids), uids
    assert len(set(uids)) == len(uids)
    titles = [load(path)["title"] for path in DASHBOARDS]
    assert len(set(titles)) == len(titles)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_dashboard_model(path):
    dashboard = load(path)
    assert isinstance(dashboard.get("schemaVersion"), int) and dashboard["schemaVersion"] >= 36
    assert dashboard.get("id") is None, "an exported id would clash on import; keep it null"
    assert "twitchminert" in dashboard.get("tags", [])
    assert dashboard["title"] and dashboard["time"]["from"] and dashboard["panels"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_datasource_and_instance_variables(path):
    found = variables(load(path))
    datasource = found.get("datasource")
    assert datasource and datasource["type"] == "datasource" and datasource["query"] == "prometheus"
    instance = found.get("instance")
    assert instance and instance["type"] == "query"
    assert instance["datasource"] == PANEL_DATASOURCE
    assert "instance" in variable_query(instance)
    # every variable a query uses is defined (or is one of Grafana's own)
    for where, expr in expressions(load(path)):
        for match in _VARIABLE.finditer(expr):
            name = match.group(1) or match.group(2)
            assert name in found or name in BUILTIN_VARIABLES, f"{where}: undefined variable ${name}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_panels(path):
    panels = all_panels(load(path))
    ids = [panel.get("id") for panel in panels]
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == len(ids), "panel ids must be unique ints"
    for panel in panels:
        where = f"{path.name}: panel {panel.get('id')} {panel.get('title')!r}"
        grid = panel.get("gridPos", {})
        assert {"h", "w", "x", "y"} <= grid.keys(), f"{where}: gridPos"
        assert grid["x"] + grid["w"] <= 24, f"{where}: wider than the 24-column grid"
        assert panel.get("title"), f"{where}: no title"
        if panel["type"] == "row":
            continue
        targets = panel.get("targets", [])
        assert targets, f"{where}: no targets"
        assert panel.get("datasource") == PANEL_DATASOURCE, f"{where}: datasource"
        ref_ids = [target.get("refId") for target in targets]
        assert len(set(ref_ids)) == len(ref_ids), f"{where}: duplicate refId"
        for target in targets:
            assert target.get("datasource") == PANEL_DATASOURCE, f"{where}: target datasource"
            assert target.get("expr", "").strip(), f"{where}: empty expr"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_panels_do_not_overlap(path):
    taken: dict[tuple[int, int], str] = {}
    for panel in all_panels(load(path)):
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']!r} overlaps {taken[(x, y)]!r}"
                taken[(x, y)] = panel["title"]


# -- queries --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_queries_use_only_exported_metrics_or_recording_rules(path):
    allowed = allowed_metrics()
    for where, expr in expressions(load(path)):
        names = metric_names(concrete(expr))
        assert names, f"{where}: selects no metric: {expr}"
        assert names <= allowed, f"{where}: unknown metrics {sorted(names - allowed)}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_queries_parse(path, tmp_path):
    exprs = expressions(load(path))
    group = {
        "name": path.stem,
        "rules": [{"record": f"dashboard_query_{n}", "expr": concrete(expr)} for n, (_, expr) in enumerate(exprs)],
    }
    rule_file = tmp_path / "queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [group]}, sort_keys=False))
    result = subprocess.run(
        [promtool(), "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=120
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        index = {f"dashboard_query_{n}": f"{where}: {expr}" for n, (where, expr) in enumerate(exprs)}
        culprits = [text for name, text in index.items() if re.search(rf"\b{name}\b", output)]
        pytest.fail(f"promtool rejected queries of {path.name}:\n{output}\n" + "\n".join(culprits))
    assert f"SUCCESS: {len(exprs)} rules found" in output


def test_concrete_replaces_builtins_and_variables():
    expr = 'rate(x{instance=~"$instance", job=~"${job}"}[$__rate_interval]) * $__range_s'
    assert concrete(expr) == 'rate(x{instance=~".*", job=~".*"}[1m]) * 86400'


# -- provisioning -------------------------------------------------------------------------------


def test_provisioning_files():
    provider = yaml.safe_load(PROVIDER.read_text())["providers"]
    assert [p["type"] for p in provider] == ["file"]
    assert provider[0]["options"]["path"] == "/var/lib/grafana/dashboards"  # docker-compose.yml mounts it there
    sources = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert [s["type"] for s in sources] == ["prometheus"]
    assert sources[0]["url"] == "http://prometheus:9090"
