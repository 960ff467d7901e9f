"""The cookies.jar reader on every fixture jar, on broken files, and against a hostile pickle."""

from __future__ import annotations

import json
import os
import pickle
import shlex
from collections import defaultdict
from http.cookies import SimpleCookie
from pathlib import Path

import pytest

from exporter.cookies import JarInfo, read_auth_token, read_jar

from conftest import FIXTURES, MOCK_TOKEN

JARS = FIXTURES / "cookies"
FAKE_TOKEN = "abcdefghijklmnopqrstuvwxyz0123"  # make_jar.py's token, in every jar but the real run's
EXPIRY = 1800655808.0  # Fri, 22 Jan 2027 22:10:08 GMT, the 3.9.5 pickle's `expires`

# jar -> (format, auth-token expiry, token); every fixture jar has an auth-token and persistent=123456789
EXPECTED = {
    "cookies-3.9.5.jar": ("pickle", EXPIRY, FAKE_TOKEN),
    "cookies-3.12.15-tdmflow.jar": ("pickle", None, FAKE_TOKEN),  # TDM's own session cookie: no expiry
    "cookies-3.14.5.jar": ("json", 1800655811.0656679, FAKE_TOKEN),
    "cookies-3.14.5-written-by-TDM-run.jar": ("json", None, MOCK_TOKEN),
}


def assert_no_secret(info: JarInfo, token: str) -> None:
    assert token not in repr(info)
    assert token not in str(info.error)
    assert all(token not in str(value) for value in vars_of(info))


def vars_of(info: JarInfo) -> list[object]:
    return [getattr(info, name) for name in info.__slots__]


def write_json(path: Path, jar: dict) -> Path:
    path.write_text(json.dumps(jar))
    return path


def cookie(domain: str, name: str, value: str, **fields: object) -> dict:
    return {"key": name, "value": value, "coded_value": value, "path": "/", "domain": domain, **fields}


def test_every_fixture_jar_is_listed():
    assert sorted(p.name for p in JARS.glob("*.jar")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_jar(name: str):
    path = JARS / name
    fmt, expiry, token = EXPECTED[name]
    assert token.encode() in path.read_bytes()  # the token really is in the file, so the checks below mean something

    info = read_jar(path)

    assert info == JarInfo(
        present=True,
        modified_time=path.stat().st_mtime,
        format=fmt,
        has_auth_token=True,
        auth_token_expiry=expiry,
        user_id="123456789",
        error=None,
    )
    assert_no_secret(info, token)
    assert read_auth_token(path) == token


def test_real_run_jar_prefers_tdms_own_host_only_cookie(tmp_path: Path):
    jar = json.loads((JARS / "cookies-3.14.5-written-by-TDM-run.jar").read_text())
    jar["twitch.tv|"]["auth-token"] = cookie("twitch.tv", "auth-token", "someotherdomaintoken", expires_timestamp=2e9)
    path = write_json(tmp_path / "cookies.jar", jar)

    info = read_jar(path)

    assert read_auth_token(path) == MOCK_TOKEN
    assert info.has_auth_token and info.auth_token_expiry is None  # the www.twitch.tv one, not the twitch.tv one


def test_dotted_domain_and_3_14_0_expires_string(tmp_path: Path):
    path = write_json(
        tmp_path / "cookies.jar",
        {".twitch.tv|/": {"auth-token": cookie(".twitch.tv", "auth-token", "dottedtoken", expires="Fri, 22 Jan 2027 22:10:08 GMT", **{"max-age": "5184000"})}},
    )

    info = read_jar(path)

    assert (info.format, info.has_auth_token, info.auth_token_expiry, info.user_id) == ("json", True, EXPIRY, None)
    assert read_auth_token(path) == "dottedtoken"


def test_other_domains_and_empty_values_are_not_a_login(tmp_path: Path):
    path = write_json(
        tmp_path / "cookies.jar",
        {
            "evil.example|": {"auth-token": cookie("evil.example", "auth-token", "notourtoken")},
            "www.twitch.tv|": {"auth-token": cookie("www.twitch.tv", "auth-token", ""), "persistent": cookie("www.twitch.tv", "persistent", "42")},
        },
    )

    info = read_jar(path)

    assert (info.format, info.has_auth_token, info.auth_token_expiry, info.user_id) == ("json", False, None, "42")
    assert read_auth_token(path) is None


def test_pickle_made_here_with_the_real_classes(tmp_path: Path):
    """The same structure aiohttp 3.10-3.13 saves, pickled by this Python's own http.cookies."""
    jar: defaultdict = defaultdict(SimpleCookie)
    jar[("www.twitch.tv", "")]["auth-token"] = "localpickletoken"
    jar[("www.twitch.tv", "")]["persistent"] = "777"
    jar[("twitch.tv", "")]["unique_id"] = "u"
    jar[("twitch.tv", "")]["unique_id"]["expires"] = "Fri, 22 Jan 2027 22:10:08 GMT"
    path = tmp_path / "cookies.jar"
    path.write_bytes(pickle.dumps(jar, pickle.HIGHEST_PROTOCOL))

    info = read_jar(path)

    assert (info.format, info.has_auth_token, info.auth_token_expiry, info.user_id) == ("pickle", True, None, "777")
    assert read_auth_token(path) == "localpickletoken"
    assert_no_secret(info, "localpickletoken")


def test_missing_file(tmp_path: Path):
    assert read_jar(tmp_path / "cookies.jar") == JarInfo(present=False)
    assert read_auth_token(tmp_path / "cookies.jar") is None


@pytest.mark.parametrize(
    "content",
    [b"{}", b"{}\n", b"", pickle.dumps(defaultdict(SimpleCookie), pickle.HIGHEST_PROTOCOL)],
    ids=["json", "json-newline", "zero-bytes", "pickle"],
)
def test_empty_jar(tmp_path: Path, content: bytes):
    path = tmp_path / "cookies.jar"
    path.write_bytes(content)

    info = read_jar(path)

    assert info == JarInfo(present=True, modified_time=path.stat().st_mtime, format="empty")
    assert read_auth_token(path) is None


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x00\xff garbage \xfe\n more", "neither a JSON nor a pickle cookie jar"),
        (b"{ not json", "invalid JSON"),
        (b'["a", "list"]', "invalid JSON"),
        (b"\x80\x05garbage", "invalid pickle"),
        ((JARS / "cookies-3.14.5.jar").read_bytes()[:300], "invalid JSON"),
        ((JARS / "cookies-3.9.5.jar").read_bytes()[:480], "invalid pickle"),  # cut after the token
        (pickle.dumps([1, 2], pickle.HIGHEST_PROTOCOL), "invalid pickle: expected a dict"),
    ],
    ids=["garbage", "bad-json", "json-list", "bad-pickle", "truncated-json", "truncated-pickle", "pickle-list"],
)
def test_unreadable_jar_is_reported_not_raised(tmp_path: Path, content: bytes, message: str):
    path = tmp_path / "cookies.jar"
    path.write_bytes(content)

    info = read_jar(path)

    assert (info.present, info.format, info.has_auth_token) == (True, "unreadable", False)
    assert info.error is not None and message in info.error
    assert "\n" not in info.error and len(info.error) <= 200
    assert_no_secret(info, FAKE_TOKEN)
    assert read_auth_token(path) is None


def test_unreadable_file(tmp_path: Path):
    path = tmp_path / "cookies.jar"
    path.mkdir()  # fails to open even for root, unlike a chmod 0 file

    info = read_jar(path)

    assert (info.present, info.format) == (True, "unreadable")
    assert info.error == "cannot read: a directory, not a regular file"


class Exploit:
    """Pickles as `os.system("touch <marker>")`: plain pickle.loads would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def test_the_exploit_is_live(tmp_path: Path):
    """Control: the payload does run under plain pickle, so its refusal below is meaningful."""
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps(Exploit(marker), pickle.HIGHEST_PROTOCOL))
    assert marker.exists()


@pytest.mark.parametrize("where", ["top", "inside-a-jar"])
def test_malicious_pickle_is_refused_without_running(tmp_path: Path, where: str):
    marker = tmp_path / "pwned"
    payload: object = Exploit(marker)
    if where == "inside-a-jar":
        jar: defaultdict = defaultdict(SimpleCookie)
        jar[("www.twitch.tv", "")]["auth-token"] = "x"
        payload = {"jar": jar, "evil": payload}
    path = tmp_path / "cookies.jar"
    path.write_bytes(pickle.dumps(payload, pickle.HIGHEST_PROTOCOL))

    info = read_jar(path)
    token = read_auth_token(path)

    assert not marker.exists()
    assert info.format == "unreadable"
    assert info.error == f"invalid pickle: refusing global {os.system.__module__}.system"
    assert token is None
