"""Which notifications to send: pure rules over TDM's events, the state snapshot and the supervisor's status.

Two kinds of input:
- `on_event`: things that happen once (a drop claimed, a login code shown): one notification each.
- `tick(now, ...)`: conditions (login required, crash loop, miner down, ...). A condition notifies when
  it starts and sends `recovered` when it clears while the miner runs again. Campaign lists (from the
  bridge) give `new_campaign` and `campaign_ending`.

Every notification carries a `key`: the sender never sends the same key twice (also across a restart),
and `repeating` ones (conditions that can flap) are held to each channel's `min_interval`.
Pure: no I/O, no clock, no threads; `now` is wall-clock POSIX seconds like the record times.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from .events import NOTIFY_EVENTS as EVENTS, Event, EventKind, stops_mining
from .lifecycle import State
from .state import Drop, Snapshot, game_of_claim

if TYPE_CHECKING:
    from .config import Config
    from .supervisor import SupervisorStatus

# Events that are news by themselves (the rest only change the state the ticks look at).
_NEWS = frozenset({EventKind.DROP_CLAIMED, EventKind.LOGIN_DEVICE_CODE})


def is_news(event: Event) -> bool:
    """Worth giving to `NotifyRules.on_event`: cheap, for a listener told of every event."""
    return event.kind in _NEWS or stops_mining(event)


# What `tick` can produce: all but claims (on_event's alone). A notifier whose channels want none of
# these has no one to tell what a tick finds.
TICKED = frozenset(EVENTS) - {"drop_claimed"}
# Bad states: notified when they start, `recovered` when they clear.
CONDITIONS = ("login_required", "session_invalid", "miner_terminated", "crash_loop", "gave_up", "miner_down", "stalled")
ACTIVATION_URL = "https://www.twitch.tv/activate"
DEVICE_CODE_LIFETIME = 1800.0  # Twitch's device codes expire after 30 minutes
LOGIN_STATES_NEEDING_LOGIN = ("login_required", "code_shown")
# A code read from TDM's output waits this long for the bridge's (its link and expiry are exact).
LOG_CODE_GRACE = 2.0
TITLE = "Twitchminert"


# How a service shows each event (Apprise's message types: a colour or an icon).
KINDS = {
    "drop_claimed": "success",
    "recovered": "success",
    "new_campaign": "info",
    "session_invalid": "failure",
    "miner_terminated": "failure",
    "crash_loop": "failure",
    "gave_up": "failure",
}  # the rest: "warning"


@dataclass(frozen=True)
class RuleSettings:
    miner_down_after: float = 300.0  # the miner down this long (and not given up on) is worth a message
    stalled_after: float = 1800.0  # no confirmed drop progress this long while mining
    campaign_ending_within: float = 6 * 3600.0
    max_event_age: float = 600.0  # older records (a log read from its start) are history, not news
    priority: tuple[str, ...] = ()  # games whose campaigns matter; empty: every game

    @classmethod
    def of(cls, config: Config) -> RuleSettings:
        """The stall time the supervisor uses, and the games TDM is told to put first."""
        stalled_after = config.miner.restart_on_stall or cls.stalled_after
        return cls(stalled_after=stalled_after, priority=tuple(config.settings.get("priority", ())))


@dataclass(frozen=True)
class Notification:
    event: str  # one of EVENTS
    key: str  # never sent twice
    title: str
    body: str
    time: float
    repeating: bool = True  # a state that can flap: at most once per channel's min_interval
    group: str = ""  # what min_interval counts per channel; default: the event

    @property
    def flap_group(self) -> str:
        return self.group or self.event

    @property
    def kind(self) -> str:
        return KINDS.get(self.event, "warning")


@dataclass(frozen=True)
class LoginCode:
    """What the user needs to log TDM in: from the bridge's `login`, or from the GUI output line."""

    user_code: str
    activation_url: str = ACTIVATION_URL
    expires_at: float | None = None


class NotifyRules:
    def __init__(self, settings: RuleSettings | None = None) -> None:
        self.settings = settings or RuleSettings()
        self.active: dict[str, float] = {}  # condition -> since
        self.down_since: float | None = None
        self.last_code: str | None = None
        self.log_code: tuple[LoginCode, float] | None = None  # from the GUI output line, and when it was seen
        self.known_campaigns: set[str] | None = None  # None: no campaign list seen yet (the first is a baseline)
        self.ending_sent: set[str] = set()
        self.stall_restarts: int | None = None  # the supervisor's count at the last tick (None: not seen yet)

    # -- things that happen once ---------------------------------------------------------------

    def on_event(
        self, event: Event, now: float, known_games: Sequence[str] = (), drop: Drop | None = None
    ) -> list[Notification]:
        if now - event.time > self.settings.max_event_age:
            return []
        if event.kind is EventKind.DROP_CLAIMED:
            return [drop_claimed(event, known_games, drop)]
        if event.kind is EventKind.LOGIN_DEVICE_CODE and event.fields.get("user_code"):
            code = LoginCode(str(event.fields["user_code"]), expires_at=event.time + DEVICE_CODE_LIFETIME)
            self.log_code = (code, now)  # sent by tick(), unless the bridge tells the same code better
            return []
        if stops_mining(event):
            # From the event itself: the supervisor may restart TDM before a tick sees it terminated.
            return self._begin("miner_terminated", f"TDM stopped mining: {cause_of(event)}", now)
        return []

    def _begin(self, name: str, cause: str, now: float) -> list[Notification]:
        if name in self.active:
            return []
        self.active[name] = now
        return [condition_notification(name, cause, now)]

    def _code(self, code: LoginCode, now: float) -> list[Notification]:
        if code.user_code == self.last_code:
            return []
        self.last_code = code.user_code
        return [login_code(code, now)]

    # -- conditions and campaigns ------------------------------------------------------------------

    def tick(
        self,
        now: float,
        snapshot: Snapshot,
        supervisor: SupervisorStatus | None,
        login: Mapping[str, Any] | None = None,
        campaigns: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[Notification]:
        """`login` is the bridge's status `login` object, `campaigns` its /api/campaigns list (None: no bridge)."""
        out: list[Notification] = []
        conditions = self.conditions(now, snapshot, supervisor, login)
        running = supervisor is None or supervisor.up
        for name in CONDITIONS:
            if name in conditions:
                out += self._begin(name, conditions[name], now)
            elif name in self.active and running and not self._still_stalled(name, snapshot):
                since = self.active.pop(name)
                out.append(recovered(name, since, now))
        code = bridge_code(login)
        if code is None and self.log_code is not None and now - self.log_code[1] >= LOG_CODE_GRACE:
            code = self.log_code[0]
        if code is not None:
            out += self._code(code, now)
            self.log_code = None
        elif login is not None and login.get("state") == "logged_in":
            self.last_code = None
        if campaigns is not None:
            out += self._campaigns(now, campaigns)
        return out

    def _still_stalled(self, name: str, snap: Snapshot) -> bool:
        """A stall is over once the drop moves again (or TDM does something else): a restart alone is not enough."""
        drop = snap.drop
        return name == "stalled" and snap.status == "mining" and drop is not None and drop.last_progress_time <= self.active[name]

    def conditions(
        self, now: float, snap: Snapshot, supervisor: SupervisorStatus | None, login: Mapping[str, Any] | None
    ) -> dict[str, str]:
        """The bad states that hold now, each with its cause in words."""
        found: dict[str, str] = {}
        restarts = supervisor.restarts.get("stall", 0) if supervisor is not None else 0
        if self.stall_restarts is not None and restarts > self.stall_restarts:
            found["stalled"] = "drop progress stopped: TDM was restarted (miner.restart_on_stall)"
        self.stall_restarts = restarts
        failed = supervisor is not None and supervisor.state is State.FAILED
        if failed:
            why = supervisor.failure or supervisor.last_exit_meaning or "unknown"
            found["crash_loop" if why.startswith("crash loop") else "gave_up"] = why
        up = supervisor is None or supervisor.up
        if up or failed:
            self.down_since = None  # given up on is crash_loop / gave_up, not also "down"
        elif self.down_since is None:
            self.down_since = now
        if not up and not failed and now - self.down_since >= self.settings.miner_down_after:
            state = supervisor.state.value
            exit_ = f", last exit: {supervisor.last_exit_meaning}" if supervisor.last_exit_meaning else ""
            found["miner_down"] = f"TDM has not run for {_duration(now - self.down_since)} ({state}{exit_})"
        if snap.session == "invalid":
            found["session_invalid"] = "Twitch no longer accepts TDM's session: it must log in again"
        if not up:
            return found  # what the log says about a process that is gone is not true any more
        if needs_login(snap, login):
            found["login_required"] = "TDM waits for a login (press Login on the status page, then enter the code)"
        if snap.status == "terminated":
            cause = snap.last_error[1] if snap.last_error else "TDM stopped mining"
            found["miner_terminated"] = f"TDM stopped mining but is still running: {cause}"
        drop = snap.drop
        if snap.status == "mining" and drop is not None:
            started = supervisor.start_time if supervisor is not None and supervisor.start_time else drop.last_progress_time
            since = max(drop.last_progress_time, started)
            if now - since > self.settings.stalled_after:
                found["stalled"] = (
                    f"no progress on {drop.name!r} ({drop.game}, {drop.current}/{drop.required} min)"
                    f" for {_duration(now - since)}"
                )
        return found

    def _campaigns(self, now: float, campaigns: Sequence[Mapping[str, Any]]) -> list[Notification]:
        out = []
        # Every id is remembered, so a game added to the priority list later brings no old campaign as new.
        ids = {str(c["id"]) for c in campaigns if c.get("id")}
        if self.known_campaigns is None:
            self.known_campaigns = ids  # the first list is what already was: nothing is new
        for campaign in (c for c in campaigns if c.get("id") and self._matters(c.get("game"))):
            cid = str(campaign["id"])
            if cid not in self.known_campaigns and campaign.get("status") in ("active", "upcoming"):
                out.append(new_campaign(campaign, now))
            ends = timestamp(campaign.get("ends_at"))
            if (
                campaign.get("status") == "active"
                and cid not in self.ending_sent
                and ends is not None
                and 0 < ends - now <= self.settings.campaign_ending_within
                and unclaimed(campaign)
            ):
                self.ending_sent.add(cid)
                out.append(campaign_ending(campaign, ends, now))
        self.known_campaigns |= ids
        return out

    def _matters(self, game: Any) -> bool:
        return not self.settings.priority or game in self.settings.priority

    # -- persistence: a restart neither forgets a bad state nor repeats its message -------------------

    def to_json(self) -> str:
        return json.dumps(
            {
                "active": self.active,
                "down_since": self.down_since,
                "last_code": self.last_code,
                "known_campaigns": None if self.known_campaigns is None else sorted(self.known_campaigns),
                "ending_sent": sorted(self.ending_sent),
            },
            sort_keys=True,
        )

    def restore(self, text: str | None) -> None:
        if not text:
            return
        data = json.loads(text)
        self.active = {str(k): float(v) for k, v in data.get("active", {}).items() if k in CONDITIONS}
        self.down_since = data.get("down_since")
        self.last_code = data.get("last_code")
        known = data.get("known_campaigns")
        self.known_campaigns = None if known is None else set(known)
        self.ending_sent = set(data.get("ending_sent", []))


# -- reading the inputs ---------------------------------------------------------------------------


def needs_login(snap: Snapshot, login: Mapping[str, Any] | None) -> bool:
    if login is not None and login.get("state") not in (None, "unknown"):
        return login["state"] in LOGIN_STATES_NEEDING_LOGIN  # the bridge knows better than the log
    return snap.session == "login_required" or snap.status == "login_required"


def bridge_code(login: Mapping[str, Any] | None) -> LoginCode | None:
    """The code from the bridge's `login` status object, once TDM shows one."""
    if login is None or login.get("state") != "code_shown" or not login.get("user_code"):
        return None
    return LoginCode(
        str(login["user_code"]),
        str(login.get("activation_url") or ACTIVATION_URL),
        timestamp(login.get("code_expires_at")),
    )


def timestamp(value: Any) -> float | None:
    """POSIX seconds from a number or an ISO 8601 string (the bridge's campaign times)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        parsed = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()


def cause_of(event: Event) -> str:
    """The first line of the record, and the exception of a traceback (its last line)."""
    lines = [line.strip() for line in event.message.splitlines() if line.strip()]
    if not lines:
        return event.kind.value
    return lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1]}"


def unclaimed(campaign: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [d for d in campaign.get("drops") or () if not d.get("claimed")]


# -- the messages -----------------------------------------------------------------------------------


def drop_claimed(event: Event, known_games: Sequence[str], drop: Drop | None) -> Notification:
    text = str(event.fields.get("text", ""))
    game = game_of_claim(text, known_games)
    rewards = text[len(game) + 1 :] if game != "unknown" else text
    count = f"{event.fields.get('claimed')}/{event.fields.get('total')}"
    name = f" ({drop.name})" if drop is not None and drop.game == game and drop.name != rewards else ""
    return Notification(
        "drop_claimed",
        f"drop_claimed:{event.time:.3f}:{text}:{count}",
        f"{TITLE}: drop claimed",
        f"{game}: {rewards}{name}, drop {count} of the campaign",
        event.time,
        repeating=False,
    )


def login_code(code: LoginCode, now: float) -> Notification:
    expiry = f", expires at {_clock(code.expires_at)}" if code.expires_at is not None else ""
    return Notification(
        "login_required",
        f"login_code:{code.user_code}",
        f"{TITLE}: log TDM in",
        f"Enter the code {code.user_code} at {code.activation_url}{expiry}",
        now,
        repeating=False,  # a new code is news, however soon after the last message
    )


def condition_notification(name: str, cause: str, now: float) -> Notification:
    return Notification(name, f"{name}:{now:.3f}", f"{TITLE}: {name.replace('_', ' ')}", cause, now)


def recovered(name: str, since: float, now: float) -> Notification:
    return Notification(
        "recovered",
        f"recovered:{name}:{since:.3f}",
        f"{TITLE}: recovered",
        f"{name.replace('_', ' ')} is over after {_duration(now - since)}",
        now,
        group=f"recovered:{name}",  # one state's recovery does not hold back another's
    )


def new_campaign(campaign: Mapping[str, Any], now: float) -> Notification:
    starts = timestamp(campaign.get("starts_at"))
    when = f", starts {_clock(starts)}" if starts is not None and starts > now else ""
    return Notification(
        "new_campaign",
        f"new_campaign:{campaign['id']}",
        f"{TITLE}: new campaign",
        f"{campaign.get('game')}: {campaign.get('name')}{when}",
        now,
        repeating=False,
    )


def campaign_ending(campaign: Mapping[str, Any], ends: float, now: float) -> Notification:
    left = unclaimed(campaign)
    return Notification(
        "campaign_ending",
        f"campaign_ending:{campaign['id']}",
        f"{TITLE}: campaign ending",
        f"{campaign.get('game')}: {campaign.get('name')} ends in {_duration(ends - now)}"
        f" with {len(left)} unclaimed drop{'s' if len(left) != 1 else ''}: {_names(left)}",
        now,
        repeating=False,
    )


def _names(drops: Iterable[Mapping[str, Any]]) -> str:
    return ", ".join(str(d.get("name")) for d in drops)


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _clock(when: float) -> str:
    return datetime.datetime.fromtimestamp(when, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
