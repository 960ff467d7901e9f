"""Opt-in token lifetime check: Twitch's `GET /oauth2/validate` with the jar's auth-token, at most hourly.

The token is read from the jar for each check, sent only in the Authorization header (never across a
redirect), and never appears in a result, an error text or a log line.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .cookies import read_auth_token

if TYPE_CHECKING:
    from .config import Config

DEFAULT_BASE_URL = "https://id.twitch.tv"
TDM_CLIENT_ID = "kd1unb4b3q4t58fwlpcbzcbnm76a8fp"  # TDM's ANDROID_APP; another id makes TDM delete the jar
MAX_ANSWER_BYTES = 64 * 1024
TOKEN_SHAPE = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no space: anything else cannot be a header value


@dataclass(frozen=True, slots=True)
class ValidationResult:
    status: str  # "valid" | "invalid" (401) | "error"
    expires_at: float | None = None  # POSIX seconds; None when Twitch reports no expiry
    client_id: str | None = None
    user_id: str | None = None
    error: str | None = None  # one line, never the token


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib would copy the Authorization header to wherever a redirect points."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's signature
        return None  # the 3xx then surfaces as an HTTPError


_OPENER = urllib.request.build_opener(_NoRedirect)


def validate_token(token: str, base_url: str = DEFAULT_BASE_URL, timeout: float = 10.0) -> ValidationResult:
    """Ask Twitch about `token`: 200 → valid (with its expiry), 401 → invalid, anything else → error."""
    if not TOKEN_SHAPE.fullmatch(token):
        return ValidationResult("error", error="the auth-token has characters a header cannot carry")
    url = base_url.rstrip("/") + "/oauth2/validate"
    request = urllib.request.Request(url, headers={"Authorization": f"OAuth {token}"})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            body = response.read(MAX_ANSWER_BYTES)
    except urllib.error.HTTPError as error:
        error.close()
        if error.code == 401:
            return ValidationResult("invalid", error=f"{url}: HTTP 401 (Twitch no longer accepts the token)")
        return ValidationResult("error", error=f"{url}: HTTP {error.code}")
    except urllib.error.URLError as error:
        return ValidationResult("error", error=_clean(f"{url}: {error.reason}", token))
    except Exception as error:  # timeouts, resets, bad URLs; the text may quote the request, so only the type
        return ValidationResult("error", error=f"{url}: {type(error).__name__}")
    return _parse_answer(url, body, time.time())


def _parse_answer(url: str, body: bytes, now: float) -> ValidationResult:
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        return ValidationResult("error", error=f"{url}: HTTP 200 without a JSON object")
    expires_in = answer.get("expires_in")
    has_expiry = isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool) and expires_in > 0
    return ValidationResult(
        "valid",
        expires_at=now + expires_in if has_expiry else None,  # 0 or absent: a token that does not expire
        client_id=_text(answer.get("client_id")),
        user_id=_text(answer.get("user_id")),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _clean(text: str, token: str) -> str:
    return " ".join(text.replace(token, "<token>").split())[:300]


class SessionChecker:
    """Validates the jar's token immediately the first time, then at most once per `interval` seconds.

    No thread: the daemon calls `maybe_check()` from its own loop. `clock` only paces the checks
    (monotonic); the expiry in a result is wall-clock time.
    """

    def __init__(
        self,
        jar_path: Path,
        base_url: str = DEFAULT_BASE_URL,
        interval: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        validate: Callable[[str, str], ValidationResult] = validate_token,
    ) -> None:
        self.jar_path = jar_path
        self.base_url = base_url
        self.interval = interval
        self._clock = clock
        self._validate = validate
        self._last_check: float | None = None
        self.last: ValidationResult | None = None

    def due(self, now: float) -> bool:
        return self._last_check is None or now - self._last_check >= self.interval

    def maybe_check(self, now: float | None = None) -> ValidationResult | None:
        """A fresh result when a check was due (and is now done), else None."""
        now = self._clock() if now is None else now
        if not self.due(now):
            return None
        self._last_check = now
        token = read_auth_token(self.jar_path)
        if token is None:
            self.last = ValidationResult("error", error=f"no auth-token cookie in {self.jar_path}")
        else:
            self.last = self._validate(token, self.base_url)
        return self.last


def checker_for(config: Config) -> SessionChecker | None:
    """The token check `session.validate` asks for, on the supervised miner's jar (None: no check)."""
    session = config.session
    if not session.validate or config.miner.dir is None:
        return None
    return SessionChecker(config.miner.dir / "cookies.jar", session.validate_url, session.validate_interval)
