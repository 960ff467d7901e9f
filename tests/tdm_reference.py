"""TDM's settings.json loading and saving, re-implemented from shared/tdm/settings_json.md, in the shape of TDM's
`utils.json_load` / `merge_json` / `json_save`. Independent of exporter.settings_file: tests check our module
against it. `URL` stands in for yarl.URL (no yarl here): a str-only constructor that parses with urlsplit."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit


class PriorityMode(Enum):
    PRIORITY_ONLY = 0
    ENDING_SOONEST = 1
    LOW_AVBL_FIRST = 2


class URL:
    def __init__(self, val: str = "") -> None:
        if not isinstance(val, str):
            raise TypeError("Constructor parameter should be str")
        urlsplit(val)
        self._val = val

    def __str__(self) -> str:
        return self._val

    def __eq__(self, other: object) -> bool:
        return isinstance(other, URL) and other._val == self._val

    def __hash__(self) -> int:
        return hash(self._val)


def default_settings() -> dict[str, Any]:
    return {
        "proxy": URL(),
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


def _serialize(obj: Any) -> Any:
    d: Any
    if isinstance(obj, datetime):
        d = obj.timestamp()
    elif isinstance(obj, set):
        d = list(obj)
    elif isinstance(obj, Enum):
        d = obj.value
    elif isinstance(obj, URL):
        d = str(obj)
    else:
        raise TypeError(obj)
    return {"__type": type(obj).__name__, "data": d}


_MISSING = object()
SERIALIZE_ENV: dict[str, Callable[[Any], object]] = {
    "set": set,
    "URL": URL,
    "PriorityMode": PriorityMode,
    "datetime": lambda d: datetime.fromtimestamp(d, timezone.utc),
}


def _remove_missing(obj: Any) -> Any:
    for key, value in obj.copy().items():
        if value is _MISSING:
            del obj[key]
        elif isinstance(value, dict):
            _remove_missing(value)
            if not value:
                del obj[key]
    return obj


def _deserialize(obj: dict[str, Any]) -> Any:
    if "__type" in obj:
        obj_type = obj["__type"]
        if obj_type in SERIALIZE_ENV:
            return SERIALIZE_ENV[obj_type](obj["data"])
        return _MISSING
    return obj


def merge_json(obj: dict[str, Any], template: dict[str, Any]) -> None:
    for k, v in list(obj.items()):
        if k not in template:
            del obj[k]
        elif type(v) is not type(template[k]):
            obj[k] = template[k]
        elif isinstance(v, dict):
            merge_json(v, template[k])
    for k in template:
        if k not in obj:
            obj[k] = template[k]


def json_load(path: Path, defaults: dict[str, Any]) -> dict[str, Any]:
    """TDM's loader. Raises whatever TDM would raise (then: dialog, exit 4); deletes an invalid .new as TDM."""
    new_path = path.with_name(f"{path.name}.new")
    combined = None
    if new_path.exists():
        try:
            with new_path.open("r", encoding="utf8") as file:
                combined = _remove_missing(json.load(file, object_hook=_deserialize))
        except json.JSONDecodeError:
            new_path.unlink()
    if combined is None and path.exists():
        with path.open("r", encoding="utf8") as file:
            combined = _remove_missing(json.load(file, object_hook=_deserialize))
    if combined is None:
        combined = dict(defaults)
    else:
        merge_json(combined, dict(defaults))
    return combined


def json_save(path: Path, contents: dict[str, Any]) -> None:
    new_path = path.with_name(f"{path.name}.new")
    with new_path.open("w", encoding="utf8") as file:
        json.dump(contents, file, default=_serialize, sort_keys=True, indent=4)
    new_path.replace(path)
