"""The daemon's web security as a real process, with real clients: TLS and basic auth from a
`web.config_file` (exporter-toolkit format), cross-site POSTs, the default bind, request limits.

The certificate is made at test time with the openssl CLI and the password hash with `bcrypt`;
nothing secret is committed. Without openssl these tests skip, except with CI=true, where they fail.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time
from pathlib import Path

import bcrypt
import pytest

from conftest import REPO, DaemonProcess, sample, wait_until
from helpers import basic_auth, request, require_openssl, self_signed

USER = "prometheus"
PASSWORD = "correct horse battery staple"
EVENTS = 1100  # more than the store's query limit (exporter.store.MAX_QUERY_LIMIT = 1000)


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """A self-signed certificate for 127.0.0.1 (it is its own CA for the client)."""
    require_openssl()
    folder = tmp_path_factory.mktemp("pki")
    self_signed(folder, "server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    return folder


def drop_record(i: int) -> str:
    minute, second = divmod(i, 60)  # one a second from 22:00:00, so the newest is the last
    return f"2026-11-23 22:{minute:02d}:{second:02d}.000:\t   CALL:\tDrop update from websocket: Drop {i} (Game, {i % 10}/10)\n"


@pytest.fixture(scope="module")
def secured(tmp_path_factory, pki: Path):
    """One daemon for the module: https with basic auth, following a log of EVENTS drop updates."""
    folder = tmp_path_factory.mktemp("secured")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()
    web = folder / "web.yml"
    web.write_text(
        f"tls_server_config:\n  cert_file: {pki / 'server.crt'}\n  key_file: {pki / 'server.key'}\n"
        f"basic_auth_users:\n  {USER}: {hashed}\n"
    )
    log = folder / "log.txt"
    log.write_text("".join(drop_record(i) for i in range(1, EVENTS + 1)))
    config = folder / "twitchminert.yaml"
    config.write_text(
        f"logs:\n  files: [{json.dumps(str(log))}]\n"
        f"storage:\n  path: {json.dumps(str(folder / 'data'))}\n"
        f"web:\n  config_file: {json.dumps(str(web))}\n"
    )
    daemon = DaemonProcess(
        ["--log.level", "DEBUG", "run", "--config.file", str(config), "--web.listen-address", "127.0.0.1:0"]
    )
    try:
        daemon.wait_listening(scheme="https")
        daemon.context = ssl.create_default_context(cafile=str(pki / "server.crt"))
        daemon.port = int(daemon.url.rsplit(":", 1)[1])
        yield daemon
    finally:
        daemon.stop()


def basic(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    return basic_auth(user, password)


def call(
    daemon,
    path: str,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    body: bytes | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One https request to the daemon `secured` started."""
    return request(daemon.port, path, headers, method, daemon.context, body)


ROUTES = ("/metrics", "/api/miner/status", "/api/events", "/")


# -- TLS and basic auth --------------------------------------------------------------------------


def test_https_with_the_right_password_serves_every_route(secured) -> None:
    answers = {path: call(secured, path, basic()) for path in ROUTES}
    for path, (status, headers, body) in answers.items():
        assert status == 200, (path, body[:200])
    assert sample(answers["/metrics"][2].decode(), "tdm_exporter_build_info", version="0.1.0") == 1
    assert json.loads(answers["/api/miner/status"][2])["version"] == "0.1.0"
    assert isinstance(json.loads(answers["/api/events"][2]), list)
    assert answers["/"][1]["Content-Type"].startswith("text/html")
    assert b"Twitchminert" in answers["/"][2]


@pytest.mark.parametrize(
    "credentials",
    [basic(password="wrong password"), basic(user="mallory"), {}, {"Authorization": "Basic !!"},
     {"Authorization": "Bearer " + PASSWORD}],
    ids=["wrong-password", "unknown-user", "no-credentials", "garbage", "other-scheme"],
)
def test_wrong_or_missing_credentials_get_401_on_every_route(secured, credentials) -> None:
    for path in (*ROUTES, "/-/ready", "/no-such-route"):
        status, headers, body = call(secured, path, credentials)
        assert (status, body) == (401, b"unauthorized\n"), path
        assert headers["WWW-Authenticate"] == 'Basic realm="twitchminert"'
        assert PASSWORD.encode() not in body


def test_unknown_users_and_wrong_passwords_take_about_the_same_time(secured) -> None:
    """Coarse, over real TLS (test_webconfig measures the authenticator itself): both pay a full
    bcrypt, so neither answers in a fraction of the other's time."""

    def timed(credentials: dict[str, str]) -> float:
        began = time.perf_counter()
        assert call(secured, "/metrics", credentials)[0] == 401
        return time.perf_counter() - began

    wrong = statistics.median(timed(basic(password=f"wrong {i}")) for i in range(5))
    unknown = statistics.median(timed(basic(user=f"nobody{i}")) for i in range(5))
    assert 0.5 < unknown / wrong < 2.0, (unknown, wrong)
    assert min(unknown, wrong) > 0.005  # bcrypt at cost 10 ran for both


def test_healthy_needs_no_credentials(secured) -> None:
    status, _, body = call(secured, "/-/healthy")
    assert (status, body) == (200, b"OK\n")


def test_plain_http_to_the_https_port_fails(secured) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", secured.port, timeout=10)
    try:
        with pytest.raises((http.client.HTTPException, OSError)):
            connection.request("GET", "/-/healthy")
            connection.getresponse().read()
    finally:
        connection.close()
    assert call(secured, "/-/healthy")[0] == 200  # the server is still fine


def test_an_untrusted_certificate_is_refused_by_a_verifying_client(secured) -> None:
    connection = http.client.HTTPSConnection("127.0.0.1", secured.port, timeout=10, context=ssl.create_default_context())
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            connection.request("GET", "/-/healthy")
    finally:
        connection.close()


def test_no_credential_reaches_our_log(secured) -> None:
    call(secured, "/metrics", basic())
    call(secured, "/metrics", basic(password="wrong password"))
    output = secured.output()
    for secret in (PASSWORD, "wrong password", basic()["Authorization"].split()[1]):
        assert secret not in output


# -- cross-site POSTs ----------------------------------------------------------------------------


def test_a_cross_site_post_with_valid_credentials_is_refused(secured) -> None:
    status, headers, body = call(secured, "/-/reload", {**basic(), "Origin": "http://evil.example"}, "POST")
    assert (status, body) == (403, b"cross-site request refused\n")
    status, _, _ = call(secured, "/-/reload", {**basic(), "Sec-Fetch-Site": "cross-site"}, "POST")
    assert status == 403
    status, _, _ = call(secured, "/-/restart", {**basic(), "Origin": "http://evil.example"}, "POST")
    assert status == 403


def test_a_same_origin_post_is_served(secured) -> None:
    origin = {"Origin": f"https://127.0.0.1:{secured.port}"}
    status, _, body = call(secured, "/-/reload", {**basic(), **origin}, "POST")
    assert status in (200, 400), body
    assert (status, body) == (200, b"no change\n")  # started with --config.file, nothing changed
    status, _, _ = call(secured, "/-/reload", {**basic(), "Sec-Fetch-Site": "same-origin"}, "POST")
    assert status == 200
    assert call(secured, "/-/reload", basic(), "GET")[0] == 405  # POST only


# -- request limits ------------------------------------------------------------------------------


def test_a_one_mebibyte_body_is_refused_with_413(secured) -> None:
    for _ in range(3):  # the client, still sending, sees the answer rather than a reset
        status, headers, body = call(secured, "/-/reload", basic(), "POST", b"x" * (1 << 20))
        assert (status, body) == (413, b"request body too large\n")
        assert headers["Connection"] == "close"
    assert call(secured, "/-/healthy")[0] == 200


@pytest.mark.parametrize("length", ["-1", "abc", "1_0", "+5"])
def test_a_bad_content_length_is_400_at_once(secured, length) -> None:
    status, headers, _ = call(secured, "/-/reload", {**basic(), "Content-Length": length}, "POST")
    assert status == 400 and headers["Connection"] == "close"


def test_a_refused_post_body_is_not_read_as_the_next_request(secured) -> None:
    smuggled = b"GET /smuggled-request HTTP/1.1\r\nHost: x\r\n\r\n"
    connection = http.client.HTTPSConnection("127.0.0.1", secured.port, timeout=10, context=secured.context)
    try:
        connection.request("POST", "/metrics", body=smuggled, headers=basic())
        response = connection.getresponse()
        assert response.status == 405 and response.headers["Connection"] == "close"
        response.read()
    finally:
        connection.close()
    # our DEBUG log names each request; the line is written just after the answer is sent
    wait_until(lambda: "POST /metrics" in secured.output(), what="the request's log line")
    assert "/smuggled-request" not in secured.output()


def events(daemon, query: str) -> list[dict]:
    status, _, body = call(daemon, "/api/events" + query, basic())
    assert status == 200, body
    return json.loads(body)


def test_the_events_limit_is_clamped(secured) -> None:
    wait_until(lambda: len(events(secured, "?limit=1000")) == 1000, 30, what="1000 stored events")
    assert len(events(secured, f"?limit={EVENTS}")) == 1000
    assert len(events(secured, "?limit=99999999999999999999999")) == 1000
    assert len(events(secured, "")) == 100  # the default
    newest = events(secured, "?limit=1")[0]
    assert newest["message"].startswith(f"Drop update from websocket: Drop {EVENTS} ")
    for bad in ("?limit=abc", "?limit=1e3", "?since=yesterday", "?limit=0", "?limit=-5"):
        status, _, _ = call(secured, "/api/events" + bad, basic())
        assert status == 400, bad


# -- the default bind ----------------------------------------------------------------------------


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _other_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses, as far as the routing table tells."""
    found = set()
    for target in ("10.255.255.255", "192.0.2.1"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect((target, 9))
                found.add(probe.getsockname()[0])
            except OSError:
                pass
    return sorted(a for a in found if not a.startswith("127.") and a != "0.0.0.0")


def test_the_default_bind_is_loopback(tmp_path: Path) -> None:
    from exporter.config import DEFAULT_LISTEN_ADDRESS, Config

    assert DEFAULT_LISTEN_ADDRESS == "127.0.0.1:9797" == Config().web.listen_address
    help_text = subprocess.run(
        [sys.executable, "-m", "exporter", "run", "--help"], cwd=REPO, capture_output=True, text=True, timeout=30
    ).stdout
    assert "default 127.0.0.1:9797" in " ".join(help_text.split())

    if not _port_free(9797):
        pytest.skip("port 9797 is busy here: checked the config default and the help only")
    config = tmp_path / "twitchminert.yaml"  # no web section, no --web.listen-address
    config.write_text(f"logs:\n  files: [{json.dumps(str(tmp_path / 'log.txt'))}]\n"
                      f"storage:\n  path: {json.dumps(str(tmp_path / 'data'))}\n")
    daemon = DaemonProcess(["run", "--config.file", str(config)])
    try:
        def listening() -> str | None:
            output = daemon.output()
            if daemon.proc.poll() is not None:
                if "Address already in use" in output:
                    pytest.skip("port 9797 was taken meanwhile")
                pytest.fail(f"daemon exited {daemon.proc.returncode}:\n{output}")
            match = re.search(r"listening on (\S+)", output)
            return match.group(1) if match else None

        assert wait_until(listening, 20, what="the listening line") == "http://127.0.0.1:9797/"
        with socket.create_connection(("127.0.0.1", 9797), timeout=5):
            pass
        for address in _other_addresses():
            with pytest.raises(OSError):
                socket.create_connection((address, 9797), timeout=2).close()
    finally:
        assert daemon.stop(signal.SIGTERM) == 0


# -- /metrics bytes (exporter.metrics.exposition, the fast path of generate_latest) ---------------


class _Families:
    def __init__(self, families) -> None:
        self.families = families

    def collect(self):
        return self.families


def test_the_fast_exposition_writes_what_generate_latest_writes() -> None:
    from prometheus_client import CollectorRegistry, Histogram
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.exposition import generate_latest

    from conftest import RUNS
    from exporter.patterns import build_patterns
    from exporter.metrics import StateCollector, _NotPlain, _render, exposition
    from exporter.pipeline import RecordHandler, replay
    from exporter.state import MinerState
    from exporter.timestamps import LocalClock, zone

    handler = RecordHandler(build_patterns(()), LocalClock(zone("UTC")), MinerState())
    replay(sorted(RUNS.glob("*/log.txt")), handler)
    registry = CollectorRegistry()
    registry.register(StateCollector(lambda: handler.state.snapshot(handler.state.last_record_time or 0.0)))
    tricky = GaugeMetricFamily("tdm_tricky", 'Help with a \\ backslash\nand a newline "quoted".', labels=["b", "a"])
    for i, text in enumerate(['say "hi"', "back\\slash", "new\nline", "ünïcödé ✓", "", "<redacted>"]):
        tricky.add_metric([text, str(i)], i * 1.5)
    counter = CounterMetricFamily("tdm_tricky_things", "Counts.", labels=["x"])
    for value in (0, 1, 999_999, 1_000_000, 1795472800, 2.5, -3, float("inf"), float("nan"), 1e-7, True):
        counter.add_metric([repr(value)], value)
    registry.register(_Families([tricky, counter, GaugeMetricFamily("tdm_plain", "No labels.", value=-0.0)]))
    expected = generate_latest(registry)
    assert b"tdm_drop_current_minutes" in expected and b'"quoted"' in expected
    assert exposition(registry) == expected
    assert _render(list(registry.collect())) == expected  # the fast path itself, not the fallback

    # anything but a plain counter or gauge goes to generate_latest, whole
    histogram = Histogram("tdm_seconds", "A histogram.", registry=registry)
    histogram.observe(0.3)
    registry.register(_Families([CounterMetricFamily("tdm_made", "With _created.", value=1, created=1795472800.0),
                                 GaugeMetricFamily("tdm_stamped", "With a timestamp.", labels=[])]))
    registry.register(_Families([_stamped()]))
    assert exposition(registry) == generate_latest(registry)
    with pytest.raises(_NotPlain):
        _render(list(registry.collect()))


def _stamped():
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily("tdm_stamped_too", "A sample with a timestamp.", labels=["l"])
    family.add_metric(["v"], 1.0, timestamp=1795472800.5)
    return family
