"""TDM's settings.json: decode it as TDM does, encode it byte for byte as TDM's `json_save` does, write it safely.

Reading follows TDM's `utils.json_load` + `merge_json` (see shared/tdm/settings_json.md):

- `settings.json.new` is read first. If it is not valid JSON TDM deletes it and reads `settings.json`; any other
  problem with it stops TDM. We only read: `write()` removes a stale `.new`.
- Every JSON object goes through TDM's `_deserialize`: `{"__type": "set"|"URL"|"PriorityMode"|"datetime",
  "data": ...}` is rebuilt (bad data stops TDM), an unknown `__type` makes the key disappear.
- Unknown keys are dropped; a value whose type is not *exactly* the default's type (`1` for a bool, a plain list
  for `exclude`, a plain int for `priority_mode`, a plain string for `proxy`) is silently replaced by the default;
  missing keys get the default. The elements of `priority` and `exclude` are not checked.
- What stops TDM (its modal "Settings error" dialog, exit 4 once dismissed, so it blocks forever headless) raises
  `SettingsUnreadable` here: invalid JSON, an empty file, a top level that is not an object, bad `__type` data.

Writing (`write`): a temp file in the same directory, flush + fsync, mode 0600, `os.replace`, fsync of the
directory, so settings.json is always either the old or the new file. Before replacing, the previous
settings.json is kept as `settings.json.last-good` (`LAST_GOOD_NAME`) when TDM could load it;
`restore_last_good` puts it back when settings.json is found unreadable (TDM bug: settings.json blanked after a
reboot). A stale `settings.json.new` is removed, as TDM would prefer it to our file. One writer at a time.

TDM rewrites settings.json from memory at every exit: write only while TDM is stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import reprlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import safefile
from .errors import UserError

SETTINGS_NAME = "settings.json"
NEW_NAME = "settings.json.new"  # TDM's own temp file; it wins over settings.json when it is valid JSON
LAST_GOOD_NAME = "settings.json.last-good"  # the settings.json we replaced last, if TDM could load it
_TEMP_GLOB = ".settings.json*.tmp"  # our temp files (mkstemp names); leftovers of a killed writer are removed
FILE_MODE = 0o600
MAX_FILE_BYTES = 16 << 20  # TDM's is under 1 KiB; a bigger one is refused, not read (nor a FIFO or a device)


class SettingsUnreadable(ValueError, UserError):
    """TDM would stop on this settings file: its blocking "Settings error" dialog, then exit 4."""


class PriorityMode(Enum):
    # A plain Enum, as in TDM: its JSON form is the {"__type": "PriorityMode", "data": n} wrapper, never a bare int.
    PRIORITY_ONLY = 0
    ENDING_SOONEST = 1
    LOW_AVBL_FIRST = 2

    @property
    def yaml_name(self) -> str:
        return _YAML_NAMES[self]

    @classmethod
    def from_yaml_name(cls, name: str) -> PriorityMode:
        for mode, yaml_name in _YAML_NAMES.items():
            if yaml_name == name:
                return mode
        raise ValueError(f"expected one of {', '.join(_YAML_NAMES.values())}, got {name!r}")


_YAML_NAMES = {
    PriorityMode.PRIORITY_ONLY: "priority_only",
    PriorityMode.ENDING_SOONEST: "ending_soonest",
    PriorityMode.LOW_AVBL_FIRST: "low_availability_first",
}


@dataclass(frozen=True)
class TdmSettings:
    """The keys of TDM's settings.json, with TDM's defaults (`settings.default_settings`)."""

    proxy: str = ""  # a yarl.URL in TDM; "" = no proxy
    priority: tuple[Any, ...] = ()  # game names, in priority order (TDM does not check the elements)
    exclude: frozenset[Any] = frozenset()  # game names
    priority_mode: PriorityMode = PriorityMode.PRIORITY_ONLY
    dark_mode: bool = False
    autostart_tray: bool = False
    connection_quality: int = 1  # TDM clamps it to 1..6 when it uses it
    language: str = "English"
    tray_notifications: bool = True
    enable_badges_emotes: bool = False
    available_drops_check: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "priority", tuple(self.priority))
        object.__setattr__(self, "exclude", frozenset(self.exclude))


KEYS = tuple(field.name for field in dataclasses.fields(TdmSettings))


# ---- decoding: TDM's _deserialize, _remove_missing and merge_json ------------------------------------------


@dataclass(frozen=True)
class _Url:
    """TDM's yarl.URL: its own type, so a plain string for `proxy` fails TDM's type check."""

    text: str


def _url(data: Any) -> _Url:
    if not isinstance(data, str):
        raise TypeError(f"expected a string, got {type(data).__name__}")
    urlsplit(data).port  # as yarl: "http://[::1", a port that is not a number or above 65535 raise ValueError
    return _Url(data)


_MISSING = object()  # what an object with an unknown "__type" becomes; its key then gets the default
_DESERIALIZERS: dict[str, Callable[[Any], object]] = {
    "set": set,  # a real set, as in TDM: set([set()]) must fail as it does there
    "URL": _url,
    "PriorityMode": PriorityMode,
    "datetime": lambda data: datetime.fromtimestamp(data, timezone.utc),
}


def _deserialize(obj: dict[str, Any]) -> Any:
    if "__type" not in obj:
        return obj
    obj_type = obj["__type"]
    try:
        known = obj_type in _DESERIALIZERS
    except TypeError:
        raise SettingsUnreadable(f'"__type" must be a string, got {reprlib.repr(obj_type)}') from None
    if not known:
        return _MISSING
    if "data" not in obj:
        raise SettingsUnreadable(f'{{"__type": "{obj_type}"}} has no "data"')
    try:
        return _DESERIALIZERS[obj_type](obj["data"])
    except Exception as error:  # TDM stops on any error here (ValueError, TypeError, OverflowError, ...)
        raise SettingsUnreadable(
            f'{{"__type": "{obj_type}", "data": {reprlib.repr(obj["data"])}}} cannot be loaded: {error}'
        ) from None


def _parse(text: str) -> Any:
    """`json.loads` with TDM's object hook. Invalid JSON raises `json.JSONDecodeError`, bad `__type` data
    raises `SettingsUnreadable`."""
    try:
        return json.loads(text, object_hook=_deserialize)
    except RecursionError:
        raise SettingsUnreadable("JSON nested too deeply") from None


def _invalid_json(text: str, error: json.JSONDecodeError) -> SettingsUnreadable:
    if not text.strip(" \t\r\n\x00"):
        return SettingsUnreadable("empty file (blank or only NUL bytes)")
    return SettingsUnreadable(f"not valid JSON: {error.msg} at line {error.lineno} column {error.colno}")


def _tdm_defaults() -> dict[str, Any]:
    """`settings.default_settings` with TDM's in-memory types, for the type check."""
    defaults = TdmSettings()
    values = {key: getattr(defaults, key) for key in KEYS}
    values.update(proxy=_Url(""), priority=[], exclude=set())
    return values


def _from_document(document: Any) -> TdmSettings:
    """TDM's `_remove_missing` + `merge_json` against the defaults."""
    if not isinstance(document, dict):  # TDM: AttributeError in _remove_missing
        raise SettingsUnreadable(f"the top level is not a JSON object: {reprlib.repr(document)}")
    values = {}
    for key, default in _tdm_defaults().items():
        value = document.get(key, _MISSING)
        values[key] = value if type(value) is type(default) else default
    values["proxy"] = values["proxy"].text
    return TdmSettings(**values)


def decode(text: str) -> TdmSettings:
    """The settings TDM runs with for this settings.json text; `SettingsUnreadable` if TDM would stop on it."""
    try:
        document = _parse(text)
    except json.JSONDecodeError as error:
        raise _invalid_json(text, error) from None
    return _from_document(document)


def _load_file(path: Path, *, skip_invalid_json: bool = False) -> TdmSettings | None:
    try:
        try:
            text = safefile.read_text(path, MAX_FILE_BYTES)  # TDM: open(path, encoding="utf8")
        except OSError as error:
            raise SettingsUnreadable(f"cannot be read: {safefile.describe(error)}") from None
        except UnicodeDecodeError as error:
            raise SettingsUnreadable(f"not UTF-8 (byte {error.start})") from None
        if not skip_invalid_json:
            return decode(text)
        try:
            document = _parse(text)
        except json.JSONDecodeError:
            return None
        return _from_document(document)
    except SettingsUnreadable as error:
        raise SettingsUnreadable(f"{path}: {error}") from None


def load(directory: Path) -> TdmSettings:
    """The settings TDM would start with from `directory`, in TDM's load order; `SettingsUnreadable` (naming
    the file) if TDM would stop. A `.new` that is not valid JSON is skipped (TDM deletes it; we leave it)."""
    new_path = directory / NEW_NAME
    if new_path.exists():
        settings = _load_file(new_path, skip_invalid_json=True)
        if settings is not None:
            return settings
    path = directory / SETTINGS_NAME
    return _load_file(path) if path.exists() else TdmSettings()


def load_or_none(directory: Path | None) -> TdmSettings | None:
    """What TDM's settings hold now, or None when there is no miner folder or TDM could not load them."""
    if directory is None:
        return None
    try:
        return load(directory)
    except (SettingsUnreadable, OSError):
        return None


def existing_text(directory: Path) -> str | None:
    """The text of `directory`/settings.json (undecodable bytes replaced), or None when there is none."""
    data = _read_or_none(directory / SETTINGS_NAME)
    return data.decode("utf-8", "replace") if data is not None else None


def check_loadable(directory: Path) -> None:
    """Raise `SettingsUnreadable` if TDM would stop on the settings files in `directory` (supervisor preflight)."""
    load(directory)


# ---- encoding: TDM's json_save(path, settings, sort=True) --------------------------------------------------


def _sorted(values: Iterable[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:  # mixed element types (only in hand-edited files)
        return sorted(values, key=repr)


def _serialize(obj: Any) -> Any:
    """TDM's `_serialize`, for the values TDM does not check (elements of `priority` and `exclude`)."""
    if isinstance(obj, (set, frozenset)):
        return {"__type": "set", "data": _sorted(obj)}
    if isinstance(obj, PriorityMode):
        return {"__type": "PriorityMode", "data": obj.value}
    if isinstance(obj, _Url):
        return {"__type": "URL", "data": obj.text}
    if isinstance(obj, datetime):
        return {"__type": "datetime", "data": obj.timestamp()}
    raise ValueError(f"TDM cannot write this value: {obj!r}")  # e.g. an unknown "__type" inside a list


def _existing_order(exclude: frozenset[Any], existing_text: str | None) -> list[Any] | None:
    """The order of `exclude` in `existing_text`, if that file holds the very same set."""
    if existing_text is None:
        return None
    try:
        document = json.loads(existing_text)
        data = document["exclude"]["data"]
    except (ValueError, TypeError, KeyError):
        return None
    if (
        document["exclude"].get("__type") == "set"
        and isinstance(data, list)
        and all(isinstance(item, str) for item in data)
        and len(data) == len(exclude)
        and set(data) == exclude
    ):
        return data
    return None


def encode(settings: TdmSettings, existing_text: str | None = None) -> str:
    """Exactly what TDM's `json_save(path, settings, sort=True)` writes for these values.

    TDM writes a set in hash order, which changes between runs; we write it sorted, or in the order it has in
    `existing_text` when that file holds the same set, so an unchanged value stays byte-identical."""
    exclude = _existing_order(settings.exclude, existing_text) or _sorted(settings.exclude)
    document = {key: getattr(settings, key) for key in KEYS}
    document.update(
        proxy={"__type": "URL", "data": settings.proxy},
        priority=list(settings.priority),
        exclude={"__type": "set", "data": exclude},
    )
    return json.dumps(document, indent=4, sort_keys=True, ensure_ascii=True, default=_serialize)


# ---- changes ------------------------------------------------------------------------------------------------


def _strict(kind: type, what: str) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if type(value) is not kind:  # TDM's own check: True is not an int, 1 is not a bool
            raise ValueError(f"expected {what}, got {value!r}")
        return value

    return convert


def _names(value: Any, kinds: tuple[type, ...] = (list, tuple)) -> tuple[str, ...]:
    if not isinstance(value, kinds):
        raise ValueError(f"expected a list of game names, got {value!r}")
    names = tuple(value)
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"expected a game name (string), got {name!r}")
    return names


def _priority_mode(value: Any) -> PriorityMode:
    if isinstance(value, PriorityMode):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a priority mode name, got {value!r}")
    return PriorityMode.from_yaml_name(value)


def _proxy(value: Any) -> str:
    _strict(str, "a proxy URL (string)")(value)
    try:
        _url(value)  # TDM would stop on what yarl refuses
    except ValueError as error:
        raise ValueError(f"not a valid URL ({error}): {value!r}") from None
    return value


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "proxy": _proxy,
    "priority": _names,
    "exclude": lambda value: frozenset(_names(value, (list, tuple, set, frozenset))),
    "priority_mode": _priority_mode,
    "connection_quality": _strict(int, "an integer"),
    "language": _strict(str, "a language name (string)"),
    **{key: _strict(bool, "true or false") for key in KEYS if isinstance(getattr(TdmSettings(), key), bool)},
}


def merge(current: TdmSettings, changes: Mapping[str, Any]) -> TdmSettings:
    """`current` with `changes` applied; keys not in `changes` keep their current value. `priority_mode` may be
    given by its YAML name (`priority_only`, `ending_soonest`, `low_availability_first`). Raises ValueError
    naming the key for an unknown key or a value TDM would reset to its default."""
    values = {}
    for key, value in changes.items():
        if key not in _CONVERTERS:
            raise ValueError(f"unknown TDM setting {key!r}")
        try:
            values[key] = _CONVERTERS[key](value)
        except ValueError as error:
            raise ValueError(f"{key}: {error}") from None
    return dataclasses.replace(current, **values)


def plain(value: Any) -> Any:
    """A settings value as plain JSON-able data, as the YAML file spells it (for the audit trail and CLI)."""
    if isinstance(value, PriorityMode):
        return value.yaml_name
    if isinstance(value, frozenset):
        return _sorted(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def diff(old: TdmSettings, new: TdmSettings) -> dict[str, tuple[Any, Any]]:
    """Per-key changes `{key: (old, new)}`, in settings order, as plain values (see `plain`)."""
    return {
        key: (plain(getattr(old, key)), plain(getattr(new, key)))
        for key in KEYS
        if getattr(old, key) != getattr(new, key)
    }


# ---- files --------------------------------------------------------------------------------------------------


def _remove(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    safefile.fsync_dir(path.parent)
    return True


def _loadable(data: bytes) -> bool:
    try:
        decode(data.decode("utf-8"))
    except (UnicodeDecodeError, SettingsUnreadable):
        return False
    return True


def _read_or_none(path: Path) -> bytes | None:
    try:
        return safefile.read_regular(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        return None


def write(directory: Path, settings: TdmSettings) -> bool:
    """Write `settings` to `directory`/settings.json as TDM would, atomically, mode 0600. The replaced file is
    kept as `LAST_GOOD_NAME` when TDM could load it; a stale `settings.json.new` is removed. Returns whether
    anything TDM reads changed (False: settings.json already held exactly these bytes and there was no .new)."""
    path = directory / SETTINGS_NAME
    for leftover in directory.glob(_TEMP_GLOB):  # from a writer that was killed
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    old = _read_or_none(path)
    data = encode(settings, old.decode("utf-8", "replace") if old is not None else None).encode("ascii")
    changed = old != data
    if changed:
        if old is not None and _loadable(old):
            safefile.replace_atomically(directory / LAST_GOOD_NAME, old, FILE_MODE)
        safefile.replace_atomically(path, data, FILE_MODE)
    else:
        os.chmod(path, FILE_MODE)
    # after the replace: a crash in between leaves the .new TDM would have loaded before, not a mix
    return _remove(directory / NEW_NAME) or changed


def restore_last_good(directory: Path) -> bool:
    """Make the settings loadable for TDM again, if they are not: put `LAST_GOOD_NAME` back as settings.json
    (atomically) when settings.json is unreadable, and remove a `.new` TDM would stop on. Returns whether it
    changed anything (False when TDM can already load the settings, or there is no loadable last-good copy)."""
    try:
        check_loadable(directory)
        return False
    except SettingsUnreadable:
        pass
    path = directory / SETTINGS_NAME
    try:
        current = _read_or_none(path)
        last_good = _read_or_none(directory / LAST_GOOD_NAME)
    except safefile.NotARegularFile:  # a folder or FIFO where a file belongs: not ours to replace; the caller sets it aside
        return False
    if current is not None and not _loadable(current):
        if last_good is None or not _loadable(last_good):
            return False
        safefile.replace_atomically(path, last_good, FILE_MODE)
    _remove(directory / NEW_NAME)  # it could only be a .new TDM would stop on
    return True
