"""The bundle against a real Prometheus: the shipped rules and dashboards on live demo daemons.

One Prometheus (1 s scrape and evaluation) scrapes three daemons supervising the simulator:
`happy` (with the session check pointed at a local validate server, so token panels have data),
`crash` (exits 1 again and again) and `terminated` (stays alive after a critical task crash, with
restart_on_terminated off so the state lasts). Every PromQL expression of every rule and dashboard
panel must evaluate without error, every overview panel must return data, and the crash and
terminated alerts must reach pending or firing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from conftest import REPO, free_port, http_get, wait_until

PROMETHEUS = shutil.which("prometheus")
SIMULATOR = REPO / "exporter" / "simulator" / "main.py"
DASHBOARDS = sorted((REPO / "grafana" / "dashboards").glob("*.json"))
RULE_FILES = sorted((REPO / "prometheus" / "rules").glob("*.yml"))

if PROMETHEUS is None:
    if os.environ.get("CI") == "true":
        pytest.fail("prometheus is not installed (Debian package `prometheus`)", pytrace=False)
    pytestmark = pytest.mark.skip(reason="prometheus is not installed (Debian package `prometheus`)")


class _Validate(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(
            {"client_id": "kd1unb4b3q4t58fwlpcbzcbnm76a8fp", "login": "sim", "scopes": [], "user_id": "1", "expires_in": 86400}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def daemon_config(tmp: Path, scenario: str, extra_miner: str = "", extra: str = "") -> Path:
    tdm = tmp / scenario / "tdm"
    tdm.mkdir(parents=True)
    command = [sys.executable, str(SIMULATOR), "--dir", str(tdm), "--scenario", scenario, "--speed", "300"]
    config = tmp / scenario / "twitchminert.yaml"
    config.write_text(
        "miner:\n"
        f"  dir: {json.dumps(str(tdm))}\n"
        f"  command: {json.dumps(command)}\n"
        "  display: none\n"
        "  stop_timeout: 5s\n"
        "  backoff: {initial: 1s, max: 5s, healthy_after: 2m, max_restarts: 5, window: 1h}\n"
        f"{extra_miner}"
        "settings:\n"
        "  priority: [Starfall Arena]\n"
        "  priority_mode: ending_soonest\n"
        "storage:\n"
        f"  path: {json.dumps(str(tmp / scenario / 'data'))}\n"
        f"{extra}"
    )
    return config


def query(prometheus: str, expr: str) -> dict:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    status, body = http_get(url, timeout=10)
    answer = json.loads(body)
    assert status == 200 and answer["status"] == "success", f"{expr}: {body}"
    return answer["data"]


def concrete(expr: str) -> str:
    """A dashboard expression with Grafana's variables filled in."""
    for variable, value in (
        ("$__rate_interval", "1m"),
        ("$__interval", "15s"),
        ("$__range", "1h"),
        ("${job}", ".+"),
        ("$job", ".+"),
        ("${instance}", ".+"),
        ("$instance", ".+"),
    ):
        expr = expr.replace(variable, value)
    return expr


def dashboard_panels(path: Path) -> list[tuple[str, list[str]]]:
    board = json.loads(path.read_text())
    panels = []
    for panel in board["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            exprs = [t["expr"] for t in inner.get("targets", []) if t.get("expr")]
            if exprs:
                panels.append((inner.get("title", "?"), exprs))
    return panels


def rule_exprs() -> list[tuple[str, str]]:
    exprs = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                exprs.append((rule.get("alert") or rule.get("record"), rule["expr"]))
    return exprs


@pytest.fixture
def validate_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Validate)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()
    server.server_close()


@pytest.fixture
def prometheus_factory(tmp_path: Path):
    started: list[subprocess.Popen] = []

    def start(targets: list[str]) -> str:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(path) for path in RULE_FILES],
                    "scrape_configs": [
                        {"job_name": "twitchminert", "scrape_interval": "1s", "static_configs": [{"targets": targets}]}
                    ],
                }
            )
        )
        proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "prometheus.log", "wb"),
        )
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _ready(url, proc), 30, what="prometheus to be ready")
        return url

    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _ready(url: str, proc: subprocess.Popen) -> bool:
    if proc.poll() is not None:
        pytest.fail(f"prometheus exited {proc.returncode}")
    try:
        return http_get(url + "/-/ready", timeout=2)[0] == 200
    except OSError:
        return False


def test_rules_and_dashboards_against_a_real_prometheus(tmp_path, daemon_factory, prometheus_factory, validate_server):
    happy = daemon_factory(
        "run",
        "--config.file",
        str(daemon_config(tmp_path, "happy", extra=f"session:\n  validate: true\n  validate_url: {validate_server}\n"
                          # a channel (never used: the happy miner never gives up) so the notification panels have data
                          "notify:\n  - urls: ['json://127.0.0.1:9/unused']\n    events: [gave_up]\n")),
        "--web.listen-address",
        "127.0.0.1:0",
    )
    crash = daemon_factory(
        "run", "--config.file", str(daemon_config(tmp_path, "crash")), "--web.listen-address", "127.0.0.1:0"
    )
    terminated = daemon_factory(
        "run",
        "--config.file",
        str(daemon_config(tmp_path, "terminated", extra_miner="  restart_on_terminated: false\n")),
        "--web.listen-address",
        "127.0.0.1:0",
    )
    instances = {}
    for name, daemon in (("happy", happy), ("crash", crash), ("terminated", terminated)):
        instances[name] = daemon.wait_listening().removeprefix("http://")
    prometheus = prometheus_factory(list(instances.values()))

    def targets_up() -> bool:
        result = query(prometheus, 'up{job="twitchminert"} == 1')["result"]
        return len(result) == 3

    wait_until(targets_up, 60, what="the three targets up")

    # Every rule expression evaluates without error.
    for name, expr in rule_exprs():
        query(prometheus, expr)

    # The happy miner mines: drop progress reaches Prometheus.
    happy_instance = instances["happy"]
    wait_until(
        lambda: query(prometheus, f'tdm_drop_current_minutes{{instance="{happy_instance}"}}')["result"],
        60,
        what="drop progress from the happy miner",
    )

    # Every dashboard expression evaluates; every overview panel returns data.
    overview = REPO / "grafana" / "dashboards" / "twitchminert-overview.json"
    for path in DASHBOARDS:
        for title, exprs in dashboard_panels(path):
            for expr in exprs:
                query(prometheus, concrete(expr))

    # Each panel shows data at some point of the run: the drop panels while a drop is mined (TDM goes
    # idle after its claims), and not those that need what these daemons never have.
    never_here = {"Login code expires in": "no login code waits", "Notifications by event and result": "no notify channels"}
    waiting = {title: exprs for title, exprs in dashboard_panels(overview) if title not in never_here}

    def every_panel_had_data() -> bool:
        for title, exprs in list(waiting.items()):
            if any(query(prometheus, concrete(expr))["result"] for expr in exprs):
                del waiting[title]
        return not waiting

    try:
        wait_until(every_panel_had_data, 90, interval=0.5, what="data in every overview panel")
    except pytest.fail.Exception:
        pytest.fail(f"overview panels without data after 90 s: {sorted(waiting)}")

    # The crash and terminated scenarios raise their alerts.
    def alert_state(alertname: str, instance: str) -> str | None:
        status, body = http_get(prometheus + "/api/v1/alerts")
        for alert in json.loads(body)["data"]["alerts"]:
            if alert["labels"].get("alertname") == alertname and alert["labels"].get("instance") == instance:
                return alert["state"]
        return None

    wait_until(
        lambda: alert_state("TDMMinerCrashLooping", instances["crash"]) in ("pending", "firing"),
        120,
        what="TDMMinerCrashLooping for the crash scenario",
    )
    wait_until(
        lambda: alert_state("TDMMinerTerminated", instances["terminated"]) in ("pending", "firing"),
        60,
        what="TDMMinerTerminated for the terminated scenario",
    )
    # ...and the happy miner raises neither.
    assert alert_state("TDMMinerCrashLooping", happy_instance) is None
    assert alert_state("TDMMinerTerminated", happy_instance) is None
