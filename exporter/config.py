"""The daemon's configuration: one YAML file, validated all at once.

Converters raise ValueError with the bad value; `load_config` adds file, line and path and
reports every problem together, so one edit fixes them all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import yamlfile
from .framing import DEFAULT_MAX_RECORD_BYTES
from .timestamps import zone

HOME = Path(os.environ.get("TWITCHMINERT_HOME", "~/.twitchminert")).expanduser()
DEFAULT_CONFIG_FILE = HOME / "config" / "twitchminert.yaml"
DEFAULT_DATA_DIR = HOME / "data"
DEFAULT_LISTEN_ADDRESS = "127.0.0.1:9797"
CAPTURED_OUTPUT = Path("logs") / "miner_output.log"  # under the data dir, written by the supervisor


class ConfigError(ValueError):
    """Every problem found, one per line."""


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


@dataclass(frozen=True)
class MinerConfig:
    dir: Path | None = None


@dataclass(frozen=True)
class Config:
    miner: MinerConfig = field(default_factory=MinerConfig)
    logs: LogsConfig = field(default_factory=LogsConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    web: WebConfig = field(default_factory=WebConfig)

    @property
    def data_dir(self) -> Path:
        return self.storage.path

    @property
    def store_file(self) -> Path:
        return self.storage.path / "twitchminert.sqlite"

    def log_sources(self) -> tuple[str, ...]:
        if self.logs.files:
            return self.logs.files
        sources = [str(self.data_dir / CAPTURED_OUTPUT)]
        if self.miner.dir is not None:
            sources.insert(0, str(self.miner.dir / "log.txt"))
        return tuple(sources)


# -- converters: raise ValueError naming the value --------------------------------------------


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def _path(value: Any) -> Path:
    return Path(_string(value)).expanduser()


def _positive(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"expected a positive number, got {value!r}")
    return value


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"expected a positive whole number, got {value!r}")
    return value


def _one_of(*choices: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    return convert


def _timezone(value: Any) -> str:
    name = _string(value)
    try:
        zone(name)
    except Exception:
        raise ValueError(f"unknown time zone {name!r}") from None
    return name


def _listen_address(value: Any) -> str:
    from .http import parse_listen_address

    parse_listen_address(_string(value))
    return value


def _list_of(convert: Callable[[Any], Any]) -> Callable[[Any], tuple]:
    def convert_list(value: Any) -> tuple:
        if not isinstance(value, list):
            raise ValueError(f"expected a list, got {value!r}")
        return tuple(convert(item) for item in value)

    return convert_list


# section -> key -> (converter, field name)
SCHEMA: dict[str, dict[str, tuple[Callable[[Any], Any], str]]] = {
    "miner": {"dir": (_path, "dir")},
    "logs": {
        "files": (_list_of(_string), "files"),
        "timezone": (_timezone, "timezone"),
        "patterns": (_list_of(_path), "patterns"),
        "start_at": (_one_of("beginning", "end"), "start_at"),
        "max_record_bytes": (_positive_int, "max_record_bytes"),
    },
    "storage": {
        "path": (_path, "path"),
        "max_age_days": (_positive, "max_age_days"),
        "max_size_mb": (_positive, "max_size_mb"),
    },
    "web": {"listen_address": (_listen_address, "listen_address")},
}
_SECTION_TYPES = {"miner": MinerConfig, "logs": LogsConfig, "storage": StorageConfig, "web": WebConfig}


def load_config(path: Path) -> Config:
    try:
        document = yamlfile.load(path)
    except yamlfile.YamlError as error:
        raise ConfigError(str(error)) from None
    return config_from(document)


def config_from(document: yamlfile.Document) -> Config:
    errors: list[str] = []
    top = document.value if document.value is not None else {}
    if not isinstance(top, dict):
        raise ConfigError(f"{document.where(())}: expected a mapping of sections, got {type(top).__name__}")
    sections: dict[str, Any] = {}
    for section, body in top.items():
        if section not in SCHEMA:
            errors.append(f"{document.where((section,))}: {section}: unknown section")
            continue
        if body is None:
            body = {}
        if not isinstance(body, dict):
            errors.append(f"{document.where((section,))}: {section}: expected a mapping")
            continue
        values = {}
        for key, raw in body.items():
            spec = SCHEMA[section].get(key)
            where = f"{document.where((section, key))}: {section}.{key}"
            if spec is None:
                errors.append(f"{where}: unknown key")
                continue
            convert, name = spec
            try:
                values[name] = convert(raw)
            except ValueError as error:
                errors.append(f"{where}: {error}")
        sections[section] = _SECTION_TYPES[section](**values)
    if errors:
        raise ConfigError("\n".join(errors))
    return Config(**sections)
