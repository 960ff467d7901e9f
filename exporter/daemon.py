"""Wiring: builds every part from the config, starts them, and stops them in reverse order.

Parts: the HTTP server (web.py's routes), the log pipeline and its follower thread, the supervisor
(when a miner folder is set), and housekeeping (housekeeping.py). Everything that can fail is
checked, and the listener bound, before anything starts. Reloads rebuild only the parts whose
config changed; a reload that cannot be applied whole changes nothing.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable

from loguru import logger
from prometheus_client import CollectorRegistry

from .bridge_link import BridgeLink
from .bridge_metrics import BridgeCollector
from .bridge_web import current_mining_fields, status_fields
from .config import Config, ConfigError
from .console_web import Console
from .events import Event, EventKind, audit_event
from .history import History
from .housekeeping import Housekeeping, terminated_while_up
from .http import Server
from .metrics import ExporterCollector, ExporterHealth, StateCollector, SupervisorCollector
from .notify import Notifier, NotifyCollector, Observation
from .notify_rules import NotifyRules, RuleSettings
from .patterns import PatternSet
from .pipeline import Follower, Pipeline, RecordHandler
from .reloading import Candidate, Prepared, build_patterns, config_changes, load_candidate, load_web, refusal
from .session_check import SessionChecker
from .settings_editor import SettingsEditor
from .settings_file import SettingsUnreadable, TdmSettings
from .settings_file import load as load_tdm_settings
from .settings_sync import SettingsSync
from .state import MinerState, Snapshot
from .status import ConfigState, effective, miner_status
from .store import Store
from .supervisor import Supervisor, SupervisorError
from .tailer import watch_paths
from .timestamps import LocalClock, zone
from .watcher import Watcher
from .web import Listener, WebContext

__all__ = ["Daemon", "StartupError", "build_patterns"]

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
        self.config_file = config_file
        self.listen_address = listen_address or config.web.listen_address
        self.config_state = ConfigState(last_success_time=time.time())
        self.reloads = {"success": 0, "failure": 0}
        self.supervisor: Supervisor | None = None
        self.bridge_link = BridgeLink(None, expected=False)  # a supervised TDM's launcher replaces it
        self._reload_lock = threading.Lock()
        self._stopped = False
        self.adjust = adjust  # what the command line sets over the file, at every reload too
        self.context = WebContext(
            registry=(registry := CollectorRegistry()),
            status=self.status,
            store=lambda: self.store,
            config=lambda: self.config,
            supervisor=lambda: self.supervisor,
            reload=self.reload,
            stopping=lambda: self._stopped,
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
        self.session_checker = self._session_checker()
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
            config_file, lambda: self.config, self._tdm_settings, self._known_games,
            lambda action, fields: self.record(action, fields, EventKind.CONFIG_CHANGE), self.reload,
        )
        return Console(editor, History(lambda: self.config.store_file), self._current_drop, self._known_games,
                       lambda: self.web is not None and bool(self.web.users))

    def _pipeline(self, config: Config, patterns: PatternSet) -> Pipeline:
        state = MinerState(login_timeout=config.session.login_timeout)
        def tell_notifier(event: Event) -> None:
            self.notifier.on_event(event, state.known_games, state.drop)

        listeners = [self._react, tell_notifier]
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

    def _session_checker(self) -> SessionChecker | None:
        if not self.config.session.validate or self.config.miner.dir is None:
            return None
        session = self.config.session
        return SessionChecker(self.config.miner.dir / "cookies.jar", session.validate_url, session.validate_interval)

    def _notifier(self) -> Notifier:
        settings = RuleSettings(
            stalled_after=self.config.miner.restart_on_stall or RuleSettings.stalled_after,
            priority=tuple(self.config.settings.get("priority", ())),
        )
        return Notifier(self.config.notify, NotifyRules(settings), self.store, self._observe)

    def _observe(self) -> Observation:
        """What the notification rules look at: the log's picture, the supervisor, and what the bridge
        adds (the status API's `login`, with the code once shown; the campaigns once TDM has some)."""
        now = time.time()
        snapshot, supervisor = self.pipeline.snapshot(now), self._supervisor_status()
        login = status_fields(snapshot, self.bridge_link, supervisor.up if supervisor is not None else None, now)["login"]
        view = snapshot.inventory
        campaigns = None  # unknown, not "none": the first list TDM shows is what already exists
        if view is not None and view.known and view.capabilities.get("campaigns") and view.campaigns:
            campaigns = [campaign.to_api(now) for campaign in view.campaigns]
        return Observation(snapshot, supervisor, login, campaigns)

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
        with self._reload_lock:  # a reload in progress finishes first; later ones are refused
            if self._stopped:
                return
            self._stopped = True
        self.listener.stop()
        self.housekeeping.stop()
        if self.supervisor is not None:
            self.supervisor.stop()
        self.follower.stop()
        self.notifier.stop()
        self.pipeline.close()
        self.store.close()

    # -- reactions ------------------------------------------------------------------------------

    def _react(self, event: Event) -> None:
        """Called for every event, on the follower thread (pipeline lock held): keep it short."""
        supervisor = self.supervisor
        if supervisor is not None and self.config.miner.mode == "run" and terminated_while_up(event, supervisor.status()):
            # Say what happens: with miner.restart_on_terminated off the supervisor ignores the restart.
            restarting = supervisor.restart("terminated")
            logger.warning("TDM stopped mining but is still running ({}); {}", event.kind.value,
                           "restarting it" if restarting else "not restarting it (miner.restart_on_terminated is off)")

    def record(self, action: str, fields: dict[str, Any], kind: EventKind = EventKind.SUPERVISOR) -> None:
        """Our own events (config changes, restores) go to the store beside TDM's."""
        self.store.commit([audit_event(action, fields, kind, time.time())], [], {}, {})

    def _record_settings(self, action: str, fields: dict[str, Any]) -> None:
        # Written by the supervisor's preflight, just before TDM starts (the reload that asked for it
        # is recorded on its own, with its source).
        self.record(action, {"source": "miner_start", **fields}, EventKind.CONFIG_CHANGE)

    # -- snapshots ------------------------------------------------------------------------------

    def _tdm_settings(self) -> TdmSettings | None:
        """What TDM's settings.json holds now (keys the YAML does not set keep TDM's own value)."""
        if self.config.miner.dir is None:
            return None
        try:
            return load_tdm_settings(self.config.miner.dir)
        except (SettingsUnreadable, OSError):
            return None

    def _known_games(self) -> list[str]:
        """The games TDM can mine (the bridge's list) and those seen in its log."""
        inventory = self.pipeline.snapshot().inventory
        bridged = list(inventory.games) + [c.game for c in inventory.campaigns if c.game] if inventory is not None else []
        return bridged + list(self.pipeline.handler.state.known_games)

    def _current_drop(self) -> tuple[str | None, str | None]:
        drop = self.pipeline.snapshot().drop
        return (drop.name, drop.game) if drop is not None else (None, None)

    def _supervisor_status(self):
        return self.supervisor.status() if self.supervisor is not None else None

    def _running(self) -> bool | None:
        status = self._supervisor_status()
        return status.up if status is not None else None

    def snapshot(self) -> Snapshot:
        return effective(self.pipeline.snapshot(), self._supervisor_status())

    def status(self, now: float) -> dict[str, Any]:
        seen, config = self.housekeeping.seen, self.config_state
        supervisor = self._supervisor_status()
        snapshot = effective(self.pipeline.snapshot(now), supervisor)  # the bridge's fields too: a gone TDM's picture is not live
        answer = miner_status(
            snapshot, supervisor, config, seen.jar, seen.cpu_percent, now, seen.token_expiry, self.config.drop_minute_seconds
        )
        answer["current_mining"].update(current_mining_fields(snapshot, answer["current_mining"]["drop"] is not None))
        answer.update(status_fields(snapshot, self.bridge_link, supervisor.up if supervisor is not None else None, now))
        return answer

    def health(self) -> ExporterHealth:
        state, seen, sync = self.config_state, self.housekeeping.seen, self.settings_sync
        jar = seen.jar
        return ExporterHealth(
            last_reload_successful=state.last_reload_successful,
            last_success_time=state.last_success_time,
            reloads=dict(self.reloads),
            settings_writes=sync.writes if sync is not None else 0,
            cookies_present=None if jar is None else jar.present and jar.has_auth_token,
            cookies_modified_time=None if jar is None else jar.modified_time,
            token_expiry=seen.token_expiry,
        )

    # -- reload -----------------------------------------------------------------------------------

    def reload(self, source: str) -> tuple[bool, str]:
        """Load the config file again and apply what changed. A config that cannot be applied whole
        (invalid, empty, or naming a busy listen address) changes nothing."""
        if self.config_file is None:
            return False, "no config file to reload (started without --config.file)"
        with self._reload_lock:
            if self._stopped:
                return False, "stopping"
            prepared = Prepared()
            try:
                candidate = load_candidate(self.config_file, self.adjust)
                why = refusal(self.config, candidate, self.config_file, self.supervisor is not None)
                if why is not None:
                    raise ConfigError(why)
                changes = config_changes(self.config, self.pipeline.patterns, self.web, candidate)
                self._prepare(candidate, changes, prepared)  # all that can fail, before anything changes
            except (ValueError, OSError, SupervisorError, sqlite3.Error) as error:  # ValueError: ConfigError, PatternError...
                prepared.discard()
                return self._reload_failed(source, str(error))
            self.reloads["success"] += 1
            self.config_state = ConfigState(True, time.time(), None)
            if not changes:
                return True, "no change"
            self.record("config_change", {"source": source, "changes": changes}, EventKind.CONFIG_CHANGE)
            self._apply(candidate, changes, prepared)
            return True, f"applied: {', '.join(sorted(changes))}"

    def _reload_failed(self, source: str, message: str) -> tuple[bool, str]:
        self.reloads["failure"] += 1
        self.config_state = ConfigState(False, self.config_state.last_success_time, message)
        logger.error("config reload ({}) failed, keeping the running config:\n{}", source, message)
        return False, message

    def _prepare(self, candidate: Candidate, changes: dict[str, list[Any]], prepared: Prepared) -> None:
        new = candidate.config
        if any(key.startswith("web.") for key in changes):
            address = new.web.listen_address if "web.listen_address" in changes else self.listen_address
            prepared.server = self.listener.prepare(address, candidate.web)  # bound: the address is ours
        if any(key.startswith("miner.") for key in changes):
            prepared.miner = self._miner_parts(new)
        if new.storage.path != self.config.storage.path:
            prepared.store = Store.open(new.store_file)

    def _apply(self, candidate: Candidate, changes: dict[str, Any], prepared: Prepared) -> None:
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
            self.session_checker = self._session_checker()
        if renotify:
            self.notifier = self._notifier()
            self.notifier.start()
        if prepared.server is not None:
            self.web = candidate.web
            if "web.listen_address" in changes:
                self.listen_address = new.web.listen_address
            self.listener.switch(prepared.server, self.listen_address)

