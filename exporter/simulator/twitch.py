"""The simulated Twitch client: TDM's twitch.py, websocket.py and inventory.py in miniature.

Log records use TDM's loggers, levels and exact message templates (shared/tdm/log_catalog.md);
GUI-only texts go through `gui.print`. Nothing talks to a network: requests only write the
`Request:`/`Response:` DEBUG records TDM writes at -vvvv, with a fake OAuth token.

Time is simulated: `speed` simulated seconds pass per real second. Drops progress one minute per
simulated minute. Only the shutdown delay (0.5 s) is real time, as it is what a supervisor measures.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import random
import string
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from functools import wraps
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

if __package__:
    from .constants import State
    from .settings import URL, PriorityMode
else:  # run as a script, like TDM: the siblings are top-level modules
    from constants import State
    from settings import URL, PriorityMode

if TYPE_CHECKING:
    from gui import GUIManager
    from scenarios import Scenario
    from settings import Settings

CALL = logging.INFO - 1
logging.addLevelName(CALL, "CALL")

logger = logging.getLogger("TwitchDrops")
gql_logger = logging.getLogger("TwitchDrops.gql")
ws_logger = logging.getLogger("TwitchDrops.websocket")

SHUTDOWN_DELAY = 0.5  # real seconds; TDM's shutdown() sleeps at least this long
DEVICE_POLL_SECONDS = 2.0  # real seconds between token polls of the device-code login (Twitch says 5)

ACCESS_TOKEN = "simaccesstoken0000000000000000"  # 30 chars like a real one; it is in every -vvvv Request:
CLIENT_ID = "kd1unb4b3q4t58fwlpcbzcbnm76a8fp"
USER_AGENT = (
    "Dalvik/2.1.0 (Linux; Android 16; SM-X716N Build/UP1A.231005.007) "
    "tv.twitch.android.app/25.3.0/2503006"
)
GQL_URL = "https://gql.twitch.tv/gql"
SPADE_URL = "https://spade.twitch.tv/track"
GQL_HASHES = {
    "Inventory": "8337eb8541b314040b0edde0c09c5c7a2783ba1960aa9edfbf3bac16d0fec404",
    "ViewerDropsDashboard": "d9cae7761dafab85908c85e6683cb4201b449e66ac3bb5e894f15ff12aeafaa7",
    "DropCampaignDetails": "039277bf98f3130929262cc7c6efd9c141ca3749cb6dca442fc8ead9a53f77c1",
    "VideoPlayerStreamInfoOverlayChannel": "198492e0857f6aedead9665c81c5a06d67b25b58034649687124083ff288597d",
    "DropsPage_ClaimDropRewards": "a455deea71bdc9015b78eb49f4acfbce8baa7ccbedd28e549bb025bd0f751930",
    "DropCurrentSessionContext": "4d06b702d25d652afb9ef835d2a550031f1cf762b193523a92166f40ea3d142b",
}

DEMO_GAMES = ("Starfall Arena", "Pixel Kingdoms", "Neon Drift")  # mined when priority_mode is not 0
REWARDS = (
    "Supply Crate", "Weapon Charm", "Emote Pack", "Player Banner",
    "Spray Can", "Loot Chest", "Avatar Frame", "XP Boost",
)
DROP_MINUTES = range(5, 16)
CHANNELS_PER_GAME = 2
UNKNOWN_STREAM_STATES = ("commercial", "watchparty-vod", "hosting")
UNKNOWN_PAYLOADS = ({"type": "MAINTENANCE"}, {"type": "AUTH_REVOKED_SOON"})


class GQLException(Exception):
    pass


# ---- inventory ------------------------------------------------------------------------------------


@dataclass(eq=False)
class Channel:
    id: str
    name: str
    game: str
    broadcast_id: str
    online: bool = True
    viewers: int | None = None
    # TDM's Channel, as its GUI reads it
    pending_online = False
    drops_enabled = True
    acl_based = False

    @property
    def login(self) -> str:
        return self.name.lower()

    @property
    def iid(self) -> str:
        return self.id


@dataclass(eq=False)
class Drop:
    id: str
    name: str
    rewards: list[str]
    required: int
    campaign: Campaign
    current: int = 0
    claimed: bool = False

    @property
    def complete(self) -> bool:
        return self.current >= self.required

    @property
    def progress_text(self) -> str:
        return f"{self.name} ({self.campaign.game}, {self.current}/{self.required})"

    # TDM's TimedDrop, as its GUI reads it. Progress here is always confirmed: the simulated
    # Twitch never falls silent, so TDM's own estimate (extra_current_minutes) stays 0.
    extra_current_minutes = 0

    @property
    def real_current_minutes(self) -> int:
        return self.current

    @property
    def current_minutes(self) -> int:
        return self.current

    @property
    def required_minutes(self) -> int:
        return self.required

    @property
    def is_claimed(self) -> bool:
        return self.claimed

    @property
    def can_claim(self) -> bool:
        return self.complete and not self.claimed

    @property
    def benefits(self) -> list[Benefit]:
        return [Benefit(reward) for reward in self.rewards]

    @property
    def starts_at(self) -> datetime:
        return self.campaign.starts_at

    @property
    def ends_at(self) -> datetime:
        return self.campaign.ends_at


@dataclass(frozen=True)
class Benefit:
    name: str


@dataclass(eq=False)
class Campaign:
    id: str
    game: str
    drops: list[Drop] = field(default_factory=list)
    starts_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc) - timedelta(days=1))
    ends_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc) + timedelta(days=7))
    # TDM's DropsCampaign, as its GUI reads it
    linked = True
    eligible = True
    allowed_channels: tuple[Channel, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.game} Drops"

    @property
    def link_url(self) -> str:
        return f"https://www.twitch.tv/drops/campaigns?dropID={self.id}"

    @property
    def active(self) -> bool:
        return self.starts_at <= datetime.now(timezone.utc) < self.ends_at

    @property
    def upcoming(self) -> bool:
        return datetime.now(timezone.utc) < self.starts_at

    @property
    def expired(self) -> bool:
        return self.ends_at <= datetime.now(timezone.utc)

    @property
    def finished(self) -> bool:
        return all(drop.claimed for drop in self.drops)

    def active_drop(self) -> Drop | None:
        """The drop being mined: the unfinished one with the least time left."""
        mining = [drop for drop in self.drops if not drop.complete]
        return min(mining, key=lambda drop: drop.required - drop.current, default=None)

    def claimable(self) -> list[Drop]:
        return [drop for drop in self.drops if drop.complete and not drop.claimed]

    def bump_minutes(self) -> None:
        # all drops of a campaign progress together, as on Twitch
        for drop in self.drops:
            if not drop.claimed:
                drop.current = min(drop.current + 1, drop.required)

    @property
    def claimed_count(self) -> int:
        return sum(drop.claimed for drop in self.drops)


def wanted_games(priority: list[Any], exclude: set[str], mode: PriorityMode) -> list[str]:
    """The games to mine, in order: the priority list, then (unless PRIORITY_ONLY) the demo games."""
    games: list[str] = []
    for name in priority:
        if isinstance(name, str) and name not in exclude and name not in games:
            games.append(name)
    if mode is not PriorityMode.PRIORITY_ONLY:
        games.extend(name for name in DEMO_GAMES if name not in exclude and name not in games)
    return games


def random_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def plan_campaigns(games: list[str], rng: random.Random) -> list[Campaign]:
    """One campaign per game, 2-3 drops needing 5-15 minutes each (cumulative, like on Twitch)."""
    campaigns = []
    for game in games:
        campaign = Campaign(random_id(rng), game)
        count = rng.randint(2, 3)
        minutes = sorted(rng.sample(DROP_MINUTES, count))
        for required, reward in zip(minutes, rng.sample(REWARDS, count), strict=True):
            campaign.drops.append(Drop(random_id(rng), reward, [reward], required, campaign))
        campaigns.append(campaign)
    return campaigns


def make_channels(games: list[str], rng: random.Random) -> list[Channel]:
    channels = []
    for game in games:
        for _ in range(CHANNELS_PER_GAME):
            number = len(channels) + 1
            broadcast_id = str(rng.randrange(10**10, 10**11))
            channels.append(Channel(str(1000 + number), f"SimStreamer{number}", game, broadcast_id))
    return channels


class Schedule:
    """When each periodic background event fires next, in simulated minutes."""

    def __init__(self, rng: random.Random, periods: dict[str, tuple[int, int] | None]) -> None:
        self._rng = rng
        self._periods = {kind: period for kind, period in periods.items() if period is not None}
        self._next = {kind: rng.randint(*period) for kind, period in self._periods.items()}

    def due(self, minute: int) -> list[str]:
        fired = [kind for kind, at in self._next.items() if at <= minute]
        for kind in fired:
            self._next[kind] = minute + self._rng.randint(*self._periods[kind])
        return fired


# ---- the client ----------------------------------------------------------------------------------


def task_wrapper(afunc: Callable[..., Awaitable[None]]) -> Callable[..., Coroutine[Any, Any, None]]:
    """A critical task, as in TDM's utils.task_wrapper(critical=True): its death stops the miner."""

    @wraps(afunc)
    async def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            await afunc(*args, **kwargs)
        except Exception:
            logger.exception(f"Exception in {afunc.__name__} task")
            args[0].close()

    return wrapper


def _response_text(url: object, status: int, headers: list[tuple[str, str]]) -> str:
    """aiohttp's ClientResponse repr: status line, headers, and a final newline (3 physical lines)."""
    fields = ", ".join(f"{name!r}: {value!r}" for name, value in headers)
    return f"<ClientResponse({url}) [{status} {HTTPStatus(status).phrase}]>\n<CIMultiDictProxy({fields})>\n"


class Websocket:
    def __init__(self, client: Twitch, idx: int = 0) -> None:
        self._client = client
        self._idx = idx
        self.connected = False

    async def connect(self) -> None:
        ws_logger.info(f"Websocket[{self._idx}] connecting...")
        self._client.gui.websockets.update(self._idx, status="Connecting")
        await self._client.latency()
        self._connected()

    async def reconnect(self) -> None:
        ws_logger.warning(f"Websocket[{self._idx}] requested reconnect.")
        ws_logger.warning(f"Websocket[{self._idx}] reconnecting...")
        self._client.gui.websockets.update(self._idx, status="Reconnecting")
        await self._client.latency()
        self._connected()

    def _connected(self) -> None:
        self.connected = True
        ws_logger.info(f"Websocket[{self._idx}] connected.")
        # --debug-ws only: the LISTEN message carries the OAuth token
        user_id = self._client.user_id
        topics = [f"user-drop-events.{user_id}", f"onsite-notifications.{user_id}"]
        self._client.gui.websockets.update(self._idx, status="Connected", topics=len(topics))
        ws_logger.debug(f"Websocket[{self._idx}]: Adding topics: {', '.join(topics)}")
        message = {
            "type": "LISTEN",
            "data": {"topics": topics, "auth_token": ACCESS_TOKEN},
            "nonce": self._client.nonce(),
        }
        ws_logger.debug(f"Websocket[{self._idx}] sent: {message}")

    def stop(self) -> None:
        if self.connected:
            self.connected = False
            ws_logger.info(f"Websocket[{self._idx}] stopped.")
            self._client.gui.websockets.update(self._idx, status="Disconnected", topics=0)


def save_cookie_jar(path, user_id: int) -> None:
    """What TDM's `jar.save()` writes after a login with aiohttp 3.14: JSON, mode 0600, and its own
    auth-token as a host-only session cookie with no expiry (see the cookies.jar notes)."""

    def cookie(key: str, value: str) -> dict[str, Any]:
        return {"key": key, "value": value, "coded_value": value, "path": "/", "domain": "www.twitch.tv", "host_only": True}

    jar = {"www.twitch.tv|": {"auth-token": cookie("auth-token", ACCESS_TOKEN), "persistent": cookie("persistent", str(user_id))}}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(jar, file, indent=2)


class Twitch:
    def __init__(
        self, settings: Settings, gui: GUIManager, scenario: Scenario, *, speed: float, seed: int
    ) -> None:
        self.settings = settings
        self.gui = gui
        self._scenario = scenario
        self._speed = speed
        plan = random.Random(f"{seed}/plan")  # what exists: ids, campaigns, channels
        self._events_rng = random.Random(f"{seed}/events")  # what happens
        self._net = random.Random(f"{seed}/net")  # latencies and header values
        self.user_id = plan.randrange(10**8, 10**9)
        self._session_id = f"{plan.getrandbits(64):016x}"
        self._device_id = f"{plan.getrandbits(128):032x}"
        self._user_code = "".join(plan.choices(string.ascii_uppercase, k=8))
        self._device_code = "".join(plan.choices(string.ascii_letters + string.digits, k=40))
        self._plan = plan
        self._games = wanted_games(settings["priority"], settings["exclude"], settings["priority_mode"])
        self.channels = make_channels(self._games, plan)
        self.campaigns = plan_campaigns(self._games, plan)
        self.websocket = Websocket(self)
        self.watching: Channel | None = None
        self._streams: dict[str, dict[str, Any] | None] = {}  # stream info per channel login
        self._spade_known: set[str] = set()  # channels whose page was fetched for the spade URL
        self._state = State.INVENTORY_FETCH
        self._state_changed = asyncio.Event()
        self._watching_changed = asyncio.Event()
        self._exit = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._maintenance: asyncio.Task[None] | None = None
        self._fetches = 0
        self._claims = 0
        self._progress_lines = 0
        self._finished_seen = False  # the previous fetch already found every campaign finished
        self._back_online: list[tuple[int, Channel]] = []
        gui._twitch = self  # TDM's GUIManager knows its client (the Reload button calls change_state)

    # ---- plumbing --------------------------------------------------------------------------------

    async def sleep(self, sim_seconds: float) -> None:
        await asyncio.sleep(sim_seconds / self._speed)

    async def latency(self) -> None:
        await self.sleep(self._net.uniform(0.3, 5.0))

    def nonce(self) -> str:
        return "".join(self._net.choices(string.ascii_letters + string.digits, k=30))

    def _start(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.append(task)
        return task

    def change_state(self, state: State) -> None:
        self._state = state
        self._state_changed.set()

    def close(self) -> None:
        """Stop the miner: asked by the GUI (window closed, SIGTERM) or by a dying critical task."""
        self._exit.set()

    def _set_watching(self, channel: Channel | None) -> None:
        self.watching = channel
        self._watching_changed.set()
        if channel is None:
            self.gui.clear_drop()
            self.gui.channels.clear_watching()
            self.gui.status.update("Idle")
        else:
            self.gui.channels.set_watching(channel)
            self.gui.status.update(f"Watching: {channel.name}")

    # ---- HTTP (DEBUG records only) ---------------------------------------------------------------

    def _headers(self, *, auth: bool) -> dict[str, str]:
        headers = {
            "Accept": "*/*",
            "Accept-Encoding": "gzip",
            "Accept-Language": "en-US",
            "Pragma": "no-cache",
            "Cache-Control": "no-cache",
            "Client-Id": CLIENT_ID,
            "User-Agent": USER_AGENT,
            "Client-Session-Id": self._session_id,
            "X-Device-Id": self._device_id,
            "Origin": "https://www.twitch.tv",
            "Referer": "https://www.twitch.tv",
        }
        if auth:
            headers["Authorization"] = f"OAuth {ACCESS_TOKEN}"
        return headers

    async def request(
        self,
        method: str,
        url: str | URL,
        *,
        status: int = 200,
        content_type: str | None = "application/json; charset=utf-8",
        extra_headers: tuple[tuple[str, str], ...] = (),
        **kwargs: Any,
    ) -> None:
        proxy = self.settings["proxy"]
        if str(proxy):
            kwargs["proxy"] = proxy
        logger.debug(f"Request: ({method=}, {url=}, {kwargs=})")
        await self.latency()
        headers = list(extra_headers)
        if content_type is not None:
            headers[:0] = [("Content-Type", content_type), ("Content-Length", str(self._net.randint(60, 1500)))]
        headers.append(("Date", formatdate(usegmt=True)))
        logger.debug(f"Response: {status}: {_response_text(url, status, headers)}")

    async def gql_request(
        self, operation: str, variables: dict[str, Any], *, batched: bool = False,
        service_errors: int = 0, fatal: bool = False,
    ) -> dict[str, Any]:
        body = {
            "operationName": operation,
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": GQL_HASHES[operation]}},
            "variables": variables,
        }
        ops: Any = [body] if batched else body
        gql_logger.debug(f"GQL Request: {ops}")
        while True:
            await self.request("POST", GQL_URL, json=ops, headers=self._headers(auth=True))
            response_json: dict[str, Any] = {"extensions": {"operationName": operation}}
            if service_errors:
                service_errors -= 1
                response_json["errors"] = [{"message": "service error", "path": [operation]}]
            elif fatal:
                response_json["errors"] = [{"message": "service unavailable", "path": ["currentUser"]}]
            else:
                response_json["data"] = {"currentUser": {"id": str(self.user_id)}}
            gql_logger.debug(f"GQL Response: {response_json}")
            if "errors" not in response_json:
                return response_json
            for error_dict in response_json["errors"]:
                if error_dict.get("message") in ("service error", "PersistedQueryNotFound"):
                    logger.error(
                        f"Retrying a {error_dict['message']} for "
                        f"{response_json['extensions']['operationName']}"
                    )
                    await self.sleep(self._net.uniform(1.0, 3.0))
                    break
            else:
                raise GQLException(response_json["errors"])

    # ---- run ---------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Mine until close() is called. A fatal error propagates to main, as in TDM."""
        main = asyncio.create_task(self._run())
        closing = asyncio.create_task(self._exit.wait())
        try:
            await asyncio.wait({main, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            if not main.done():
                main.cancel()
                with suppress(asyncio.CancelledError):
                    await main
        if not main.cancelled():
            await main  # re-raises the fatal error

    async def shutdown(self) -> None:
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.websocket.stop()
        await asyncio.sleep(SHUTDOWN_DELAY)

    async def _run(self) -> None:
        await self._login()
        await self.websocket.connect()
        self._start(self._websocket_messages())
        self._start(self._watch_loop())
        self.change_state(State.INVENTORY_FETCH)
        while True:
            await self._state_changed.wait()
            self._state_changed.clear()
            if self._state is State.INVENTORY_FETCH:
                await self.fetch_inventory()
                if not self._state_changed.is_set():  # no newer request came in meanwhile
                    self.change_state(State.CHANNEL_SWITCH)
            elif self._state is State.CHANNEL_SWITCH:
                await self._switch_channel()

    async def _login(self) -> None:
        quality = self.settings["connection_quality"]
        if not 1 <= quality <= 6:  # clamped when the HTTP session is created: the settings are altered
            self.settings.alter("connection_quality", min(max(quality, 1), 6))
        cookie = f"unique_id={self._net.getrandbits(128):032x}; Domain=.twitch.tv; Path=/; Secure"
        await self.request(
            "GET", URL("https://www.twitch.tv"), content_type="text/html; charset=utf-8",
            extra_headers=(("Set-Cookie", cookie),), headers=self._headers(auth=False),
        )
        logger.info("Checking login")
        self.gui.login.update("Logging in...", None)
        if self._scenario.login_required:
            await self._device_login()
        else:
            logger.info("Restoring session from cookie")
        await self.request(
            "GET", "https://id.twitch.tv/oauth2/validate",
            headers={"Authorization": f"OAuth {ACCESS_TOKEN}"},
        )
        logger.info(f"Login successful, user ID: {self.user_id}")
        self.gui.login.update("Logged in", self.user_id)
        save_cookie_jar(self.settings.path.parent / "cookies.jar", self.user_id)

    async def _device_login(self) -> None:
        headers = self._headers(auth=False)
        await self.request(
            "POST", "https://id.twitch.tv/oauth2/device", headers=headers,
            data={"client_id": CLIENT_ID, "scopes": ""},
        )
        # As TDM's _oauth_login: the code lives `expires_in` (real) seconds; the form waits for the
        # Login button (SIGUSR2, or the bridge), then shows the code and opens the activation page.
        expires_at = datetime.now(timezone.utc) + timedelta(seconds=1800)  # noqa: F841 - read by the bridge
        activation_url = f"https://www.twitch.tv/activate?device-code={self._user_code}"
        await self.gui.login.ask_enter_code(activation_url, self._user_code)
        for status in (400, 400, 200):  # polled until the user has entered the code
            await asyncio.sleep(DEVICE_POLL_SECONDS)  # real time: the code stays on show meanwhile
            await self.request(
                "POST", "https://id.twitch.tv/oauth2/token", status=status, headers=headers,
                data={
                    "client_id": CLIENT_ID,
                    "device_code": self._device_code,
                    "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                },
            )

    # ---- inventory -------------------------------------------------------------------------------

    async def fetch_inventory(self) -> None:
        self.gui.status.update("Fetching inventory...")
        self._fetches += 1
        retry_every = self._scenario.fetch_retry_every
        fatal = self._scenario.fatal_fetch == self._fetches
        retries = 1 if fatal or (retry_every and (self._fetches - 1) % retry_every == 0) else 0
        await self.gql_request("Inventory", {"fetchRewardCampaigns": False}, service_errors=retries, fatal=fatal)
        await self.gql_request("ViewerDropsDashboard", {"fetchRewardCampaigns": False})
        for campaign in self.campaigns:
            await self.gql_request(
                "DropCampaignDetails", {"channelLogin": str(self.user_id), "dropID": campaign.id}, batched=True
            )
        if self._fetches == 1:
            for index, _ in enumerate(self._games):  # box art for the GUI
                await self.request(
                    "GET", f"https://static-cdn.jtvnw.net/ttv-boxart/{500000 + index}.jpg", content_type="image/png"
                )
        self._renew_finished_campaigns()
        self.gui.inv.clear()
        for campaign in self.campaigns:
            await self.gui.inv.add_campaign(campaign)
        self.gui.set_games({campaign.game for campaign in self.campaigns})
        self.gui.status.update("Gathering channels...")
        self.gui.channels.clear()
        for channel in self.channels:
            self.gui.channels.display(channel, add=True)
        if self.watching is not None:
            self.gui.channels.set_watching(self.watching)
        for campaign in self.campaigns:
            for drop in campaign.claimable():  # e.g. after a failed claim
                await self.claim(drop)
        self.settings.save()  # only writes once something was altered
        if self._maintenance is not None:
            self._maintenance.cancel()
        self._maintenance = self._start(self._maintenance_task())
        await asyncio.sleep(0)  # let it log its "waiting until" line now, as TDM does

    def _renew_finished_campaigns(self) -> None:
        # New campaigns show up on Twitch over time: a reload after an idle hour finds fresh ones.
        if not self.campaigns or not all(campaign.finished for campaign in self.campaigns):
            self._finished_seen = False
            return
        if self._finished_seen:
            self.campaigns = plan_campaigns(self._games, self._plan)
            self._finished_seen = False
        else:
            self._finished_seen = True

    async def claim(self, drop: Drop) -> bool:
        self._claims += 1
        await self.gql_request(
            "DropsPage_ClaimDropRewards",
            {"input": {"dropInstanceID": f"{self.user_id}#{drop.campaign.id}#{drop.id}"}},
        )
        fail_every = self._scenario.claim_fail_every
        if fail_every and (self._claims - 1) % fail_every == 0:
            logger.error(f"Drop claim has potentially failed! Drop ID: {drop.id}")
            return False
        drop.claimed = True
        self.gui.inv.update_drop(drop)
        campaign = drop.campaign
        self.gui.print(
            f"Claimed drop: {campaign.game} {', '.join(drop.rewards)} "
            f"({campaign.claimed_count}/{len(campaign.drops)})"
        )
        return True

    @task_wrapper
    async def _maintenance_task(self) -> None:
        period = self._scenario.maintenance_minutes * 60
        next_trigger = datetime.now() + timedelta(seconds=period / self._speed)
        logger.log(CALL, f"Maintenance task waiting until: {next_trigger.strftime('%H:%M:%S')} (Reload)")
        await self.sleep(period)
        logger.log(CALL, "Maintenance task requests a reload")
        self.change_state(State.INVENTORY_FETCH)

    # ---- channels --------------------------------------------------------------------------------

    def _campaign_for(self, game: str) -> Campaign | None:
        return next((c for c in self.campaigns if c.game == game and not c.finished), None)

    async def _switch_channel(self) -> None:
        campaign = next((c for c in self.campaigns if not c.finished), None)
        if campaign is None:
            self._set_watching(None)
            self.gui.print("No active campaigns to mine drops for. Waiting for an active campaign...")
            return
        current = self.watching
        if current is not None and current.online and current.game == campaign.game:
            return
        channel = next((ch for ch in self.channels if ch.game == campaign.game and ch.online), None)
        if channel is None:
            self._set_watching(None)
            self.gui.print("No available channels to watch. Waiting for an ONLINE channel...")
            return
        await self.gql_request("VideoPlayerStreamInfoOverlayChannel", {"channel": channel.login}, batched=True)
        channel.viewers = self._net.randint(50, 5000)
        self._streams[channel.login] = {"stream": {"id": channel.broadcast_id, "viewersCount": channel.viewers}}
        self.gui.channels.display(channel)
        self.gui.print(f"Watching: {channel.name}")
        self._set_watching(channel)

    async def _wait_for_channel(self) -> Channel:
        while self.watching is None:
            self._watching_changed.clear()
            await self._watching_changed.wait()
        return self.watching

    def _broadcast_id(self, channel: Channel) -> str:
        stream_info = self._streams.get(channel.login)
        return stream_info["stream"]["id"]  # type: ignore[index]

    async def send_watch(self, channel: Channel) -> None:
        if channel.login not in self._spade_known:
            await self.request("GET", f"https://www.twitch.tv/{channel.login}", content_type="text/html; charset=utf-8")
            self._spade_known.add(channel.login)
        payload = [{
            "event": "minute-watched",
            "properties": {
                "broadcast_id": self._broadcast_id(channel),
                "channel_id": channel.id,
                "channel": channel.login,
                "game": channel.game,
                "live": True,
                "minutes_logged": 1,
                "user_id": self.user_id,
            },
        }]
        data = base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()
        await self.request("POST", SPADE_URL, status=204, content_type=None, data={"data": data})

    @task_wrapper
    async def _watch_loop(self) -> None:
        watched = 0  # minutes watched, over all channels
        crash_after = self._scenario.watch_crash_after
        while True:
            channel = await self._wait_for_channel()
            if crash_after is not None and watched >= crash_after:
                self._streams[channel.login] = None  # Twitch answered without a stream: TDM has no guard
            await self.send_watch(channel)
            await self.sleep(60)
            if self.watching is not channel:
                continue
            watched += 1
            await self._progress(channel)

    async def _progress(self, channel: Channel) -> None:
        campaign = self._campaign_for(channel.game)
        drop = campaign.active_drop() if campaign is not None else None
        if campaign is None or drop is None:
            return
        stall = self._scenario.stall_after
        if stall is not None and drop.current >= stall:
            return  # Twitch stopped counting: no more progress messages
        campaign.bump_minutes()
        for each in campaign.drops:
            self.gui.inv.update_drop(each)
        self.gui.display_drop(drop)
        self._progress_lines += 1
        every = self._scenario.gql_progress_every
        if every and self._progress_lines % every == 0:
            # no websocket update came in time: TDM asks GQL
            await self.gql_request("DropCurrentSessionContext", {"channelID": channel.id, "channelLogin": ""})
            logger.log(CALL, f"Drop progress from GQL: {drop.progress_text}")
        else:
            logger.log(CALL, f"Drop update from websocket: {drop.progress_text}")
        if drop.complete:
            await self.sleep(4)  # the drop-claim message comes a few seconds later
            await self.claim(drop)
            await self.sleep(4)
            self.change_state(State.INVENTORY_FETCH)

    # ---- websocket messages ----------------------------------------------------------------------

    @task_wrapper
    async def _websocket_messages(self) -> None:
        scenario = self._scenario
        schedule = Schedule(self._events_rng, {
            "reconnect": scenario.ws_reconnect_every,
            "unknown_state": scenario.unknown_state_every,
            "channel_update": scenario.channel_update_every,
            "channel_offline": scenario.channel_offline_every,
            "unknown_claim": scenario.unknown_claim_every,
            "unknown_payload": scenario.unknown_payload_every,
        })
        minute = 0
        while True:
            await self.sleep(60)
            minute += 1
            for at, channel in [item for item in self._back_online if item[0] <= minute]:
                self._back_online.remove((at, channel))
                self._channel_online(channel)
            for kind in schedule.due(minute):
                await self._on_message(kind, minute)

    async def _on_message(self, kind: str, minute: int) -> None:
        rng = self._events_rng
        if kind == "reconnect":
            await self.websocket.reconnect()
        elif not self.channels:
            return  # the other messages are about tracked channels or drops: none without wanted games
        elif kind == "unknown_state":
            logger.warning(f"Unknown stream state: {rng.choice(UNKNOWN_STREAM_STATES)}")
        elif kind == "channel_update":
            channel = self.watching or rng.choice(self.channels)
            logger.log(CALL, f"Channel update from websocket: {channel.name}")
        elif kind == "channel_offline":
            channel = self.watching
            if channel is not None:
                channel.online = False
                self.gui.channels.display(channel)
                self._back_online.append((minute + rng.randint(*self._scenario.channel_back_after), channel))
                self.gui.print(f"{channel.name} goes OFFLINE, switching...")
                self._set_watching(None)
                self.change_state(State.CHANNEL_SWITCH)
        elif kind == "unknown_claim":
            drop_id = random_id(rng)
            logger.error(
                f"Received a drop claim ID for a non-existing drop: {drop_id}\n"
                f"Drop claim ID: {self.user_id}#{random_id(rng)}#{drop_id}"
            )
        elif kind == "unknown_payload":
            ws_logger.warning(f"Websocket[0] received unknown payload: {rng.choice(UNKNOWN_PAYLOADS)}")

    def _channel_online(self, channel: Channel) -> None:
        channel.online = True
        self.gui.channels.display(channel)
        campaign = next((c for c in self.campaigns if not c.finished), None)
        if self.watching is None and campaign is not None and campaign.game == channel.game:
            self.gui.print(f"{channel.name} goes ONLINE, switching...")
            self.change_state(State.CHANNEL_SWITCH)
        else:
            logger.info(f"{channel.name} goes ONLINE")
