"""Typed events: what a TDM log record means, as plain frozen data.

Patterns turn framed records into events; the state model and the store consume them.
Nothing here does I/O.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from .redaction import redact_all


class EventKind(str, enum.Enum):
    # drops
    DROP_PROGRESS = "drop_progress"  # drop, game, current, required, source
    DROP_UNKNOWN = "drop_unknown"  # "Drop update from websocket: <Unknown>"; source
    NO_ACTIVE_DROP = "no_active_drop"
    DROP_CLAIMED = "drop_claimed"  # text ("<game> <rewards>"), claimed, total; game resolved by state
    CLAIM_FAILED = "claim_failed"  # drop_id
    CLAIM_UNKNOWN_DROP = "claim_unknown_drop"  # drop_id, claim_id
    EXTRA_MINUTES_LIMIT = "extra_minutes_limit"  # campaign, game
    # channels
    WATCHING = "watching"  # channel
    WATCH_REQUEST_FAILED = "watch_request_failed"  # channel
    AVAILABLE_DROPS_FAILED = "available_drops_failed"  # channel
    CHANNEL_ONLINE = "channel_online"  # channel, switching
    CHANNEL_OFFLINE = "channel_offline"  # channel, switching
    CHANNEL_STAYS_OFFLINE = "channel_stays_offline"  # channel
    CHANNEL_STATUS_UPDATED = "channel_status_updated"  # channel, drops_before, drops_after, switching
    CHANNEL_UPDATED = "channel_updated"  # channel, old_game, new_game (game fields only on a game change)
    UNKNOWN_STREAM_STATE = "unknown_stream_state"  # state
    STREAM_STATE_UNKNOWN_CHANNEL = "stream_state_unknown_channel"  # channel_id
    BROADCAST_UPDATE_UNKNOWN_CHANNEL = "broadcast_update_unknown_channel"  # channel_id
    STREAM_URL_ERROR = "stream_url_error"  # error
    SEND_WATCH_ERROR = "send_watch_error"  # error
    # websocket
    WS_CONNECTING = "ws_connecting"  # shard
    WS_CONNECTED = "ws_connected"  # shard
    WS_RECONNECT_REQUESTED = "ws_reconnect_requested"  # shard
    WS_RECONNECTING = "ws_reconnecting"  # shard
    WS_NO_PONG = "ws_no_pong"  # shard
    WS_CLOSED = "ws_closed"  # shard, code
    WS_STOPPED = "ws_stopped"  # shard
    WS_CONNECTION_PROBLEM = "ws_connection_problem"  # shard, sleep_seconds
    WS_BACKOFF_EXIT = "ws_backoff_exit"  # shard
    WS_EXCEPTION = "ws_exception"  # shard
    WS_ERROR = "ws_error"  # shard
    WS_UNKNOWN_PAYLOAD = "ws_unknown_payload"  # shard
    # login and session
    LOGIN_CHECKING = "login_checking"
    LOGIN_RESTORING = "login_restoring"
    LOGIN_SUCCESSFUL = "login_successful"  # user_id
    LOGIN_INVALID = "login_invalid"
    LOGIN_CLIENT_ID_MISMATCH = "login_client_id_mismatch"
    LOGIN_REQUIRED = "login_required"
    LOGIN_DEVICE_CODE = "login_device_code"  # user_code
    TOKEN_INVALIDATE_FAILED = "token_invalidate_failed"  # status
    # maintenance
    MAINTENANCE_WAIT = "maintenance_wait"  # until, trigger
    MAINTENANCE_RELOAD = "maintenance_reload"
    MAINTENANCE_CLEANUP = "maintenance_cleanup"
    # failures and lifecycle
    TASK_CRASH = "task_crash"  # task, critical
    FATAL_ERROR = "fatal_error"
    APPLICATION_TERMINATED = "application_terminated"
    EXITING = "exiting"
    LOGGING_LEVEL = "logging_level"  # level
    NO_CAMPAIGNS = "no_campaigns"
    NO_CHANNELS = "no_channels"
    CANNOT_CONNECT = "cannot_connect"  # retry_seconds, url
    TWITCH_DOWN = "twitch_down"  # retry_seconds
    GQL_RETRY = "gql_retry"  # error, operation
    # ours
    CONFIG_CHANGE = "config_change"
    SUPERVISOR = "supervisor"
    NOTIFICATION = "notification"  # a notification not delivered: event, channel (masked URL), error
    CUSTOM = "custom"  # a user pattern with its own event name: fields["name"]
    USER_METRIC = "user_metric"  # a user pattern counter/gauge update: metric, type, labels, value


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    time: float  # POSIX seconds, from the record's local timestamp
    level: str  # the record's level name: ERROR, WARNING, INFO, CALL, DEBUG, GUI, STDOUT, STDERR
    source: str  # the followed file's key
    message: str  # redacted text of the whole record
    fields: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data, as the API and the CLI show an event."""
        return {
            "time": self.time,
            "kind": self.kind.value,
            "level": self.level,
            "source": self.source,
            "message": self.message,
            "fields": dict(self.fields),
        }


def audit_event(action: str, fields: Mapping[str, Any], kind: EventKind, now: float) -> Event:
    """One of our own events (a config change, a settings write...), as stored and shown by /api/events."""
    fields = redact_all(dict(fields))  # settings.proxy may carry user:password@
    message = f"{action}: {json.dumps(fields, sort_keys=True)}"
    return Event(kind, now, "INFO", "twitchminert", message, {"action": action, **fields})


# After these TDM stops mining but its process stays alive ("Application Terminated").
_TERMINATING = frozenset({EventKind.FATAL_ERROR, EventKind.APPLICATION_TERMINATED})


def stops_mining(event: Event) -> bool:
    """A fatal error, "Application Terminated", or a crash of a task TDM cannot mine without."""
    return event.kind in _TERMINATING or (event.kind is EventKind.TASK_CRASH and bool(event.fields.get("critical")))


# The notifications a user can subscribe to (config `notify[].events`), in the order users read in the docs and
# the config error message; notify_rules decides when each is due.
NOTIFY_EVENTS = (
    "drop_claimed",
    "login_required",
    "session_invalid",
    "miner_terminated",
    "crash_loop",
    "gave_up",
    "miner_down",
    "stalled",
    "campaign_ending",
    "new_campaign",
    "recovered",
)
