"""Notifications: the rules' decisions, delivered through Apprise without ever holding anyone up.

- `Notifier` owns the rules (notify_rules.py) and one thread ("twitchminert-notify") that looks at the
  miner every second (`observe()`), plus `on_event` for the pipeline's listener. When no channel wants
  anything a tick finds (none configured, or claims only), it looks once a minute: only to keep the
  rules' state current, which nobody hears. It decides who gets
  what: a key already sent is never sent again (remembered in the store, so also after a restart), and
  a repeating event goes to a channel at most once per its `min_interval`.
- One `Deliverer` per URL: its own thread with a bounded queue and retries with backoff, so a channel
  that fails or hangs delays neither the others, nor the pipeline, nor the HTTP server.
- Every outcome (sent, failed, suppressed, dropped) is counted, stored for the page, and a failure is
  also an event. URLs are only ever shown masked (notify_send.mask).
"""

from __future__ import annotations

import heapq
import itertools
import queue
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from loguru import logger
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from . import notify_send
from .events import Event, EventKind
from .notify_rules import TICKED, Notification, NotifyRules, is_news
from .state import Drop, Snapshot
from .status import status_fields

if TYPE_CHECKING:
    from .bridge_link import BridgeLink

QUEUE_CAPACITY = 100  # per URL; past it a notification is dropped (counted, stored, logged)
RETRY_DELAYS = (2.0, 8.0, 30.0, 120.0, 600.0)  # after the 1st, 2nd, ... failed try; then it failed
TICK_SECONDS = 1.0  # a condition is told within a second of holding
UNHEARD_TICK_SECONDS = 60.0  # no channel wants what a tick finds: it only keeps the rules' state current
_WAKE: Any = object()  # queued by Deliverer.stop() to wake its thread; never sent
RECENT_LIMIT = 50
STATE_KEY = "notify.rules"
RESULTS = ("sent", "failed", "suppressed", "dropped")
TEST_EVENT = "test"

Send = Callable[[str, str, str, str], "str | None"]  # (url, title, body, kind) -> None when delivered, else why not


@dataclass(frozen=True)
class Observation:
    """What the rules look at on each tick; `login` and `campaigns` come from the bridge (None without)."""

    snapshot: Snapshot
    supervisor: Any  # SupervisorStatus | None
    login: Mapping[str, Any] | None = None
    campaigns: Sequence[Mapping[str, Any]] | None = None

    @classmethod
    def of(cls, snapshot: Snapshot, supervisor: Any, link: BridgeLink, now: float) -> Observation:
        """The log's picture, the supervisor's, and the bridge's: the status API's `login` (with the code
        once shown), and the campaigns once TDM has shown some: unknown (None) before, not "none", since
        the first list TDM shows is what already exists."""
        login = status_fields(snapshot, link, supervisor.up if supervisor is not None else None, now)["login"]
        view = snapshot.inventory
        campaigns = None
        if view is not None and view.known and view.capabilities.get("campaigns") and view.campaigns:
            campaigns = [campaign.to_api(now) for campaign in view.campaigns]
        return cls(snapshot, supervisor, login, campaigns)


@dataclass(frozen=True)
class Target:
    """One URL of one configured channel."""

    url: str
    events: frozenset[str]
    min_interval: float

    @property
    def channel(self) -> str:
        return notify_send.mask(self.url)

    def __repr__(self) -> str:  # never the URL itself
        return f"Target({self.channel})"


def targets(channels: Sequence[Any]) -> list[Target]:
    """The config's `notify:` list (items with urls, events, min_interval) as one Target per URL."""
    return [
        Target(url, frozenset(channel.events), channel.min_interval) for channel in channels for url in channel.urls
    ]


# -- delivery: one thread per URL ---------------------------------------------------------------------


class Deliverer:
    def __init__(
        self,
        target: Target,
        send: Send,
        on_result: Callable[[Notification, Target, str, str | None], None],
        retry_delays: Sequence[float] = RETRY_DELAYS,
        capacity: int = QUEUE_CAPACITY,
    ) -> None:
        self.target = target
        self._send = send
        self._on_result = on_result
        self._retry_delays = tuple(retry_delays)
        self._queue: queue.Queue[Notification] = queue.Queue(capacity)
        self._retries: list[tuple[float, int, int, Notification]] = []  # (due, seq, attempt, n): this thread's only
        self._retry_count = 0  # len(self._retries), readable from other threads
        self._sending = 0  # 1 while a send is under way
        self._seq = itertools.count()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"twitchminert-notify-{target.channel}")

    def offer(self, notification: Notification) -> bool:
        """Queue without waiting; False when the queue is full."""
        try:
            self._queue.put_nowait(notification)
            return True
        except queue.Full:
            return False

    def pending(self) -> int:
        """Queued, waiting for a retry, or being sent."""
        return self._queue.qsize() + self._retry_count + self._sending

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Idempotent. A send under way finishes first (Apprise's own timeouts bound it)."""
        self._stop.set()
        try:
            self._queue.put_nowait(_WAKE)  # a full queue needs none: the thread is not waiting
        except queue.Full:
            pass
        if self._thread.is_alive():
            self._thread.join()
        left = self.pending() - sum(n is _WAKE for n in list(self._queue.queue))
        if left:
            logger.warning("notify: {} notification(s) for {} not sent before stopping", left, self.target.channel)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            if self._retries and self._retries[0][0] <= now:
                _, _, attempt, notification = heapq.heappop(self._retries)
                self._retry_count = len(self._retries)
                self._attempt(notification, attempt)
                continue
            # Nothing to retry: sleep on the queue until something comes (stop() queues a wake-up).
            wait = None if not self._retries else max(self._retries[0][0] - now, 0.0)
            try:
                notification = self._queue.get(timeout=wait)
            except queue.Empty:
                continue
            if notification is not _WAKE:
                self._attempt(notification, 0)

    def _attempt(self, notification: Notification, attempt: int) -> None:
        self._sending = 1
        try:
            error = self._send(self.target.url, notification.title, notification.body, notification.kind)
        except Exception as exc:  # notify_send catches Apprise's; this is a last guard for the thread
            error = notify_send.scrub(f"{type(exc).__name__}: {exc}", self.target.url)
        finally:
            self._sending = 0
        if error is None:
            self._on_result(notification, self.target, "sent", None)
        elif attempt < len(self._retry_delays):
            due = time.monotonic() + self._retry_delays[attempt]
            heapq.heappush(self._retries, (due, next(self._seq), attempt + 1, notification))
            self._retry_count = len(self._retries)
            logger.info(
                "notify: {} to {} failed (try {}), retrying in {:g} s: {}",
                notification.event, self.target.channel, attempt + 1, self._retry_delays[attempt], error,
            )
        else:
            self._on_result(notification, self.target, "failed", error)


# -- the notifier --------------------------------------------------------------------------------------


class Notifier:
    def __init__(
        self,
        channels: Sequence[Any],
        rules: NotifyRules,
        store=None,  # Store | None: outcomes, keys and the rules' state survive restarts there
        observe: Callable[[], Observation] | None = None,
        send: Send = notify_send.send,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.channels = tuple(channels)
        self.rules = rules
        self._store = store
        self._observe = observe
        self._send = send
        self._clock = clock
        self._lock = threading.Lock()  # rules, keys, last sent times, counters
        # Series start at 0, so increase() (TDMNotificationsFailing) sees a channel's first failure too.
        self.counts: dict[tuple[str, str], int] = {
            (event, result): 0 for event in sorted({e for c in self.channels for e in c.events}) for result in RESULTS
        }
        self._last_sent: dict[tuple[str, str], float] = {}  # (url, flap group) -> when
        self._keys: set[str] = set()
        self._saved_rules: str | None = None
        if store is not None:
            self._keys = store.notification_keys()
            self._saved_rules = store.load_state().get(STATE_KEY)
            rules.restore(self._saved_rules)
        self._deliverers = [Deliverer(t, send, self._outcome, retry_delays) for t in targets(self.channels)]
        heard = any(deliverer.target.events & TICKED for deliverer in self._deliverers)
        self.tick_seconds = TICK_SECONDS if heard else UNHEARD_TICK_SECONDS
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="twitchminert-notify")
        self._started = False

    # -- lifecycle

    def start(self) -> None:
        for deliverer in self._deliverers:
            deliverer.start()
        if self._observe is not None:
            self._thread.start()
        self._started = True

    def stop(self) -> None:
        """Idempotent; joins the observer first, then each delivery thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._started:
            for deliverer in reversed(self._deliverers):
                deliverer.stop()
        self._save_rules()

    # -- inputs

    def on_event(self, event: Event, known_games: Sequence[str] = (), drop: Drop | None = None) -> None:
        """The pipeline's listener (its lock held): decide and queue, never wait."""
        if not is_news(event):
            return
        with self._lock:
            found = self.rules.on_event(event, self._clock(), known_games, drop)
        self.dispatch(found)

    def tick(self, observation: Observation, now: float | None = None) -> None:
        now = self._clock() if now is None else now
        with self._lock:
            found = self.rules.tick(now, observation.snapshot, observation.supervisor, observation.login, observation.campaigns)
        self.dispatch(found)
        self._save_rules()

    def _run(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            self._tick()
        if self.tick_seconds == UNHEARD_TICK_SECONDS:
            self._tick()  # the state saved at stop (a reload, say, that adds a channel) is today's, not a minute old

    def _tick(self) -> None:
        try:
            self.tick(self._observe())
        except Exception as error:  # a bad snapshot or a full disk must not end notifications
            logger.exception("notify: {}", error)

    # -- deciding who gets what

    def dispatch(self, notifications: Sequence[Notification]) -> None:
        for notification in notifications:
            with self._lock:
                if notification.key in self._keys:
                    continue  # sent before (maybe before a restart)
                self._keys.add(notification.key)
            for deliverer in self._deliverers:
                target = deliverer.target
                if notification.event not in target.events:
                    continue
                if self._held_back(notification, target):
                    self._outcome(notification, target, "suppressed", f"sent less than {target.min_interval:g} s ago")
                elif not deliverer.offer(notification):
                    self._outcome(notification, target, "dropped", "queue full")

    def _held_back(self, notification: Notification, target: Target) -> bool:
        """A repeating event within the channel's min_interval of the last one is held back."""
        group = (target.url, notification.flap_group)
        now = notification.time
        with self._lock:
            last = self._last_sent.get(group)
            if notification.repeating and last is not None and now - last < target.min_interval:
                return True
            self._last_sent[group] = now
            return False

    def _outcome(self, notification: Notification, target: Target, result: str, error: str | None) -> None:
        with self._lock:
            key = (notification.event, result)
            self.counts[key] = self.counts.get(key, 0) + 1
        message = f"{notification.title}: {notification.body}"
        store = self._store
        if store is not None:
            try:
                store.add_notification(
                    self._clock(), notification.event, notification.key, target.channel, result, message, error
                )
                if result in ("failed", "dropped"):
                    fields = {"event": notification.event, "channel": target.channel, "result": result, "error": error}
                    text = f"notification {notification.event} to {target.channel} {result}: {error}"
                    store.commit([Event(EventKind.NOTIFICATION, self._clock(), "WARNING", "twitchminert", text, fields)], [], {}, {})
            except Exception as exc:  # the store failing must not stop delivery
                logger.error("notify: cannot record the outcome: {}", exc)
        if result in ("failed", "dropped"):
            logger.warning("notify: {} to {} {}: {}", notification.event, target.channel, result, error)
        elif result == "sent":
            logger.info("notify: {} sent to {}", notification.event, target.channel)

    def _save_rules(self) -> None:
        if self._store is None:
            return
        with self._lock:
            text = self.rules.to_json()
        if text != self._saved_rules:
            try:
                self._store.commit([], [], {}, {STATE_KEY: text})
                self._saved_rules = text
            except Exception as exc:
                logger.error("notify: cannot save the rules' state: {}", exc)

    # -- answers

    def test(self) -> list[dict[str, Any]]:
        """Send a test message to every URL now, one after the other; each one's result."""
        title = "Twitchminert: test"
        body = f"A test notification from twitchminert on {socket.gethostname()}."
        results = []
        for target in targets(self.channels):
            notification = Notification(TEST_EVENT, f"test:{self._clock()}", title, body, self._clock(), repeating=False)
            try:
                error = self._send(target.url, title, body, "info")
            except Exception as exc:
                error = notify_send.scrub(f"{type(exc).__name__}: {exc}", target.url)
            self._outcome(notification, target, "sent" if error is None else "failed", error)
            results.append({"channel": target.channel, "ok": error is None, "error": error})
        return results

    def counted(self) -> dict[tuple[str, str], int]:
        """Outcomes so far by (event, result)."""
        with self._lock:
            return dict(self.counts)

    def queue_length(self) -> int:
        return sum(deliverer.pending() for deliverer in self._deliverers)

    def channels_view(self) -> list[dict[str, Any]]:
        return [
            {"urls": [notify_send.mask(url) for url in channel.urls], "events": list(channel.events), "min_interval": channel.min_interval}
            for channel in self.channels
        ]

    def recent(self, limit: int = RECENT_LIMIT) -> list[dict[str, Any]]:
        if self._store is None:
            return []
        return [
            {key: row[key] for key in ("time", "event", "result", "channel", "message", "error")}
            for row in self._store.notifications(limit)
        ]


# -- metrics and HTTP ------------------------------------------------------------------------------------


class NotifyCollector:
    def __init__(self, current: Callable[[], Notifier | None]) -> None:
        self._current = current

    def collect(self):
        notifier = self._current()
        total = CounterMetricFamily(
            "tdm_notifications", "Notifications by event and result (sent, failed, suppressed, dropped).", labels=["event", "result"]
        )
        length = GaugeMetricFamily("tdm_notification_queue_length", "Notifications waiting to be sent or retried.")
        if notifier is not None:
            for (event, result), count in sorted(notifier.counted().items()):
                total.add_metric([event, result], count)
            length.add_metric([], notifier.queue_length())
        else:
            length.add_metric([], 0)
        yield total
        yield length
