"""Every message TDM can show, as templates that read like its source (log catalog sections 1, 2).

A template is the message with `{field}` where TDM inserts a value; `{_}` is a value we do not keep.
Each template applies at the one level TDM logs it at; GUI texts come from our capture of the GUI
box. Left out: the unreachable `_login` flow and the DEBUG Request/Response/GQL dumps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .events import EventKind as K

# How a field's value looks, when it is narrower than "anything on the line".
_FIELD_REGEX = {
    "shard": r"\d+",
    "current": r"\d+",
    "required": r"\d+",
    "claimed": r"\d+",
    "total": r"\d+",
    "retry_seconds": r"\d+",
    "sleep_seconds": r"\d+",
    "status": r"\d+",
    "task": r"\w+",
    "operation": r"\S+",
    "trigger": r"\w+",
    "drops_before": r"\S+",
    "drops_after": r"\S+",
}
_INT_FIELDS = frozenset(
    {"shard", "current", "required", "claimed", "total", "retry_seconds", "sleep_seconds", "status"}
)
_BOOL_FIELDS = frozenset({"drops_before", "drops_after"})  # TDM prints ✔ or ❌
_CRITICAL_TASKS = frozenset({"_watch_loop", "_maintenance_task"})  # their crash stops the miner

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
# A record whose message goes on with a traceback (logger.exception, format_traceback).
_TRACEBACK_TAIL = r"(?:\n(?s:.*))?"


class InvalidField(Exception):
    """A value matched the template's shape but cannot be typed (e.g. 5000 digits)."""


def typed_fields(groups: Mapping[str, str | None]) -> dict[str, Any]:
    """Give the well-known field names their types; groups that did not take part are left out.

    Raises `InvalidField` when an int field does not convert.
    """
    fields: dict[str, Any] = {}
    for name, value in groups.items():
        if value is None:
            continue
        if name in _INT_FIELDS:
            try:
                fields[name] = int(value)
            except ValueError:
                raise InvalidField(name) from None
        elif name in _BOOL_FIELDS:
            fields[name] = value.startswith("✔")
        elif name == "code":  # websocket close code; aiohttp can report None
            fields[name] = int(value) if value.isdecimal() and len(value) < 10 else None
        else:
            fields[name] = value
    return fields


def split_trailing_group(text: str, opener: str = "(") -> tuple[str, str] | None:
    """Split "head(inner)" at the "(" that closes with the final ")", counting nesting.

    Names can hold parentheses: "Drop (1h) (Game (EU), 1/2)" gives ("Drop (1h) ", "Game (EU), 1/2").
    Unbalanced names fall back to the last `opener`, as a greedy regex would.
    """
    if not text.endswith(")"):
        return None
    if text.count("(") == 1:  # the usual case
        head, _, inner = text.rpartition("(")
        return head, inner[:-1]
    depth = 0
    for index in range(len(text) - 1, -1, -1):
        char = text[index]
        if char == ")":
            depth += 1
        elif char == "(":
            depth -= 1
            if depth == 0:
                return text[:index], text[index + 1 : -1]
    index = text.rfind(opener) + len(opener) - 1  # the opener ends with "("
    if index < len(opener) - 1:
        return None
    return text[:index], text[index + 1 : -1]


_DROP_PROGRESS = re.compile(r"(?P<game>.*), (?P<current>\d+)/(?P<required>\d+)")


def _drop_progress(fields: dict[str, Any]) -> dict[str, Any] | None:
    # drop_text = f"{drop.name} ({game}, {current}/{required})", parsed from the right
    parts = split_trailing_group(fields.pop("drop_text"), opener=" (")
    if parts is None or not parts[0].endswith(" "):
        return None
    match = _DROP_PROGRESS.fullmatch(parts[1])
    if match is None:
        return None
    return {"drop": parts[0][:-1], **typed_fields(match.groupdict()), **fields}


def _campaign_game(fields: dict[str, Any]) -> dict[str, Any] | None:
    # f'campaign "{self.name}({self.game.name})"', no space before the parenthesis
    parts = split_trailing_group(fields.pop("campaign_game"))
    if parts is None:
        return None
    return {"campaign": parts[0], "game": parts[1]}


def _channel_update(fields: dict[str, Any]) -> dict[str, Any]:
    # f"{channel.name}{game_change}", game_change = ", game changed: {old} -> {new}" or ""
    update = fields.pop("update")
    channel, _, games = update.partition(", game changed: ")
    old_game, arrow, new_game = games.partition(" -> ")
    if not arrow:
        return {"channel": update}
    return {"channel": channel, "old_game": old_game, "new_game": new_game}


def _task_crash(fields: dict[str, Any]) -> dict[str, Any]:
    return {**fields, "critical": fields["task"] in _CRITICAL_TASKS}


@dataclass(frozen=True, slots=True)
class Builtin:
    level: str
    kind: K
    template: str
    constants: Mapping[str, Any] = field(default_factory=dict)
    derive: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None
    traceback: bool = False  # the record may go on with a traceback
    regex: re.Pattern[str] = field(init=False)
    prefix: str = field(init=False)  # literal start; "" when the message starts with a value
    marker: str = field(init=False)  # first literal piece: must occur in the message
    fixed: bool = field(init=False)  # no values in it: a string comparison decides

    def __post_init__(self) -> None:
        pieces = _PLACEHOLDER.split(self.template)  # literal, name, literal, name, ...
        regex = []
        for index, piece in enumerate(pieces):
            if index % 2 == 0:
                regex.append(re.escape(piece))
            elif piece == "_":
                regex.append(".*")
            else:
                regex.append(f"(?P<{piece}>{_FIELD_REGEX.get(piece, '.*')})")
        tail = _TRACEBACK_TAIL if self.traceback else ""
        object.__setattr__(self, "regex", re.compile("".join(regex) + tail + r"\Z"))
        object.__setattr__(self, "prefix", pieces[0])
        object.__setattr__(self, "marker", pieces[0] or (pieces[2] if len(pieces) > 2 else ""))
        object.__setattr__(self, "fixed", len(pieces) == 1 and not self.traceback)

    def fields(self, message: str) -> dict[str, Any] | None:
        """The event's fields if `message` is this template, else None."""
        if self.fixed:
            return dict(self.constants) if message == self.template else None
        match = self.regex.match(message)
        if match is None:
            return None
        try:
            fields = typed_fields(match.groupdict())
            if self.derive is not None:
                fields = self.derive(fields)
        except InvalidField:
            return None
        if fields is None:
            return None
        return {**fields, **self.constants} if self.constants else fields


def _ws(level: str, kind: K, rest: str, **options: Any) -> Builtin:
    return Builtin(level, kind, "Websocket[{shard}]" + rest, **options)


_WEBSOCKET = {"source": "websocket"}
_GQL = {"source": "gql"}
_SEARCH = {"source": "active_search"}
_NOT_SWITCHING = {"switching": False}
_SWITCHING = {"switching": True}
_EMOJI = "(🎁: {drops_before} -> {drops_after})"

BUILTINS: tuple[Builtin, ...] = (
    # ERROR: visible with no -v at all
    Builtin("ERROR", K.STREAM_URL_ERROR, 'Stream URL get error: "{error}"'),
    Builtin("ERROR", K.SEND_WATCH_ERROR, 'Send watch error: "{error}"'),
    Builtin("ERROR", K.TOKEN_INVALIDATE_FAILED, "Failed to invalidate the auth token: {status}"),
    Builtin("ERROR", K.CLAIM_FAILED, "Drop claim has potentially failed! Drop ID: {drop_id}"),
    Builtin(
        "ERROR",
        K.STREAM_STATE_UNKNOWN_CHANNEL,
        "Stream state change for a non-existing channel: {channel_id}",
    ),
    Builtin(
        "ERROR",
        K.BROADCAST_UPDATE_UNKNOWN_CHANNEL,
        "Broadcast settings update for a non-existing channel: {channel_id}",
    ),
    Builtin(
        "ERROR",
        K.CLAIM_UNKNOWN_DROP,
        "Received a drop claim ID for a non-existing drop: {drop_id}\nDrop claim ID: {claim_id}",
    ),
    Builtin("ERROR", K.GQL_RETRY, "Retrying a {error} for {operation}"),
    Builtin("ERROR", K.TASK_CRASH, "Exception in {task} task", derive=_task_crash, traceback=True),
    Builtin("ERROR", K.WS_EXCEPTION, "Exception in Websocket[{shard}]", traceback=True),
    _ws("ERROR", K.WS_ERROR, " error: {_}", traceback=True),
    # WARNING: -v
    Builtin(
        "WARNING",
        K.EXTRA_MINUTES_LIMIT,
        'At least one of the drops in campaign "{campaign_game}" '
        "has reached the maximum extra minutes limit!",
        derive=_campaign_game,
    ),
    Builtin("WARNING", K.UNKNOWN_STREAM_STATE, "Unknown stream state: {state}"),
    _ws(
        "WARNING",
        K.WS_BACKOFF_EXIT,
        " exiting backoff connect loop because session is closed (RuntimeError)",
    ),
    _ws("WARNING", K.WS_CLOSED, " closed unexpectedly: {code}"),
    _ws("WARNING", K.WS_RECONNECTING, " reconnecting..."),
    _ws("WARNING", K.WS_NO_PONG, " didn't receive a PONG, reconnecting..."),
    _ws("WARNING", K.WS_RECONNECT_REQUESTED, " requested reconnect."),
    _ws("WARNING", K.WS_UNKNOWN_PAYLOAD, " received unknown payload: {_}"),
    # INFO: -vv
    Builtin("INFO", K.LOGIN_CHECKING, "Checking login"),
    Builtin("INFO", K.LOGIN_RESTORING, "Restoring session from cookie"),
    Builtin("INFO", K.LOGIN_INVALID, "Restored session is invalid"),
    Builtin("INFO", K.LOGIN_CLIENT_ID_MISMATCH, "Cookie client ID mismatch"),
    Builtin("INFO", K.LOGIN_SUCCESSFUL, "Login successful, user ID: {user_id}"),
    Builtin("INFO", K.CHANNEL_ONLINE, "{channel} goes ONLINE", _NOT_SWITCHING),
    Builtin("INFO", K.CHANNEL_OFFLINE, "{channel} goes OFFLINE", _NOT_SWITCHING),
    Builtin(
        "INFO",
        K.CHANNEL_STATUS_UPDATED,
        "{channel} status has been updated, switching... " + _EMOJI,
        _SWITCHING,
    ),
    Builtin(
        "INFO",
        K.CHANNEL_STATUS_UPDATED,
        "{channel} status has been updated " + _EMOJI,
        _NOT_SWITCHING,
    ),
    _ws("INFO", K.WS_CONNECTION_PROBLEM, " connection problem (sleep: {sleep_seconds}s)"),
    _ws("INFO", K.WS_CONNECTING, " connecting..."),
    _ws("INFO", K.WS_CONNECTED, " connected."),
    _ws("INFO", K.WS_STOPPED, " stopped."),
    # CALL: -vvv
    Builtin(
        "CALL", K.AVAILABLE_DROPS_FAILED, "AvailableDrops GQL call failed for channel: {channel}"
    ),
    Builtin("CALL", K.WATCH_REQUEST_FAILED, "Watch requested failed for channel: {channel}"),
    Builtin("CALL", K.DROP_UNKNOWN, "Drop update from websocket: <Unknown>", _WEBSOCKET),
    Builtin(
        "CALL",
        K.DROP_PROGRESS,
        "Drop update from websocket: {drop_text}",
        _WEBSOCKET,
        _drop_progress,
    ),
    Builtin("CALL", K.DROP_UNKNOWN, "Drop progress from GQL: <Unknown>", _GQL),
    Builtin("CALL", K.DROP_PROGRESS, "Drop progress from GQL: {drop_text}", _GQL, _drop_progress),
    Builtin("CALL", K.DROP_UNKNOWN, "Drop progress from active search: <Unknown>", _SEARCH),
    Builtin(
        "CALL",
        K.DROP_PROGRESS,
        "Drop progress from active search: {drop_text}",
        _SEARCH,
        _drop_progress,
    ),
    Builtin("CALL", K.NO_ACTIVE_DROP, "No active drop could be determined"),
    Builtin("CALL", K.MAINTENANCE_WAIT, "Maintenance task waiting until: {until} ({trigger})"),
    Builtin("CALL", K.MAINTENANCE_CLEANUP, "Maintenance task requests channels cleanup"),
    Builtin("CALL", K.MAINTENANCE_RELOAD, "Maintenance task requests a reload"),
    Builtin(
        "CALL", K.CHANNEL_UPDATED, "Channel update from websocket: {update}", derive=_channel_update
    ),
    Builtin("CALL", K.CHANNEL_STAYS_OFFLINE, "{channel} stays OFFLINE"),
    # GUI: only in the GUI Output box (English texts)
    Builtin("GUI", K.LOGGING_LEVEL, "Logging level: {level}"),
    Builtin("GUI", K.LOGIN_REQUIRED, "Please log in to continue."),
    Builtin(
        "GUI",
        K.LOGIN_DEVICE_CODE,
        "Enter this code on the Twitch's device activation page: {user_code}",
    ),
    Builtin("GUI", K.WATCHING, "Watching: {channel}"),
    Builtin("GUI", K.CHANNEL_ONLINE, "{channel} goes ONLINE, switching...", _SWITCHING),
    Builtin("GUI", K.CHANNEL_OFFLINE, "{channel} goes OFFLINE, switching...", _SWITCHING),
    Builtin("GUI", K.DROP_CLAIMED, "Claimed drop: {text} ({claimed}/{total})"),
    Builtin(
        "GUI",
        K.NO_CAMPAIGNS,
        "No active campaigns to mine drops for. Waiting for an active campaign...",
    ),
    Builtin(
        "GUI", K.NO_CHANNELS, "No available channels to watch. Waiting for an ONLINE channel..."
    ),
    Builtin("GUI", K.TWITCH_DOWN, "Twitch is down, retrying in {retry_seconds} seconds..."),
    Builtin(
        "GUI",
        K.CANNOT_CONNECT,
        "Cannot connect to Twitch, retrying in {retry_seconds} seconds... ({url})",
    ),
    Builtin("GUI", K.FATAL_ERROR, "Fatal error encountered:", traceback=True),
    Builtin("GUI", K.EXITING, "Exiting..."),
    # printed as "\nApplication Terminated.\n...": matched after stripping the newlines around it
    Builtin(
        "GUI",
        K.APPLICATION_TERMINATED,
        "Application Terminated.\nClose the window to exit the application.",
    ),
)
