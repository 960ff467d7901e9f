"""The state model: what TDM is doing, folded from events. Pure: no I/O, no clock, no locks.

Counters are lifetime totals (persisted by the store with the positions that produced them);
the rest is a small JSON-able picture of the miner's present.
"""

from __future__ import annotations

import datetime
import functools
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple, Sequence

from .events import Event, EventKind
from .exit_cause import last_exception
from .inventory import InventoryState, InventoryView

Labels = tuple[tuple[str, str], ...]
CounterKey = tuple[str, Labels]

MINER_STATUSES = (
    "starting",
    "mining",
    "idle",
    "login_required",
    "no_campaigns",
    "no_channels",
    "offline",
    "terminated",
    "stopped",
    "unknown",
)
SESSION_STATES = ("authenticated", "restoring", "login_required", "invalid", "unknown")
CRITICAL_TASKS = frozenset({"_watch_loop", "_maintenance_task"})
DEFAULT_USER_SERIES_LIMIT = 100
DEFAULT_LOGIN_TIMEOUT = 180.0
CLAIM_WINDOW = 24 * 3600.0
KNOWN_GAMES_LIMIT = 64

# Events that tell what the miner is doing now; everything else leaves the status alone.
_STATUS_BY_KIND = {
    EventKind.LOGIN_CHECKING: "starting",
    EventKind.LOGIN_RESTORING: "starting",
    EventKind.LOGIN_SUCCESSFUL: "starting",
    EventKind.LOGIN_REQUIRED: "login_required",
    EventKind.LOGIN_DEVICE_CODE: "login_required",
    EventKind.WATCHING: "mining",
    EventKind.DROP_PROGRESS: "mining",
    EventKind.NO_ACTIVE_DROP: "idle",
    EventKind.NO_CAMPAIGNS: "no_campaigns",
    EventKind.NO_CHANNELS: "no_channels",
    EventKind.CANNOT_CONNECT: "offline",
    EventKind.TWITCH_DOWN: "offline",
    EventKind.FATAL_ERROR: "terminated",
    EventKind.APPLICATION_TERMINATED: "terminated",
}
# Statuses in which TDM watches no channel and mines no drop (it stops watching before it says so).
_NOT_MINING = frozenset({"idle", "login_required", "no_campaigns", "no_channels", "offline", "terminated"})
_SHARD_DOWN = frozenset(
    {
        EventKind.WS_RECONNECTING,
        EventKind.WS_STOPPED,
        EventKind.WS_CLOSED,
        EventKind.WS_CONNECTION_PROBLEM,
        EventKind.WS_NO_PONG,
        EventKind.WS_EXCEPTION,
    }
)


def labels(**pairs: str) -> Labels:
    return tuple(sorted(pairs.items()))


_CHANNEL_STATUS = {  # the label set of tdm_channel_status_changes_total each kind counts in
    kind: labels(status=status)
    for kind, status in (
        (EventKind.CHANNEL_ONLINE, "online"),
        (EventKind.CHANNEL_OFFLINE, "offline"),
        (EventKind.CHANNEL_STAYS_OFFLINE, "stays_offline"),
        (EventKind.CHANNEL_STATUS_UPDATED, "updated"),
    )
}


class Drop(NamedTuple):
    """The drop being mined. A named tuple: one is made for every progress record of a catch-up,
    and a frozen dataclass takes several times longer to build."""

    name: str
    game: str
    current: int
    required: int
    source: str
    last_progress_time: float  # when Twitch last confirmed progress (record time); estimates do not move it
    confirmed: int | None = None  # the minutes Twitch confirmed; `current` may add TDM's own estimate

    @property
    def estimated(self) -> int | None:
        """Minutes TDM counted on its own ("Drop progress from active search") since Twitch confirmed."""
        return None if self.confirmed is None else max(0, self.current - self.confirmed)

    @property
    def percent(self) -> float:
        return 100.0 * self.current / self.required if self.required else 0.0


@dataclass(frozen=True)
class Snapshot:
    """A consistent copy for scrapes and API answers."""

    counters: Mapping[CounterKey, float]
    gauges: Mapping[CounterKey, float]  # user pattern gauges
    user_help: Mapping[str, tuple[str, str]]  # metric -> (type, help)
    status: str
    session: str
    session_login_time: float | None
    drop: Drop | None
    channel: str | None
    game: str | None
    websocket_shards: frozenset[int]
    last_record_time: float | None
    last_error: tuple[float, str] | None
    claims_last_24h: int
    claims_today: int
    drops_per_hour: float
    backlog: Mapping[str, int] = field(default_factory=dict)  # bytes of each followed file not read yet
    inventory: InventoryView | None = None  # TDM's own picture, from the bridge's STATE records

    def confirmed_progress_time(self) -> float | None:
        """When Twitch last confirmed progress of the current drop, by the log or by the bridge.
        TDM's own estimate never counts: a drop living on it has not progressed."""
        times = [self.drop.last_progress_time] if self.drop is not None else []
        if self.inventory is not None and self.inventory.confirmed_progress_time is not None:
            times.append(self.inventory.confirmed_progress_time)
        return max(times, default=None)


@dataclass
class MinerState:
    user_series_limit: int = DEFAULT_USER_SERIES_LIMIT
    login_timeout: float = DEFAULT_LOGIN_TIMEOUT

    counters: dict[CounterKey, float] = field(default_factory=dict)
    gauges: dict[CounterKey, float] = field(default_factory=dict)
    user_help: dict[str, tuple[str, str]] = field(default_factory=dict)
    status: str = "unknown"
    session: str = "unknown"
    checking_since: float | None = None
    session_login_time: float | None = None
    drop: Drop | None = None
    completed: tuple[str, str] | None = None  # the last drop counted as completed
    channel: str | None = None
    game: str | None = None
    known_games: list[str] = field(default_factory=list)
    websocket_shards: set[int] = field(default_factory=set)
    last_record_time: float | None = None
    last_error: tuple[float, str] | None = None
    claim_times: list[float] = field(default_factory=list)
    backlog: dict[str, int] = field(default_factory=dict)  # set by the pipeline; not persisted
    inventory: InventoryState = field(default_factory=InventoryState)  # saved on its own by the store

    # -- inputs ----------------------------------------------------------------------------

    def count_records(self, counts: Mapping[str, int], time: float, truncated: int = 0) -> None:
        """Records counted in bulk (levels no pattern reads); `time` is the newest one's."""
        for level, n in counts.items():
            key = _RECORDS_BY_LEVEL.get(level) or ("tdm_log_records_total", labels(level=level))
            self.counters[key] = self.counters.get(key, 0.0) + n
        if truncated:
            self._inc("tdm_log_oversized_records_total", (), truncated)
        if self.last_record_time is None or time > self.last_record_time:
            self.last_record_time = time

    def count_record(self, level: str, time: float, truncated: bool = False) -> None:
        key = _RECORDS_BY_LEVEL.get(level) or ("tdm_log_records_total", labels(level=level))
        counters = self.counters
        counters[key] = counters.get(key, 0.0) + 1.0
        if truncated:
            self._inc("tdm_log_oversized_records_total", ())
        if self.last_record_time is None or time > self.last_record_time:
            self.last_record_time = time

    def count_file(
        self, key: str, read_bytes: int = 0, rotations: int = 0, truncations: int = 0, read_errors: int = 0
    ) -> None:
        file = labels(file=key)
        for name, amount in (
            ("tdm_log_read_bytes_total", read_bytes),
            ("tdm_log_rotations_total", rotations),
            ("tdm_log_truncations_total", truncations),
            ("tdm_log_read_errors_total", read_errors),
        ):
            if amount or (name, file) not in self.counters:
                self._inc(name, file, amount)

    def count_bad_timestamp(self) -> None:
        """A record whose header time is no real time (2026-02-30): it took its neighbour's."""
        self._inc("tdm_log_bad_timestamps_total", ())

    def count_record_error(self) -> None:
        """A record that could not be turned into events (a bug, or a pattern that raised)."""
        self._inc("tdm_log_record_errors_total", ())

    def apply(self, event: Event) -> None:
        self.apply_match(event.kind, event.time, event.level, event.message, event.fields)

    def apply_match(self, kind: EventKind, time: float, level: str, message: str, fields: Mapping[str, Any]) -> None:
        """`apply` for an event that was never built (nobody keeps it): the same effect."""
        if kind is EventKind.USER_METRIC:
            self._apply_user_metric(fields)
            return
        counter, status, handler, is_error = _EFFECTS[kind]  # one lookup: this runs for every event
        counters = self.counters
        counters[counter] = counters.get(counter, 0.0) + 1.0
        if status is not None:
            self.status = status
            if status in _NOT_MINING:
                self.channel, self.drop = None, None
        if handler is not None:
            handler(self, kind, time, fields)
        if is_error or level == "ERROR":
            self.last_error = (time, _error_line(message))

    # -- event handlers --------------------------------------------------------------------

    def _on_progress(self, kind: EventKind, time: float, f: Mapping[str, Any]) -> None:
        name, game, source = f["drop"], f["game"], f.get("source", "")
        current, required = int(f["current"]), int(f["required"])
        previous = self.drop
        same_drop = previous is not None and previous.name == name and previous.game == game
        if source == "active_search":  # TDM's own estimate while Twitch is silent: not progress
            confirmed = previous.confirmed if same_drop else None
            moved = not same_drop
        else:
            confirmed = current
            moved = not same_drop or previous.confirmed != current
        last_progress = time if moved else previous.last_progress_time
        self.drop = Drop(name, game, current, required, source, last_progress, confirmed)
        self.game = game
        if game not in self.known_games:
            self._remember_game(game)
        if required and current >= required and self.completed != (name, game):
            self.completed = (name, game)
            self._inc("tdm_drops_completed_total", labels(game=game))

    def _on_claimed(self, kind: EventKind, time: float, f: Mapping[str, Any]) -> None:
        game = self._game_of_claim(f.get("text", ""))
        self._inc("tdm_drops_claimed_total", labels(game=game))
        self.claim_times.append(time)
        del self.claim_times[: max(0, len(self.claim_times) - 10_000)]

    def _on_claim_failed(self, kind: EventKind, time: float, f: Mapping[str, Any]) -> None:
        self._inc("tdm_drop_claim_failures_total", ())

    def _on_watching(self, kind: EventKind, time: float, f: Mapping[str, Any]) -> None:
        channel = f.get("channel")
        if channel != self.channel:
            self._inc("tdm_channel_switches_total", ())
            self.channel = channel

    def _on_channel_status(self, kind: EventKind, time: float, f: Mapping[str, Any]) -> None:
        self._inc("tdm_channel_status_changes_total", _CHANNEL_STATUS[kind])
        if kind is EventKind.CHANNEL_OFFLINE and f.get("channel") == self.channel:
            self.channel = None

    def _on_channel_updated(self, kind: EventKind, time: float, f: Mapping[str, Any]) -> None:
        new_game = f.get("new_game")
        if new_game and f.get("channel") == self.channel:
            self.game = new_game

    def _on_ws_connected(self, kind: EventKind, time: float, f: Mapping[str, Any]) -> None:
        self.websocket_shards.add(int(f.get("shard", 0)))

    def _on_ws_down(self, kind: EventKind, time: float, f: Mapping[str, Any]) -> None:
        self.websocket_shards.discard(int(f.get("shard", 0)))
        if kind is EventKind.WS_RECONNECTING:
            self._inc("tdm_websocket_reconnects_total", ())

    def _on_task_crash(self, kind: EventKind, time: float, f: Mapping[str, Any]) -> None:
        task = f.get("task", "unknown")
        self._inc("tdm_task_crashes_total", labels(task=task))
        if task in CRITICAL_TASKS or f.get("critical"):
            self.status = "terminated"
            self.channel, self.drop = None, None

    def _on_checking(self, kind: EventKind, time: float, f: Mapping[str, Any]) -> None:
        # "Checking login" opens every TDM start: forget what the previous run left behind.
        self.websocket_shards.clear()
        self.channel = None
        self.session = "unknown"
        self.checking_since = time

    def _on_restoring(self, kind: EventKind, time: float, f: Mapping[str, Any]) -> None:
        self.session = "restoring"

    def _on_login(self, kind: EventKind, time: float, f: Mapping[str, Any]) -> None:
        self.session = "authenticated"
        self.session_login_time = time
        self.checking_since = None

    def _on_login_required(self, kind: EventKind, time: float, f: Mapping[str, Any]) -> None:
        if self.session != "invalid":
            self.session = "login_required"
        self.checking_since = None

    def _on_invalid(self, kind: EventKind, time: float, f: Mapping[str, Any]) -> None:
        self.session = "invalid"
        self.checking_since = None
        self._inc("tdm_session_invalid_total", ())

    # -- user pattern metrics --------------------------------------------------------------

    def _apply_user_metric(self, f: Mapping[str, Any]) -> None:
        metric, kind = f["metric"], f["type"]
        self.user_help.setdefault(metric, (kind, f.get("help") or metric))
        key = (metric, tuple(sorted(f.get("labels", {}).items())))
        store = self.counters if kind == "counter" else self.gauges
        if key not in store and self._user_series(metric) >= self.user_series_limit:
            self._inc("tdm_user_metric_series_dropped_total", labels(metric=metric))
            return
        value = float(f.get("value", 1.0))
        if kind == "counter":
            self._inc(metric, key[1], value)
        else:
            self.gauges[key] = value

    def _user_series(self, metric: str) -> int:
        return sum(1 for name, _ in self.counters if name == metric) + sum(
            1 for name, _ in self.gauges if name == metric
        )

    # -- helpers ---------------------------------------------------------------------------

    def _inc(self, name: str, label_set: Labels, amount: float = 1.0) -> None:
        key = (name, label_set)
        self.counters[key] = self.counters.get(key, 0.0) + amount

    def _remember_game(self, game: str) -> None:
        # Series start at 0, so increase() over them sees a game's first drop too.
        for name in ("tdm_drops_completed_total", "tdm_drops_claimed_total"):
            self.counters.setdefault((name, labels(game=game)), 0.0)
        self.known_games.append(game)
        del self.known_games[: max(0, len(self.known_games) - KNOWN_GAMES_LIMIT)]

    def _game_of_claim(self, text: str) -> str:
        return game_of_claim(text, self.known_games)

    # -- outputs ---------------------------------------------------------------------------

    def snapshot(self, now: float) -> Snapshot:
        """`now` is wall-clock POSIX seconds, comparable with record times."""
        recent = [t for t in self.claim_times if now - t <= CLAIM_WINDOW]
        today = _local_midnight(now)
        session = self.session
        if self.checking_since is not None and now - self.checking_since > self.login_timeout:
            session = "login_required"  # no success after "Checking login": waiting for a login
        return Snapshot(
            counters=dict(self.counters),
            gauges=dict(self.gauges),
            user_help=dict(self.user_help),
            status=self.status,
            session=session,
            session_login_time=self.session_login_time,
            drop=self.drop,
            channel=self.channel,
            game=self.game,
            websocket_shards=frozenset(self.websocket_shards),
            last_record_time=self.last_record_time,
            last_error=self.last_error,
            claims_last_24h=len(recent),
            claims_today=sum(1 for t in recent if t >= today),
            drops_per_hour=len(recent) / 24.0,
            backlog=dict(self.backlog),
            inventory=self.inventory.view(),
        )

    def totals(self) -> dict[CounterKey, float]:
        return dict(self.counters)

    def to_json(self) -> str:
        """Everything but the counters (which the store keeps as totals)."""
        drop = self.drop
        return json.dumps(
            {
                "gauges": [[name, list(map(list, lab)), value] for (name, lab), value in self.gauges.items()],
                "user_help": self.user_help,
                "status": self.status,
                "session": self.session,
                "checking_since": self.checking_since,
                "session_login_time": self.session_login_time,
                "drop": None
                if drop is None
                else [drop.name, drop.game, drop.current, drop.required, drop.source, drop.last_progress_time, drop.confirmed],
                "completed": self.completed,
                "channel": self.channel,
                "game": self.game,
                "known_games": self.known_games,
                "websocket_shards": sorted(self.websocket_shards),
                "last_record_time": self.last_record_time,
                "last_error": self.last_error,
                "claim_times": self.claim_times[-1000:],
            }
        )

    def restore(self, totals: Mapping[CounterKey, float], state_json: str | None) -> None:
        self.counters = dict(totals)
        if not state_json:
            return
        data = json.loads(state_json)
        self.gauges = {(n, tuple(tuple(p) for p in lab)): v for n, lab, v in data.get("gauges", [])}
        self.user_help = {k: tuple(v) for k, v in data.get("user_help", {}).items()}
        for name in ("status", "session", "checking_since", "session_login_time", "channel", "game"):
            setattr(self, name, data.get(name))
        self.status = self.status or "unknown"
        self.session = self.session or "unknown"
        self.drop = Drop(*data["drop"]) if data.get("drop") else None
        self.completed = tuple(data["completed"]) if data.get("completed") else None
        self.known_games = list(data.get("known_games", []))
        self.websocket_shards = set(data.get("websocket_shards", []))
        self.last_record_time = data.get("last_record_time")
        self.last_error = tuple(data["last_error"]) if data.get("last_error") else None
        self.claim_times = list(data.get("claim_times", []))


@functools.lru_cache(maxsize=64)  # a log repeats its errors, tracebacks and all (a few KiB each)
def _error_line(message: str) -> str:
    """An error record in one line: its first line, and the exception its traceback ended with."""
    first = message.split("\n", 1)[0]
    cause = last_exception(message)
    return f"{first.rstrip(':')}: {cause}" if cause else first


def game_of_claim(text: str, known_games: Sequence[str]) -> str:
    """"Claimed drop: <game> <rewards> (n/total)": the game is whichever known game prefixes it."""
    candidates = [g for g in known_games if text == g or text.startswith(g + " ")]
    return max(candidates, key=len) if candidates else "unknown"


def _local_midnight(now: float) -> float:
    local = datetime.datetime.fromtimestamp(now).astimezone()
    return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


# Label sets built once: these are counted for every record and event.
_RECORDS_BY_LEVEL = {
    level: ("tdm_log_records_total", labels(level=level))
    for level in ("ERROR", "WARNING", "INFO", "CALL", "DEBUG", "GUI", "STDOUT", "STDERR", "STATE")
}

_HANDLERS = {
    EventKind.DROP_PROGRESS: MinerState._on_progress,
    EventKind.DROP_CLAIMED: MinerState._on_claimed,
    EventKind.CLAIM_FAILED: MinerState._on_claim_failed,
    EventKind.WATCHING: MinerState._on_watching,
    EventKind.CHANNEL_ONLINE: MinerState._on_channel_status,
    EventKind.CHANNEL_OFFLINE: MinerState._on_channel_status,
    EventKind.CHANNEL_STAYS_OFFLINE: MinerState._on_channel_status,
    EventKind.CHANNEL_STATUS_UPDATED: MinerState._on_channel_status,
    EventKind.CHANNEL_UPDATED: MinerState._on_channel_updated,
    EventKind.WS_CONNECTED: MinerState._on_ws_connected,
    EventKind.TASK_CRASH: MinerState._on_task_crash,
    EventKind.LOGIN_CHECKING: MinerState._on_checking,
    EventKind.LOGIN_RESTORING: MinerState._on_restoring,
    EventKind.LOGIN_SUCCESSFUL: MinerState._on_login,
    EventKind.LOGIN_REQUIRED: MinerState._on_login_required,
    EventKind.LOGIN_DEVICE_CODE: MinerState._on_login_required,
    EventKind.LOGIN_INVALID: MinerState._on_invalid,
    EventKind.LOGIN_CLIENT_ID_MISMATCH: MinerState._on_invalid,
    **{kind: MinerState._on_ws_down for kind in _SHARD_DOWN},
}
# What an event of each kind does: (its tdm_events_total key, the status it sets, its handler,
# whether it is an error whatever its level).
_EFFECTS = {
    kind: (
        ("tdm_events_total", labels(kind=kind.value)),
        _STATUS_BY_KIND.get(kind),
        _HANDLERS.get(kind),
        kind in (EventKind.FATAL_ERROR, EventKind.TASK_CRASH),
    )
    for kind in EventKind
}
