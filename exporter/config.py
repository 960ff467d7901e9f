"""The daemon's configuration: one YAML file, validated all at once.

Every problem is reported together, one per line, as `file:line: section.key[i]: message`, so a
single edit fixes them all. Converters are small functions of (value, path, context); they report
through the context and return INVALID rather than raising, so checking goes on past the first error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from . import yamlfile
from .capture import CAPTURED_OUTPUT
from .environment import DEFAULT_DATA_DIR
from .errors import UserError
from .events import NOTIFY_EVENTS
from .framing import DEFAULT_MAX_RECORD_BYTES
from .lifecycle import BackoffPolicy
from .notify_send import check_url as check_apprise_url, mask as mask_url
from .redaction import redact
from .timestamps import zone

DEFAULT_LISTEN_ADDRESS = "127.0.0.1:9797"
MIN_STALL_SECONDS = 1800.0
MINER_MODES = ("run", "attach")
DISPLAY = re.compile(r":\d+(\.\d+)?")  # besides "auto" and "none"
PRIORITY_MODES = ("priority_only", "ending_soonest", "low_availability_first")


class ConfigError(ValueError, UserError):
    """Every problem found, one per line."""


# -- sections ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MinerConfig:
    """TDM and how to run it: the one miner settings type, which the supervisor takes as it is.
    Its values are checked once, by the `miner` section's converters below."""

    dir: Path | None = None  # TDM's folder: main.py / exe / AppImage, settings.json, lock.file, log.txt
    python: Path | None = None  # TDM's interpreter for a source install; None: a venv in `dir`, else python3
    command: tuple[str, ...] = ()  # empty: `<python> main.py` in `dir`
    env: Mapping[str, str] = field(default_factory=dict)  # added to our environment
    mode: str = "run"  # or "attach": watch a TDM started by someone else
    display: str = "auto"  # "auto" (private Xvfb when there is no DISPLAY), ":N", or "none"
    mirror_gui_output: str = "auto"  # main.py through the launcher: "auto"/"on" (source installs), "off"
    stop_timeout: float = 10.0
    pid_file: Path | None = None  # attach mode: where to find the PID when lock.file says nothing
    restart_on_terminated: bool = True
    restart_on_stall: float | None = None  # seconds; None = off
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)

    def __post_init__(self) -> None:
        for name in ("dir", "python", "pid_file"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        object.__setattr__(self, "command", tuple(self.command))
        object.__setattr__(self, "env", dict(self.env))
        if self.python is not None and self.command:
            raise ValueError("python and command: set one (python runs main.py; command runs anything else)")


@dataclass(frozen=True)
class LogsConfig:
    files: tuple[str, ...] = ()  # paths or globs; empty: TDM's log.txt plus our captured output
    timezone: str = "local"
    patterns: tuple[Path, ...] = ()
    start_at: str = "beginning"
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES


@dataclass(frozen=True)
class StorageConfig:
    path: Path = DEFAULT_DATA_DIR
    max_age_days: float = 30.0
    max_size_mb: float = 200.0


@dataclass(frozen=True)
class WebConfig:
    listen_address: str = DEFAULT_LISTEN_ADDRESS
    config_file: Path | None = None  # exporter-toolkit web config: TLS and basic auth


@dataclass(frozen=True)
class SessionConfig:
    login_timeout: float = 180.0
    validate: bool = False
    validate_url: str = "https://id.twitch.tv"
    validate_interval: float = 3600.0


@dataclass(frozen=True)
class NotifyChannel:
    urls: tuple[str, ...] = field(default=(), repr=False)  # Apprise URLs: they carry tokens, never shown
    events: tuple[str, ...] = NOTIFY_EVENTS
    min_interval: float = 300.0  # a repeating event goes to this channel at most this often

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("urls: expected at least one Apprise URL")

    def masked(self) -> dict[str, Any]:
        return {"urls": [mask_url(url) for url in self.urls], "events": list(self.events), "min_interval": self.min_interval}


@dataclass(frozen=True)
class Config:
    miner: MinerConfig = field(default_factory=MinerConfig)
    settings: Mapping[str, Any] = field(default_factory=dict)  # only the TDM settings the user set
    logs: LogsConfig = field(default_factory=LogsConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    web: WebConfig = field(default_factory=WebConfig)
    session: SessionConfig = field(default_factory=SessionConfig)
    notify: tuple[NotifyChannel, ...] = ()
    # Real seconds per drop minute: 60 with TDM; `demo` runs its simulator --speed times faster. Not in the YAML.
    drop_minute_seconds: float = 60.0
    # The file it came from, so later checks (preflight) name the line too; not part of the value.
    document: yamlfile.Document | None = field(default=None, compare=False, repr=False)

    def where(self, path: tuple) -> str:
        """`file:line: section.key` for a problem found after loading; `section.key` without a file."""
        key = yamlfile.dotted(path)
        return f"{self.document.where(path)}: {key}" if self.document is not None else key

    @property
    def data_dir(self) -> Path:
        return self.storage.path

    @property
    def store_file(self) -> Path:
        return self.storage.path / "twitchminert.sqlite"

    @property
    def captured_output(self) -> Path:
        return self.data_dir / CAPTURED_OUTPUT

    def log_sources(self) -> tuple[str, ...]:
        if self.logs.files:
            return self.logs.files
        sources = [str(self.captured_output)]
        if self.miner.dir is not None:
            sources.insert(0, str(self.miner.dir / "log.txt"))
        return tuple(sources)


def parse_listen_address(address: str) -> tuple[str, int]:
    """"127.0.0.1:9797", ":9797" (all interfaces) or "[::1]:9797"."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit():
        raise ValueError(f"expected host:port, got {address!r}")
    if int(port) > 65535:
        raise ValueError(f"port {port} is out of range (0-65535)")
    host = host.strip("[]")
    return host or "0.0.0.0", int(port)


# -- converters ----------------------------------------------------------------------------------


class _Invalid:
    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()
Path_ = tuple


@dataclass
class Context:
    document: yamlfile.Document
    errors: list[str] = field(default_factory=list)

    def fail(self, path: Path_, message: str) -> Any:
        self.errors.append(f"{self.document.where(path)}: {yamlfile.dotted(path)}: {message}")
        return INVALID

    def fail_key(self, path: Path_, message: str) -> Any:
        """A problem with the key itself (unknown): the key's line, not its value's."""
        self.errors.append(f"{self.document.where_key(path)}: {yamlfile.dotted(path)}: {message}")
        return INVALID

    def raw(self, path: Path_) -> str | None:
        """The source text of a scalar YAML 1.1 turned into a boolean (`yes`, `no`, `on`, ...)."""
        return self.document.raw_scalars.get(path)


Converter = Callable[[Any, Path_, Context], Any]
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _describe(value: Any) -> str:
    return "nothing" if value is None else repr(value)


def _string(value: Any, path: Path_, ctx: Context) -> Any:
    if isinstance(value, bool) and ctx.raw(path) is not None:
        value = ctx.raw(path)  # `on` stays "on", not True
    if not isinstance(value, str) or not value:
        return ctx.fail(path, f"expected a non-empty string, got {_describe(value)}")
    return value


def _game(value: Any, path: Path_, ctx: Context) -> Any:
    if isinstance(value, bool) and ctx.raw(path) is not None:
        value = ctx.raw(path)  # a game called "Yes" or "On" is a name, not a boolean
    if not isinstance(value, str):
        return ctx.fail(path, f"expected a game name (string), got {_describe(value)}")
    if not value.strip():
        return ctx.fail(path, "a game name cannot be empty")
    if _CONTROL.search(value):
        return ctx.fail(path, f"a game name cannot contain control characters: {value!r}")
    return value


def _path(value: Any, path: Path_, ctx: Context) -> Any:
    text = _string(value, path, ctx)
    return INVALID if text is INVALID else Path(text).expanduser()


def _bool(value: Any, path: Path_, ctx: Context) -> Any:
    if not isinstance(value, bool):
        return ctx.fail(path, f"expected true or false, got {_describe(value)}")
    return value


def _number(minimum: float = 0.0, integer: bool = False, maximum: float | None = None) -> Converter:
    kind = "a whole number" if integer else "a number"

    def convert(value: Any, path: Path_, ctx: Context) -> Any:
        ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type:
            return ctx.fail(path, f"expected {kind}, got {_describe(value)}")
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"from {minimum:g} to {maximum:g}" if maximum is not None else f"at least {minimum:g}"
            return ctx.fail(path, f"expected {kind} {bounds}, got {value!r}")
        return value

    return convert


def _duration(value: Any, path: Path_, ctx: Context) -> Any:
    """Seconds as a number, or a Prometheus-style duration: 90s, 30m, 1h, 1.5d."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None or float(match.group(1)) <= 0:
        return ctx.fail(path, f"expected a duration such as 90s, 30m or 1h, got {_describe(value)}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _one_of(*choices: str) -> Converter:
    def convert(value: Any, path: Path_, ctx: Context) -> Any:
        if isinstance(value, bool) and ctx.raw(path) is not None:
            value = ctx.raw(path)
        if value not in choices:
            return ctx.fail(path, f"expected one of {', '.join(choices)}, got {_describe(value)}")
        return value

    return convert


def _list_of(convert: Converter) -> Converter:
    def convert_list(value: Any, path: Path_, ctx: Context) -> Any:
        if not isinstance(value, list):
            return ctx.fail(path, f"expected a list, got {_describe(value)}")
        items = tuple(convert(item, path + (i,), ctx) for i, item in enumerate(value))
        return INVALID if INVALID in items else items

    return convert_list


def _string_that(check: Callable[[str], object]) -> Converter:
    """A non-empty string that `check` accepts; `check` raises ValueError saying what is wrong."""

    def convert(value: Any, path: Path_, ctx: Context) -> Any:
        text = _string(value, path, ctx)
        if text is INVALID:
            return INVALID
        try:
            check(text)
        except ValueError as error:
            return ctx.fail(path, str(error))
        return text

    return convert


def _known_zone(name: str) -> None:
    try:
        zone(name)
    except Exception:  # zoneinfo raises KeyError subclasses, ValueError or OSError for odd names
        raise ValueError(f"unknown time zone {name!r}") from None


_timezone = _string_that(_known_zone)
_listen_address = _string_that(parse_listen_address)


def _display(value: Any, path: Path_, ctx: Context) -> Any:
    text = _string(value, path, ctx)
    if text is INVALID or text in ("auto", "none") or DISPLAY.fullmatch(text):
        return text
    return ctx.fail(path, f"expected auto, none or a display such as :99, got {text!r}")


def _switch(value: Any, path: Path_, ctx: Context) -> Any:
    """auto/on/off; YAML 1.1 reads a bare on/off as a boolean."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return _one_of("auto", "on", "off")(value, path, ctx)


def _env(value: Any, path: Path_, ctx: Context) -> Any:
    if not isinstance(value, dict):
        return ctx.fail(path, f"expected a mapping of variable names to strings, got {_describe(value)}")
    out = {}
    for name, text in value.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(name)):
            ctx.fail(path + (name,), "not a valid environment variable name")
        elif isinstance(text, bool) or not isinstance(text, (str, int, float)):
            ctx.fail(path + (name,), f"expected a string, got {_describe(text)}")
        else:
            out[str(name)] = str(text)
    return out


def _stall(value: Any, path: Path_, ctx: Context) -> Any:
    if value is False or value is None:
        return None
    seconds = _duration(value, path, ctx)
    if seconds is not INVALID and seconds < MIN_STALL_SECONDS:
        return ctx.fail(path, f"must be at least 30m (restarting more often would hammer Twitch), got {value!r}")
    return seconds


def _proxy(value: Any, path: Path_, ctx: Context) -> Any:
    if value == "":
        return ""
    text = _string(value, path, ctx)
    if text is INVALID:
        return INVALID
    shown = redact(text)  # the message reaches the status API and /-/reload answers: no user:password@
    try:
        url = urlsplit(text)
        port = url.port
    except ValueError:
        return ctx.fail(path, f"not a valid URL: {shown!r}")
    if url.scheme not in ("http", "https", "socks4", "socks5") or not url.hostname or port is None:
        return ctx.fail(path, f"expected a proxy URL with scheme, host and port (http://host:8080), got {shown!r}")
    return text


def _validate_url(value: Any, path: Path_, ctx: Context) -> Any:
    """Where the OAuth token is sent: https, except to this machine (tests, a local proxy)."""
    text = _string(value, path, ctx)
    if text is INVALID:
        return INVALID
    url = urlsplit(text)
    local = url.hostname in ("127.0.0.1", "localhost", "::1")
    if not url.hostname or (url.scheme != "https" and not (url.scheme == "http" and local)):
        return ctx.fail(path, f"expected an https:// URL (the token is sent there), got {text!r}")
    return text.rstrip("/")


_apprise_url = _string_that(check_apprise_url)


def _notify(value: Any, path: Path_, ctx: Context) -> Any:
    """A list of channels: {urls: [Apprise URLs], events: [...], min_interval: 5m}."""
    channel = _section(
        {"urls": _list_of(_apprise_url), "events": _list_of(_one_of(*NOTIFY_EVENTS)), "min_interval": _duration},
        NotifyChannel,
    )
    return _list_of(channel)(value if value is not None else [], path, ctx)


def _section(schema: Mapping[str, Converter], build: Callable[..., Any]) -> Converter:
    def convert(value: Any, path: Path_, ctx: Context) -> Any:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            return ctx.fail(path, f"expected a mapping, got {_describe(value)}")
        fields = {}
        for key, item in value.items():
            converter = schema.get(key)
            if converter is None:
                ctx.fail_key(path + (key,), f"unknown key (expected one of {', '.join(schema)})")
                continue
            fields[key] = converter(item, path + (key,), ctx)
        if INVALID in fields.values():
            return INVALID
        try:
            return build(**fields)
        except ValueError as error:  # a check across keys, e.g. backoff max below initial
            return ctx.fail(path, str(error))

    return convert


def _valid_names(value: Any, key: str, path: Path_, ctx: Context) -> list[tuple[int, str]]:
    """(index, name) of each valid game name in settings.<key>, even when other items or keys are not."""
    items = value.get(key) if isinstance(value, dict) else None
    if not isinstance(items, list):
        return []
    scratch = Context(ctx.document)  # the section's own check reports the bad items
    names = [(index, _game(item, path + (key, index), scratch)) for index, item in enumerate(items)]
    return [(index, name) for index, name in names if name is not INVALID]


def _settings(value: Any, path: Path_, ctx: Context) -> Any:
    settings = _section(SETTINGS_SCHEMA, dict)(value, path, ctx)
    # Checked on the valid names even when something else is wrong: every problem is reported at once.
    priority = _valid_names(value, "priority", path, ctx)
    prioritized = {name for _, name in priority}
    failed = False
    for key, names in (("priority", priority), ("exclude", _valid_names(value, "exclude", path, ctx))):
        seen: set[str] = set()
        for index, game in names:
            if game in seen:
                ctx.fail(path + (key, index), f"{game!r} is listed twice")
                failed = True
            elif key == "exclude" and game in prioritized:
                ctx.fail(path + (key, index), f"{game!r} is also in settings.priority")
                failed = True
            seen.add(game)
    return INVALID if failed else settings


SETTINGS_SCHEMA: dict[str, Converter] = {
    "priority": _list_of(_game),
    "exclude": _list_of(_game),
    "priority_mode": _one_of(*PRIORITY_MODES),
    "proxy": _proxy,
    "connection_quality": _number(1, integer=True, maximum=6),
    "language": _string,
    "dark_mode": _bool,
    "tray_notifications": _bool,
    "autostart_tray": _bool,
    "enable_badges_emotes": _bool,
    "available_drops_check": _bool,
}

_BACKOFF_SCHEMA: dict[str, Converter] = {
    "initial": _duration,
    "max": _duration,
    "healthy_after": _duration,
    "max_restarts": _number(1, integer=True),
    "window": _duration,
}

SCHEMA: dict[str, Converter] = {
    "miner": _section(
        {
            "dir": _path,
            "python": _path,
            "command": _list_of(_string),
            "env": _env,
            "mode": _one_of(*MINER_MODES),
            "display": _display,
            "mirror_gui_output": _switch,
            "stop_timeout": _duration,
            "pid_file": _path,
            "restart_on_terminated": _bool,
            "restart_on_stall": _stall,
            "backoff": _section(_BACKOFF_SCHEMA, BackoffPolicy),
        },
        MinerConfig,
    ),
    "settings": _settings,
    "logs": _section(
        {
            "files": _list_of(_string),
            "timezone": _timezone,
            "patterns": _list_of(_path),
            "start_at": _one_of("beginning", "end"),
            "max_record_bytes": _number(1024, integer=True),
        },
        LogsConfig,
    ),
    "storage": _section(
        {"path": _path, "max_age_days": _number(0.001), "max_size_mb": _number(1)},
        StorageConfig,
    ),
    "web": _section({"listen_address": _listen_address, "config_file": _path}, WebConfig),
    "session": _section(
        {
            "login_timeout": _duration,
            "validate": _bool,
            "validate_url": _validate_url,
            "validate_interval": _duration,
        },
        SessionConfig,
    ),
    "notify": _notify,
}


def load_config(path: Path) -> Config:
    try:
        document = yamlfile.load(path, keep_going=True)
    except yamlfile.YamlError as error:
        raise ConfigError(str(error)) from None
    return config_from(document)


def parse_config(text: str, name: str = "twitchminert.yaml") -> Config:
    try:
        document = yamlfile.parse(text, name, keep_going=True)
    except yamlfile.YamlError as error:
        raise ConfigError(str(error)) from None
    return config_from(document)


def config_from(document: yamlfile.Document) -> Config:
    top = document.value if document.value is not None else {}
    if not isinstance(top, dict):
        raise ConfigError(f"{document.where(())}: expected a mapping of sections, got {type(top).__name__}")
    ctx = Context(document)
    sections = {}
    for name, body in top.items():
        converter = SCHEMA.get(name)
        if converter is None:
            ctx.fail_key((name,), f"unknown section (expected one of {', '.join(SCHEMA)})")
            continue
        sections[name] = converter(body, (name,), ctx)
    errors = [*document.errors, *ctx.errors]  # duplicate keys, then the rest: all `file:line: ...`
    if errors:
        errors.sort(key=lambda error: int(error[len(document.name) + 1 :].split(":", 1)[0]))  # stable: by line
        raise ConfigError("\n".join(errors))
    return Config(**sections, document=document)
