"""settings_file: TDM's settings.json decoded, encoded and written as TDM does (shared/tdm/settings_json.md)."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import stat
import subprocess
import sys
import tempfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import FIXTURES, REPO
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from exporter import settings_file as sf
from exporter.simulator import settings as sim_settings

from tdm_source import TDM as ref  # TDM's own json_load/json_save, from ../shared/tdm-src
from exporter.settings_file import (
    LAST_GOOD_NAME,
    NEW_NAME,
    SETTINGS_NAME,
    PriorityMode,
    SettingsUnreadable,
    TdmSettings,
)

FIXTURE_TEXT = (FIXTURES / "settings.json").read_text(encoding="utf-8")
DEFAULTS_TEXT = (FIXTURES / "settings-defaults.json").read_text(encoding="utf-8")
FIXTURE = TdmSettings(
    priority=("Game A", "Game B"), exclude=frozenset({"Game C"}), priority_mode=PriorityMode.ENDING_SOONEST
)
DROP = object()


def doc(base: str = FIXTURE_TEXT, **changes: Any) -> str:
    """The fixture file with some keys changed (DROP removes one), as TDM-shaped JSON text."""
    document = json.loads(base)
    document.update(changes)
    return json.dumps({key: value for key, value in document.items() if value is not DROP}, indent=4)


def typed(values: dict[str, Any]) -> dict[str, Any]:
    """Values with their types: `True == 1`, but TDM's type check tells them apart."""
    return {
        key: (type(value).__name__, value, [type(item).__name__ for item in value] if key == "priority" else None)
        for key, value in values.items()
    }


def ours(settings: TdmSettings) -> dict[str, Any]:
    return typed({key: getattr(settings, key) for key in sf.KEYS} | {"priority_mode": settings.priority_mode.value})


def reference_view(loaded: dict[str, Any]) -> dict[str, Any]:
    """What TDM's reference loader holds, in our value types."""
    return typed(loaded | {
        "proxy": str(loaded["proxy"]),
        "priority": tuple(loaded["priority"]),
        "exclude": frozenset(loaded["exclude"]),
        "priority_mode": loaded["priority_mode"].value,
    })


def reference_load(directory: Path) -> dict[str, Any] | Exception:
    try:
        return reference_view(ref.json_load(directory / SETTINGS_NAME, ref.default_settings()))
    except Exception as error:  # TDM: any error here → "Settings error" dialog, exit 4
        return error


def reference_contents(settings: TdmSettings) -> dict[str, Any]:
    """`settings` as TDM holds them in memory (for the reference json_save)."""
    return {key: getattr(settings, key) for key in sf.KEYS} | {
        "proxy": ref.URL(settings.proxy),
        "priority": list(settings.priority),
        "exclude": set(settings.exclude),
        "priority_mode": ref.PriorityMode(settings.priority_mode.value),
    }


def put(directory: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        (directory / name).write_bytes(data)


# ---- encoding --------------------------------------------------------------------------------------------


def test_encode_is_byte_identical_to_tdms_own_file():
    assert sf.encode(FIXTURE) == FIXTURE_TEXT
    assert sf.decode(FIXTURE_TEXT) == FIXTURE


def test_encode_defaults_is_byte_identical_to_a_real_tdm_run():
    assert sf.encode(TdmSettings()) == DEFAULTS_TEXT
    assert sf.decode(DEFAULTS_TEXT) == TdmSettings()


@pytest.mark.parametrize("path", sorted((FIXTURES / "runs").glob("*/settings.json")), ids=lambda p: p.parent.name)
def test_files_written_by_real_tdm_runs_reencode_byte_identical(path):
    text = path.read_text(encoding="utf-8")
    assert sf.encode(sf.decode(text), existing_text=text) == text


def test_non_ascii_is_escaped_as_tdm_does():
    text = sf.encode(TdmSettings(priority=("Pokémon GO", 'say "hi"'), exclude={"日本"}))
    assert text.isascii()
    assert '"Pok\\u00e9mon GO"' in text
    assert '"say \\"hi\\""' in text
    assert '"\\u65e5\\u672c"' in text
    assert not text.endswith("\n")


def test_set_order_of_an_unchanged_set_is_kept_from_the_existing_file():
    settings = replace(FIXTURE, exclude={"Game A", "Game B", "Game C"})
    existing = doc(exclude={"__type": "set", "data": ["Game C", "Game A", "Game B"]})
    assert json.loads(sf.encode(settings, existing))["exclude"]["data"] == ["Game C", "Game A", "Game B"]
    # a different set, or an unreadable existing file: sorted
    changed = replace(settings, exclude={"Game C", "Game A"})
    assert json.loads(sf.encode(changed, existing))["exclude"]["data"] == ["Game A", "Game C"]
    assert json.loads(sf.encode(settings, "{"))["exclude"]["data"] == ["Game A", "Game B", "Game C"]


# ---- property: what we write, TDM loads with every value kept ---------------------------------------------


def _urlsplit_ok(text: str) -> bool:
    try:
        urlsplit(text).port  # what TDM's yarl.URL accepts (a bad port makes TDM stop: tested above)
    except ValueError:
        return False
    return True


NAMES = st.text(st.characters(exclude_categories=()), max_size=12)  # any code point: quotes, controls, surrogates
SETTINGS = st.builds(
    TdmSettings,
    proxy=st.one_of(
        st.just(""), st.from_regex(r"\Ahttps?://[a-z0-9.-]{1,20}:[0-9]{1,5}\Z").filter(_urlsplit_ok), NAMES.filter(_urlsplit_ok)
    ),
    priority=st.lists(NAMES, max_size=6).map(tuple),
    exclude=st.frozensets(NAMES, max_size=6),
    priority_mode=st.sampled_from(PriorityMode),
    dark_mode=st.booleans(),
    autostart_tray=st.booleans(),
    connection_quality=st.integers(),
    language=NAMES,
    tray_notifications=st.booleans(),
    enable_badges_emotes=st.booleans(),
    available_drops_check=st.booleans(),
)


@pytest.mark.slow
@hypothesis_settings(max_examples=300, deadline=None)
@given(SETTINGS)
def test_we_decode_every_value_we_write(settings):
    text = sf.encode(settings)
    assert text.isascii()
    assert ours(sf.decode(text)) == ours(settings)


@hypothesis_settings(max_examples=300, deadline=None)
@given(SETTINGS)
def test_tdm_loads_every_value_we_write(settings):
    text = sf.encode(settings)
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        (directory / SETTINGS_NAME).write_text(text, encoding="ascii")
        # nothing silently reset; the proxy as yarl holds it (it re-quotes, e.g. a bare "%" becomes "%25")
        normalised = dataclasses.replace(settings, proxy=str(ref.URL(settings.proxy)))
        assert reference_load(directory) == ours(normalised)
        # TDM's own save of these values, in whatever set order it picks, is re-encoded byte for byte
        ref.json_save(directory / SETTINGS_NAME, reference_contents(settings), sort=True)  # as settings.py saves
        tdm_text = (directory / SETTINGS_NAME).read_text(encoding="utf-8")
    assert sf.encode(sf.decode(tdm_text), existing_text=tdm_text) == tdm_text
    if len(settings.exclude) <= 1 and normalised == settings:  # no set order or URL quoting to disagree on
        assert tdm_text == text


def test_unchecked_priority_elements_are_written_back_as_tdm_would(tmp_path):
    # a hand-edited file TDM loads without complaint: it keeps these elements and writes them back
    odd = ["Game A", 5, 2.5, None, True, ["x"], {"k": "v"}, {"__type": "PriorityMode", "data": 2},
           {"__type": "set", "data": ["b"]}, {"__type": "URL", "data": "http://h:1"}]
    put(tmp_path, {SETTINGS_NAME: doc(priority=odd)})
    settings = sf.load(tmp_path)
    loaded = ref.json_load(tmp_path / SETTINGS_NAME, ref.default_settings())
    ref.json_save(tmp_path / SETTINGS_NAME, loaded, sort=True)
    tdm_text = (tmp_path / SETTINGS_NAME).read_text()
    assert sf.encode(settings) == tdm_text
    assert sf.decode(tdm_text) == settings


# ---- decoding: every row of the spec's merge table, checked against the reference loader -----------------

DEFAULTS = TdmSettings()
LOAD_CASES = {
    # name: (files, expected settings)
    "missing file: defaults": ({}, DEFAULTS),
    "unknown key dropped": ({SETTINGS_NAME: doc(foo=1)}, FIXTURE),
    "bool given as 1: default": ({SETTINGS_NAME: doc(dark_mode=1)}, FIXTURE),
    "bool given as 0: default": ({SETTINGS_NAME: doc(tray_notifications=0)}, FIXTURE),
    "bool given as 'yes': default": ({SETTINGS_NAME: doc(dark_mode="yes")}, FIXTURE),
    "bool given as null: default": ({SETTINGS_NAME: doc(tray_notifications=None)}, FIXTURE),
    "int given as 2.0: default": ({SETTINGS_NAME: doc(connection_quality=2.0)}, FIXTURE),
    "int given as true: default": ({SETTINGS_NAME: doc(connection_quality=True)}, FIXTURE),
    "int out of range kept": ({SETTINGS_NAME: doc(connection_quality=99)},
                              replace(FIXTURE, connection_quality=99)),
    "str given as 5: default": ({SETTINGS_NAME: doc(language=5)}, FIXTURE),
    "exclude as a plain list: empty set": ({SETTINGS_NAME: doc(exclude=["Game C"])},
                                           TdmSettings(priority=("Game A", "Game B"),
                                                       priority_mode=PriorityMode.ENDING_SOONEST)),
    "priority_mode as a plain int: PRIORITY_ONLY": ({SETTINGS_NAME: doc(priority_mode=1)},
                                                    TdmSettings(priority=("Game A", "Game B"), exclude={"Game C"})),
    "proxy as a plain string: no proxy": ({SETTINGS_NAME: doc(proxy="http://127.0.0.1:8080")}, FIXTURE),
    "proxy wrapped: kept": ({SETTINGS_NAME: doc(proxy={"__type": "URL", "data": "http://127.0.0.1:8080"})},
                            replace(FIXTURE, proxy="http://127.0.0.1:8080")),
    "priority as a string: empty list": ({SETTINGS_NAME: doc(priority="Game A")},
                                         TdmSettings(exclude={"Game C"}, priority_mode=PriorityMode.ENDING_SOONEST)),
    "priority elements are not checked": ({SETTINGS_NAME: doc(priority=["Game A", 5, None])},
                                          TdmSettings(priority=("Game A", 5, None), exclude={"Game C"},
                                                      priority_mode=PriorityMode.ENDING_SOONEST)),
    "unknown __type: default": ({SETTINGS_NAME: doc(exclude={"__type": "frozenset", "data": ["Game C"]})},
                                TdmSettings(priority=("Game A", "Game B"), priority_mode=PriorityMode.ENDING_SOONEST)),
    "unknown __type nested in a dict: default": ({SETTINGS_NAME: doc(dark_mode={"x": {"__type": "frozenset"}})},
                                                 FIXTURE),
    "set data as a string: a set of its characters": ({SETTINGS_NAME: doc(exclude={"__type": "set", "data": "ab"})},
                                                      TdmSettings(priority=("Game A", "Game B"), exclude={"a", "b"},
                                                                  priority_mode=PriorityMode.ENDING_SOONEST)),
    "PriorityMode data true: ENDING_SOONEST": ({SETTINGS_NAME: doc(priority_mode={"__type": "PriorityMode",
                                                                                  "data": True})}, FIXTURE),
    "duplicate keys: the last wins": ({SETTINGS_NAME: FIXTURE_TEXT[:-2] + ',\n    "dark_mode": true\n}'},
                                      replace(FIXTURE, dark_mode=True)),
    "empty object: defaults": ({SETTINGS_NAME: "{}"}, DEFAULTS),
    "missing keys: defaults": ({SETTINGS_NAME: '{"priority": ["X"]}'}, TdmSettings(priority=("X",))),
    "missing sets and lists: defaults": ({SETTINGS_NAME: doc(priority=DROP, exclude=DROP)},
                                         TdmSettings(priority_mode=PriorityMode.ENDING_SOONEST)),
    "valid .new wins": ({SETTINGS_NAME: FIXTURE_TEXT, NEW_NAME: DEFAULTS_TEXT}, DEFAULTS),
    "valid .new wins over a broken settings.json": ({SETTINGS_NAME: "", NEW_NAME: FIXTURE_TEXT}, FIXTURE),
    "broken .new ignored": ({SETTINGS_NAME: FIXTURE_TEXT, NEW_NAME: FIXTURE_TEXT[:100]}, FIXTURE),
    "empty .new ignored": ({SETTINGS_NAME: FIXTURE_TEXT, NEW_NAME: ""}, FIXTURE),
    "broken .new, no settings.json: defaults": ({NEW_NAME: "{"}, DEFAULTS),
}
UNREADABLE_CASES = {
    "PriorityMode 7": {SETTINGS_NAME: doc(priority_mode={"__type": "PriorityMode", "data": 7})},
    "PriorityMode '1'": {SETTINGS_NAME: doc(priority_mode={"__type": "PriorityMode", "data": "1"})},
    "set data 5": {SETTINGS_NAME: doc(exclude={"__type": "set", "data": 5})},
    "set data null": {SETTINGS_NAME: doc(exclude={"__type": "set", "data": None})},
    "set of lists": {SETTINGS_NAME: doc(exclude={"__type": "set", "data": [["a"]]})},
    "set of sets": {SETTINGS_NAME: doc(exclude={"__type": "set", "data": [{"__type": "set", "data": []}]})},
    "URL data 5": {SETTINGS_NAME: doc(proxy={"__type": "URL", "data": 5})},
    "URL with a broken IPv6 host": {SETTINGS_NAME: doc(proxy={"__type": "URL", "data": "http://[::1"})},
    # found by running TDM's own json_load: yarl refuses these ports where urlsplit alone does not
    "URL with a port above 65535": {SETTINGS_NAME: doc(proxy={"__type": "URL", "data": "http://127.0.0.1:70000"})},
    "URL with a port that is not a number": {SETTINGS_NAME: doc(proxy={"__type": "URL", "data": "http://h:port"})},
    "datetime data a string": {SETTINGS_NAME: doc(foo={"__type": "datetime", "data": "x"})},
    "__type without data": {SETTINGS_NAME: doc(exclude={"__type": "set"})},
    "__type not hashable": {SETTINGS_NAME: doc(exclude={"__type": []})},
    "bad data under an unknown key": {SETTINGS_NAME: doc(foo={"__type": "PriorityMode", "data": 7})},
    "bad data inside priority": {SETTINGS_NAME: doc(priority=[{"__type": "set", "data": 5}])},
    "invalid JSON": {SETTINGS_NAME: FIXTURE_TEXT[:-1]},
    "empty file": {SETTINGS_NAME: ""},
    "blank file": {SETTINGS_NAME: "  \n"},
    "NUL-filled file": {SETTINGS_NAME: b"\x00" * 450},
    "UTF-8 BOM": {SETTINGS_NAME: "\ufeff" + FIXTURE_TEXT},
    "not UTF-8": {SETTINGS_NAME: FIXTURE_TEXT.replace("Game C", "Game \xe9").encode("latin-1")},
    "nested too deeply": {SETTINGS_NAME: '{"priority": ' + "[" * 100_000 + "]" * 100_000 + "}"},
    "top level a list": {SETTINGS_NAME: "[]"},
    "top level a number": {SETTINGS_NAME: "5"},
    "top level null": {SETTINGS_NAME: "null"},
    "top level a string": {SETTINGS_NAME: '"x"'},
    "top level a wrapped set": {SETTINGS_NAME: '{"__type": "set", "data": []}'},
    "top level an unknown __type": {SETTINGS_NAME: '{"__type": "frozenset"}'},
    ".new valid JSON but not an object": {SETTINGS_NAME: FIXTURE_TEXT, NEW_NAME: "[]"},
    ".new with PriorityMode 7": {SETTINGS_NAME: FIXTURE_TEXT,
                                 NEW_NAME: doc(priority_mode={"__type": "PriorityMode", "data": 7})},
    ".new not UTF-8": {SETTINGS_NAME: FIXTURE_TEXT, NEW_NAME: b'{"language": "\xe9"}'},
}


@pytest.mark.parametrize("files, expected", LOAD_CASES.values(), ids=LOAD_CASES.keys())
def test_load_follows_tdm(tmp_path, files, expected):
    put(tmp_path, files)
    assert ours(sf.load(tmp_path)) == ours(expected)
    sf.check_loadable(tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted(files)  # reading changes nothing
    if SETTINGS_NAME in files and NEW_NAME not in files:
        assert ours(sf.decode(files[SETTINGS_NAME])) == ours(expected)


@pytest.mark.parametrize("files, expected", LOAD_CASES.values(), ids=LOAD_CASES.keys())
def test_tdm_itself_loads_the_load_cases_so(tmp_path, files, expected):
    put(tmp_path, files)
    assert reference_load(tmp_path) == ours(expected)  # TDM's own json_load agrees with each expectation


@pytest.mark.parametrize("files", UNREADABLE_CASES.values(), ids=UNREADABLE_CASES.keys())
def test_unreadable_where_tdm_stops(tmp_path, files):
    put(tmp_path, files)
    with pytest.raises(SettingsUnreadable) as raised:
        sf.load(tmp_path)
    message = str(raised.value)
    assert "\n" not in message and message.startswith(str(tmp_path / next(reversed(files))))
    with pytest.raises(SettingsUnreadable):
        sf.check_loadable(tmp_path)


@pytest.mark.parametrize("files", UNREADABLE_CASES.values(), ids=UNREADABLE_CASES.keys())
def test_tdm_itself_stops_on_the_unreadable_cases(tmp_path, files):
    put(tmp_path, files)
    assert isinstance(reference_load(tmp_path), Exception)


SIMULATED_CASES = {**{name: files for name, (files, _) in LOAD_CASES.items()}, **UNREADABLE_CASES}


@pytest.mark.parametrize("files", SIMULATED_CASES.values(), ids=SIMULATED_CASES.keys())
def test_the_simulator_loads_settings_as_tdm_does(tmp_path, files):
    """The simulated TDM's own settings code (it cannot import TDM's) against TDM's real json_load."""
    real, simulated = tmp_path / "real", tmp_path / "simulated"
    for folder in (real, simulated):
        folder.mkdir()
        put(folder, files)
    expected = reference_load(real)
    try:
        got = reference_view(sim_settings.json_load(simulated / SETTINGS_NAME, sim_settings.default_settings()))
    except Exception as error:  # the simulator then shows TDM's "Settings error"
        got = error
    if isinstance(expected, Exception):
        assert isinstance(got, Exception), f"TDM stops ({expected!r}), the simulator loads {got}"
    else:
        assert got == expected
    assert sorted(os.listdir(simulated)) == sorted(os.listdir(real))  # an invalid .new deleted by both


@pytest.mark.parametrize(
    "text, message",
    [
        (doc(priority_mode={"__type": "PriorityMode", "data": 7}),
         '{"__type": "PriorityMode", "data": 7} cannot be loaded: 7 is not a valid PriorityMode'),
        (doc(exclude={"__type": "set", "data": 5}),
         "{\"__type\": \"set\", \"data\": 5} cannot be loaded: 'int' object is not iterable"),
        ("", "empty file (blank or only NUL bytes)"),
        ("\x00\x00", "empty file (blank or only NUL bytes)"),
        ("{\n  \"a\": }", "not valid JSON: Expecting value at line 2 column 8"),
        ("[1, 2]", "the top level is not a JSON object: [1, 2]"),
    ],
)
def test_unreadable_messages(text, message):
    with pytest.raises(SettingsUnreadable) as raised:
        sf.decode(text)
    assert str(raised.value) == message
    assert isinstance(raised.value, ValueError)


# ---- merge and diff --------------------------------------------------------------------------------------


def test_merge_keeps_the_keys_left_out_and_maps_yaml_names():
    merged = sf.merge(FIXTURE, {"priority": ["Game B", "Game A"], "priority_mode": "low_availability_first",
                                "proxy": "http://127.0.0.1:8080", "connection_quality": 3})
    assert merged == TdmSettings(priority=("Game B", "Game A"), exclude={"Game C"}, proxy="http://127.0.0.1:8080",
                                 priority_mode=PriorityMode.LOW_AVBL_FIRST, connection_quality=3)
    assert sf.merge(FIXTURE, {}) == FIXTURE
    assert sf.merge(FIXTURE, {"exclude": []}).exclude == frozenset()
    assert [sf.merge(FIXTURE, {"priority_mode": mode.yaml_name}).priority_mode for mode in PriorityMode] \
        == list(PriorityMode)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"dark_mode": 1}, "dark_mode: expected true or false, got 1"),
        ({"connection_quality": True}, "connection_quality: expected an integer, got True"),
        ({"priority": "Game A"}, "priority: expected a list of game names, got 'Game A'"),
        ({"priority": ["Game A", 12]}, "priority: expected a game name (string), got 12"),
        ({"exclude": [None]}, "exclude: expected a game name (string), got None"),
        ({"priority_mode": "fastest"},
         "priority_mode: expected one of priority_only, ending_soonest, low_availability_first, got 'fastest'"),
        ({"proxy": "http://[::1"}, "proxy: not a valid URL (Invalid IPv6 URL): 'http://[::1'"),
        ({"proxy": "http://h:70000"}, "proxy: not a valid URL (Port out of range 0-65535): 'http://h:70000'"),
        ({"foo": 1}, "unknown TDM setting 'foo'"),
    ],
)
def test_merge_rejects_what_tdm_would_reset(changes, message):
    with pytest.raises(ValueError) as raised:
        sf.merge(FIXTURE, changes)
    assert str(raised.value) == message


def test_diff_is_per_key_with_plain_values():
    new = sf.merge(FIXTURE, {"priority": ["Game B"], "exclude": ["Z", "Game C"], "priority_mode": "priority_only"})
    assert sf.diff(FIXTURE, new) == {
        "priority": (["Game A", "Game B"], ["Game B"]),
        "exclude": (["Game C"], ["Game C", "Z"]),
        "priority_mode": ("ending_soonest", "priority_only"),
    }
    assert sf.diff(FIXTURE, FIXTURE) == {}


# ---- writing ---------------------------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_creates_the_file_tdm_would_write_mode_0600(tmp_path):
    old_umask = os.umask(0)
    try:
        assert sf.write(tmp_path, FIXTURE) is True
    finally:
        os.umask(old_umask)
    assert (tmp_path / SETTINGS_NAME).read_text() == FIXTURE_TEXT
    assert mode(tmp_path / SETTINGS_NAME) == 0o600
    assert sorted(os.listdir(tmp_path)) == [SETTINGS_NAME]  # nothing to keep, no temp left


def test_write_of_the_same_values_changes_nothing(tmp_path):
    # TDM wrote the set in its own order: an unchanged set is left as it is
    tdm_text = FIXTURE_TEXT.replace('"Game C"', '"Game C",\n            "Game A"')
    put(tmp_path, {SETTINGS_NAME: tdm_text})
    (tmp_path / SETTINGS_NAME).chmod(0o644)
    before = (tmp_path / SETTINGS_NAME).stat()
    assert sf.write(tmp_path, sf.load(tmp_path)) is False
    after = (tmp_path / SETTINGS_NAME).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert (tmp_path / SETTINGS_NAME).read_text() == tdm_text
    assert mode(tmp_path / SETTINGS_NAME) == 0o600
    assert not (tmp_path / LAST_GOOD_NAME).exists()


def test_write_keeps_the_previous_file_as_last_good_and_fixes_the_mode(tmp_path):
    put(tmp_path, {SETTINGS_NAME: DEFAULTS_TEXT})
    (tmp_path / SETTINGS_NAME).chmod(0o644)
    assert sf.write(tmp_path, FIXTURE) is True
    assert (tmp_path / LAST_GOOD_NAME).read_text() == DEFAULTS_TEXT
    assert mode(tmp_path / LAST_GOOD_NAME) == 0o600
    assert mode(tmp_path / SETTINGS_NAME) == 0o600
    assert sf.load(tmp_path) == FIXTURE


def test_write_removes_a_stale_new_that_tdm_would_prefer(tmp_path):
    put(tmp_path, {SETTINGS_NAME: FIXTURE_TEXT, NEW_NAME: DEFAULTS_TEXT})
    assert sf.load(tmp_path) == DEFAULTS  # TDM would start with the .new
    assert sf.write(tmp_path, FIXTURE) is True  # settings.json already held these bytes; the .new had to go
    assert not (tmp_path / NEW_NAME).exists()
    assert sf.load(tmp_path) == FIXTURE


def test_write_removes_temp_files_of_a_killed_writer(tmp_path):
    put(tmp_path, {".settings.json.k1l2e3d4.tmp": FIXTURE_TEXT[:40], ".settings.json.last-good.x1y2z3.tmp": ""})
    sf.write(tmp_path, FIXTURE)
    assert sorted(os.listdir(tmp_path)) == [SETTINGS_NAME]


def test_blanked_file_is_restored_from_last_good(tmp_path):
    # the real TDM bug: settings.json found empty after a reboot
    sf.write(tmp_path, DEFAULTS)
    sf.write(tmp_path, FIXTURE)
    assert (tmp_path / LAST_GOOD_NAME).read_text() == DEFAULTS_TEXT
    assert sf.restore_last_good(tmp_path) is False  # loadable: nothing to do
    (tmp_path / SETTINGS_NAME).write_bytes(b"")
    with pytest.raises(SettingsUnreadable, match="empty file"):
        sf.check_loadable(tmp_path)
    assert sf.restore_last_good(tmp_path) is True
    assert (tmp_path / SETTINGS_NAME).read_text() == DEFAULTS_TEXT
    assert mode(tmp_path / SETTINGS_NAME) == 0o600
    sf.check_loadable(tmp_path)
    assert sf.restore_last_good(tmp_path) is False


def test_an_unreadable_file_never_becomes_last_good(tmp_path):
    sf.write(tmp_path, DEFAULTS)
    sf.write(tmp_path, FIXTURE)
    (tmp_path / SETTINGS_NAME).write_bytes(b"\x00" * 300)
    assert sf.write(tmp_path, replace(FIXTURE, dark_mode=True)) is True
    assert (tmp_path / LAST_GOOD_NAME).read_text() == DEFAULTS_TEXT


def test_restore_without_a_last_good_copy_changes_nothing(tmp_path):
    put(tmp_path, {SETTINGS_NAME: ""})
    assert sf.restore_last_good(tmp_path) is False
    put(tmp_path, {LAST_GOOD_NAME: "{"})
    assert sf.restore_last_good(tmp_path) is False
    assert (tmp_path / SETTINGS_NAME).read_bytes() == b""


def test_restore_removes_a_new_tdm_would_stop_on(tmp_path):
    put(tmp_path, {SETTINGS_NAME: FIXTURE_TEXT, NEW_NAME: "[]"})
    assert sf.restore_last_good(tmp_path) is True
    assert sorted(os.listdir(tmp_path)) == [SETTINGS_NAME]
    assert sf.load(tmp_path) == FIXTURE


class Crash(Exception):
    pass


def test_a_crash_at_any_step_leaves_the_old_or_the_new_settings(tmp_path, monkeypatch):
    """Stop write() before each fsync, replace and unlink in turn: TDM then loads the old or the new settings."""
    new = sf.merge(FIXTURE, {"priority": ["Game Z"], "dark_mode": True})
    real = {name: getattr(os, name) for name in ("fsync", "replace", "unlink")}
    step = 0
    while True:
        step += 1
        directory = tmp_path / str(step)
        directory.mkdir()
        put(directory, {SETTINGS_NAME: FIXTURE_TEXT, NEW_NAME: DEFAULTS_TEXT})  # TDM's state: the .new wins
        calls = 0

        def counting(name):
            def call(*args, **kwargs):
                nonlocal calls
                calls += 1
                if calls == step:
                    raise Crash(name)
                return real[name](*args, **kwargs)
            return call

        for name in real:
            monkeypatch.setattr(os, name, counting(name))
        try:
            sf.write(directory, new)
            finished = True
        except Crash:
            finished = False
        finally:
            for name, function in real.items():
                monkeypatch.setattr(os, name, function)
        assert sf.load(directory) in ((new,) if finished else (DEFAULTS, new))
        assert sf.decode((directory / SETTINGS_NAME).read_text()) in (FIXTURE, new)
        if finished:
            assert step > 5
            break


CHILD = r"""
import json, sys
from pathlib import Path
from exporter.settings_file import TdmSettings, merge, write

directory, versions = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
versions = [merge(TdmSettings(), version) for version in versions]
count = 0
while True:
    write(directory, versions[count % len(versions)])
    count += 1
    print(count, flush=True)
"""


@pytest.mark.slow
def test_kill_9_during_writes_never_leaves_a_truncated_file(tmp_path):
    directory = tmp_path / "tdm"
    directory.mkdir()
    versions = [
        {
            "priority": [f"Game {version}-{n} \u00e9" for n in range(400)],
            "exclude": [f"X{version}-{n}" for n in range(50)],
            "dark_mode": version % 2 == 0,
        }
        for version in range(4)
    ]
    (tmp_path / "versions.json").write_text(json.dumps(versions))
    expected = {sf.encode(sf.merge(TdmSettings(), version)) for version in versions}
    rng = random.Random(4)
    for _ in range(20):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(directory), str(tmp_path / "versions.json")],
            cwd=REPO, stdout=subprocess.PIPE, text=True,
        )
        guard = threading.Timer(30, child.kill)  # a hung child fails the test instead of hanging it
        guard.start()
        try:
            target = rng.randint(1, 40)
            for line in child.stdout:
                if int(line) >= target:
                    break
            threading.Event().wait(rng.uniform(0, 0.004))  # random kill moment, not a synchronisation
            child.kill()
            child.wait(timeout=10)
        finally:
            guard.cancel()
            guard.join()
            child.stdout.close()
        assert child.returncode == -9
        assert (directory / SETTINGS_NAME).read_text() in expected
        assert (directory / LAST_GOOD_NAME).read_text() in expected
        assert mode(directory / SETTINGS_NAME) == 0o600
        assert not (directory / NEW_NAME).exists()
        sf.check_loadable(directory)
    sf.write(directory, DEFAULTS)
    assert sorted(os.listdir(directory)) == [SETTINGS_NAME, LAST_GOOD_NAME]
