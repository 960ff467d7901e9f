"""--web.config.file: config checks, real TLS and basic auth on 127.0.0.1, timing, cross-site POSTs.

Certificates are made per test session with the openssl CLI; nothing secret is committed.
The server under test is exporter.http's handler with the Gate wired in as exporter.http is meant
to wire it (see _GatedHandler), behind a TLS listener.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
import statistics
import sys
import threading
import time
from base64 import b64encode
from dataclasses import replace
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import bcrypt
import pytest
from helpers import EC_KEY, basic_auth, openssl, request, require_openssl, self_signed

from exporter.http import Response, _RequestHandler, get, post, text
from exporter.webconfig import (
    CROSS_SITE,
    UNAUTHORIZED,
    Authenticator,
    Gate,
    WebConfigFile,
    WebConfigError,
    load_web_config,
    parse_basic,
    same_origin,
    ssl_context,
    tls_listener,
)

PASSWORD = "s3cret-pässword"
TLS = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"


# -- certificates --------------------------------------------------------------------------------


def _leaf(folder: Path, name: str, extensions: str) -> None:
    """name.key and name.crt, signed by the test CA."""
    (folder / f"{name}.ext").write_text(extensions)
    openssl(folder, "req", *EC_KEY, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
    openssl(
        folder, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """A CA, a server certificate for 127.0.0.1, a client certificate, an unrelated self-signed
    pair, an encrypted key and a file that is not PEM."""
    require_openssl()
    folder = tmp_path_factory.mktemp("pki")
    self_signed(
        folder, "ca", "/CN=twitchminert-test-ca",
        "basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign",
    )
    _leaf(folder, "server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
          "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    _leaf(folder, "client", "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
          "extendedKeyUsage=clientAuth\n")
    self_signed(folder, "other", "/CN=other")
    openssl(folder, "pkey", "-in", "server.key", "-out", "encrypted.key", "-aes256", "-passout", "pass:secret")
    (folder / "junk.pem").write_text("this is not PEM\n")
    return folder


@pytest.fixture
def folder(tmp_path: Path, pki: Path) -> Path:
    """A fresh folder holding copies of the PKI files, for a web.yml to sit next to."""
    for file in pki.iterdir():
        shutil.copy(file, tmp_path / file.name)
    return tmp_path


@pytest.fixture(scope="module")
def alice_hash() -> str:
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode().replace("$2b$", "$2y$")  # as htpasswd writes


def write(folder: Path, text: str, name: str = "web.yml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


# -- a server like exporter.http.Server, with the web config wired in ----------------------------


class _GatedHandler(_RequestHandler):
    """exporter.http's handler plus the three lines the lead adds to _dispatch and _send."""

    gate = Gate()
    timeout = 10  # a silent client holds only its own thread, and not forever

    def _dispatch(self, method: str) -> None:
        denial = self.gate.check(method, urlsplit(self.path).path, self.headers)
        if denial is not None:
            # Connection: close, since a POST body we did not read must not be taken for the next request
            response = Response(denial.status, denial.body, headers={**denial.headers, "Connection": "close"})
            self._send(response, with_body=method != "HEAD")
            return
        super()._dispatch(method)

    def _send(self, response: Response, with_body: bool) -> None:
        super()._send(replace(response, headers={**self.gate.response_headers, **response.headers}), with_body)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ssl.SSLError, ConnectionError, TimeoutError)):
            return  # a failed handshake or a dropped client: not worth a traceback
        super().handle_error(request, client_address)


class TestServer:
    __test__ = False

    def __init__(self, web: WebConfigFile | None) -> None:
        routes = {
            "/metrics": get(lambda request: text(200, "metrics")),
            "/-/healthy": get(lambda request: text(200, "OK")),
            "/-/reload": post(lambda request: text(200, "reloaded")),
        }
        handler = type("Handler", (_GatedHandler,), {"routes": routes, "gate": Gate.from_config(web)})
        self.httpd = _HTTPServer(("127.0.0.1", 0), handler)
        context = ssl_context(web) if web is not None else None
        if context is not None:
            self.httpd.socket = tls_listener(self.httpd.socket, context)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="test-web-server")
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.thread.join()
        self.httpd.server_close()


@pytest.fixture
def serve():
    started: list[TestServer] = []

    def start(web: WebConfigFile | None) -> TestServer:
        server = TestServer(web)
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


def client_context(pki: Path, cert: str | None = None, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if cert is not None:
        context.load_cert_chain(str(pki / f"{cert}.crt"), str(pki / f"{cert}.key"))
    if maximum is not None:
        context.maximum_version = maximum
    return context


@pytest.fixture
def secured(folder: Path, alice_hash: str) -> WebConfigFile:
    return load_web_config(
        write(
            folder,
            f"""\
tls_server_config:
  cert_file: server.crt
  key_file: server.key
basic_auth_users:
  alice: {alice_hash}
http_server_config:
  headers:
    X-Frame-Options: deny
    X-Content-Type-Options: nosniff
""",
        )
    )


# -- TLS and basic auth over real connections ----------------------------------------------------


def test_tls_with_basic_auth(serve, secured: WebConfigFile, pki: Path) -> None:
    server = serve(secured)
    tls = client_context(pki)

    status, headers, body = request(server.port, headers=basic_auth("alice", PASSWORD), context=tls)
    assert (status, body) == (200, b"metrics\n")
    assert headers["X-Frame-Options"] == "deny" and headers["X-Content-Type-Options"] == "nosniff"

    for credentials in (basic_auth("alice", "wrong"), basic_auth("mallory", PASSWORD), {}, {"Authorization": "Basic !!!"},
                        {"Authorization": "Bearer abc"}):
        status, headers, body = request(server.port, headers=credentials, context=tls)
        assert (status, body) == (401, b"unauthorized\n"), credentials
        assert headers["WWW-Authenticate"] == 'Basic realm="twitchminert"'
        assert headers["X-Frame-Options"] == "deny"  # the config's headers go on every answer

    assert request(server.port, "/-/healthy", context=tls)[:3:2] == (200, b"OK\n")  # exempt
    assert request(server.port, "/nope", context=tls)[0] == 401  # no probing for routes without a password
    assert request(server.port, "/nope", headers=basic_auth("alice", PASSWORD), context=tls)[0] == 404


def test_plain_http_to_the_tls_port_fails_and_tls_still_works(serve, secured: WebConfigFile, pki: Path) -> None:
    server = serve(secured)
    with pytest.raises((http.client.HTTPException, OSError)):
        request(server.port, "/-/healthy")
    assert request(server.port, "/-/healthy", context=client_context(pki))[0] == 200


def test_a_silent_client_does_not_block_the_accept_loop(serve, secured: WebConfigFile, pki: Path) -> None:
    server = serve(secured)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10):  # connects, never says hello
        assert request(server.port, "/-/healthy", context=client_context(pki))[0] == 200


def test_min_version_tls13_refuses_a_tls12_client(serve, folder: Path, pki: Path) -> None:
    web = load_web_config(write(folder, TLS + "  min_version: TLS13\n"))
    server = serve(web)
    with pytest.raises(ssl.SSLError):
        request(server.port, "/-/healthy", context=client_context(pki, maximum=ssl.TLSVersion.TLSv1_2))
    assert request(server.port, "/-/healthy", context=client_context(pki))[0] == 200


def test_tls12_is_the_default_minimum(folder: Path) -> None:
    web = load_web_config(write(folder, "tls_server_config: {cert_file: server.crt, key_file: server.key}\n"))
    context = ssl_context(web)
    assert context is not None
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE
    assert ssl_context(load_web_config(write(folder, "basic_auth_users: {}\n", "plain.yml"))) is None


def test_client_certificates(serve, folder: Path, pki: Path) -> None:
    web = load_web_config(
        write(
            folder,
            """\
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
""",
        )
    )
    server = serve(web)
    assert request(server.port, "/metrics", context=client_context(pki, cert="client"))[0] == 200
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
        request(server.port, "/metrics", context=client_context(pki))
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
        request(server.port, "/metrics", context=client_context(pki, cert="other"))  # not signed by the CA


# -- cross-site POSTs over real HTTP -------------------------------------------------------------


def test_cross_site_posts_are_refused_even_without_a_web_config(serve) -> None:
    server = serve(None)
    host = f"127.0.0.1:{server.port}"
    assert request(server.port, "/-/reload", method="POST")[:3:2] == (200, b"reloaded\n")  # curl
    assert request(server.port, "/-/reload", {"Origin": f"http://{host}"}, "POST")[0] == 200
    evil = {"Origin": "http://evil.example"}
    status, headers, body = request(server.port, "/-/reload", evil, "POST", body=b"x" * 100)
    assert (status, body) == (403, b"cross-site request refused\n")
    assert headers["Connection"] == "close"
    assert request(server.port, "/-/reload", {"Sec-Fetch-Site": "cross-site"}, "POST")[0] == 403
    assert request(server.port, "/metrics", {"Origin": "http://evil.example"})[0] == 200  # GET is not a POST


def test_a_cross_site_post_with_valid_credentials_is_refused(serve, secured: WebConfigFile, pki: Path) -> None:
    server = serve(secured)
    tls = client_context(pki)
    headers = {**basic_auth("alice", PASSWORD), "Origin": "https://evil.example"}
    assert request(server.port, "/-/reload", headers, "POST", context=tls)[0] == 403
    headers["Origin"] = f"https://127.0.0.1:{server.port}"
    assert request(server.port, "/-/reload", headers, "POST", context=tls)[0] == 200
    assert request(server.port, "/-/reload", {"Origin": headers["Origin"]}, "POST", context=tls)[0] == 401


# -- the authenticator ---------------------------------------------------------------------------


@pytest.mark.slow
def test_unknown_users_and_wrong_passwords_take_the_same_time(alice_hash: str) -> None:
    authenticator = Authenticator({"alice": alice_hash.encode(), "bob": alice_hash.encode()})
    wrong, unknown = [], []
    for attempt in range(10):  # interleaved, so a change in machine load hits both alike
        for user, times in (("alice", wrong), (f"mallory{attempt}", unknown)):
            header = basic_auth(user, f"guess{attempt}")["Authorization"]
            start = time.perf_counter()
            assert authenticator.check(header) is False
            times.append(time.perf_counter() - start)
    ratio = statistics.median(unknown) / statistics.median(wrong)
    assert 0.7 <= ratio <= 1.3, f"unknown {statistics.median(unknown):.4f}s vs wrong {statistics.median(wrong):.4f}s"


def test_a_verified_header_is_cached_for_a_while(alice_hash: str) -> None:
    now = [1000.0]
    authenticator = Authenticator({"alice": alice_hash.encode()}, cache_seconds=60, clock=lambda: now[0])
    header = basic_auth("alice", PASSWORD)["Authorization"]

    def timed() -> float:
        start = time.perf_counter()
        assert authenticator.check(header) is True
        return time.perf_counter() - start

    first = timed()  # bcrypt
    cached = timed()
    now[0] += 61
    expired = timed()  # bcrypt again
    assert cached < first / 10 and cached < expired / 10, (first, cached, expired)
    assert authenticator.check(basic_auth("alice", "wrong")["Authorization"]) is False


def test_passwords_are_read_as_bcrypt_does() -> None:
    long_password = "x" * 100  # bcrypt uses 72 bytes; htpasswd and Go truncate the same way
    hashed = bcrypt.hashpw(long_password[:72].encode(), bcrypt.gensalt(4))
    authenticator = Authenticator({"carol": hashed})
    assert authenticator.check(basic_auth("carol", long_password)["Authorization"]) is True
    assert authenticator.check(basic_auth("carol", "a\x00b")["Authorization"]) is False
    assert authenticator.check(basic_auth("carol:x", long_password)["Authorization"]) is False


def test_the_authenticator_refuses_a_hash_that_is_not_bcrypt() -> None:
    with pytest.raises(ValueError, match=r"^user 'dave': not a bcrypt hash"):
        Authenticator({"dave": b"plain-password"})


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("Basic " + b64encode(b"alice:pw").decode(), (b"alice", b"pw")),
        ("basic  " + b64encode(b"alice:pw:with:colons").decode(), (b"alice", b"pw:with:colons")),
        ("Basic " + b64encode(b":").decode(), (b"", b"")),
        ("Basic " + b64encode(b"no-colon").decode(), None),
        ("Basic not*base64", None),
        ("Bearer " + b64encode(b"alice:pw").decode(), None),
        ("Basic", None),
    ],
)
def test_parse_basic(header, expected) -> None:
    assert parse_basic(header) == expected


# -- same_origin ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "host", "allowed"),
    [
        ({}, "127.0.0.1:9797", True),  # curl, promtool
        ({}, None, True),
        ({"Origin": "http://127.0.0.1:9797"}, "127.0.0.1:9797", True),
        ({"origin": "http://127.0.0.1:9797"}, "127.0.0.1:9797", True),  # header names in any case
        ({"Origin": "https://Exporter.LAN"}, "exporter.lan:443", True),  # default ports, host case
        ({"Origin": "http://exporter.lan"}, "exporter.lan", True),
        ({"Origin": "http://[::1]:9797"}, "[::1]:9797", True),
        ({"Origin": "http://127.0.0.1:9797"}, "127.0.0.1:9798", False),  # another port is another origin
        ({"Origin": "http://localhost:9797"}, "127.0.0.1:9797", False),
        ({"Origin": "https://evil.example"}, "127.0.0.1:9797", False),
        ({"Origin": "null"}, "127.0.0.1:9797", False),  # sandboxed frames, file:// pages
        ({"Origin": "http://127.0.0.1:9797"}, None, False),  # nothing to compare with
        ({"Origin": "http://127.0.0.1:bad"}, "127.0.0.1:bad", False),
        ({"Referer": "http://127.0.0.1:9797/some/page?x=1"}, "127.0.0.1:9797", True),
        ({"Referer": "https://evil.example/page"}, "127.0.0.1:9797", False),
        ({"Origin": "http://127.0.0.1:9797", "Referer": "https://evil.example/"}, "127.0.0.1:9797", True),
        ({"Sec-Fetch-Site": "cross-site"}, "127.0.0.1:9797", False),
        ({"Sec-Fetch-Site": "Cross-Site", "Origin": "http://127.0.0.1:9797"}, "127.0.0.1:9797", False),
        ({"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:9797"}, "127.0.0.1:9797", True),
        ({"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:3000"}, "127.0.0.1:9797", False),
        ({"Sec-Fetch-Site": "none"}, "127.0.0.1:9797", True),  # typed into the address bar
    ],
)
def test_same_origin(headers, host, allowed) -> None:
    assert same_origin(headers, host) is allowed


def test_gate_without_users_checks_only_cross_site_posts() -> None:
    gate = Gate()
    assert gate.check("GET", "/metrics", {}) is None
    assert gate.check("POST", "/-/restart", {"Host": "h:1", "Origin": "http://h:1"}) is None
    assert gate.check("POST", "/-/restart", {"Host": "h:1", "Origin": "http://x:1"}) is CROSS_SITE
    assert Gate(Authenticator({})).check("GET", "/metrics", {}) is UNAUTHORIZED


# -- loading the file ----------------------------------------------------------------------------


def test_a_full_config_loads_with_paths_relative_to_its_folder(folder: Path, alice_hash: str, monkeypatch) -> None:
    write(
        folder,
        f"""\
tls_server_config:
  cert_file: server.crt
  key_file: {folder / "server.key"}
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
  min_version: TLS13
  max_version: TLS13
http_server_config:
  http2: false
  headers:
    Strict-Transport-Security: max-age=31536000
    X-XSS-Protection: ""
basic_auth_users:
  alice: {alice_hash}
""",
    )
    monkeypatch.chdir(folder.parent)  # a relative config path, read from elsewhere
    web = load_web_config(Path(folder.name) / "web.yml")
    assert web.tls is not None
    assert web.tls.cert_file == folder / "server.crt"
    assert web.tls.key_file == folder / "server.key"
    assert web.tls.client_ca_file == folder / "ca.crt"
    assert (web.tls.client_auth_type, web.tls.min_version, web.tls.max_version) == (
        "RequireAndVerifyClientCert", "TLS13", "TLS13",
    )
    assert dict(web.headers) == {"Strict-Transport-Security": "max-age=31536000"}  # blank means unset
    assert dict(web.users) == {"alice": alice_hash.encode()}
    assert alice_hash not in repr(web)
    context = ssl_context(web)
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3


EMPTY = ["", "# nothing\n", "tls_server_config:\nbasic_auth_users:\nhttp_server_config:\n", "tls_server_config: {}\n"]


@pytest.mark.parametrize("text", EMPTY)
def test_an_empty_config_changes_nothing(folder: Path, text: str) -> None:
    web = load_web_config(write(folder, text))
    assert (web.tls, dict(web.users), dict(web.headers)) == (None, {}, {})
    assert Gate.from_config(web).authenticator is None


VALID_HASH = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"
BCRYPT_HELP = (
    "not a bcrypt hash (expected $2a$, $2b$ or $2y$, a cost from 04 to 31 and 53 more characters;"
    " make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n')"
)
SUPPORTED_AUTH = "(use RequireAndVerifyClientCert with client_ca_file, or NoClientCert)"
HEADERS = "Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options, X-XSS-Protection, " \
    "Content-Security-Policy"

ERRORS = [
    (
        "tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n",
        "web.yml:2: tls_server_config.cert_file: file not found: {dir}/missing.crt",
    ),
    (
        "tls_server_config:\n  cert_file: server.crt\n  key_file: /nonexistent/server.key\n",
        "web.yml:3: tls_server_config.key_file: file not found: /nonexistent/server.key",
    ),
    (
        "tls_server_config:\n  cert_file: .\n  key_file: server.key\n",
        "web.yml:2: tls_server_config.cert_file: not a file: {dir}",
    ),
    (
        "tls_server_config:\n  cert_file: server.crt\n",
        "web.yml:2: tls_server_config: missing key_file",
    ),
    (
        "tls_server_config:\n  cert_file: 12\n  key_file: server.key\n",
        "web.yml:2: tls_server_config.cert_file: expected a file name, got 12",
    ),
    (
        "tls_server_config:\n  cert_file: junk.pem\n  key_file: server.key\n",
        "web.yml:2: tls_server_config.cert_file: not a PEM certificate: {dir}/junk.pem",
    ),
    (
        "tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n",
        "web.yml:3: tls_server_config.key_file: does not match cert_file: {dir}/other.key",
    ),
    (
        "tls_server_config:\n  cert_file: server.crt\n  key_file: junk.pem\n",
        "web.yml:3: tls_server_config.key_file: not a PEM private key: {dir}/junk.pem",
    ),
    (
        "tls_server_config:\n  cert_file: server.crt\n  key_file: encrypted.key\n",
        "web.yml:3: tls_server_config.key_file: encrypted private keys are not supported: {dir}/encrypted.key",
    ),
    (
        TLS + "  min_version: TLS11\n",
        "web.yml:4: tls_server_config.min_version: expected one of TLS12, TLS13, got 'TLS11'",
    ),
    (
        TLS + "  min_version: TLS13\n  max_version: TLS12\n",
        "web.yml:5: tls_server_config.max_version: TLS12 is lower than min_version",
    ),
    (
        TLS + "  client_auth_type: RequireAnyClientCert\n",
        f"web.yml:4: tls_server_config.client_auth_type: RequireAnyClientCert is not supported {SUPPORTED_AUTH}",
    ),
    (
        TLS + "  client_auth_type: Sure\n",
        "web.yml:4: tls_server_config.client_auth_type: expected one of NoClientCert, RequireAndVerifyClientCert,"
        " got 'Sure'",
    ),
    (
        TLS + "  client_auth_type: RequireAndVerifyClientCert\n",
        "web.yml:2: tls_server_config: client_auth_type RequireAndVerifyClientCert needs client_ca_file",
    ),
    (
        TLS + "  client_ca_file: ca.crt\n",
        "web.yml:4: tls_server_config.client_ca_file: set, but client_auth_type is not RequireAndVerifyClientCert",
    ),
    (
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: junk.pem\n",
        "web.yml:5: tls_server_config.client_ca_file: not a PEM certificate: {dir}/junk.pem",
    ),
    (
        TLS + "  client_allowed_sans: [a]\n",
        "web.yml:4: tls_server_config.client_allowed_sans: not supported by twitchminert",
    ),
    (
        "tls_server_config:\n  cert: '-----BEGIN CERTIFICATE-----'\n  key_file: server.key\n",
        "web.yml:2: tls_server_config.cert: inline certificates are not supported; use cert_file\n"
        "web.yml:2: tls_server_config: missing cert_file",
    ),
    (
        TLS + "  certfile: x\n",
        "web.yml:4: tls_server_config.certfile: unknown key (expected one of cert_file, key_file, "
        "client_auth_type, client_ca_file, min_version, max_version)",
    ),
    (
        "tls_server_config: server.crt\n",
        "web.yml:1: tls_server_config: expected a mapping, got 'server.crt'",
    ),
    (
        "tls_server_confg:\n  cert_file: server.crt\n",
        "web.yml:1: tls_server_confg: unknown key (expected one of tls_server_config, http_server_config,"
        " basic_auth_users)",
    ),
    (
        "rate_limit: {interval: 1s, burst: 5}\n",
        "web.yml:1: rate_limit: not supported by twitchminert",
    ),
    (
        "- a list\n",
        "web.yml:1: (top): expected a mapping, got ['a list']",
    ),
    (
        "basic_auth_users:\n  alice: hunter2\n",
        f"web.yml:2: basic_auth_users.alice: {BCRYPT_HELP}",
    ),
    (
        "basic_auth_users:\n  alice: $2y$03$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\n",
        f"web.yml:2: basic_auth_users.alice: {BCRYPT_HELP}",
    ),
    (
        "basic_auth_users:\n  alice: $2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeS\n",  # one short
        f"web.yml:2: basic_auth_users.alice: {BCRYPT_HELP}",
    ),
    (
        "basic_auth_users:\n  alice: 12345\n  bob:\n",
        "web.yml:2: basic_auth_users.alice: expected a bcrypt hash, got int\n"
        "web.yml:3: basic_auth_users.bob: expected a bcrypt hash, got nothing",
    ),
    (
        f"basic_auth_users:\n  'al:ice': {VALID_HASH}\n  '': {VALID_HASH}\n",
        "web.yml:2: basic_auth_users.al:ice: a user name cannot contain ':' or control characters\n"
        "web.yml:3: basic_auth_users.: a user name cannot be empty",
    ),
    (
        f"basic_auth_users:\n  alice: {VALID_HASH}\n  alice: {VALID_HASH}\n",
        "web.yml:3: basic_auth_users.alice: duplicate key",
    ),
    (
        "basic_auth_users: [alice]\n",
        "web.yml:1: basic_auth_users: expected a mapping, got ['alice']",
    ),
    (
        "http_server_config:\n  headers:\n    X-Powered-By: me\n    X-Frame-Options: allow\n"
        "    Content-Security-Policy: \"a\\nb\"\n",
        f"web.yml:3: http_server_config.headers.X-Powered-By: this header cannot be set (expected one of {HEADERS})\n"
        "web.yml:4: http_server_config.headers.X-Frame-Options: expected one of deny, sameorigin, got 'allow'\n"
        "web.yml:5: http_server_config.headers.Content-Security-Policy: cannot contain control characters",
    ),
    (
        "http_server_config:\n  http2: maybe\n  gzip: true\n",
        "web.yml:2: http_server_config.http2: expected true or false, got 'maybe'\n"
        "web.yml:3: http_server_config.gzip: unknown key (expected one of http2, headers)",
    ),
    (
        "tls_server_config: [\n",
        "web.yml:2: invalid YAML: expected the node content, but found '<stream end>'",
    ),
]


@pytest.mark.parametrize(("text", "expected"), ERRORS, ids=[f"error{i}" for i in range(len(ERRORS))])
def test_errors_name_the_file_line_and_key(folder: Path, text: str, expected: str) -> None:
    with pytest.raises(WebConfigError) as caught:
        load_web_config(write(folder, text))
    assert str(caught.value) == expected.format(dir=folder)


def test_every_error_is_reported_at_once(folder: Path) -> None:
    text = "tls_server_config:\n  cert_file: a.crt\n  key_file: b.key\nbasic_auth_users:\n  alice: hunter2\nextra: 1\n"
    with pytest.raises(WebConfigError) as caught:
        load_web_config(write(folder, text))
    assert str(caught.value).splitlines() == [
        f"web.yml:2: tls_server_config.cert_file: file not found: {folder}/a.crt",
        f"web.yml:3: tls_server_config.key_file: file not found: {folder}/b.key",
        f"web.yml:5: basic_auth_users.alice: {BCRYPT_HELP}",
        "web.yml:6: extra: unknown key (expected one of tls_server_config, http_server_config, basic_auth_users)",
    ]
    assert "hunter2" not in str(caught.value)  # a plain password put where the hash goes is never echoed


def test_a_missing_web_config_file(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError) as caught:
        load_web_config(tmp_path / "web.yml")
    assert str(caught.value) == f"web.yml: file not found: {tmp_path / 'web.yml'}"


def test_ssl_context_reports_files_that_changed_after_loading(folder: Path) -> None:
    web = load_web_config(write(folder, "tls_server_config: {cert_file: server.crt, key_file: server.key}\n"))
    (folder / "server.key").write_text("gone\n")
    with pytest.raises(WebConfigError) as caught:
        ssl_context(web)
    assert str(caught.value) == f"web.yml: tls_server_config.key_file: not a PEM private key: {folder}/server.key"
