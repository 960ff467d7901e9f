"""Token validation against a real local HTTP server, and the hourly pacing with an injected clock."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from exporter.session_check import TDM_CLIENT_ID, SessionChecker, ValidationResult, validate_token

from conftest import FIXTURES, MOCK_TOKEN

REAL_JAR = FIXTURES / "cookies" / "cookies-3.14.5-written-by-TDM-run.jar"


@dataclass
class FakeTwitch:
    """What the server answers next, and what it saw."""

    url: str = ""
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    seen: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Authorization)

    def answer(self, status: int, payload: object = None, **headers: str) -> None:
        self.status, self.headers = status, headers
        self.body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()


@pytest.fixture
def twitch():
    fake = FakeTwitch()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake.seen.append((self.path, self.headers.get("Authorization")))
            self.send_response(fake.status)
            for name, value in {"Content-Type": "application/json", **fake.headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(fake.body)))
            self.end_headers()
            self.wfile.write(fake.body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-twitch")
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def assert_no_token(result: ValidationResult | None, token: str = MOCK_TOKEN) -> None:
    assert result is not None
    assert token not in repr(result)
    assert all(token not in str(getattr(result, name)) for name in result.__slots__)


def validate_answer(expires_in: int = 5_184_000) -> dict:
    return {"client_id": TDM_CLIENT_ID, "login": "miner", "scopes": [], "user_id": "123456789", "expires_in": expires_in}


def test_valid_token(twitch: FakeTwitch):
    twitch.answer(200, validate_answer(5_184_000))
    before = time.time()

    result = validate_token(MOCK_TOKEN, twitch.url)

    after = time.time()
    assert twitch.seen == [("/oauth2/validate", f"OAuth {MOCK_TOKEN}")]
    assert (result.status, result.client_id, result.user_id, result.error) == ("valid", TDM_CLIENT_ID, "123456789", None)
    assert before + 5_184_000 <= result.expires_at <= after + 5_184_000
    assert_no_token(result)


def test_valid_token_without_expiry(twitch: FakeTwitch):
    twitch.answer(200, validate_answer(expires_in=0))  # what Twitch reports for a token that does not expire

    result = validate_token(MOCK_TOKEN, twitch.url + "/")

    assert (result.status, result.expires_at) == ("valid", None)
    assert twitch.seen[0][0] == "/oauth2/validate"


def test_rejected_token(twitch: FakeTwitch):
    twitch.answer(401, {"status": 401, "message": "invalid access token"})

    result = validate_token(MOCK_TOKEN, twitch.url)

    assert (result.status, result.expires_at) == ("invalid", None)
    assert "401" in result.error
    assert_no_token(result)


@pytest.mark.parametrize(
    "status, payload",
    [(500, {"message": "oops"}), (200, b"<html>not json</html>"), (200, b"[1]"), (404, b"")],
    ids=["500", "html", "not-an-object", "404"],
)
def test_server_trouble_is_an_error(twitch: FakeTwitch, status: int, payload: object):
    twitch.answer(status, payload)

    result = validate_token(MOCK_TOKEN, twitch.url)

    assert result.status == "error"
    assert result.error and "\n" not in result.error and str(status) in result.error
    assert_no_token(result)


def test_redirect_is_not_followed_with_the_token(twitch: FakeTwitch):
    twitch.answer(302, b"", Location=twitch.url + "/elsewhere")

    result = validate_token(MOCK_TOKEN, twitch.url)

    assert (result.status, result.error) == ("error", f"{twitch.url}/oauth2/validate: HTTP 302")
    assert [path for path, _ in twitch.seen] == ["/oauth2/validate"]


def test_connection_refused():
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    result = validate_token(MOCK_TOKEN, f"http://127.0.0.1:{port}", timeout=2)

    assert result.status == "error"
    assert "Connection refused" in result.error
    assert_no_token(result)


@pytest.mark.parametrize("token", [MOCK_TOKEN + "\r\nX-Injected: 1", MOCK_TOKEN + " spaced", ""], ids=["crlf", "space", "empty"])
def test_token_that_cannot_be_a_header_is_not_sent(twitch: FakeTwitch, token: str):
    result = validate_token(token, twitch.url)

    assert result.status == "error" and twitch.seen == []
    assert_no_token(result)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def jar(tmp_path: Path) -> Path:
    path = tmp_path / "cookies.jar"
    shutil.copy(REAL_JAR, path)
    return path


def test_checker_checks_at_once_then_at_most_once_per_interval(twitch: FakeTwitch, jar: Path):
    twitch.answer(200, validate_answer())
    clock = Clock()
    checker = SessionChecker(jar, twitch.url, interval=3600, clock=clock)
    assert checker.last is None

    first = checker.maybe_check()
    assert first is not None and first.status == "valid" and checker.last is first
    assert len(twitch.seen) == 1

    for later in (1, 600, 3599.9):
        clock.now = 1000 + later
        assert checker.maybe_check() is None
    assert len(twitch.seen) == 1 and checker.last is first

    clock.now = 1000 + 3600
    second = checker.maybe_check()
    assert second is not None and second is not first and checker.last is second
    assert len(twitch.seen) == 2
    assert checker.maybe_check(now=1000 + 3601) is None  # `now` may also be passed in


def test_checker_reads_the_jar_at_each_check(twitch: FakeTwitch, jar: Path):
    twitch.answer(401, {"status": 401, "message": "invalid access token"})
    checker = SessionChecker(jar, twitch.url, interval=3600, clock=Clock())

    assert checker.maybe_check(now=0).status == "invalid"
    jar.write_text(jar.read_text().replace(MOCK_TOKEN, "freshlyloggedintoken0123456789"))
    twitch.answer(200, validate_answer())
    assert checker.maybe_check(now=3600).status == "valid"

    assert [auth for _, auth in twitch.seen] == [f"OAuth {MOCK_TOKEN}", "OAuth freshlyloggedintoken0123456789"]
    assert_no_token(checker.last, "freshlyloggedintoken0123456789")


def test_checker_without_a_token_does_not_call_twitch(twitch: FakeTwitch, tmp_path: Path):
    checker = SessionChecker(tmp_path / "cookies.jar", twitch.url, clock=Clock())

    result = checker.maybe_check()

    assert result is not None and result.status == "error" and "no auth-token" in result.error
    assert twitch.seen == []


def test_checker_with_an_injected_validator(jar: Path):
    calls: list[tuple[str, str]] = []

    def validate(token: str, base_url: str) -> ValidationResult:
        calls.append((token, base_url))
        return ValidationResult("valid", expires_at=123.0)

    checker = SessionChecker(jar, "http://validate.invalid", interval=10, clock=Clock(), validate=validate)

    assert checker.maybe_check(now=5) == ValidationResult("valid", expires_at=123.0)
    assert checker.maybe_check(now=14) is None
    assert calls == [(MOCK_TOKEN, "http://validate.invalid")]
