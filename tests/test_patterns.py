"""Patterns: every catalog message to its event, the real fixture runs, and user pattern files."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.builtin_patterns import BUILTINS, split_trailing_group
from exporter.events import Event, EventKind as K
from exporter.framing import Record
from exporter.patterns import (
    LEVELS,
    PatternError,
    PatternSet,
    UserPattern,
    load_user_patterns,
    parse_user_patterns,
)
from exporter.redaction import redact

from conftest import RUNS
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "patterns.yaml"
HEADER = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})\.(\d{3,4}):\t *([A-Z]+):\t(.*)$")
BUILTIN = PatternSet.builtin()


def record(level: str, message: str, source: str = "log") -> Record:
    return Record(source, "2026-11-23 22:21:19", 201, level, message, 0, len(message))


def parsed(patterns: PatternSet, level: str, message: str) -> list[tuple[K, dict[str, Any]]]:
    return [(event.kind, dict(event.fields)) for event in patterns.events(record(level, message), 0.0)]


def log_records(run: str) -> list[Record]:
    """Frame a log.txt with the header regex of TDM.md: non-header lines continue the record."""
    records: list[tuple[str, list[str]]] = []
    for line in (RUNS / run / "log.txt").read_text(encoding="utf-8").split("\n"):
        header = HEADER.match(line)
        if header:
            records.append((header[3], [header[4]]))
        elif records:
            records[-1][1].append(line)
    return [record(level, "\n".join(lines)) for level, lines in records]


def gui_prints(run: str) -> list[Record]:
    """The GUI-only texts of a gui_output.txt capture: `HH:MM:SS.mmm PRINT <repr of the text>`."""
    prints = []
    for line in (RUNS / run / "gui_output.txt").read_text(encoding="utf-8").splitlines():
        stamp, tag, text = line.split(" ", 2)
        if tag == "PRINT":
            prints.append(record("GUI", ast.literal_eval(text), source="gui"))
    return prints


def events_of(records: list[Record]) -> list[tuple[K, dict[str, Any]]]:
    return [(e.kind, dict(e.fields)) for r in records for e in BUILTIN.events(r, 0.0)]


# --- the real runs -----------------------------------------------------------------------------

LOGIN_AND_WEBSOCKET = [
    (K.LOGIN_CHECKING, {}),
    (K.LOGIN_RESTORING, {}),
    (K.LOGIN_SUCCESSFUL, {"user_id": "123456789"}),
    (K.WS_CONNECTING, {"shard": 0}),
    (K.WS_CONNECTED, {"shard": 0}),
]
RECONNECT_AND_STOP = [
    (K.WS_RECONNECT_REQUESTED, {"shard": 0}),
    (K.WS_RECONNECTING, {"shard": 0}),
    (K.WS_CONNECTED, {"shard": 0}),
    (K.WS_STOPPED, {"shard": 0}),
]


def progress(current: int) -> tuple[K, dict[str, Any]]:
    fields = {"drop": "Mock Drop", "game": "Mock Game", "current": current, "required": 10}
    return K.DROP_PROGRESS, {**fields, "source": "websocket"}


def maintenance(until: str) -> tuple[K, dict[str, Any]]:
    return K.MAINTENANCE_WAIT, {"until": until, "trigger": "Reload"}


GAME_CHANGED = (
    K.CHANNEL_UPDATED,
    {"channel": "MockStreamer", "old_game": "Mock Game", "new_game": "Other Game"},
)
UNKNOWN_STATE = (K.UNKNOWN_STREAM_STATE, {"state": "foo"})
WATCHING = (K.WATCHING, {"channel": "MockStreamer"})
CLAIMED = (K.DROP_CLAIMED, {"text": "Mock Game Mock Reward", "claimed": 1, "total": 1})

LOG_EVENTS = {
    "A_fresh_login_vvvv": [
        LOGIN_AND_WEBSOCKET[0],
        *LOGIN_AND_WEBSOCKET[2:],
        maintenance("23:21:31"),
        progress(3),
        progress(4),
        UNKNOWN_STATE,
        GAME_CHANGED,
        maintenance("23:21:57"),
        *RECONNECT_AND_STOP,
    ],
    "C_restore_cookie_vv": [*LOGIN_AND_WEBSOCKET, UNKNOWN_STATE, *RECONNECT_AND_STOP],
    "E_restore_cookie_vvv": [
        *LOGIN_AND_WEBSOCKET,
        maintenance("23:25:39"),
        progress(3),
        progress(4),
        UNKNOWN_STATE,
        GAME_CHANGED,
        maintenance("23:26:04"),
        *RECONNECT_AND_STOP,
    ],
    "F_errors_and_fatal_vvv": [
        *LOGIN_AND_WEBSOCKET,
        (K.GQL_RETRY, {"error": "service error", "operation": "Inventory"}),
        (K.WS_UNKNOWN_PAYLOAD, {"shard": 0}),
        maintenance("23:27:59"),
        (K.CLAIM_UNKNOWN_DROP, {"drop_id": "zzz", "claim_id": "x#y#zzz"}),
        (K.TASK_CRASH, {"task": "process_stream_state", "critical": False}),
        (K.CLAIM_FAILED, {"drop_id": "d1"}),
        (K.WS_STOPPED, {"shard": 0}),
    ],
}

GUI_EVENTS = {
    "A_fresh_login_vvvv": [
        (K.LOGGING_LEVEL, {"level": "DEBUG"}),
        (K.LOGIN_REQUIRED, {}),
        (K.LOGIN_DEVICE_CODE, {"user_code": "MOCKCODE"}),
        WATCHING,
        CLAIMED,
        (K.NO_CAMPAIGNS, {}),
        (K.EXITING, {}),
    ],
    "C_restore_cookie_vv": [
        (K.LOGGING_LEVEL, {"level": "INFO"}),
        WATCHING,
        CLAIMED,
        (K.NO_CAMPAIGNS, {}),
        (K.EXITING, {}),
    ],
    "E_restore_cookie_vvv": [
        (K.LOGGING_LEVEL, {"level": "CALL"}),
        WATCHING,
        CLAIMED,
        (K.NO_CAMPAIGNS, {}),
        (K.EXITING, {}),
    ],
    "F_errors_and_fatal_vvv": [
        (K.LOGGING_LEVEL, {"level": "CALL"}),
        WATCHING,
        (K.CHANNEL_OFFLINE, {"channel": "MockStreamer", "switching": True}),
        (K.NO_CHANNELS, {}),
        (K.FATAL_ERROR, {}),  # the traceback is printed apart and gives no event
        (K.EXITING, {}),
        (K.APPLICATION_TERMINATED, {}),
    ],
}


@pytest.mark.parametrize("run", sorted(LOG_EVENTS))
def test_fixture_log_events(run: str) -> None:
    assert events_of(log_records(run)) == LOG_EVENTS[run]


@pytest.mark.parametrize("run", sorted(GUI_EVENTS))
def test_fixture_gui_events(run: str) -> None:
    assert events_of(gui_prints(run)) == GUI_EVENTS[run]


@pytest.mark.parametrize("run", sorted(LOG_EVENTS))
def test_every_fixture_record_is_recognised(run: str) -> None:
    for rec in log_records(run):
        events = BUILTIN.events(rec, 0.0)
        assert len(events) == (0 if rec.level == "DEBUG" else 1), rec.message[:80]


def test_event_carries_record_identity_and_redacted_text() -> None:
    message = "Websocket[3] connected."
    [event] = BUILTIN.events(record("INFO", message, source="tdm-log"), 1795472479.201)
    assert event == Event(K.WS_CONNECTED, 1795472479.201, "INFO", "tdm-log", message, {"shard": 3})


def test_events_never_hold_a_secret() -> None:
    secret = "'auth_token': 'mockaccesstoken0123456789abcd'"
    user = parse_user_patterns(
        "patterns:\n  - {name: x, regex: 'unknown payload: (?P<payload>.*)', event: payload}\n"
    )
    patterns = BUILTIN.extended(user)
    events = patterns.events(record("WARNING", "Websocket[0] received unknown payload: " + secret), 0)
    assert [e.kind for e in events] == [K.WS_UNKNOWN_PAYLOAD, K.CUSTOM]
    for event in events:
        assert "mockaccesstoken" not in event.message
        assert "mockaccesstoken" not in repr(event.fields)


# --- one example per catalog template ------------------------------------------------------------

EXAMPLES: list[tuple[str, str, K, dict[str, Any]]] = [
    # section 1, ERROR
    ("ERROR", 'Stream URL get error: "not found"', K.STREAM_URL_ERROR, {"error": "not found"}),
    ("ERROR", 'Send watch error: "bad"', K.SEND_WATCH_ERROR, {"error": "bad"}),
    ("ERROR", "Failed to invalidate the auth token: 401", K.TOKEN_INVALIDATE_FAILED, {"status": 401}),
    ("ERROR", "Drop claim has potentially failed! Drop ID: d1", K.CLAIM_FAILED, {"drop_id": "d1"}),
    (
        "ERROR",
        "Stream state change for a non-existing channel: 1001",
        K.STREAM_STATE_UNKNOWN_CHANNEL,
        {"channel_id": "1001"},
    ),
    (
        "ERROR",
        "Broadcast settings update for a non-existing channel: 1002",
        K.BROADCAST_UPDATE_UNKNOWN_CHANNEL,
        {"channel_id": "1002"},
    ),
    (
        "ERROR",
        "Received a drop claim ID for a non-existing drop: zzz\nDrop claim ID: x#y#zzz",
        K.CLAIM_UNKNOWN_DROP,
        {"drop_id": "zzz", "claim_id": "x#y#zzz"},
    ),
    (
        "ERROR",
        "Retrying a PersistedQueryNotFound for DropCampaignDetails",
        K.GQL_RETRY,
        {"error": "PersistedQueryNotFound", "operation": "DropCampaignDetails"},
    ),
    (
        "ERROR",
        "Retrying a service error for field for Inventory",  # error text can hold " for "
        K.GQL_RETRY,
        {"error": "service error for field", "operation": "Inventory"},
    ),
    (
        "ERROR",
        "Exception in _watch_loop task\nTraceback (most recent call last):\n  File \"x\"\nKeyError: 'a'",
        K.TASK_CRASH,
        {"task": "_watch_loop", "critical": True},
    ),
    (
        "ERROR",
        "Exception in _maintenance_task task\nTraceback (most recent call last):",
        K.TASK_CRASH,
        {"task": "_maintenance_task", "critical": True},
    ),
    ("ERROR", "Exception in process_drops task", K.TASK_CRASH, {"task": "process_drops", "critical": False}),
    (
        "ERROR",
        "Exception in Websocket[2]\nTraceback (most recent call last):\nValueError: x",
        K.WS_EXCEPTION,
        {"shard": 2},
    ),
    (
        "ERROR",
        "Websocket[0] error: Traceback (most recent call last):\n  File \"y\"\nOSError: boom",
        K.WS_ERROR,
        {"shard": 0},
    ),
    ("ERROR", "Websocket[1] error: Unknown message: WSMessage(type=9)", K.WS_ERROR, {"shard": 1}),
    # section 1, WARNING
    (
        "WARNING",
        'At least one of the drops in campaign "Spring Drops (Week 2)(Game (EU), Part 2)" '
        "has reached the maximum extra minutes limit!",
        K.EXTRA_MINUTES_LIMIT,
        {"campaign": "Spring Drops (Week 2)", "game": "Game (EU), Part 2"},
    ),
    ("WARNING", "Unknown stream state: foo", K.UNKNOWN_STREAM_STATE, {"state": "foo"}),
    (
        "WARNING",
        "Websocket[0] exiting backoff connect loop because session is closed (RuntimeError)",
        K.WS_BACKOFF_EXIT,
        {"shard": 0},
    ),
    ("WARNING", "Websocket[1] closed unexpectedly: 1006", K.WS_CLOSED, {"shard": 1, "code": 1006}),
    ("WARNING", "Websocket[1] closed unexpectedly: None", K.WS_CLOSED, {"shard": 1, "code": None}),
    (
        "WARNING",
        "Websocket[1] closed unexpectedly: " + "9" * 5000,
        K.WS_CLOSED,
        {"shard": 1, "code": None},
    ),
    ("WARNING", "Websocket[0] reconnecting...", K.WS_RECONNECTING, {"shard": 0}),
    ("WARNING", "Websocket[7] didn't receive a PONG, reconnecting...", K.WS_NO_PONG, {"shard": 7}),
    ("WARNING", "Websocket[0] requested reconnect.", K.WS_RECONNECT_REQUESTED, {"shard": 0}),
    (
        "WARNING",
        "Websocket[0] received unknown payload: {'type': 'FOOBAR'}",
        K.WS_UNKNOWN_PAYLOAD,
        {"shard": 0},
    ),
    # section 1, INFO
    ("INFO", "Checking login", K.LOGIN_CHECKING, {}),
    ("INFO", "Restoring session from cookie", K.LOGIN_RESTORING, {}),
    ("INFO", "Restored session is invalid", K.LOGIN_INVALID, {}),
    ("INFO", "Cookie client ID mismatch", K.LOGIN_CLIENT_ID_MISMATCH, {}),
    ("INFO", "Login successful, user ID: 123456789", K.LOGIN_SUCCESSFUL, {"user_id": "123456789"}),
    ("INFO", "Streamer_1 goes ONLINE", K.CHANNEL_ONLINE, {"channel": "Streamer_1", "switching": False}),
    ("INFO", "Streamer_1 goes OFFLINE", K.CHANNEL_OFFLINE, {"channel": "Streamer_1", "switching": False}),
    (
        "INFO",
        "Streamer_1 status has been updated, switching... (🎁: ✔ -> ❌)",
        K.CHANNEL_STATUS_UPDATED,
        {"channel": "Streamer_1", "drops_before": True, "drops_after": False, "switching": True},
    ),
    (
        "INFO",
        "Streamer_1 status has been updated (🎁: ❌ -> ✔)",
        K.CHANNEL_STATUS_UPDATED,
        {"channel": "Streamer_1", "drops_before": False, "drops_after": True, "switching": False},
    ),
    (
        "INFO",
        "Websocket[0] connection problem (sleep: 37s)",
        K.WS_CONNECTION_PROBLEM,
        {"shard": 0, "sleep_seconds": 37},
    ),
    ("INFO", "Websocket[0] connecting...", K.WS_CONNECTING, {"shard": 0}),
    ("INFO", "Websocket[12] connected.", K.WS_CONNECTED, {"shard": 12}),
    ("INFO", "Websocket[0] stopped.", K.WS_STOPPED, {"shard": 0}),
    # section 1, CALL
    (
        "CALL",
        "AvailableDrops GQL call failed for channel: streamer_1",
        K.AVAILABLE_DROPS_FAILED,
        {"channel": "streamer_1"},
    ),
    (
        "CALL",
        "Watch requested failed for channel: Streamer_1",
        K.WATCH_REQUEST_FAILED,
        {"channel": "Streamer_1"},
    ),
    (
        "CALL",
        "Drop update from websocket: Mock Drop (Mock Game, 3/10)",
        K.DROP_PROGRESS,
        {"drop": "Mock Drop", "game": "Mock Game", "current": 3, "required": 10, "source": "websocket"},
    ),
    (
        "CALL",
        "Drop update from websocket: Skin (Gold), Tier 2 (Game (Beta), Season 1, 59/120)",
        K.DROP_PROGRESS,
        {
            "drop": "Skin (Gold), Tier 2",
            "game": "Game (Beta), Season 1",
            "current": 59,
            "required": 120,
            "source": "websocket",
        },
    ),
    (
        "CALL",
        "Drop update from websocket: Smile :) (Game, 1/2)",  # unbalanced parenthesis in the name
        K.DROP_PROGRESS,
        {"drop": "Smile :)", "game": "Game", "current": 1, "required": 2, "source": "websocket"},
    ),
    ("CALL", "Drop update from websocket: <Unknown>", K.DROP_UNKNOWN, {"source": "websocket"}),
    (
        "CALL",
        "Drop progress from GQL: Box (Game, 60/60)",
        K.DROP_PROGRESS,
        {"drop": "Box", "game": "Game", "current": 60, "required": 60, "source": "gql"},
    ),
    ("CALL", "Drop progress from GQL: <Unknown>", K.DROP_UNKNOWN, {"source": "gql"}),
    (
        "CALL",
        "Drop progress from active search: Box (Game, 0/60)",
        K.DROP_PROGRESS,
        {"drop": "Box", "game": "Game", "current": 0, "required": 60, "source": "active_search"},
    ),
    ("CALL", "Drop progress from active search: <Unknown>", K.DROP_UNKNOWN, {"source": "active_search"}),
    ("CALL", "No active drop could be determined", K.NO_ACTIVE_DROP, {}),
    (
        "CALL",
        "Maintenance task waiting until: 11:21:31 PM (Cleanup)",  # %X depends on the locale
        K.MAINTENANCE_WAIT,
        {"until": "11:21:31 PM", "trigger": "Cleanup"},
    ),
    ("CALL", "Maintenance task requests channels cleanup", K.MAINTENANCE_CLEANUP, {}),
    ("CALL", "Maintenance task requests a reload", K.MAINTENANCE_RELOAD, {}),
    (
        "CALL",
        "Channel update from websocket: MockStreamer, game changed: Mock Game -> Other Game",
        K.CHANNEL_UPDATED,
        {"channel": "MockStreamer", "old_game": "Mock Game", "new_game": "Other Game"},
    ),
    ("CALL", "Channel update from websocket: MockStreamer", K.CHANNEL_UPDATED, {"channel": "MockStreamer"}),
    ("CALL", "Streamer_1 stays OFFLINE", K.CHANNEL_STAYS_OFFLINE, {"channel": "Streamer_1"}),
    # section 2, GUI only
    ("GUI", "Logging level: CALL", K.LOGGING_LEVEL, {"level": "CALL"}),
    ("GUI", "Please log in to continue.", K.LOGIN_REQUIRED, {}),
    (
        "GUI",
        "Enter this code on the Twitch's device activation page: ABCD1234",
        K.LOGIN_DEVICE_CODE,
        {"user_code": "ABCD1234"},
    ),
    ("GUI", "Watching: MockStreamer", K.WATCHING, {"channel": "MockStreamer"}),
    (
        "GUI",
        "Streamer_1 goes ONLINE, switching...",
        K.CHANNEL_ONLINE,
        {"channel": "Streamer_1", "switching": True},
    ),
    (
        "GUI",
        "Streamer_1 goes OFFLINE, switching...",
        K.CHANNEL_OFFLINE,
        {"channel": "Streamer_1", "switching": True},
    ),
    (
        "GUI",
        "Claimed drop: Game (EU) Skin (Gold), 100 Coins (2/5)",
        K.DROP_CLAIMED,
        {"text": "Game (EU) Skin (Gold), 100 Coins", "claimed": 2, "total": 5},
    ),
    (
        "GUI",
        "No active campaigns to mine drops for. Waiting for an active campaign...",
        K.NO_CAMPAIGNS,
        {},
    ),
    ("GUI", "No available channels to watch. Waiting for an ONLINE channel...", K.NO_CHANNELS, {}),
    ("GUI", "Twitch is down, retrying in 8 seconds...", K.TWITCH_DOWN, {"retry_seconds": 8}),
    (
        "GUI",
        "Cannot connect to Twitch, retrying in 130 seconds... (https://gql.twitch.tv/gql)",
        K.CANNOT_CONNECT,
        {"retry_seconds": 130, "url": "https://gql.twitch.tv/gql"},
    ),
    ("GUI", "Fatal error encountered:\n", K.FATAL_ERROR, {}),
    (
        "GUI",
        "Fatal error encountered:\nTraceback (most recent call last):\nMinerException: x",
        K.FATAL_ERROR,
        {},
    ),
    ("GUI", "Exiting...", K.EXITING, {}),
    (
        "GUI",
        "\nApplication Terminated.\nClose the window to exit the application.",
        K.APPLICATION_TERMINATED,
        {},
    ),
]


@pytest.mark.parametrize(
    "level, message, kind, fields", EXAMPLES, ids=[f"{e[0]}:{e[1][:40]}" for e in EXAMPLES]
)
def test_catalog_template(level: str, message: str, kind: K, fields: dict[str, Any]) -> None:
    assert parsed(BUILTIN, level, message) == [(kind, fields)]


def test_every_builtin_template_has_an_example() -> None:
    for builtin in BUILTINS:
        assert any(
            level == builtin.level and builtin.fields(message.strip("\n")) is not None
            for level, message, _, _ in EXAMPLES
        ), builtin.template


@pytest.mark.parametrize(
    "level, message",
    [
        ("DEBUG", "Websocket[0] connected."),  # TDM logs it at INFO only
        ("WARNING", "Websocket[0] connected."),
        ("INFO", "Watching: MockStreamer"),  # GUI-only text
        ("GUI", "Checking login"),  # log.txt text
        ("GUI", "INFO: Checking login"),  # a mirrored log record in the GUI box is not counted twice
        ("ERROR", "Drop update from websocket: Mock Drop (Mock Game, 3/10)"),
        ("STDERR", "Exiting..."),
        ("BOGUS", "Exiting..."),
    ],
)
def test_level_filter(level: str, message: str) -> None:
    assert parsed(BUILTIN, level, message) == []


@pytest.mark.parametrize(
    "level, message",
    [
        ("INFO", "Checking login now"),  # fixed texts must match whole
        ("INFO", "Websocket[x] connected."),
        ("INFO", "Websocket[0] connected. "),
        ("CALL", "Drop update from websocket: no parentheses"),
        ("CALL", "Drop update from websocket: Drop (Game, three/10)"),
        ("CALL", "Drop update from websocket: " + "(" * 50),
        ("WARNING", "Websocket[0] requested reconnect.\nmore"),  # only tracebacks may follow
        ("GUI", "Claimed drop: Mock Game Mock Reward"),
        ("ERROR", "Exception in Websocket[0"),
        ("INFO", "Websocket[" + "9" * 5000 + "] connected."),  # too many digits for int()
        ("CALL", "Drop update from websocket: D (G, 1/" + "9" * 5000 + ")"),
        ("DEBUG", "Request: (method='GET', url=URL('https://www.twitch.tv'), kwargs={})"),
        ("INFO", ""),
    ],
)
def test_near_misses_give_no_event(level: str, message: str) -> None:
    assert parsed(BUILTIN, level, message) == []


def test_channel_names_that_look_like_messages() -> None:
    assert parsed(BUILTIN, "INFO", "Checking login goes ONLINE") == [
        (K.CHANNEL_ONLINE, {"channel": "Checking login", "switching": False})
    ]
    assert parsed(BUILTIN, "GUI", "Exiting... goes OFFLINE, switching...") == [
        (K.CHANNEL_OFFLINE, {"channel": "Exiting...", "switching": True})
    ]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("A (B)", ("A ", "B")),
        ("A (1) (B (2), 3/4)", ("A (1) ", "B (2), 3/4")),
        ("A :) (B, 1/2)", ("A :) ", "B, 1/2")),
        ("no parens", None),
        ("x)", None),
    ],
)
def test_split_trailing_group(text: str, expected: tuple[str, str] | None) -> None:
    assert split_trailing_group(text, opener=" (") == expected


# --- user patterns -------------------------------------------------------------------------------


def user_set(yaml_text: str) -> PatternSet:
    return BUILTIN.extended(parse_user_patterns(yaml_text, "patterns.yaml"))


def test_example_file_loads_and_works() -> None:
    patterns = BUILTIN.extended(load_user_patterns(EXAMPLE))
    assert [p.name for p in patterns.user_patterns] == [
        "gql_retries",
        "traceback_error",
        "retries_by_op",
        "ws_backoff",
        "connect_retry",
    ]
    events = parsed(patterns, "ERROR", "Retrying a service error for Inventory")
    assert events == [
        (K.GQL_RETRY, {"error": "service error", "operation": "Inventory"}),  # built-in
        (K.GQL_RETRY, {"error": "service error", "operation": "Inventory"}),  # gql_retries
        (
            K.USER_METRIC,
            {
                "metric": "tdm_user_gql_retries_total",
                "type": "counter",
                "help": "GQL requests TDM retried, by operation.",
                "labels": {"operation": "Inventory"},
                "value": 1.0,
            },
        ),
    ]
    crash = "Exception in _watch_loop task\nTraceback (most recent call last):\nKeyError: 'viewers'"
    assert parsed(patterns, "ERROR", crash) == [
        (K.TASK_CRASH, {"task": "_watch_loop", "critical": True}),
        (K.CUSTOM, {"exception": "KeyError", "name": "traceback_error"}),
    ]
    assert parsed(patterns, "INFO", "Websocket[1] connection problem (sleep: 16s)")[1] == (
        K.USER_METRIC,
        {
            "metric": "tdm_user_ws_backoff_seconds_total",
            "type": "counter",
            "help": "Seconds TDM's websockets waited before reconnecting.",
            "labels": {"shard": "1"},
            "value": 16.0,
        },
    )
    gui = "Cannot connect to Twitch, retrying in 8 seconds... (https://www.twitch.tv)"
    assert [kind for kind, _ in parsed(patterns, "GUI", gui)] == [K.CANNOT_CONNECT, K.USER_METRIC]
    assert parsed(patterns, "GUI", gui)[1][1]["value"] == 8.0


def test_user_pattern_levels_default_to_all() -> None:
    patterns = user_set("patterns:\n  - {name: any, regex: 'GET', event: saw_get}\n")
    for level in [*LEVELS, "SOMETHING_NEW"]:
        assert parsed(patterns, level, "Request: (method='GET')") == [(K.CUSTOM, {"name": "saw_get"})]


def test_user_pattern_levels_restrict() -> None:
    patterns = user_set("patterns:\n  - {name: d, regex: 'GET', levels: [debug], event: saw_get}\n")
    assert parsed(patterns, "DEBUG", "GET") == [(K.CUSTOM, {"name": "saw_get"})]
    assert parsed(patterns, "INFO", "GET") == []


def test_user_event_of_a_builtin_kind_gets_typed_fields() -> None:
    patterns = user_set(
        "patterns:\n"
        "  - name: french_progress\n"
        "    regex: '^Progression: (?P<drop>.+) \\((?P<current>\\d+)/(?P<required>\\d+)\\)$'\n"
        "    levels: [GUI]\n"
        "    event: drop_progress\n"
    )
    assert parsed(patterns, "GUI", "Progression: Box (3/10)") == [
        (K.DROP_PROGRESS, {"drop": "Box", "current": 3, "required": 10})
    ]


def test_optional_groups_and_bad_values() -> None:
    patterns = user_set(
        "patterns:\n"
        "  - name: g\n"
        "    regex: 'level=(?P<v>\\S+)(?: on (?P<where>\\w+))?'\n"
        "    gauge: {metric: tdm_user_level, value: v, labels: [where]}\n"
        "  - name: c\n"
        "    regex: 'add=(?P<n>\\S+)'\n"
        "    counter: {metric: tdm_user_added_total, value: n}\n"
    )
    [(kind, fields)] = parsed(patterns, "STDOUT", "level=-2.5")
    assert kind is K.USER_METRIC
    assert fields == {
        "metric": "tdm_user_level",
        "type": "gauge",
        "help": "Matches of a user pattern (tdm_user_level)",
        "labels": {"where": ""},
        "value": -2.5,
    }
    assert parsed(patterns, "STDOUT", "level=abc") == []
    assert parsed(patterns, "STDOUT", "level=nan") == []
    assert parsed(patterns, "STDOUT", "add=-1") == []  # counters only go up
    assert parsed(patterns, "STDOUT", "add=2")[0][1]["value"] == 2.0


def test_user_pattern_sees_redacted_text() -> None:
    patterns = user_set(
        "patterns:\n  - {name: leak, regex: \"OAuth (?P<token>\\\\S+)'\", event: leak}\n"
    )
    message = "Request: {'Authorization': 'OAuth mockaccesstoken0123456789abcd'}"
    assert parsed(patterns, "DEBUG", message) == [
        (K.CUSTOM, {"token": "<redacted>", "name": "leak"})
    ]


def test_extended_is_a_new_set() -> None:
    user = parse_user_patterns("patterns:\n  - {name: x, regex: 'a', event: y}\n")
    extended = BUILTIN.extended(user)
    assert BUILTIN.user_patterns == ()
    assert extended.user_patterns == tuple(user)
    with pytest.raises(PatternError, match="^pattern 'x': duplicate name$"):
        extended.extended(user)


def test_empty_files_give_no_patterns(tmp_path: Path) -> None:
    for text in ("", "# nothing\n", "patterns:\n", "patterns: []\n"):
        (tmp_path / "p.yaml").write_text(text)
        assert load_user_patterns(tmp_path / "p.yaml") == []


ERRORS = [
    (
        "patterns:\n  - name: retries_by_op\n    regex: 'Retrying (a (?P<op>\\w+) for'\n    event: x\n",
        "patterns.yaml: pattern 'retries_by_op': bad regex: "
        "missing ), unterminated subpattern at position 9",
    ),
    (
        "patterns:\n  - name: x\n    regex: '(?P<op>\\w+)'\n"
        "    counter: {metric: tdm_user_x_total, labels: [foo]}\n",
        "patterns.yaml: pattern 'x': label 'foo' is not a named group of the regex",
    ),
    ("patterns:\n  - regex: 'a'\n    event: x\n", "patterns.yaml: pattern #1: missing 'name'"),
    (
        "patterns:\n  - {name: a, regex: a, event: x}\n  - name: 7\n",
        "patterns.yaml: pattern #2: 'name' must be a non-empty string, got 7",
    ),
    ("patterns:\n  - name: x\n    event: y\n", "patterns.yaml: pattern 'x': missing 'regex'"),
    (
        "patterns:\n  - {name: x, regex: [a], event: y}\n",
        "patterns.yaml: pattern 'x': 'regex' must be a string, got ['a']",
    ),
    (
        "patterns:\n  - {name: x, regex: a, event: y}\n  - {name: x, regex: b, event: z}\n",
        "patterns.yaml: pattern 'x': duplicate name",
    ),
    (
        "patterns:\n  - name: x\n    regex: a\n    event: y\n"
        "    counter: {metric: tdm_user_x_total}\n",
        "patterns.yaml: pattern 'x': give exactly one of 'event', 'counter' or 'gauge', "
        "got 'event' and 'counter'",
    ),
    (
        "patterns:\n  - {name: x, regex: a}\n",
        "patterns.yaml: pattern 'x': give exactly one of 'event', 'counter' or 'gauge', got none",
    ),
    (
        "patterns:\n  - {name: x, regex: a, counter: {metric: 'tdm-user_total'}}\n",
        "patterns.yaml: pattern 'x': invalid metric name 'tdm-user_total' "
        "(expected [a-zA-Z_:][a-zA-Z0-9_:]*)",
    ),
    (
        "patterns:\n  - {name: x, regex: a, counter: {metric: tdm_user_x}}\n",
        "patterns.yaml: pattern 'x': counter metric 'tdm_user_x' must end in '_total'",
    ),
    (
        "patterns:\n  - {name: x, regex: a, event: y, colour: red}\n",
        "patterns.yaml: pattern 'x': unknown key 'colour' "
        "(expected name, regex, levels, event, counter, gauge)",
    ),
    (
        "patterns:\n  - {name: x, regex: a, counter: {metric: tdm_x_total, lables: []}}\n",
        "patterns.yaml: pattern 'x': counter: unknown key 'lables' "
        "(expected metric, help, labels, value)",
    ),
    (
        "patterns:\n  - {name: x, regex: a, counter: {help: h}}\n",
        "patterns.yaml: pattern 'x': counter: missing 'metric'",
    ),
    (
        "patterns:\n  - {name: x, regex: '(?P<v>\\d+)', gauge: {metric: tdm_x}}\n",
        "patterns.yaml: pattern 'x': gauge: missing 'value' (the named group holding the number)",
    ),
    (
        "patterns:\n  - {name: x, regex: '(?P<v>\\d+)', gauge: {metric: tdm_x, value: w}}\n",
        "patterns.yaml: pattern 'x': value 'w' is not a named group of the regex",
    ),
    (
        "patterns:\n  - {name: x, regex: '(?P<__v>\\d+)', counter: {metric: t_total, labels: [__v]}}\n",
        "patterns.yaml: pattern 'x': label '__v' is reserved (starts with '__')",
    ),
    (
        "patterns:\n  - {name: x, regex: a, counter: {metric: t_total, labels: a}}\n",
        "patterns.yaml: pattern 'x': counter: 'labels' must be a list of group names, got 'a'",
    ),
    (
        "patterns:\n  - {name: x, regex: a, gauge: 3}\n",
        "patterns.yaml: pattern 'x': 'gauge' must be a mapping with 'metric', got 3",
    ),
    (
        "patterns:\n  - {name: x, regex: a, levels: [INFO, TRACE], event: y}\n",
        "patterns.yaml: pattern 'x': unknown level 'TRACE' "
        "(expected one of ERROR, WARNING, INFO, CALL, DEBUG, GUI, STDOUT, STDERR)",
    ),
    (
        "patterns:\n  - {name: x, regex: a, levels: [], event: y}\n",
        "patterns.yaml: pattern 'x': 'levels' must be a non-empty list of level names, got []",
    ),
    (
        "patterns:\n  - {name: x, regex: a, event: user_metric}\n",
        "patterns.yaml: pattern 'x': event 'user_metric' is reserved",
    ),
    (
        "patterns:\n  - {name: x, regex: a, event: 'two words'}\n",
        "patterns.yaml: pattern 'x': event name 'two words' must match [A-Za-z_][A-Za-z0-9_]*",
    ),
    (
        "patterns:\n  - {name: x, regex: '(?P<name>a)', event: y}\n",
        "patterns.yaml: pattern 'x': named group 'name' clashes with the custom event's 'name' field",
    ),
    (
        "patterns:\n"
        "  - {name: a, regex: '(?P<op>a)', counter: {metric: t_total, labels: [op]}}\n"
        "  - {name: b, regex: 'b', counter: {metric: t_total}}\n",
        "patterns.yaml: pattern 'b': metric 't_total' is already a counter with labels ['op'] "
        "in pattern 'a'",
    ),
    (
        "patterns:\n  - {name: x, regex: '(?P<v>\\d+)', gauge: {metric: tdm_websocket_connections, value: v}}\n",
        "patterns.yaml: pattern 'x': metric 'tdm_websocket_connections' is one the exporter exports itself: "
        "choose another name (e.g. tdm_user_...)",
    ),
    (
        "patterns:\n  - {name: x, regex: a, counter: {metric: tdm_websocket_reconnects_total}}\n",
        "patterns.yaml: pattern 'x': metric 'tdm_websocket_reconnects_total' is one the exporter exports itself: "
        "choose another name (e.g. tdm_user_...)",
    ),
    (  # a counter's family is its name without _total: this one would clash with the gauge's TYPE line
        "patterns:\n  - {name: x, regex: a, counter: {metric: tdm_miner_up_total}}\n",
        "patterns.yaml: pattern 'x': metric 'tdm_miner_up_total' is one the exporter exports itself: "
        "choose another name (e.g. tdm_user_...)",
    ),
    (
        "patterns:\n  - just a string\n",
        "patterns.yaml: pattern #1: expected a mapping, got 'just a string'",
    ),
    ("patterns:\n  name: x\n", "patterns.yaml: 'patterns' must be a list, got {'name': 'x'}"),
    ("- name: x\n", "patterns.yaml: expected a mapping with a single key 'patterns'"),
    ("patterns: []\nextra: 1\n", "patterns.yaml: expected a mapping with a single key 'patterns'"),
    (
        "patterns:\n  - name: x\n    regex: 'a\n  - name: y\n",
        "patterns.yaml:5: YAML syntax error: found unexpected end of stream",
    ),
    (
        "patterns:\n  - name: x\n   regex: a\n",
        "patterns.yaml:3: YAML syntax error: expected <block end>, but found '<block mapping start>'",
    ),
]


@pytest.mark.parametrize("text, message", ERRORS, ids=[e[1][14:60] for e in ERRORS])
def test_pattern_file_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "patterns.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PatternError) as raised:
        load_user_patterns(path)
    assert str(raised.value) == message.replace("patterns.yaml", str(path), 1)
    assert "\n" not in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(PatternError, match=f"^{re.escape(str(path))}: file not found$"):
        load_user_patterns(path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(b"patterns:\n  - name: \xff\n")
    with pytest.raises(PatternError, match=r": not UTF-8 text \(invalid start byte at byte 20\)$"):
        load_user_patterns(path)


def test_yaml_tags_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("patterns: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(PatternError, match=r"^.*p\.yaml:1: YAML syntax error: could not determine"):
        load_user_patterns(path)


# --- robustness ----------------------------------------------------------------------------------

FRAGMENTS = sorted(
    {piece for builtin in BUILTINS for piece in re.split(r"\{\w+\}", builtin.template) if piece}
    | {"Websocket[0]", "(", ")", ", ", "/", "1", "\n", "✔", "❌", "<Unknown>", "'token': '"}
)
ROBUST = BUILTIN.extended(load_user_patterns(EXAMPLE))


@given(
    st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=8), max_size=12).map("".join),
    st.sampled_from([*LEVELS, "", "Info", "BOGUS"]),
)
def test_events_never_raise(message: str, level: str) -> None:
    for event in ROBUST.events(record(level, message), 0.0):
        assert isinstance(event.kind, K)
        assert event.message == redact(message)


@given(st.text(), st.text())
def test_events_never_raise_on_any_text(message: str, level: str) -> None:
    ROBUST.events(record(level, message), 0.0)


def test_user_pattern_is_plain_data() -> None:
    [pattern] = parse_user_patterns("patterns:\n  - {name: x, regex: 'a', event: y}\n")
    assert pattern == UserPattern("x", re.compile("a"), None, "y", None)


def test_builtin_metric_names_are_exactly_the_exported_metrics() -> None:
    """The names user patterns may not take are every name the exporter exports: the list README,
    rules and dashboards are checked against, which test_golden checks against what the code exports.
    Equal both ways, so neither list drifts from the other."""
    from exporter.patterns import BUILTIN_METRIC_NAMES

    listed = Path(__file__).parent / "data" / "exported_metrics.txt"
    ours = {name for name in listed.read_text().split() if name.startswith("tdm_")}
    assert ours == BUILTIN_METRIC_NAMES
