"""TDM's cookies.jar read as data: present, format, auth-token and its expiry, never the token itself.

aiohttp writes the jar as a pickle of `defaultdict(SimpleCookie)` up to 3.13 and as JSON from 3.14
(../shared/tdm/cookies_jar.md). Pickles are read only through `_JarUnpickler`, which admits the three
classes a jar is made of, maps them to inert dicts and refuses every other global, so a hostile file
cannot run code.
"""

from __future__ import annotations

import io
import json
import math
import pickle
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Iterator

from . import safefile

AUTH_COOKIE = "auth-token"
USER_ID_COOKIE = "persistent"  # TDM stores its user id here
TWITCH_DOMAINS = ("www.twitch.tv", "twitch.tv", ".twitch.tv")  # preference order; TDM's own is www (host-only)
MAX_JAR_BYTES = 1 << 20  # a real jar is about 1 KiB


@dataclass(frozen=True, slots=True)
class JarInfo:
    present: bool
    modified_time: float | None = None  # st_mtime
    format: str | None = None  # "pickle" | "json" | "empty" (no cookie at all) | "unreadable"; None when absent
    has_auth_token: bool = False
    auth_token_expiry: float | None = None  # POSIX seconds; None for TDM's session cookie, which has no expiry
    user_id: str | None = None  # TDM's user id (the `persistent` cookie); the caller decides whether to show it
    error: str | None = None  # one line, for an unreadable jar


@dataclass(frozen=True, slots=True)
class _Cookie:
    domain: str
    name: str
    value: str
    expiry: float | None


class JarError(Exception):
    """The jar exists but cannot be read; the message is one line and carries no cookie value."""


# --- pickle, restricted ------------------------------------------------------------------------


class _Inert(dict):
    """Stands in for an admitted class: a plain dict that ignores constructor arguments."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__()

    def __setstate__(self, state: object) -> None:  # BUILD never touches __dict__
        pass


class _Jar(_Inert):  # collections.defaultdict(SimpleCookie): (domain, path) -> cookies
    pass


class _SimpleCookie(_Inert):  # name -> Morsel
    pass


class _Morsel(_Inert):
    """Attributes (`expires`, `domain`, ...) arrive as dict items; key/value arrive as BUILD state."""

    value: object = None

    def __setstate__(self, state: object) -> None:
        if isinstance(state, dict):
            self.value = state.get("value")


_ADMITTED = {
    ("collections", "defaultdict"): _Jar,
    ("http.cookies", "SimpleCookie"): _SimpleCookie,
    ("http.cookies", "Morsel"): _Morsel,
}


class _JarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> type:
        try:
            return _ADMITTED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing global {module}.{name}") from None


def _pickle_cookies(data: bytes) -> Iterator[_Cookie]:
    try:
        jar = _JarUnpickler(io.BytesIO(data)).load()
    except RecursionError:
        raise JarError("invalid pickle: nested too deeply") from None
    except pickle.UnpicklingError as error:  # our refusal, or pickle's own one-line complaints
        raise JarError(f"invalid pickle: {error}") from None
    except Exception as error:  # a malformed stream raises almost anything; its text may quote data
        raise JarError(f"invalid pickle: {type(error).__name__}") from None
    if not isinstance(jar, dict):
        raise JarError(f"invalid pickle: expected a dict of cookies, got {type(jar).__name__}")
    for key, cookies in jar.items():
        if not (isinstance(key, tuple) and key and isinstance(key[0], str) and isinstance(cookies, dict)):
            continue
        for name, morsel in cookies.items():
            if isinstance(name, str) and isinstance(morsel, _Morsel) and isinstance(morsel.value, str):
                yield _Cookie(key[0], name, morsel.value, _rfc1123(morsel.get("expires")))


# --- JSON (aiohttp >= 3.14) --------------------------------------------------------------------


def _json_cookies(data: bytes) -> Iterator[_Cookie]:
    try:
        jar = json.loads(data)
    except json.JSONDecodeError as error:
        raise JarError(f"invalid JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    except UnicodeDecodeError:
        raise JarError("invalid JSON: not UTF-8") from None
    except RecursionError:  # `[[[[...` 200k deep: json's C parser gives up, so do we
        raise JarError("invalid JSON: nested too deeply") from None
    if not isinstance(jar, dict):
        raise JarError(f"invalid JSON: expected an object, got {type(jar).__name__}")
    for key, cookies in jar.items():
        if not isinstance(cookies, dict):
            continue
        domain = key.partition("|")[0]
        for name, fields in cookies.items():
            if isinstance(fields, dict) and isinstance(fields.get("value"), str):
                yield _Cookie(domain, name, fields["value"], _json_expiry(fields))


def _json_expiry(fields: dict) -> float | None:
    stamp = fields.get("expires_timestamp")  # 3.14.1+
    if isinstance(stamp, (int, float)) and not isinstance(stamp, bool):
        # JSON's 1e999 is infinity and NaN parses too: neither is a time (nor valid JSON in the status answer)
        return float(stamp) if math.isfinite(stamp) else None
    return _rfc1123(fields.get("expires"))  # 3.14.0


def _rfc1123(text: object) -> float | None:
    """`Fri, 22 Jan 2027 22:10:08 GMT` as POSIX seconds; None when empty or unparsable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:  # "-0000": UTC by RFC 5322
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


# --- reading -----------------------------------------------------------------------------------


def _load(path: Path) -> tuple[str, list[_Cookie]]:
    """(format, cookies); raises OSError, or JarError when the bytes are not a cookie jar."""
    data = safefile.read_regular(path, MAX_JAR_BYTES)  # a FIFO or device must not block housekeeping
    if data.startswith(b"\x80"):  # pickle protocol >= 2; aiohttp uses the highest
        fmt, cookies = "pickle", list(_pickle_cookies(data))
    elif data.lstrip()[:1] in (b"{", b"["):
        fmt, cookies = "json", list(_json_cookies(data))
    elif not data.strip():
        fmt, cookies = "empty", []
    else:
        raise JarError("neither a JSON nor a pickle cookie jar")
    return ("empty" if not cookies else fmt), cookies


def _twitch_cookie(cookies: list[_Cookie], name: str) -> _Cookie | None:
    """The non-empty cookie `name` for Twitch, TDM's own host-only one first."""
    for domain in TWITCH_DOMAINS:
        for cookie in cookies:
            if cookie.domain == domain and cookie.name == name and cookie.value:
                return cookie
    return None


def read_jar(path: Path) -> JarInfo:
    """What the jar says about the login; never raises for a missing or unreadable file."""
    try:
        modified_time = path.stat().st_mtime
    except (FileNotFoundError, NotADirectoryError):
        return JarInfo(present=False)
    except OSError as error:
        return JarInfo(present=False, format="unreadable", error=_one_line(f"cannot stat: {error.strerror}"))
    try:
        fmt, cookies = _load(path)
    except FileNotFoundError:  # removed between stat and open
        return JarInfo(present=False)
    except OSError as error:
        return JarInfo(True, modified_time, "unreadable", error=_one_line(f"cannot read: {safefile.describe(error)}"))
    except JarError as error:
        return JarInfo(True, modified_time, "unreadable", error=_one_line(str(error)))
    token = _twitch_cookie(cookies, AUTH_COOKIE)
    user = _twitch_cookie(cookies, USER_ID_COOKIE)
    return JarInfo(
        present=True,
        modified_time=modified_time,
        format=fmt,
        has_auth_token=token is not None,
        auth_token_expiry=token.expiry if token else None,
        user_id=user.value if user else None,
    )


def read_auth_token(path: Path) -> str | None:
    """The auth-token value, for the opt-in validation only. The caller must never log or show it."""
    try:
        _, cookies = _load(path)
    except (OSError, JarError):
        return None
    token = _twitch_cookie(cookies, AUTH_COOKIE)
    return token.value if token else None


def _one_line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]
