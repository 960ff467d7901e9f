"""Redaction of every secret shape in catalog section 4, checked on the real fixture run A."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.redaction import redact

from conftest import RUNS
HEADER = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})\.(\d{3,4}):\t *([A-Z]+):\t(.*)$")

TOKEN = "mockaccesstoken0123456789abcd"
SECRETS = (
    TOKEN,
    "DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD",  # device_code
    "0123456789abcdef0123456789abcdef",  # unique_id cookie, also sent as X-Device-Id
    "fedcba9876543210fedcba9876543210",  # server_session_id cookie
)


def messages(log: Path) -> list[str]:
    """The records of a log.txt: header line plus continuation lines."""
    records: list[list[str]] = []
    for line in log.read_text(encoding="utf-8").split("\n"):
        header = HEADER.match(line)
        if header:
            records.append([header[4]])
        elif records:
            records[-1].append(line)
    return ["\n".join(lines) for lines in records]


@pytest.mark.parametrize("name", ["log.txt", "gui_output.txt"])
def test_fixture_lines_lose_every_secret(name: str) -> None:
    text = (RUNS / "A_fresh_login_vvvv" / name).read_text(encoding="utf-8")
    assert all(secret in text for secret in SECRETS)  # the fixture really holds them
    redacted = "\n".join(redact(line) for line in text.split("\n"))
    for secret in SECRETS:
        assert secret not in redacted
    assert "'Authorization': 'OAuth <redacted>'" in redacted
    assert "'Set-Cookie': 'unique_id=<redacted>; Domain=.twitch.tv; Path=/;" in redacted
    assert "'device_code': '<redacted>'" in redacted
    assert "'grant_type': 'urn:ietf:params:oauth:grant-type:device_code'" in redacted


def test_fixture_records_lose_every_secret() -> None:
    for message in messages(RUNS / "A_fresh_login_vvvv" / "log.txt"):
        redacted = redact(message)
        assert not any(secret in redacted for secret in SECRETS)
        assert redacted.count("\n") == message.count("\n")


@pytest.mark.parametrize("run", sorted(path.name for path in RUNS.iterdir()))
def test_records_without_secrets_are_unchanged(run: str) -> None:
    for message in messages(RUNS / run / "log.txt"):
        if not message.startswith(("Request:", "Response:")):
            assert redact(message) == message


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "kwargs={'headers': {'Authorization': 'OAuth abc123'}}",
            "kwargs={'headers': {'Authorization': 'OAuth <redacted>'}}",
        ),
        (
            "'proxy': URL('http://user:secret@127.0.0.1:8080')})",
            "'proxy': URL('http://<redacted>@127.0.0.1:8080')})",
        ),
        ("socks5://u:p@proxy:1080", "socks5://<redacted>@proxy:1080"),
        (
            # --debug-ws LISTEN, catalog section 4
            "Websocket[0] sent: {'type': 'LISTEN', 'data': {'topics': "
            "['onsite-notifications.123', 'user-drop-events.123'], 'auth_token': 'tok3n'}, "
            "'nonce': 'n0nce'}",
            "Websocket[0] sent: {'type': 'LISTEN', 'data': {'topics': "
            "['onsite-notifications.123', 'user-drop-events.123'], 'auth_token': '<redacted>'}, "
            "'nonce': 'n0nce'}",
        ),
        (
            "kwargs={'data': {'client_id': 'c', 'token': 'tok3n'}}",
            "kwargs={'data': {'client_id': 'c', 'token': '<redacted>'}}",
        ),
        (
            "{'access_token': 'a1', 'refresh_token': 'r1', 'device_code': 'd1'}",
            "{'access_token': '<redacted>', 'refresh_token': '<redacted>', "
            "'device_code': '<redacted>'}",
        ),
        ('{"access_token": "a1"}', '{"access_token": "<redacted>"}'),
        (
            "'Set-Cookie': 'auth-token=tok3n; Domain=.twitch.tv; Path=/; Secure'",
            "'Set-Cookie': 'auth-token=<redacted>; Domain=.twitch.tv; Path=/; Secure'",
        ),
        ("'set-cookie': 'sid=abc; HttpOnly'", "'set-cookie': 'sid=<redacted>; HttpOnly'"),
        ("<Morsel: auth-token=tok3n>", "<Morsel: auth-token=<redacted>>"),
        ("'X-Device-Id': 'feedface'", "'X-Device-Id': '<redacted>'"),
        ("BasicAuth(login='u', password='p4ss')", "BasicAuth(login='u', password='<redacted>')"),
        # a repr of the whole message escapes the inner quotes once more
        (r"'DEBUG: {\'token\': \'tok3n\'}'", r"'DEBUG: {\'token\': \'<redacted>\'}'"),
    ],
)
def test_shapes(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(expected) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Checking login",
        "Drop update from websocket: Token Drop (Game, 3/10)",
        "Request: (method='POST', url='https://id.twitch.tv/oauth2/token', kwargs={})",
        "mail me at someone@example.com",
        "'token': ''",
    ],
)
def test_harmless_text_is_kept(text: str) -> None:
    assert redact(text) == text


@given(st.text())
def test_never_raises_and_is_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


@given(st.text(alphabet=st.characters(blacklist_characters="'\"\\"), min_size=1), st.text())
def test_any_auth_token_value_is_hidden(value: str, around: str) -> None:
    redacted = redact(f"{around}'auth_token': '{value}'{around}")
    assert "'auth_token': '<redacted>'" in redacted
