"""Prometheus rules and config: promtool checks and unit tests, alert metadata, runbook anchors.

promtool comes from Debian's `prometheus` package. Without it these tests skip, except under CI
(CI=true), where a missing promtool is a failure.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from helpers import exported_metrics, metric_names, run_promtool

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS = REPO / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS / "tests").glob("*.yml"))
RUNBOOK = REPO / "docs" / "alerts.md"

# The alerts the monitoring bundle promises (issue 6).
PROMISED_ALERTS = {
    "TDMExporterDown",
    "TDMMinerDown",
    "TDMMinerCrashLooping",
    "TDMMinerTerminated",
    "TDMLoginRequired",
    "TDMSessionInvalid",
    "TDMSessionTokenExpiringSoon",
    "TDMDropProgressStalled",
    "TDMDropProgressWentBackwards",
    "TDMLogSilent",
    "TDMWebsocketFlapping",
    "TDMHighMemory",
    "TDMConfigReloadFailed",
    "TDMClaimFailed",
    "TDMNotificationsFailing",  # issue 14
}
SEVERITIES = {"critical", "warning", "info"}


# -- helpers ------------------------------------------------------------------------------------


def rules(kind: str) -> list[dict]:
    """Every rule of `kind` ("alert" or "record") across the rule files."""
    found = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            found.extend(rule for rule in group["rules"] if kind in rule)
    return found


def github_anchors(markdown: str) -> set[str]:
    """Anchors GitHub generates for the headings of a Markdown document."""
    anchors = set()
    for line in markdown.splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def unit_tests() -> list[tuple[Path, dict]]:
    return [(path, test) for path in TEST_FILES for test in yaml.safe_load(path.read_text())["tests"]]


# -- promtool -----------------------------------------------------------------------------------


def test_rule_and_test_files_exist():
    assert RULE_FILES, "no rule files in prometheus/rules"
    assert TEST_FILES, "no promtool test files in prometheus/tests"


def test_promtool_check_rules():
    output = run_promtool("check", "rules", *RULE_FILES)
    assert output.count("SUCCESS") == len(RULE_FILES)


@pytest.mark.slow
def test_promtool_test_rules():
    output = run_promtool("test", "rules", *TEST_FILES)
    assert output.count("SUCCESS") == len(TEST_FILES), output


def test_promtool_check_config():
    output = run_promtool("check", "config", PROMETHEUS / "prometheus.yml")
    # the config pulls in every rule file
    assert f"{len(RULE_FILES)} rule files found" in output, output


def test_unit_tests_load_the_shipped_rule_files():
    loaded = set()
    for path in TEST_FILES:
        for name in yaml.safe_load(path.read_text())["rule_files"]:
            loaded.add((path.parent / name).resolve())
    assert loaded == {path.resolve() for path in RULE_FILES}


# -- alerts ---------------------------------------------------------------------------------------


def test_every_promised_alert_exists_once():
    names = [rule["alert"] for rule in rules("alert")]
    assert len(names) == len(set(names)), "duplicate alert names"
    assert PROMISED_ALERTS <= set(names), f"missing: {sorted(PROMISED_ALERTS - set(names))}"


@pytest.mark.parametrize("alert", rules("alert"), ids=lambda rule: rule["alert"])
def test_alert_has_severity_summary_description_and_runbook(alert):
    assert alert.get("labels", {}).get("severity") in SEVERITIES
    annotations = alert.get("annotations", {})
    for key in ("summary", "description", "runbook_url"):
        assert annotations.get(key, "").strip(), f"{alert['alert']}: no {key}"
    url = annotations["runbook_url"]
    page, _, anchor = url.partition("#")
    assert page.endswith("docs/alerts.md"), url
    assert anchor == alert["alert"].lower(), url
    assert anchor in github_anchors(RUNBOOK.read_text()), f"docs/alerts.md has no section #{anchor}"


def test_runbook_has_no_section_for_an_alert_that_does_not_exist():
    headings = re.findall(r"^## (TDM\w+)\s*$", RUNBOOK.read_text(), flags=re.MULTILINE)
    assert sorted(headings) == sorted(rule["alert"] for rule in rules("alert"))


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    firing, quiet = set(), set()
    for _path, test in unit_tests():
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in rules("alert")}
    assert names - firing == set(), "alerts never expected to fire in prometheus/tests"
    assert names - quiet == set(), "alerts never expected to stay quiet in prometheus/tests"


def test_every_recording_rule_has_a_unit_test():
    tested = " ".join(
        case["expr"] for _path, test in unit_tests() for case in test.get("promql_expr_test", [])
    )
    for rule in rules("record"):
        assert re.search(rf"(?<![\w:]){re.escape(rule['record'])}(?![\w:])", tested), rule["record"]


def test_rules_use_only_exported_metrics_or_recording_rules():
    allowed = exported_metrics() | {rule["record"] for rule in rules("record")}
    for rule in rules("alert") + rules("record"):
        unknown = metric_names(rule["expr"]) - allowed
        assert not unknown, f"{rule.get('alert') or rule['record']}: unknown metrics {sorted(unknown)}"


# -- the helper itself (helpers.metric_names) -----------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (level) (rate(tdm_log_records_total{level="ERROR"}[5m]))', {"tdm_log_records_total"}),
        ("x > 1024 * 1e9 and on (instance) y offset 5m", {"x", "y"}),
        ('label_replace(up{job="a"}, "dst", "$1", "src", "(.*)") or vector(0)', {"up"}),
        ("group without (status) (tdm:miner_status:code) * 0", {"tdm:miner_status:code"}),
        ('count(ALERTS{alertname=~"TDM.*"}) or time() - t_seconds', {"ALERTS", "t_seconds"}),
    ],
)
def test_metric_names(expr, names):
    assert metric_names(expr) == names
