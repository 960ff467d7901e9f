"""TDM's own picture of itself, folded from the bridge's STATE records. Pure: no I/O, no clock.

The launcher writes what TDM's window shows (login, device code, inventory, channels, games,
websockets, status bar) as STATE records (`bridge`); `InventoryState.apply` folds them in record
order, exactly like `MinerState` folds events, so the daemon resumes from its store and
`twitchminert replay` rebuilds the same picture from the file alone. A `hello` record starts a new
TDM process: nothing the previous one showed is true any more. A `snapshot` record replaces
everything at once.

The picture is live only while the process that reported it runs (`InventoryView.reported_by`). Once
it is gone, `InventoryView.stale()` keeps what it knew of the account (campaigns, drops, the channels'
names) as last known, `live` False, and voids what it was doing (watching, the current drop, a login
code, websockets): nothing may say a stopped TDM is active.

Minutes stay apart: `confirmed_minutes` is what Twitch confirmed (TDM's real_current_minutes),
`estimated_minutes` what TDM counted on its own since (extra_current_minutes); TDM shows their sum.
Only confirmed minutes count as progress (`confirmed_progress_time`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping

from .bridge import decode_record

CAMPAIGN_STATUSES = ("active", "upcoming", "expired")
DROP_STATES = ("pending", "in_progress", "claimable", "claimed")
CHANNEL_STATUSES = ("online", "offline", "pending")
LOGIN_STATES = ("logged_in", "login_required", "code_shown", "unknown")


@dataclass(frozen=True)
class Drop:
    id: str
    name: str | None
    campaign_id: str | None
    required_minutes: int | None
    current_minutes: int | None  # what TDM shows: confirmed + estimated
    confirmed_minutes: int | None
    estimated_minutes: int | None
    claimed: bool
    can_claim: bool
    rewards: tuple[str, ...]
    starts_at: float | None
    ends_at: float | None

    @property
    def state(self) -> str:
        if self.claimed:
            return "claimed"
        if self.can_claim:
            return "claimable"
        return "in_progress" if self.current_minutes else "pending"

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "required_minutes": self.required_minutes,
            "current_minutes": self.current_minutes,
            "confirmed_minutes": self.confirmed_minutes,
            "claimed": self.claimed,
            "can_claim": self.can_claim,
            "rewards": list(self.rewards),
        }


@dataclass(frozen=True)
class Campaign:
    id: str
    name: str | None
    game: str | None
    game_id: str | None
    recorded_status: str | None  # TDM's active/upcoming/expired when the record was written
    linked: bool | None
    link_url: str | None
    starts_at: float | None
    ends_at: float | None
    drops: tuple[Drop, ...]

    def status(self, now: float) -> str:
        """active, upcoming or expired at `now` (campaigns age while TDM does not reload)."""
        if self.recorded_status == "expired" or (self.ends_at is not None and now >= self.ends_at):
            return "expired"
        if self.starts_at is not None and now < self.starts_at:
            return "upcoming"
        if self.recorded_status == "upcoming" and self.starts_at is None:
            return "upcoming"
        return "active"

    def to_api(self, now: float, live: bool = True) -> dict[str, Any]:
        """`live` False: the last known campaign of a TDM that no longer runs (its drops' minutes too)."""
        return {
            "id": self.id,
            "name": self.name,
            "game": self.game,
            "status": self.status(now),
            "linked": self.linked,
            "link_url": self.link_url,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "drops": [drop.to_api() for drop in self.drops],
            "live": live,
        }


@dataclass(frozen=True)
class Channel:
    id: str
    name: str | None
    online: bool
    pending_online: bool
    game: str | None
    drops_enabled: bool
    viewers: int | None
    acl_based: bool

    @property
    def status(self) -> str:
        if self.online:
            return "online"
        return "pending" if self.pending_online else "offline"

    def to_api(self, watching: bool, live: bool = True) -> dict[str, Any]:
        """`live` False: a channel a TDM that no longer runs monitored; whether it is online now, and
        its viewers, nobody knows (null), and nobody watches it."""
        return {
            "name": self.name,
            "online": self.online if live else None,
            "game": self.game,
            "drops_enabled": self.drops_enabled,
            "viewers": self.viewers if live else None,
            "watching": watching and live,
            "acl_based": self.acl_based,
            "live": live,
        }


@dataclass(frozen=True)
class LoginCode:
    user_code: str
    activation_url: str
    expires_at: float | None
    shown_at: float


@dataclass(frozen=True)
class InventoryView:
    """A consistent copy for scrapes and API answers (frozen parts, shared, never changed)."""

    known: bool  # a launcher has reported at all (no: TDM runs without it, e.g. an AppImage)
    capabilities: Mapping[str, bool]
    login_state: str | None  # TDM's login form: logged_in, logged_out, logging_in, login_required
    user_id: int | None
    waiting_for_login: bool
    code: LoginCode | None
    campaigns: tuple[Campaign, ...]
    channels: tuple[Channel, ...]
    watching: str | None  # a channel id
    games: tuple[str, ...]
    websockets: Mapping[int, tuple[str | None, int]]
    status_text: str | None
    current_drop: Drop | None
    confirmed_progress_time: float | None  # when the current drop's confirmed minutes last moved
    pid: int | None = None  # the TDM process that reported it (its hello's); None: not said
    reported_at: float | None = None  # when TDM last reported anything: the picture is as of then
    live: bool = True  # False: that TDM is gone; what it knew is kept, what it did is void (`stale`)

    def reported_by(self, pid: int) -> bool:
        """Whether this is the picture of the running process `pid`. A picture that names no process
        (saved before pids were recorded) is taken as the running one's."""
        return self.pid is None or self.pid == pid

    def stale(self) -> InventoryView:
        """The picture once the TDM that showed it is gone (stopped, crashed, restarting, a new
        process that has not reported yet): the account's campaigns, drops, games and the channels
        last monitored stay, as last known; watching, the current drop, a login code, websockets and
        the status bar were what that process was doing, and are dropped."""
        if not self.live:
            return self
        return replace(self, live=False, watching=None, current_drop=None, confirmed_progress_time=None,
                       code=None, waiting_for_login=False, websockets={}, status_text=None)

    def login(self, now: float) -> str:
        """logged_in, login_required, code_shown or unknown."""
        if self.login_state == "logged_in":
            return "logged_in"
        if self.code_pending(now):
            return "code_shown"
        if self.waiting_for_login or self.login_state == "login_required" or self.code is not None:
            return "login_required"  # a code that expired needs a new press too
        return "unknown"

    def code_pending(self, now: float) -> bool:
        code = self.code
        return (
            code is not None
            and self.login_state != "logged_in"
            and (code.expires_at is None or now < code.expires_at)
        )

    def campaign(self, campaign_id: str | None) -> Campaign | None:
        return next((c for c in self.campaigns if c.id == campaign_id), None)

    def drop_states(self) -> dict[str, int]:
        counts = dict.fromkeys(DROP_STATES, 0)
        for campaign in self.campaigns:
            for drop in campaign.drops:
                counts[drop.state] += 1
        return counts

    def campaign_statuses(self, now: float) -> dict[str, int]:
        counts = dict.fromkeys(CAMPAIGN_STATUSES, 0)
        for campaign in self.campaigns:
            counts[campaign.status(now)] += 1
        return counts

    def channel_statuses(self) -> dict[str, int]:
        counts = dict.fromkeys(CHANNEL_STATUSES, 0)
        for channel in self.channels:
            counts[channel.status] += 1
        return counts

    def pending_drops(self, now: float) -> int:
        """Drops still to earn or claim in campaigns that are not over."""
        return sum(
            1 for c in self.campaigns if c.status(now) != "expired" for drop in c.drops if not drop.claimed
        )

    def claimed_drops(self) -> int:
        return sum(1 for c in self.campaigns for drop in c.drops if drop.claimed)


@dataclass
class InventoryState:
    known: bool = False
    capabilities: dict[str, bool] = field(default_factory=dict)
    login_state: str | None = None
    user_id: int | None = None
    waiting_for_login: bool = False
    code: LoginCode | None = None
    campaigns: dict[str, Campaign] = field(default_factory=dict)
    channels: dict[str, Channel] = field(default_factory=dict)
    watching: str | None = None
    games: tuple[str, ...] = ()
    websockets: dict[int, tuple[str | None, int]] = field(default_factory=dict)
    status_text: str | None = None
    current_drop: Drop | None = None
    confirmed_progress_time: float | None = None
    pid: int | None = None
    reported_at: float | None = None
    revision: int = 0  # bumped by every change: the store saves the picture only when it moved
    unreadable: int = 0  # STATE records that were not ours to read (garbled, other schema)

    # -- input -------------------------------------------------------------------------------

    def apply(self, message: str, time: float) -> bool:
        """Fold one STATE record's message in; False if it could not be read."""
        record = decode_record(message)
        handler = _HANDLERS.get(record["type"]) if record is not None else None
        if handler is None:
            self.unreadable += 1
            return False
        try:
            handler(self, record, time)
        except (KeyError, TypeError, ValueError, AttributeError):
            self.unreadable += 1  # one bad record never stops the rest
            return False
        self.reported_at = time
        self.revision += 1
        return True

    def _hello(self, record: dict[str, Any], time: float) -> None:
        self._reset()
        self.known = True
        self.capabilities = _capabilities(record.get("capabilities"))
        self.pid = _int(record.get("pid"))

    def _reset(self) -> None:
        fresh = InventoryState(revision=self.revision, unreadable=self.unreadable)
        self.__dict__.update(fresh.__dict__)

    def _login(self, record: dict[str, Any], time: float) -> None:
        self.login_state = _str(record.get("state"))
        self.user_id = _int(record.get("user_id"))
        if self.login_state == "logged_in":
            self.code = None
            self.waiting_for_login = False

    def _login_wait(self, record: dict[str, Any], time: float) -> None:
        self.waiting_for_login = bool(record.get("waiting"))

    def _login_code(self, record: dict[str, Any], time: float) -> None:
        self.code = LoginCode(str(record["user_code"]), str(record["activation_url"]), _float(record.get("expires_at")), time)

    def _inventory_clear(self, record: dict[str, Any], time: float) -> None:
        self.campaigns = {}

    def _campaign(self, record: dict[str, Any], time: float) -> None:
        campaign = _campaign(record["campaign"])
        self.campaigns[campaign.id] = campaign

    def _drop(self, record: dict[str, Any], time: float) -> None:
        drop = _drop(record["drop"])
        campaign = self.campaigns.get(drop.campaign_id or "")
        if campaign is not None:
            drops = tuple(drop if each.id == drop.id else each for each in campaign.drops)
            self.campaigns[campaign.id] = replace(campaign, drops=drops)
        if self.current_drop is not None and self.current_drop.id == drop.id:
            self._set_current(drop, time)

    def _current_drop(self, record: dict[str, Any], time: float) -> None:
        data = record.get("drop")
        self._set_current(_drop(data) if data is not None else None, time)

    def _set_current(self, drop: Drop | None, time: float) -> None:
        before = self.current_drop
        if drop is None:
            self.confirmed_progress_time = None
        elif before is None or before.id != drop.id:
            self.confirmed_progress_time = time  # a new drop: its clock starts now
        elif (drop.confirmed_minutes or 0) > (before.confirmed_minutes or 0):
            self.confirmed_progress_time = time  # Twitch confirmed more; estimates do not count
        self.current_drop = drop

    def _games(self, record: dict[str, Any], time: float) -> None:
        self.games = tuple(str(game["name"]) for game in record["games"] if game and game.get("name") is not None)

    def _channels_clear(self, record: dict[str, Any], time: float) -> None:
        self.channels = {}
        self.watching = None

    def _channel(self, record: dict[str, Any], time: float) -> None:
        channel = _channel(record["channel"])
        self.channels[channel.id] = channel

    def _channel_remove(self, record: dict[str, Any], time: float) -> None:
        channel_id = str(record["id"])
        self.channels.pop(channel_id, None)
        if self.watching == channel_id:
            self.watching = None

    def _watching(self, record: dict[str, Any], time: float) -> None:
        self.watching = _str(record.get("id"))

    def _websocket(self, record: dict[str, Any], time: float) -> None:
        self.websockets[int(record["idx"])] = (_str(record.get("status")), _int(record.get("topics")) or 0)

    def _websocket_remove(self, record: dict[str, Any], time: float) -> None:
        self.websockets.pop(int(record["idx"]), None)

    def _status(self, record: dict[str, Any], time: float) -> None:
        self.status_text = _str(record.get("text"))

    def _snapshot(self, record: dict[str, Any], time: float) -> None:
        campaigns = [_campaign(data) for data in record.get("campaigns") or ()]
        channels = [_channel(data) for data in record.get("channels") or ()]
        code = record.get("code")
        login = record.get("login") or {}
        current = record.get("current_drop")
        previous = self.current_drop
        self.known = True
        self.capabilities = _capabilities(record.get("capabilities"))
        self.login_state, self.user_id = _str(login.get("state")), _int(login.get("user_id"))
        self.waiting_for_login = bool(record.get("waiting"))
        self.code = None if not code else LoginCode(
            str(code["user_code"]), str(code["activation_url"]), _float(code.get("expires_at")), time
        )
        self.campaigns = {campaign.id: campaign for campaign in campaigns}
        self.channels = {channel.id: channel for channel in channels}
        self.watching = _str(record.get("watching"))
        self.games = tuple(str(game["name"]) for game in record.get("games") or () if game and game.get("name") is not None)
        self.websockets = {int(idx): (_str(e.get("status")), _int(e.get("topics")) or 0) for idx, e in (record.get("websockets") or {}).items()}
        self.status_text = _str(record.get("status"))
        self.current_drop = previous  # progress is judged against what we knew
        self._set_current(_drop(current) if current else None, time)

    # -- output ------------------------------------------------------------------------------

    def view(self) -> InventoryView:
        return InventoryView(
            known=self.known,
            capabilities=dict(self.capabilities),
            login_state=self.login_state,
            user_id=self.user_id,
            waiting_for_login=self.waiting_for_login,
            code=self.code,
            campaigns=tuple(self.campaigns.values()),
            channels=tuple(self.channels.values()),
            watching=self.watching,
            games=self.games,
            websockets=dict(self.websockets),
            status_text=self.status_text,
            current_drop=self.current_drop,
            confirmed_progress_time=self.confirmed_progress_time,
            pid=self.pid,
            reported_at=self.reported_at,
        )

    def to_json(self) -> str:
        # Saved at every commit that follows a STATE record, and most records change one campaign or
        # channel: the others are the same frozen objects as last time, so their plain forms are kept.
        kept: dict[int, tuple[Any, Any]] = {}
        data = _plain(self, getattr(self, "_plain_kept", {}), kept)
        self._plain_kept = kept
        data["websockets"] = [[idx, *entry] for idx, entry in self.websockets.items()]
        return json.dumps(data, separators=(",", ":"))

    def restore(self, saved: str | None) -> None:
        """What `to_json` wrote; a picture we cannot read is dropped (the next hello rebuilds it)."""
        if not saved:
            return
        try:
            data = json.loads(saved)
            restored = InventoryState(
                known=bool(data["known"]),
                capabilities=_capabilities(data["capabilities"]),
                login_state=data["login_state"],
                user_id=data["user_id"],
                waiting_for_login=bool(data["waiting_for_login"]),
                code=LoginCode(**data["code"]) if data["code"] else None,
                campaigns={key: _campaign_saved(value) for key, value in data["campaigns"].items()},
                channels={key: Channel(**value) for key, value in data["channels"].items()},
                watching=data["watching"],
                games=tuple(data["games"]),
                websockets={int(idx): (status, topics) for idx, status, topics in data["websockets"]},
                status_text=data["status_text"],
                current_drop=_drop_saved(data["current_drop"]) if data["current_drop"] else None,
                confirmed_progress_time=data["confirmed_progress_time"],
                pid=data.get("pid"),  # absent from pictures saved before they were recorded
                reported_at=data.get("reported_at"),
                revision=int(data["revision"]),
                unreadable=int(data["unreadable"]),
            )
        except (KeyError, TypeError, ValueError):
            return
        self.__dict__.update(restored.__dict__)


_HANDLERS = {
    "hello": InventoryState._hello,
    "login": InventoryState._login,
    "login_wait": InventoryState._login_wait,
    "login_code": InventoryState._login_code,
    "inventory_clear": InventoryState._inventory_clear,
    "campaign": InventoryState._campaign,
    "drop": InventoryState._drop,
    "current_drop": InventoryState._current_drop,
    "games": InventoryState._games,
    "channels_clear": InventoryState._channels_clear,
    "channel": InventoryState._channel,
    "channel_remove": InventoryState._channel_remove,
    "watching": InventoryState._watching,
    "websocket": InventoryState._websocket,
    "websocket_remove": InventoryState._websocket_remove,
    "status": InventoryState._status,
    "snapshot": InventoryState._snapshot,
}


# -- reading records (written by another program: every field is checked) -------------------------


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _capabilities(value: Any) -> dict[str, bool]:
    return {str(name): bool(ok) for name, ok in value.items()} if isinstance(value, dict) else {}


def _drop(data: Mapping[str, Any]) -> Drop:
    return Drop(
        id=str(data["id"]),
        name=_str(data.get("name")),
        campaign_id=_str(data.get("campaign_id")),
        required_minutes=_int(data.get("required_minutes")),
        current_minutes=_int(data.get("current_minutes")),
        confirmed_minutes=_int(data.get("confirmed_minutes")),
        estimated_minutes=_int(data.get("estimated_minutes")),
        claimed=bool(data.get("claimed")),
        can_claim=bool(data.get("can_claim")),
        rewards=tuple(str(reward) for reward in data.get("rewards") or ()),
        starts_at=_float(data.get("starts_at")),
        ends_at=_float(data.get("ends_at")),
    )


def _campaign(data: Mapping[str, Any]) -> Campaign:
    game = data.get("game")
    game = game if isinstance(game, dict) else {"name": game}
    status = data.get("status")
    return Campaign(
        id=str(data["id"]),
        name=_str(data.get("name")),
        game=_str(game.get("name")),
        game_id=_str(game.get("id")),
        recorded_status=status if status in CAMPAIGN_STATUSES else None,
        linked=_bool(data.get("linked")),
        link_url=_str(data.get("link_url")),
        starts_at=_float(data.get("starts_at")),
        ends_at=_float(data.get("ends_at")),
        drops=tuple(_drop(drop) for drop in data.get("drops") or ()),
    )


def _channel(data: Mapping[str, Any]) -> Channel:
    return Channel(
        id=str(data["id"]),
        name=_str(data.get("name")),
        online=bool(data.get("online")),
        pending_online=bool(data.get("pending_online")),
        game=_str(data.get("game")),
        drops_enabled=bool(data.get("drops_enabled")),
        viewers=_int(data.get("viewers")),
        acl_based=bool(data.get("acl_based")),
    )


def _drop_saved(data: Mapping[str, Any]) -> Drop:
    return Drop(**{**data, "rewards": tuple(data["rewards"])})


def _campaign_saved(data: Mapping[str, Any]) -> Campaign:
    return Campaign(**{**data, "drops": tuple(_drop_saved(drop) for drop in data["drops"])})


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _plain(value, last: dict[int, tuple[Any, Any]] | None = None, kept: dict[int, tuple[Any, Any]] | None = None):
    """`dataclasses.asdict` without its deep copies (the pipeline saves this picture whenever it
    moves, and asdict was most of what following TDM cost at rest): the same JSON.

    With `last` and `kept`: a frozen dataclass's plain form is taken from `last` when it is the very
    same object (by identity: frozen, it cannot have changed), and every one used goes into `kept`."""
    if hasattr(value, "__dataclass_fields__"):
        frozen = kept is not None and value.__dataclass_params__.frozen
        if frozen:
            hit = last.get(id(value))
            if hit is not None and hit[0] is value:
                kept[id(value)] = hit
                return hit[1]
        names = _FIELD_NAMES.get(type(value))
        if names is None:
            names = _FIELD_NAMES[type(value)] = tuple(f.name for f in fields(value))
        plain = {name: _plain(getattr(value, name), last, kept) for name in names}
        if frozen:
            kept[id(value)] = (value, plain)
        return plain
    if isinstance(value, (list, tuple)):
        return [_plain(item, last, kept) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item, last, kept) for key, item in value.items()}
    return value
