"""`--web.config.file` (or `web.config_file` in the YAML): TLS, basic auth and extra response headers, in the exporter-toolkit format.

The file format is Prometheus' (https://github.com/prometheus/exporter-toolkit, docs/web-configuration.md),
so one file can serve node_exporter and us. What we cannot honour is refused with a message rather
than ignored: a silently ignored `client_allowed_sans` would be a hole.

Supported:

    tls_server_config:
      cert_file: server.crt            # relative paths are relative to this file's folder
      key_file: server.key             # unencrypted PEM
      client_auth_type: RequireAndVerifyClientCert   # or NoClientCert (the default)
      client_ca_file: ca.crt           # required with RequireAndVerifyClientCert
      min_version: TLS12               # TLS12 (default) or TLS13
      max_version: TLS13               # TLS12 or TLS13 (default)
    http_server_config:
      http2: true                      # accepted and ignored: we speak HTTP/1.1
      headers: {X-Frame-Options: deny} # the five headers exporter-toolkit allows
    basic_auth_users:
      alice: $2y$10$...                # bcrypt hashes (htpasswd -nBC 10 "" | tr -d ':\\n')

The pieces the HTTP server uses: `ssl_context(config)` and `tls_listener(sock, context)` for TLS,
and a `Gate` that it asks about each request before routing (basic auth, cross-site POSTs).
The file is read once, at start-up or reload (exporter-toolkit re-reads it on every request).
The cross-site check compares Origin with Host, so it does not stop DNS rebinding (a hostile name
resolving to 127.0.0.1 is "same origin" with itself); basic auth does, as the browser holds no
password for that name.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import hmac
import re
import secrets
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import bcrypt

from . import safefile, yamlfile
from .errors import UserError

REALM = "twitchminert"
EXEMPT_PATHS = frozenset({"/-/healthy"})
CACHE_SECONDS = 60.0  # how long a verified Authorization header is trusted without bcrypt
CACHE_ENTRIES = 100
BCRYPT_MAX_PASSWORD = 72  # bcrypt reads only this many bytes; htpasswd and Go truncate the same way

TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
CLIENT_AUTH_TYPES = ("NoClientCert", "RequireAndVerifyClientCert")
_UNSUPPORTED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert", "VerifyClientCertIfGiven")
# exporter-toolkit's own list: only these headers, and for two of them only these values.
RESPONSE_HEADERS: Mapping[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}
# $2a$/$2b$/$2y$, a two-digit cost 04..31, a 22-character salt (whose last character carries only
# two bits, hence [.Oeu]) and a 31-character digest, all in bcrypt's base64 alphabet.
_BCRYPT = re.compile(rb"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{21}[.Oeu][./A-Za-z0-9]{31}")
_BCRYPT_HELP = (
    "not a bcrypt hash (expected $2a$, $2b$ or $2y$, a cost from 04 to 31 and 53 more characters;"
    " make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n')"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class WebConfigError(ValueError, UserError):
    """Every problem found, one per line: `web.yml:3: tls_server_config.cert_file: file not found: ...`."""


@dataclass(frozen=True)
class TLSServerConfig:
    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: str = "TLS12"
    max_version: str = "TLS13"


@dataclass(frozen=True)
class WebConfigFile:
    """The exporter-toolkit web config file named by `web.config_file` (config.WebConfig is that section)."""

    file: Path
    tls: TLSServerConfig | None = None  # None: plain HTTP
    users: Mapping[str, bytes] = field(default_factory=dict, repr=False)  # empty: no basic auth
    headers: Mapping[str, str] = field(default_factory=dict)  # added to every response


# -- loading -------------------------------------------------------------------------------------


class _Errors:
    def __init__(self, document: yamlfile.Document) -> None:
        self.document = document
        self.lines: list[tuple[int, str]] = []

    def fail(self, path: tuple, message: str, *, at_key: bool = False) -> None:
        """`at_key`: name the key's line (an unknown key), not its value's, which may start later."""
        line = self.document.key_line(path) if at_key else self.document.line(path)
        self.lines.append((line, f"{self.document.name}:{line}: {yamlfile.dotted(path)}: {message}"))

    def error(self) -> WebConfigError:
        """All of them, in the file's order."""
        return WebConfigError("\n".join(line for _, line in sorted(self.lines, key=lambda item: item[0])))


def _describe(value: Any) -> str:
    return "nothing" if value is None else repr(value)


def _mapping(value: Any, path: tuple, errors: _Errors) -> dict | None:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.fail(path, f"expected a mapping, got {_describe(value)}")
        return None
    return value


def _keys(section: dict, path: tuple, known: tuple[str, ...], unsupported: Mapping[str, str], errors: _Errors) -> None:
    for key in section:
        if key in unsupported:
            errors.fail(path + (key,), unsupported[key], at_key=True)
        elif key not in known:
            errors.fail(path + (key,), f"unknown key (expected one of {', '.join(known)})", at_key=True)


def load_web_config(path: Path | str) -> WebConfigFile:
    """Read and check the file, including that the certificate and key load; raise WebConfigError."""
    path = Path(path)
    try:
        document = yamlfile.load(path)
    except yamlfile.YamlError as error:
        raise WebConfigError(str(error)) from None
    return web_config_from(document, path.absolute().parent, path)


def web_config_from(document: yamlfile.Document, folder: Path, file: Path | None = None) -> WebConfigFile:
    errors = _Errors(document)
    top = _mapping(document.value, (), errors)
    if top is None:
        raise errors.error()
    _keys(
        top,
        (),
        ("tls_server_config", "http_server_config", "basic_auth_users"),
        {"rate_limit": "not supported by twitchminert"},
        errors,
    )
    tls = _tls(top.get("tls_server_config"), ("tls_server_config",), folder, errors)
    headers = _http(top.get("http_server_config"), ("http_server_config",), errors)
    users = _users(top.get("basic_auth_users"), ("basic_auth_users",), errors)
    if errors.lines:
        raise errors.error()
    return WebConfigFile(
        file or Path(document.name),
        tls,
        MappingProxyType(users),
        MappingProxyType(headers),
    )


_TLS_KEYS = ("cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version")
_TLS_UNSUPPORTED = {
    "cert": "inline certificates are not supported; use cert_file",
    "key": "inline keys are not supported; use key_file",
    "client_ca": "inline certificates are not supported; use client_ca_file",
    "cipher_suites": "not supported by twitchminert",
    "curve_preferences": "not supported by twitchminert",
    "prefer_server_cipher_suites": "not supported by twitchminert",
    "client_allowed_sans": "not supported by twitchminert",
}


def _tls(value: Any, path: tuple, folder: Path, errors: _Errors) -> TLSServerConfig | None:
    section = _mapping(value, path, errors)
    if not section:
        return None  # absent or empty: plain HTTP, as in exporter-toolkit
    before = len(errors.lines)
    _keys(section, path, _TLS_KEYS, _TLS_UNSUPPORTED, errors)
    files: dict[str, Path | None] = {}
    for key in ("cert_file", "key_file", "client_ca_file"):
        if key in section:
            files[key] = _file(section[key], path + (key,), folder, errors)
        elif key != "client_ca_file":
            errors.fail(path, f"missing {key}")
    versions = {}
    for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        version = section.get(key, default)
        if not isinstance(version, str) or version not in TLS_VERSIONS:
            errors.fail(path + (key,), f"expected one of {', '.join(TLS_VERSIONS)}, got {_describe(version)}")
        versions[key] = version
    if (
        all(isinstance(v, str) and v in TLS_VERSIONS for v in versions.values())
        and TLS_VERSIONS[versions["max_version"]] < TLS_VERSIONS[versions["min_version"]]
    ):
        errors.fail(path + ("max_version",), f"{versions['max_version']} is lower than min_version")
    auth = section.get("client_auth_type", "NoClientCert")
    if auth in _UNSUPPORTED_CLIENT_AUTH:
        errors.fail(
            path + ("client_auth_type",),
            f"{auth} is not supported (use RequireAndVerifyClientCert with client_ca_file, or NoClientCert)",
        )
    elif auth not in CLIENT_AUTH_TYPES:
        expected = ", ".join(CLIENT_AUTH_TYPES)
        errors.fail(path + ("client_auth_type",), f"expected one of {expected}, got {_describe(auth)}")
    elif auth == "RequireAndVerifyClientCert" and "client_ca_file" not in section:
        errors.fail(path, "client_auth_type RequireAndVerifyClientCert needs client_ca_file")
    elif auth == "NoClientCert" and "client_ca_file" in section:
        errors.fail(path + ("client_ca_file",), "set, but client_auth_type is not RequireAndVerifyClientCert")
    if len(errors.lines) > before:
        return None
    tls = TLSServerConfig(
        files["cert_file"],
        files["key_file"],
        auth,
        files.get("client_ca_file"),
        versions["min_version"],
        versions["max_version"],
    )
    try:
        _context(tls)
    except _TLSFileError as error:
        errors.fail(path + (error.key,), error.message)
        return None
    return tls


def _file(value: Any, path: tuple, folder: Path, errors: _Errors) -> Path | None:
    if not isinstance(value, str) or not value:
        errors.fail(path, f"expected a file name, got {_describe(value)}")
        return None
    file = folder / Path(value).expanduser()  # an absolute path stays as it is
    try:
        safefile.read_regular(file, yamlfile.MAX_FILE_BYTES)  # readable, and no FIFO to block on
    except FileNotFoundError:
        errors.fail(path, f"file not found: {file}")
        return None
    except safefile.NotARegularFile as error:
        errors.fail(path, f"not a file: {file}" if error.errno == errno.EISDIR else f"cannot read {file}: {error.strerror}")
        return None
    except OSError as error:
        errors.fail(path, f"cannot read {file}: {error.strerror or error}")
        return None
    return file


def _http(value: Any, path: tuple, errors: _Errors) -> dict[str, str]:
    section = _mapping(value, path, errors)
    if not section:
        return {}
    _keys(section, path, ("http2", "headers"), {}, errors)
    if "http2" in section and not isinstance(section["http2"], bool):
        errors.fail(path + ("http2",), f"expected true or false, got {_describe(section['http2'])}")
    headers = _mapping(section.get("headers"), path + ("headers",), errors) or {}
    result = {}
    for name, text in headers.items():
        where = path + ("headers", name)
        allowed = RESPONSE_HEADERS.get(name)
        if allowed is None:
            errors.fail(where, f"this header cannot be set (expected one of {', '.join(RESPONSE_HEADERS)})")
        elif text is None or text == "":
            continue  # "unset if blank"
        elif not isinstance(text, str):
            errors.fail(where, f"expected a string, got {_describe(text)}")
        elif _CONTROL.search(text):
            errors.fail(where, "cannot contain control characters")
        elif allowed and text not in allowed:
            errors.fail(where, f"expected one of {', '.join(allowed)}, got {text!r}")
        else:
            result[name] = text
    return result


def _users(value: Any, path: tuple, errors: _Errors) -> dict[str, bytes]:
    section = _mapping(value, path, errors)
    users = {}
    for name, hashed in (section or {}).items():
        where = path + (name,)
        if not name:
            errors.fail(where, "a user name cannot be empty")
        elif ":" in name or _CONTROL.search(name):
            errors.fail(where, "a user name cannot contain ':' or control characters")
        elif not isinstance(hashed, str):
            got = "nothing" if hashed is None else type(hashed).__name__
            errors.fail(where, f"expected a bcrypt hash, got {got}")
        elif not _BCRYPT.fullmatch(hashed.encode("utf-8")):
            errors.fail(where, _BCRYPT_HELP)  # never echo the value: it may be a plain password
        else:
            users[name] = hashed.encode("ascii")
    return users


# -- TLS -----------------------------------------------------------------------------------------


class _TLSFileError(Exception):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key, self.message = key, message


class _EncryptedKey(Exception):
    pass


def _refuse_encrypted_key() -> bytes:
    # Without a password callback OpenSSL would prompt on the terminal and hang the daemon.
    raise _EncryptedKey


def _check_certificates(file: Path, key: str) -> None:
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(file))
    except (ssl.SSLError, OSError, ValueError):
        raise _TLSFileError(key, f"not a PEM certificate: {file}") from None


def _context(tls: TLSServerConfig) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    _check_certificates(tls.cert_file, "cert_file")
    try:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file), password=_refuse_encrypted_key)
    except _EncryptedKey:
        raise _TLSFileError("key_file", f"encrypted private keys are not supported: {tls.key_file}") from None
    except ssl.SSLError as error:
        if error.reason == "KEY_VALUES_MISMATCH":
            raise _TLSFileError("key_file", f"does not match cert_file: {tls.key_file}") from None
        raise _TLSFileError("key_file", f"not a PEM private key: {tls.key_file}") from None
    except OSError as error:
        raise _TLSFileError("key_file", f"cannot read {tls.key_file}: {error.strerror or error}") from None
    if tls.client_auth_type == "RequireAndVerifyClientCert" and tls.client_ca_file is not None:
        _check_certificates(tls.client_ca_file, "client_ca_file")
        context.load_verify_locations(cafile=str(tls.client_ca_file))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def ssl_context(config: WebConfigFile) -> ssl.SSLContext | None:
    """A server-side context for the config (TLS 1.2 at least unless min_version says 1.3), or None."""
    if config.tls is None:
        return None
    try:
        return _context(config.tls)
    except _TLSFileError as error:  # the files changed since load_web_config checked them
        raise WebConfigError(f"{config.file.name}: tls_server_config.{error.key}: {error.message}") from None


def tls_listener(sock: socket.socket, context: ssl.SSLContext) -> ssl.SSLSocket:
    """Wrap a listening socket so each accepted connection speaks TLS.

    The handshake is deferred to the first read, which happens in the connection's own thread: a
    client that connects and says nothing then holds only its thread, never the accept loop.
    """
    return context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)


# -- basic auth ----------------------------------------------------------------------------------


def parse_basic(authorization: str | None) -> tuple[bytes, bytes] | None:
    """(user, password) from `Basic <base64 of user:password>`, or None if it is not that."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    return (user, password) if colon else None


class Authenticator:
    """Checks Basic credentials against bcrypt hashes, in the same time whether the user exists or not.

    bcrypt at cost 10 takes 50-100 ms, so a verified header is remembered for `cache_seconds`
    (exporter-toolkit caches too). The cache holds only an HMAC-SHA-256 of the header under a key
    drawn at start-up and never written anywhere: neither the password nor a plain hash of it, which
    anyone reading memory could brute-force far faster than bcrypt. Failures are never cached, so
    every wrong guess costs a full bcrypt, and bcrypt runs one at a time, as in exporter-toolkit,
    so a flood of guesses takes one core, not all of them.
    """

    def __init__(
        self,
        users: Mapping[str, bytes],
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, hashed in users.items():
            if not _BCRYPT.fullmatch(hashed):
                raise ValueError(f"user {name!r}: {_BCRYPT_HELP}")
        self._users = tuple((name.encode("utf-8"), bytes(hashed)) for name, hashed in users.items())
        # An unknown user is checked against a hash of the highest configured cost that no password
        # matches (an all-zero digest), so it costs what a wrong password costs.
        cost = max((int(hashed[4:6]) for _, hashed in self._users), default=10)
        self._dummy = b"$2b$%02d$" % cost + b"." * 53
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._cache: dict[bytes, float] = {}  # HMAC of the header -> monotonic expiry
        self._cache_lock = threading.Lock()
        self._bcrypt_lock = threading.Lock()

    def check(self, authorization: str | None) -> bool:
        credentials = parse_basic(authorization) if authorization else None
        if authorization is None or credentials is None:
            return False
        digest = hmac.new(self._key, authorization.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()
        now = self._clock()
        with self._cache_lock:
            expiry = self._cache.get(digest)
            if expiry is not None:
                if now < expiry:
                    return True
                del self._cache[digest]
        user, password = credentials
        hashed, known = self._dummy, False
        for name, candidate in self._users:  # every name is compared, a match does not stop early
            if hmac.compare_digest(name, user):
                hashed, known = candidate, True
        with self._bcrypt_lock:
            ok = bcrypt.checkpw(password[:BCRYPT_MAX_PASSWORD], hashed)
        if not (ok and known):
            return False
        with self._cache_lock:
            if len(self._cache) >= CACHE_ENTRIES:
                self._evict(now)
            self._cache[digest] = now + self._cache_seconds
        return True

    def _evict(self, now: float) -> None:
        """Drop the expired entries, or if none has expired the one closest to expiring."""
        expired = [key for key, expiry in self._cache.items() if expiry <= now]
        for key in expired or [min(self._cache, key=self._cache.__getitem__)]:
            del self._cache[key]


# -- per-request checks --------------------------------------------------------------------------


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup in a plain dict or an email.message.Message."""
    value = headers.get(name)
    if value is not None:
        return value
    lower = name.lower()
    for key, value in headers.items():
        if key.lower() == lower:
            return value
    return None


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an absolute http(s) URL, or None ("null", garbage, other schemes)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname, port or _DEFAULT_PORTS[parts.scheme]


def same_origin(headers: Mapping[str, str], host: str | None) -> bool:
    """False for a request a browser sent from another site: `Sec-Fetch-Site: cross-site`, or an
    `Origin` (else `Referer`) whose host and port differ from `host`, the request's Host header.
    True when none of these headers is present, as with curl or promtool."""
    if (_header(headers, "Sec-Fetch-Site") or "").strip().lower() == "cross-site":
        return False
    source = _header(headers, "Origin")
    if source is None:
        source = _header(headers, "Referer")
    if source is None:
        return True
    origin = _origin(source)
    if origin is None or not host:
        return False
    scheme, hostname, port = origin
    target = _origin(f"{scheme}://{host.strip()}")
    return target is not None and target[1:] == (hostname, port)


@dataclass(frozen=True)
class Denial:
    """What to answer instead of routing the request."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


UNAUTHORIZED = Denial(401, b"unauthorized\n", MappingProxyType({"WWW-Authenticate": f'Basic realm="{REALM}"'}))
CROSS_SITE = Denial(403, b"cross-site request refused\n")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Gate:
    """Asked once per request, before routing: basic auth (all paths but the exempt ones), then
    cross-site protection for anything but GET/HEAD/OPTIONS. Without a web config only the
    cross-site check applies."""

    def __init__(
        self,
        authenticator: Authenticator | None = None,
        response_headers: Mapping[str, str] | None = None,
        exempt_paths: frozenset[str] = EXEMPT_PATHS,
    ) -> None:
        self.authenticator = authenticator
        self.response_headers: Mapping[str, str] = MappingProxyType(dict(response_headers or {}))
        self.exempt_paths = frozenset(exempt_paths)

    @classmethod
    def from_config(cls, config: WebConfigFile | None) -> "Gate":
        if config is None:
            return cls()
        return cls(Authenticator(config.users) if config.users else None, config.headers)

    def check(self, method: str, path: str, headers: Mapping[str, str]) -> Denial | None:
        if self.authenticator is not None and path not in self.exempt_paths:
            if not self.authenticator.check(_header(headers, "Authorization")):
                return UNAUTHORIZED
        if method not in _SAFE_METHODS and not same_origin(headers, _header(headers, "Host")):
            return CROSS_SITE
        return None
