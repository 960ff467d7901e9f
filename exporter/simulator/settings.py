"""settings.json as TDM reads and writes it (TDM's `utils.json_load`, `merge_json`, `json_save`).

- Load: `settings.json.new` first if it exists (deleted when it is not valid JSON), else `settings.json`,
  else the defaults. `{"__type": ..., "data": ...}` objects are rebuilt; an unknown `__type` drops the key.
  Then the file is merged with the defaults: unknown keys are deleted, a value whose type is not exactly
  the default's type is replaced by the default, missing keys are filled in.
- Anything that cannot be loaded (bad JSON, not an object, a bad PriorityMode number, a set that is not
  a list) raises: TDM then shows its blocking "Settings error" dialog (exit 4 once OK is pressed).
- Save: `json.dump(indent=4, sort_keys=True)` (ASCII only, no trailing newline) to `settings.json.new`,
  then `os.replace` onto `settings.json`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SETTINGS_NAME = "settings.json"


class PriorityMode(Enum):
    # A plain Enum, not an IntEnum: json would write an IntEnum as a bare int, without the wrapper.
    PRIORITY_ONLY = 0
    ENDING_SOONEST = 1
    LOW_AVBL_FIRST = 2


class URL:
    """Stand-in for `yarl.URL`: a proxy address that is written as `{"__type": "URL", "data": ...}`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Constructor parameter should be str, got {value!r}")
        urlsplit(value).port  # as yarl: a broken IPv6 host or a bad port raises ValueError (TDM stops)
        self._value = value

    def __str__(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"URL({self._value!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, URL) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def default_settings() -> dict[str, Any]:
    """TDM's `settings.default_settings` (a fresh copy each time)."""
    return {
        "proxy": URL(""),
        "language": "English",
        "dark_mode": False,
        "autostart_tray": False,
        "exclude": set(),
        "priority": [],
        "priority_mode": PriorityMode.PRIORITY_ONLY,
        "tray_notifications": True,
        "enable_badges_emotes": False,
        "available_drops_check": False,
        "connection_quality": 1,
    }


_MISSING = object()  # what an object with an unknown "__type" decodes to

_DESERIALIZERS: dict[str, Callable[[Any], object]] = {
    "set": set,
    "URL": URL,
    "PriorityMode": PriorityMode,
    "datetime": lambda data: datetime.fromtimestamp(data, timezone.utc),
}


def _serialize(obj: Any) -> dict[str, Any]:
    data: Any
    if isinstance(obj, set):
        data = list(obj)
    elif isinstance(obj, Enum):
        data = obj.value
    elif isinstance(obj, datetime):
        if obj.tzinfo is None:
            obj = obj.replace(tzinfo=timezone.utc)  # naive means UTC
        data = obj.timestamp()
    elif isinstance(obj, URL):
        data = str(obj)
    else:
        raise TypeError(obj)
    return {"__type": type(obj).__name__, "data": data}


def _deserialize(obj: dict[str, Any]) -> Any:
    if "__type" in obj:
        rebuild = _DESERIALIZERS.get(obj["__type"])
        if rebuild is None:
            return _MISSING
        return rebuild(obj["data"])
    return obj


def _remove_missing(obj: dict[str, Any]) -> dict[str, Any]:
    # Deliberately calls dict methods on whatever was decoded: a top-level list or number raises here.
    for key, value in obj.copy().items():
        if value is _MISSING:
            del obj[key]
        elif isinstance(value, dict):
            _remove_missing(value)
            if not value:
                del obj[key]
    return obj


def merge_json(obj: dict[str, Any], template: Mapping[str, Any]) -> None:
    """Make `obj` follow `template` in place: TDM's silent fixing of a settings file."""
    for key, value in list(obj.items()):
        if key not in template:
            del obj[key]
        elif type(value) is not type(template[key]):
            obj[key] = template[key]
        elif isinstance(value, dict):
            merge_json(value, template[key])
    for key in template:
        if key not in obj:
            obj[key] = template[key]


def _new_path(path: Path) -> Path:
    return path.with_name(path.name + ".new")


def json_load(path: Path, defaults: Mapping[str, Any]) -> dict[str, Any]:
    # In TDM's order: a top level that decodes to None, a list or an unknown __type raises in _remove_missing.
    combined: Any = None
    new_path = _new_path(path)
    if new_path.exists():
        try:
            with open(new_path, encoding="utf8") as file:
                combined = _remove_missing(json.load(file, object_hook=_deserialize))
        except json.JSONDecodeError:
            new_path.unlink()  # a half-written .new is thrown away; a valid one wins
    if combined is None and path.exists():
        with open(path, encoding="utf8") as file:
            combined = _remove_missing(json.load(file, object_hook=_deserialize))
    if combined is None:
        return dict(defaults)
    merge_json(combined, dict(defaults))
    return combined


def json_dumps(contents: Mapping[str, Any]) -> str:
    """The exact text TDM writes: sorted keys, 4-space indent, ASCII only, no trailing newline."""
    return json.dumps(contents, default=_serialize, sort_keys=True, indent=4)


def json_save(path: Path, contents: Mapping[str, Any]) -> None:
    new_path = _new_path(path)
    with open(new_path, "w", encoding="utf8") as file:
        file.write(json_dumps(contents))
    os.replace(new_path, path)


class Settings:
    """The settings in memory: read once at start, written back at every normal exit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data = json_load(path, default_settings())
        self._altered = False

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def alter(self, key: str, value: Any) -> None:
        self._data[key] = value
        self._altered = True

    def save(self, *, force: bool = False) -> None:
        # Once altered, TDM saves at every inventory fetch: the flag is never cleared.
        if self._altered or force:
            json_save(self.path, self._data)
