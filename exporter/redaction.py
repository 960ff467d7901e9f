"""Redaction: blank out the secrets TDM writes into its log (catalog section 4).

It runs on every stored record, so a few substring tests decide whether any regex runs at all.
Each rule keeps the shape around the secret (key, cookie name, URL scheme) and replaces only the
value, so a redacted record still reads like the original and redacting twice changes nothing.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "<redacted>"

# A quote as it appears in a dict repr, possibly escaped once more by a repr of the whole message.
_Q = r"""\\?['"]"""

# 'Authorization': 'OAuth <token>' (every GQL request and the token validation).
_OAUTH = re.compile(r"(OAuth )[A-Za-z0-9._~+/=-]+")

# 'key': 'value' pairs whose value is a secret: access and refresh tokens, the websocket LISTEN
# 'auth_token', the revoke form's 'token', the device-flow 'device_code', the dead password flow's
# 'password', and 'X-Device-Id' (it repeats the unique_id cookie that identifies the device).
_SECRET_KEYS = (
    "access_token",
    "refresh_token",
    "auth_token",
    "token",
    "device_code",
    "password",
    "X-Device-Id",
)
_KEY_VALUE = re.compile(
    rf"({_Q}(?:{'|'.join(_SECRET_KEYS)}){_Q}\s*:\s*{_Q})[^'\"\\]+"
    # aiohttp's BasicAuth(login='user', password='pass') repr
    r"|(password=\\?['\"])[^'\"\\]+"
)

# Cookie values: 'Set-Cookie': 'name=value; Domain=...' keeps the name and the attributes,
# and TDM's own auth-token cookie wherever it shows up (jar or Morsel reprs). A value stops at
# "<" or ">" so that "<Morsel: auth-token=...>" keeps its bracket and "<redacted>" is left alone.
_COOKIE = re.compile(
    rf"((?:(?i:Set-Cookie){_Q}?:\s*{_Q}?[^=;'\"\s\\]+|\bauth-token)=)[^\s;,'\"\\<>]+"
)

# Credentials in a URL: URL('http://user:pass@host:port') from a proxy setting.
_URL_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s'\"\\]+(?=@)")

# (substrings that must occur for the rule to apply, rule); the substrings are the cheap prefilter.
_RULES: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    (("OAuth ",), _OAUTH),
    (("token", "device_code", "password", "Device-Id"), _KEY_VALUE),
    (("Set-Cookie", "set-cookie", "auth-token"), _COOKIE),
    (("@",), _URL_USERINFO),
)


def _keep_prefix(match: re.Match[str]) -> str:
    # each alternative captures exactly what it keeps in one group; the value is dropped
    return match[match.lastindex or 0] + REDACTED


def redact(text: str) -> str:
    """Return `text` with every known secret shape replaced by `<redacted>`."""
    for needles, rule in _RULES:
        for needle in needles:
            if needle in text:
                text = rule.sub(_keep_prefix, text)
                break
    return text


def redact_all(value: Any) -> Any:
    """`value` with every string in it (dict keys too) redacted: for structured data we store or serve."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_all(key): redact_all(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_all(item) for item in value]
    return value
