"""No secret TDM writes or holds ever leaves through us: HTTP answers, the SQLite store, our log.

Two sources of secrets, each through a real daemon at --log.level DEBUG:
- the real -vvvv fixture run (device code, access token, cookie values) in attach mode, with TDM's
  cookies.jar in the folder and the opt-in token check against a local server on 127.0.0.1;
- the simulator at -vvvv under the supervisor (its Request: lines carry a fake OAuth token), with a
  proxy that has a user and password in settings, so they show up in its log.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import FIXTURES, MOCK_TOKEN, REPO, RUNS, DaemonProcess, http_get, sample, wait_until

SIM_TOKEN = "simaccesstoken0000000000000000"
DEVICE_CODE = "D" * 40
COOKIE_VALUES = ("0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210")
PROXY_PASSWORD = "pr0xyS3cretPw"  # distinctive, so that finding it means a leak
PROXY = f"http://proxyuser:{PROXY_PASSWORD}@127.0.0.1:9"
SECRETS = (MOCK_TOKEN, SIM_TOKEN, DEVICE_CODE, *COOKIE_VALUES, PROXY_PASSWORD)
RUN_A = RUNS / "A_fresh_login_vvvv" / "log.txt"
JAR = FIXTURES / "cookies" / "cookies-3.14.5-written-by-TDM-run.jar"
SIMULATOR = REPO / "exporter" / "simulator" / "main.py"
TDM_CLIENT_ID = "kd1unb4b3q4t58fwlpcbzcbnm76a8fp"


# -- a local stand-in for https://id.twitch.tv/oauth2/validate -----------------------------------


class ValidateServer:
    def __init__(self, status: int) -> None:
        self.status = status
        self.requests: list[tuple[str, str | None]] = []  # (path, Authorization)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Authorization")))
                if server.status == 200:
                    body = json.dumps({
                        "client_id": TDM_CLIENT_ID, "login": "mockuser", "scopes": [],
                        "user_id": "123456789", "expires_in": 3600,
                    }).encode()
                else:
                    body = json.dumps({"status": 401, "message": "invalid access token"}).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="validate-server")
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._thread.join(5)
        self._httpd.server_close()


@pytest.fixture
def validate_server():
    servers: list[ValidateServer] = []

    def start(status: int) -> ValidateServer:
        servers.append(ValidateServer(status))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def daemons():
    started: list[DaemonProcess] = []

    def start(config: Path, log_file: Path) -> DaemonProcess:
        daemon = DaemonProcess(
            ["--log.level", "DEBUG", "--log.file", str(log_file), "run", "--config.file", str(config),
             "--web.listen-address", "127.0.0.1:0"]
        )
        started.append(daemon)
        daemon.wait_listening()
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


# -- what we look through ------------------------------------------------------------------------


def answers(daemon: DaemonProcess) -> dict[str, str]:
    result = {}
    console = ("/api/settings", "/api/history/events?limit=200", "/api/history/claims", "/api/history/stats")
    for path in ("/metrics", "/api/miner/status", "/api/events?limit=1000", "/", "/-/ready", *console):
        status, body = http_get(daemon.url + path)
        assert status == 200, path
        result[path] = body
    # TDM's own view through the bridge (501 without it: attach mode), and the notification channels.
    for path in ("/api/campaigns", "/api/channels", "/api/games", "/api/notifications"):
        status, body = http_get(daemon.url + path)
        assert status in (200, 501), path
        result[path] = body
    return result


def stored_bytes(data_dir: Path) -> dict[str, bytes]:
    """Every file of our data folder: the SQLite db, its -wal and -shm, the captured output."""
    return {str(p.relative_to(data_dir)): p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file()}


def assert_no_secret(where: dict[str, str | bytes], secrets=SECRETS) -> None:
    leaks = []
    for name, content in where.items():
        for secret in secrets:
            needle = secret.encode() if isinstance(content, bytes) else secret
            if needle in content:
                leaks.append(f"{secret} in {name}")
    assert not leaks, leaks


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- the fixture run with TDM's jar and the token check ------------------------------------------


def attach_setup(tmp_path: Path, validate_url: str) -> tuple[Path, Path]:
    tdm = tmp_path / "tdm"
    tdm.mkdir()
    shutil.copyfile(RUN_A, tdm / "log.txt")
    shutil.copyfile(JAR, tdm / "cookies.jar")
    config = write_config(
        tmp_path / "twitchminert.yaml",
        f"miner:\n  dir: {json.dumps(str(tdm))}\n  mode: attach\n  display: none\n"
        f"storage:\n  path: {json.dumps(str(tmp_path / 'data'))}\n"
        f"session:\n  validate: true\n  validate_url: {json.dumps(validate_url)}\n",
    )
    return tdm, config


def test_the_inputs_really_hold_the_secrets() -> None:
    log = RUN_A.read_text()
    for secret in (MOCK_TOKEN, DEVICE_CODE, *COOKIE_VALUES):
        assert secret in log, secret
    assert MOCK_TOKEN in JAR.read_text()


def test_fixture_run_and_token_check_leak_nothing(tmp_path: Path, daemons, validate_server) -> None:
    server = validate_server(200)
    _, config = attach_setup(tmp_path, server.url)
    own_log = tmp_path / "twitchminert.log"
    before = time.time()
    daemon = daemons(config, own_log)

    def checked() -> bool:
        metrics = daemon.metrics()
        return sample(metrics, "tdm_session_token_expiry_timestamp_seconds") is not None and (
            sample(metrics, "tdm_log_records_total", level="DEBUG") or 0
        ) > 0

    wait_until(checked, 20, what="the token check and run A on /metrics")
    # the check really ran, against our server, with the jar's token in the header only
    assert server.requests == [("/oauth2/validate", f"OAuth {MOCK_TOKEN}")]
    metrics = daemon.metrics()
    expiry = sample(metrics, "tdm_session_token_expiry_timestamp_seconds")
    assert before + 3600 - 5 <= expiry <= time.time() + 3600 + 5
    assert sample(metrics, "tdm_session_state", state="authenticated") == 1
    assert sample(metrics, "tdm_cookies_present") == 1
    wait_until(lambda: "login_successful" in http_get(daemon.url + "/api/events?limit=1000")[1], 10,
               what="run A's events in the store")

    seen: dict[str, str | bytes] = dict(answers(daemon))
    status = json.loads(seen["/api/miner/status"])
    assert status["cookies"]["has_auth_token"] is True and status["cookies"]["format"] == "json"
    assert abs(status["cookies"]["token_expiry"] - expiry) < 1
    seen.update({f"running: {k}": v for k, v in stored_bytes(tmp_path / "data").items()})
    assert any(name.endswith(".sqlite-wal") for name in seen), "the WAL is looked at while it exists"
    assert daemon.stop() == 0
    seen.update({f"stopped: {k}": v for k, v in stored_bytes(tmp_path / "data").items()})
    seen["stdout/stderr"] = daemon.output()
    seen["our log file"] = own_log.read_text()
    assert "http: \"GET /metrics HTTP/1.1\" 200" in seen["our log file"]  # DEBUG really was on
    assert_no_secret(seen)


def test_a_401_from_the_token_check_makes_the_session_invalid(tmp_path: Path, daemons, validate_server) -> None:
    server = validate_server(401)
    _, config = attach_setup(tmp_path, server.url)
    own_log = tmp_path / "twitchminert.log"
    daemon = daemons(config, own_log)
    wait_until(lambda: sample(daemon.metrics(), "tdm_session_state", state="invalid") == 1, 20,
               what='tdm_session_state{state="invalid"} 1')
    assert server.requests == [("/oauth2/validate", f"OAuth {MOCK_TOKEN}")]
    metrics = daemon.metrics()
    assert sample(metrics, "tdm_session_state", state="authenticated") == 0
    assert sample(metrics, "tdm_session_token_expiry_timestamp_seconds") is None  # the jar's cookie has none
    status = json.loads(http_get(daemon.url + "/api/miner/status")[1])
    assert status["session"] == "invalid"
    events = json.loads(http_get(daemon.url + "/api/events?limit=1000")[1])
    assert any(e["fields"].get("action") == "session_invalid" for e in events)
    seen: dict[str, str | bytes] = dict(answers(daemon))
    assert daemon.stop() == 0
    seen.update(stored_bytes(tmp_path / "data"))
    seen["stdout/stderr"] = daemon.output()
    seen["our log file"] = own_log.read_text()
    assert_no_secret(seen)


# -- the simulator at -vvvv with proxy credentials -----------------------------------------------


def test_simulator_at_vvvv_with_a_proxy_password_leaks_nothing(tmp_path: Path, daemons) -> None:
    tdm = tmp_path / "tdm"
    tdm.mkdir()
    command = [sys.executable, str(SIMULATOR), "--dir", str(tdm), "--scenario", "happy", "--speed", "600",
               "--seed", "5", "--log", "-vvvv"]
    config = write_config(
        tmp_path / "twitchminert.yaml",
        f"miner:\n  dir: {json.dumps(str(tdm))}\n  command: {json.dumps(command)}\n  display: none\n"
        "  stop_timeout: 5s\n"
        f"settings:\n  priority: [Starfall Arena, Pixel Kingdoms]\n  proxy: {json.dumps(PROXY)}\n"
        f"storage:\n  path: {json.dumps(str(tmp_path / 'data'))}\n",
    )
    own_log = tmp_path / "twitchminert.log"
    daemon = daemons(config, own_log)
    log = tdm / "log.txt"

    def sim_log() -> str:
        return log.read_text(errors="replace") if log.exists() else ""

    wait_until(lambda: SIM_TOKEN in sim_log() and PROXY_PASSWORD in sim_log(), 30,
               what="the simulator to log its token and the proxy password")
    wait_until(lambda: sample(daemon.metrics(), "tdm_miner_status", status="mining") == 1, 30, what="mining")
    metrics = daemon.metrics()
    assert sample(metrics, "tdm_log_records_total", level="DEBUG") > 0  # the Request: lines were read
    assert sample(metrics, "tdm_settings_writes_total") >= 1
    assert json.loads((tdm / "settings.json").read_text())["proxy"]["data"] == PROXY  # TDM really got it

    seen: dict[str, str | bytes] = dict(answers(daemon))
    events = json.loads(seen["/api/events?limit=1000"])
    written = [e for e in events if e["fields"].get("action") == "settings_written"]
    assert written and "proxy" in written[0]["fields"]["changes"]  # recorded, but without the password
    assert json.loads(seen["/api/settings"])["settings"]["proxy"] == "http://<redacted>@127.0.0.1:9"  # the editor shows it blanked
    seen.update({f"running: {k}": v for k, v in stored_bytes(tmp_path / "data").items()})
    assert daemon.stop() == 0
    seen.update({f"stopped: {k}": v for k, v in stored_bytes(tmp_path / "data").items()})
    seen["stdout/stderr"] = daemon.output()
    seen["our log file"] = own_log.read_text()
    assert "started the miner" in seen["our log file"]
    assert_no_secret(seen)
