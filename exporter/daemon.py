"""Wiring: builds every part from the config, starts them, and stops them in reverse order.

Parts: the HTTP server (web.py's routes), the log pipeline and its follower thread, the supervisor
(when a miner folder is set), and housekeeping (housekeeping.py). Everything that can fail is
checked, and the listener bound, before anything starts. Reloads rebuild only the parts whose
config changed; a reload that cannot be applied whole changes nothing.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any, Callable

from prometheus_client import CollectorRegistry

from .bridge_link import BridgeLink
from .bridge_metrics import BridgeCollector
from .config import Config, ConfigError
from .console_web import Console
from .events import Event, EventKind, audit_event
from .history import History
from .housekeeping import Housekeeping, restart_if_terminated
from .http import Server
from .metrics import ExporterCollector, ExporterHealth, StateCollector, SupervisorCollector
from .notify import Notifier, NotifyCollector, Observation
from .notify_rules import NotifyRules, RuleSettings
from .patterns import PatternSet, build_patterns
from .pipeline import Follower, Pipeline, RecordHandler
from .reloading import Candidate, Prepared, Reloader, load_web
from .session_check import checker_for
from .settings_editor import SettingsEditor
from .settings_file import load_or_none as load_tdm_settings
from .settings_sync import SettingsSync
from .state import MinerState, Snapshot
from .status import effective, status_answer
from .store import Store
from .supervisor import Supervisor, SupervisorError, SupervisorStatus
from .tailer import watch_paths
from .timestamps import LocalClock, zone
from .watcher import Watcher
from .web import Listener, WebContext

__all__ = ["Daemon", "StartupError"]

class StartupError(ConfigError):
    """A problem found before anything started (busy port, missing miner folder...): one line."""


class Daemon:
    def __init__(
        self,
        config: Config,
        listen_address: str | None = None,
        config_file: Path | None = None,
        adjust: Callable[[Config], Config] | None = None,
    ) -> None:
        self.config = config
        self.listen_address = listen_address or config.web.listen_address
        self.reloader = Reloader(config_file, self, adjust)
        self.supervisor: Supervisor | None = None
        self.bridge_link = BridgeLink(None, expected=False)  # a supervised TDM's launcher replaces it
        self.context = WebContext(
            registry=(registry := CollectorRegistry()),
            status=self.status,
            store=lambda: self.store,
            config=lambda: self.config,
            supervisor=lambda: self.supervisor,
            reload=self.reloader.reload,
            stopping=lambda: self.reloader.closed,
            config_file=config_file,
            console=self._console(config_file),
            snapshot=self.snapshot,
            bridge=lambda: self.bridge_link,
            notifier=lambda: self.notifier,
        )
        patterns = build_patterns(config.logs.patterns)
        try:
            self.web = load_web(config)
            # Bound first: a busy port stops start-up before any file is written or process started.
            self.listener = Listener(self.listen_address, self.context, self.web)
        except ValueError as error:  # WebConfigError, a bad or busy listen address
            raise StartupError(str(error)) from None
        try:
            self._use_miner(self._miner_parts(config))  # checks the miner's folder and command
            self.store = Store.open(config.store_file)
        except (SupervisorError, OSError, sqlite3.Error) as error:
            self.listener.stop()
            raise StartupError(str(error)) from None
        except BaseException:
            self.listener.stop()
            raise
        self.pipeline = self._pipeline(config, patterns)
        self.follower = self._follower()
        self.session_checker = checker_for(self.config)
        self.notifier = self._notifier()
        self.housekeeping = Housekeeping(self)
        registry.register(StateCollector(self.snapshot))
        registry.register(SupervisorCollector(self._supervisor_status))
        registry.register(ExporterCollector(self.health))
        registry.register(BridgeCollector(lambda: self.bridge_link, self._running))
        registry.register(NotifyCollector(lambda: self.notifier))

    # -- parts --------------------------------------------------------------------------------

    def _console(self, config_file: Path | None) -> Console:
        editor = SettingsEditor(
            config_file, lambda: self.config, lambda: load_tdm_settings(self.config.miner.dir), self._known_games,
            lambda action, fields: self.record(action, fields, EventKind.CONFIG_CHANGE), self.reloader.reload,
        )
        return Console(editor, History(lambda: self.config.store_file), lambda: self.pipeline.snapshot().drop,
                       self._known_games, lambda: self.web is not None and bool(self.web.users))

    def _known_games(self) -> list[str]:
        return self.pipeline.known_games()

    def _pipeline(self, config: Config, patterns: PatternSet) -> Pipeline:
        state = MinerState(login_timeout=config.session.login_timeout)
        def tell_notifier(event: Event) -> None:
            self.notifier.on_event(event, state.known_games, state.drop)

        def react(event: Event) -> None:  # on the follower thread (pipeline lock held): keep it short
            restart_if_terminated(event, self.supervisor, self.config.miner.mode)

        listeners = [react, tell_notifier]
        handler = RecordHandler(patterns, LocalClock(zone(config.logs.timezone)), state, listeners=listeners)
        return Pipeline(config.log_sources(), handler, self.store, config.logs.start_at, config.logs.max_record_bytes)

    def _follower(self) -> Follower:
        return Follower(self.pipeline, Watcher(watch_paths(self.config.log_sources())))

    def _miner_parts(self, config: Config) -> tuple[SettingsSync | None, Supervisor | None]:
        """The settings writer and the supervisor for `config` (built, not started: no side effect).
        Raises SupervisorError for a miner folder or command that cannot be run."""
        if config.miner.dir is None:
            return None, None
        sync = SettingsSync(config.miner.dir, config.settings, self._record_settings)
        supervisor = Supervisor(
            config.miner,
            config.data_dir,
            before_start=sync.prepare if config.miner.mode == "run" else None,
            record=lambda action, fields: self.record(action, dict(fields)),
        )
        return sync, supervisor

    def _use_miner(self, parts: tuple[SettingsSync | None, Supervisor | None]) -> None:
        self.settings_sync, self.supervisor = parts
        control = self.supervisor.control_path if self.supervisor is not None else None
        self.bridge_link = BridgeLink(control, expected=control is not None)

    def _notifier(self) -> Notifier:
        return Notifier(self.config.notify, NotifyRules(RuleSettings.of(self.config)), self.store, self._observe)

    def _observe(self) -> Observation:
        now = time.time()
        return Observation.of(self.pipeline.snapshot(now), self._supervisor_status(), self.bridge_link, now)

    # -- start and stop -----------------------------------------------------------------------

    def start(self) -> None:
        if self.supervisor is not None:
            self.supervisor.start()  # first: it creates the captured-output file the pipeline follows
        self.notifier.start()  # before the follower: it is told of the events
        self.follower.start()
        self.housekeeping.start()
        self.listener.start()

    @property
    def server(self) -> Server:
        return self.listener.server

    def stop(self) -> None:
        """Idempotent; stops in reverse start order and leaves no thread or child behind."""
        if not self.reloader.close():  # a reload in progress finishes first; later ones are refused
            return
        self.listener.stop()
        self.housekeeping.stop()
        if self.supervisor is not None:
            self.supervisor.stop()
        self.follower.stop()
        self.notifier.stop()
        self.pipeline.close()
        self.store.close()

    # -- events ---------------------------------------------------------------------------------

    def record(self, action: str, fields: dict[str, Any], kind: EventKind = EventKind.SUPERVISOR) -> None:
        """Our own events (config changes, restores) go to the store beside TDM's."""
        self.store.commit([audit_event(action, fields, kind, time.time())], [], {}, {})

    def _record_settings(self, action: str, fields: dict[str, Any]) -> None:
        # Written by the supervisor's preflight, just before TDM starts (the reload that asked for it
        # is recorded on its own, with its source).
        self.record(action, {"source": "miner_start", **fields}, EventKind.CONFIG_CHANGE)

    # -- snapshots ------------------------------------------------------------------------------

    def _supervisor_status(self) -> SupervisorStatus | None:
        return self.supervisor.status() if self.supervisor is not None else None

    def _running(self) -> bool | None:
        status = self._supervisor_status()
        return status.up if status is not None else None

    def snapshot(self) -> Snapshot:
        return effective(self.pipeline.snapshot(), self._supervisor_status())

    def status(self, now: float) -> dict[str, Any]:
        snapshot, supervisor = self.pipeline.snapshot(now), self._supervisor_status()
        seen, drop_minute = self.housekeeping.seen, self.config.drop_minute_seconds
        return status_answer(snapshot, supervisor, self.reloader.state, seen, self.bridge_link, now, drop_minute)

    def health(self) -> ExporterHealth:
        writes = self.settings_sync.writes if self.settings_sync is not None else 0
        return ExporterHealth.of(self.reloader.state, self.reloader.counts, self.housekeeping.seen, writes)

    # -- reload: the Reloader's steps --------------------------------------------------------

    @property
    def patterns(self) -> PatternSet:
        return self.pipeline.patterns

    @property
    def miner_running(self) -> bool:
        return self.supervisor is not None

    def prepare(self, candidate: Candidate, changes: dict[str, list[Any]], prepared: Prepared) -> None:
        new = candidate.config
        if any(key.startswith("web.") for key in changes):
            address = new.web.listen_address if "web.listen_address" in changes else self.listen_address
            prepared.server = self.listener.prepare(address, candidate.web)  # bound: the address is ours
        if any(key.startswith("miner.") for key in changes):
            prepared.miner = self._miner_parts(new)
        if new.storage.path != self.config.storage.path:
            prepared.store = Store.open(new.store_file)

    def apply(self, candidate: Candidate, changes: dict[str, list[Any]], prepared: Prepared) -> None:
        old, new = self.config, candidate.config
        self.config = new
        sections = {key.split(".", 1)[0] for key in changes}
        renotify = bool({"notify", "settings", "miner", "storage"} & sections)  # channels, priority, stall time, store
        if renotify:
            self.notifier.stop()  # before the store it writes to may close
        if old.logs != new.logs or prepared.store is not None:
            self.follower.stop()
            self.pipeline.close()
            if prepared.store is not None:
                self.store.close()
                self.store = prepared.store
            self.pipeline = self._pipeline(new, candidate.patterns)
            self.follower = self._follower()
            self.follower.start()
        elif "logs.patterns (contents)" in changes:
            self.pipeline.set_patterns(candidate.patterns)
        if prepared.miner is not None:
            if self.supervisor is not None:
                self.supervisor.stop()
            self._use_miner(prepared.miner)
            if self.supervisor is not None:
                self.supervisor.start()
        elif "settings" in sections and self.supervisor is not None and self.settings_sync is not None:
            self.settings_sync.desired = new.settings
            if new.miner.mode == "run":
                self.supervisor.restart("config")  # stop, write settings.json while TDM is down, start
        if "session" in sections:
            self.session_checker = checker_for(self.config)
        if renotify:
            self.notifier = self._notifier()
            self.notifier.start()
        if prepared.server is not None:
            self.web = candidate.web
            if "web.listen_address" in changes:
                self.listen_address = new.web.listen_address
            self.listener.switch(prepared.server, self.listen_address)

