"""Housekeeping: the daemon's every-few-seconds thread, and when to restart TDM.

Each tick pings the bridge's launcher, restarts a miner whose drop has stopped progressing (when
`miner.restart_on_stall` is set), reads cookies.jar (and checks the token when asked) every
COOKIES_EVERY seconds, and prunes the store every PRUNE_EVERY seconds. TDM's CPU share is worked
out from the supervisor's samples when `seen` is read (and at each tick). The decisions are pure
functions of (snapshot, status, now); the thread only gathers their inputs and acts.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from loguru import logger

from .cookies import JarInfo, read_jar
from .events import Event, stops_mining
from .state import Snapshot

if TYPE_CHECKING:
    from .bridge_link import BridgeLink
    from .config import Config
    from .pipeline import Pipeline
    from .session_check import SessionChecker
    from .store import Store
    from .supervisor import Supervisor, SupervisorStatus

TICK_SECONDS = 5.0  # its checks need no finer step: pings every 5 s, cookies 10 s, stalls 30 min
COOKIES_EVERY = 10.0
PRUNE_EVERY = 600.0


def stall_due(snapshot: Snapshot, status: SupervisorStatus | None, now: float, limit: float | None) -> bool:
    """True when TDM mines a drop whose progress Twitch has not confirmed for more than `limit`
    seconds of the running process's life (a restart starts a fresh `limit`). TDM's own estimate
    while Twitch is silent is no progress."""
    if status is None or limit is None or snapshot.drop is None or snapshot.status != "mining":
        return False
    if not status.up or status.start_time is None:
        return False
    return now - max(snapshot.confirmed_progress_time() or 0.0, status.start_time) > limit


def terminated_while_up(event: Event, status: SupervisorStatus) -> bool:
    """True when the running TDM process said it stopped mining (it stays alive until its window closes)."""
    # log.txt is appended across runs: only what the running process said counts.
    return stops_mining(event) and status.up and status.start_time is not None and event.time >= status.start_time - 1.0


def restart_if_terminated(event: Event, supervisor: Supervisor | None, mode: str) -> None:
    """Restart a supervised TDM that said it stopped mining but still runs (called for every event)."""
    if supervisor is None or mode != "run" or not terminated_while_up(event, supervisor.status()):
        return
    # Say what happens: with miner.restart_on_terminated off the supervisor ignores the restart.
    restarting = supervisor.restart("terminated")
    logger.warning("TDM stopped mining but is still running ({}); {}", event.kind.value,
                   "restarting it" if restarting else "not restarting it (miner.restart_on_terminated is off)")


def cpu_percent(previous: tuple[float, float] | None, now: float, cpu_seconds: float) -> float | None:
    """TDM's CPU share since the `previous` (monotonic time, cpu seconds) sample, in percent of one core."""
    if previous is None or now <= previous[0]:
        return None
    return 100.0 * max(0.0, cpu_seconds - previous[1]) / (now - previous[0])


@dataclass(frozen=True)
class Seen:
    """What housekeeping last saw of TDM's login and CPU use (replaced whole, read without a lock)."""

    jar: JarInfo | None = None
    checked_token_expiry: float | None = None  # from the token check, when it runs
    cpu_percent: float | None = None

    @property
    def token_expiry(self) -> float | None:
        """The best known expiry: the token check's, else the jar's."""
        return self.checked_token_expiry or (self.jar.auth_token_expiry if self.jar is not None else None)


class Parts(Protocol):
    """What housekeeping works on: the daemon's current parts (a reload may replace any of them)."""

    config: Config
    pipeline: Pipeline
    store: Store
    supervisor: Supervisor | None
    session_checker: SessionChecker | None
    bridge_link: BridgeLink

    def record(self, action: str, fields: dict[str, Any]) -> None: ...


class Housekeeping:
    def __init__(self, parts: Parts) -> None:
        self._parts = parts
        self._seen = Seen()
        self._seen_lock = threading.Lock()  # readers fold in CPU samples too
        self._cpu_sample: tuple[float, float] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="twitchminert-housekeeping")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        next_cookies = next_prune = time.monotonic()
        while True:  # a first pass at once: the jar and the launcher are seen when the daemon starts
            now = time.monotonic()
            try:
                self.sample_cpu()
                self._parts.bridge_link.tick(now)  # is TDM's launcher there? (a bounded ping)
                self.check_stall()
                if now >= next_cookies:
                    next_cookies = now + COOKIES_EVERY
                    self.read_cookies()
                if now >= next_prune:
                    next_prune = now + PRUNE_EVERY
                    self.prune()
            except Exception as error:  # housekeeping must outlive a bad file or a full disk
                logger.exception("housekeeping: {}", error)
            if self._stop.wait(TICK_SECONDS):
                break

    @property
    def seen(self) -> Seen:
        """What housekeeping saw, with the supervisor's latest CPU sample: no tick waits for it."""
        self.sample_cpu()
        return self._seen

    def sample_cpu(self) -> None:
        supervisor = self._parts.supervisor
        status = supervisor.status() if supervisor is not None else None
        sample = status.resources if status is not None else None
        with self._seen_lock:
            if sample is None:
                self._cpu_sample = None
                self._seen = replace(self._seen, cpu_percent=None)
                return
            if self._cpu_sample is not None and sample.taken_at == self._cpu_sample[0]:
                return  # no new sample since the last look: keep the share of the last two
            share = cpu_percent(self._cpu_sample, sample.taken_at, sample.cpu_seconds_total)
            self._seen = replace(self._seen, cpu_percent=share)
            self._cpu_sample = (sample.taken_at, sample.cpu_seconds_total)

    def check_stall(self) -> None:
        parts = self._parts
        supervisor, limit = parts.supervisor, parts.config.miner.restart_on_stall
        if supervisor is None or limit is None:
            return
        snapshot = parts.pipeline.snapshot()
        if stall_due(snapshot, supervisor.status(), time.time(), limit):
            logger.warning("drop {!r} has not progressed for {:.0f} s; restarting TDM", snapshot.drop.name, limit)
            supervisor.restart("stall")

    def read_cookies(self) -> None:
        parts = self._parts
        miner_dir: Path | None = parts.config.miner.dir
        if miner_dir is None:
            return
        jar = read_jar(miner_dir / "cookies.jar")
        self._see(jar=jar)
        checker = parts.session_checker
        if checker is not None and jar.has_auth_token:
            result = checker.maybe_check()
            if result is not None:
                self._see(checked_token_expiry=result.expires_at)
                if result.status == "invalid":
                    parts.record("session_invalid", {"source": "validate"})
                    parts.pipeline.mark_session_invalid()

    def prune(self) -> None:
        parts = self._parts
        storage = parts.config.storage
        deleted = parts.store.prune(time.time(), storage.max_age_days * 86400, int(storage.max_size_mb * 1e6))
        if deleted:
            logger.info("store: pruned {} old events", deleted)

    def _see(self, **changes: Any) -> None:
        with self._seen_lock:
            self._seen = replace(self._seen, **changes)
