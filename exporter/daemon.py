"""Wiring: builds every part from the config, starts them, and stops them in reverse order.

Parts: the log pipeline and its follower thread, the supervisor (when a miner folder is set), the
housekeeping thread (stall check, cookies, token check, retention), and the HTTP server. Reloads
rebuild only the parts whose config changed.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from loguru import logger
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from . import __version__
from .config import Config, ConfigError, load_config
from .cookies import JarInfo, read_jar
from .events import Event, EventKind
from .http import Request, Response, Route, Server, get, metrics_route, parse_listen_address, post, text
from .metrics import StateCollector, SupervisorCollector
from .patterns import PatternSet
from .preflight import build_patterns
from .pipeline import Follower, Pipeline, RecordHandler
from .redaction import redact_all
from .session_check import SessionChecker
from .settings_sync import SettingsSync
from .state import MinerState, Snapshot
from .status import ConfigState, effective, miner_status
from .store import Store
from .supervisor import Supervisor, SupervisorSettings
from .tailer import watch_paths
from .timestamps import LocalClock, zone
from .watcher import FileChangeWatcher, Watcher
from .webconfig import load_web_config

LANDING_PAGE = Path(__file__).with_name("landing.html")
HOUSEKEEPING_SECONDS = 1.0
COOKIES_EVERY = 10.0
PRUNE_EVERY = 600.0
# Events after which TDM stops mining but stays alive ("Application Terminated").
TERMINATING = frozenset({EventKind.FATAL_ERROR, EventKind.APPLICATION_TERMINATED})


def supervisor_settings(config: Config) -> SupervisorSettings:
    miner = config.miner
    return SupervisorSettings(
        dir=miner.dir,
        command=miner.command,
        env=miner.env,
        display=miner.display,
        mirror_gui_output=miner.mirror_gui_output,
        stop_timeout=miner.stop_timeout,
        mode=miner.mode,
        pid_file=miner.pid_file,
        restart_on_terminated=miner.restart_on_terminated,
        restart_on_stall_seconds=miner.restart_on_stall,
        policy=miner.backoff,
    )


class Daemon:
    def __init__(self, config: Config, listen_address: str | None = None, config_file: Path | None = None) -> None:
        self.config = config
        self.config_file = config_file
        self.listen_address = listen_address or config.web.listen_address
        self.web = load_web_config(config.web.config_file) if config.web.config_file else None
        self.config_state = ConfigState(last_success_time=time.time())
        self.reloads = {"success": 0, "failure": 0}
        self.registry = CollectorRegistry()
        patterns = build_patterns(config.logs.patterns)
        self.store = Store.open(config.store_file)
        self.settings_sync: SettingsSync | None = None
        self.supervisor: Supervisor | None = None
        self.pipeline = self._pipeline(config, patterns)
        self.follower = self._follower()
        if config.miner.dir is not None:
            self._build_supervisor()
        self.jar: JarInfo | None = None
        self.session_checker = self._session_checker()
        self.token_expiry: float | None = None
        self.cpu_percent: float | None = None
        self._cpu_seen: tuple[float, float] | None = None
        self.registry.register(StateCollector(self.snapshot))
        self.registry.register(SupervisorCollector(self._supervisor_status))
        self.registry.register(_ExporterCollector(self))
        self.server: Server | None = None
        self._stop = threading.Event()
        self._housekeeping = threading.Thread(target=self._housekeep, name="twitchminert-housekeeping")
        self._reload_lock = threading.Lock()
        self._stopped = False
        self.web_config_flag: Path | None = None  # --web.config.file: wins over the file's, at every reload too

    # -- parts --------------------------------------------------------------------------------

    def _pipeline(self, config: Config, patterns: PatternSet) -> Pipeline:
        state = MinerState(login_timeout=config.session.login_timeout)
        handler = RecordHandler(patterns, LocalClock(zone(config.logs.timezone)), state, listeners=[self._react])
        return Pipeline(config.log_sources(), handler, self.store, config.logs.start_at, config.logs.max_record_bytes)

    def _follower(self) -> Follower:
        return Follower(self.pipeline, Watcher(watch_paths(self.config.log_sources())))

    def _build_supervisor(self) -> None:
        self.settings_sync = SettingsSync(self.config.miner.dir, self.config.settings, self._record_settings)
        self.supervisor = Supervisor(
            supervisor_settings(self.config),
            self.config.data_dir,
            before_start=self.settings_sync.prepare if self.config.miner.mode == "run" else None,
        )

    def _session_checker(self) -> SessionChecker | None:
        if not self.config.session.validate or self.config.miner.dir is None:
            return None
        session = self.config.session
        return SessionChecker(self.config.miner.dir / "cookies.jar", session.validate_url, session.validate_interval)

    def routes(self) -> dict[str, Route]:
        return {
            "/": get(self._landing),
            "/metrics": metrics_route(self.registry),
            "/api/miner/status": get(self._status),
            "/api/events": get(self._events),
            "/-/healthy": get(lambda request: text(200, "OK")),
            "/-/ready": get(self._ready),
            "/-/reload": post(self._reload_answer),
            "/-/restart": post(self._restart),
        }

    # -- start and stop -----------------------------------------------------------------------

    def start(self) -> None:
        if self.supervisor is not None:
            self.supervisor.start()  # first: it creates the captured-output file the pipeline follows
        self.follower.start()
        self._housekeeping.start()
        self._start_server()

    def _start_server(self) -> None:
        host, port = parse_listen_address(self.listen_address)
        self.server = Server(host, port, self.routes(), self.web).start()
        logger.info(
            "twitchminert {} listening on {}://{}:{}/", __version__, self.server.scheme, self.server.host, self.server.port
        )

    def stop(self) -> None:
        """Idempotent; stops in reverse start order and leaves no thread or child behind."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        if self.server is not None:
            self.server.stop()
        if self._housekeeping.is_alive():
            self._housekeeping.join()
        if self.supervisor is not None:
            self.supervisor.stop()
        self.follower.stop()
        self.pipeline.close()
        self.store.close()

    # -- reactions ------------------------------------------------------------------------------

    def _react(self, event: Event) -> None:
        """Called for every event, on the follower thread (pipeline lock held): keep it short."""
        supervisor = self.supervisor
        if supervisor is None or self.config.miner.mode != "run":
            return
        terminated = event.kind in TERMINATING or (
            event.kind is EventKind.TASK_CRASH and event.fields.get("critical")
        )
        if not terminated:
            return
        status = supervisor.status()
        # log.txt is appended across runs: only what the running process said counts.
        if status.up and status.start_time is not None and event.time >= status.start_time - 1.0:
            logger.warning("TDM stopped mining but is still running ({}); restarting it", event.kind.value)
            supervisor.restart("terminated")

    def _check_stall(self, snap: Snapshot) -> None:
        supervisor, limit = self.supervisor, self.config.miner.restart_on_stall
        if supervisor is None or limit is None or snap.drop is None or snap.status != "mining":
            return
        status = supervisor.status()
        if not status.up or status.start_time is None:
            return
        since = max(snap.drop.last_progress_time, status.start_time)
        # in TDM's time: the demo's simulator earns a drop minute in drop_minute_seconds (60 with TDM)
        if (time.time() - since) * 60.0 / self.config.drop_minute_seconds > limit:
            logger.warning("drop {!r} has not progressed for {:.0f} s; restarting TDM", snap.drop.name, limit)
            supervisor.restart("stall")

    def _housekeep(self) -> None:
        next_cookies = next_prune = time.monotonic()
        while not self._stop.wait(HOUSEKEEPING_SECONDS):
            now = time.monotonic()
            try:
                self._sample_cpu(now)
                self._check_stall(self.pipeline.snapshot())
                if now >= next_cookies:
                    next_cookies = now + COOKIES_EVERY
                    self._read_cookies()
                if now >= next_prune:
                    next_prune = now + PRUNE_EVERY
                    self._prune()
            except Exception as error:  # housekeeping must outlive a bad file or a full disk
                logger.exception("housekeeping: {}", error)

    def _sample_cpu(self, now: float) -> None:
        status = self._supervisor_status()
        cpu = status.resources.cpu_seconds_total if status is not None and status.resources else None
        if cpu is None:
            self.cpu_percent, self._cpu_seen = None, None
            return
        if self._cpu_seen is not None and now > self._cpu_seen[0]:
            self.cpu_percent = 100.0 * max(0.0, cpu - self._cpu_seen[1]) / (now - self._cpu_seen[0])
        self._cpu_seen = (now, cpu)

    def _read_cookies(self) -> None:
        if self.config.miner.dir is None:
            return
        jar_path = self.config.miner.dir / "cookies.jar"
        self.jar = read_jar(jar_path)
        checker = self.session_checker
        if checker is not None and self.jar.has_auth_token:
            result = checker.maybe_check()
            if result is not None:
                self.token_expiry = result.expires_at
                if result.status == "invalid":
                    self._record("session_invalid", {"source": "validate"})
                    with self.pipeline.lock:
                        self.pipeline.handler.state.session = "invalid"

    def _prune(self) -> None:
        storage = self.config.storage
        deleted = self.store.prune(time.time(), storage.max_age_days * 86400, int(storage.max_size_mb * 1e6))
        if deleted:
            logger.info("store: pruned {} old events", deleted)

    def _record(self, action: str, fields: dict[str, Any], kind: EventKind = EventKind.SUPERVISOR) -> None:
        """Our own events (config changes, restores) go to the store beside TDM's."""
        fields = redact_all(fields)  # settings.proxy may carry user:password@ (shown by /api/events)
        event = Event(kind, time.time(), "INFO", "twitchminert", f"{action}: {json.dumps(fields, sort_keys=True)}", {"action": action, **fields})
        self.store.commit([event], [], {}, {})

    def _record_settings(self, action: str, fields: dict[str, Any]) -> None:
        # Written by the supervisor's preflight, just before TDM starts (the reload that asked for it
        # is recorded on its own, with its source).
        self._record(action, {"source": "miner_start", **fields}, EventKind.CONFIG_CHANGE)

    # -- snapshots ------------------------------------------------------------------------------

    def _supervisor_status(self):
        return self.supervisor.status() if self.supervisor is not None else None

    def snapshot(self) -> Snapshot:
        return effective(self.pipeline.snapshot(), self._supervisor_status())

    # -- reload -----------------------------------------------------------------------------------

    def reload(self, source: str) -> tuple[bool, str]:
        """Load the config file again and apply what changed. An invalid file changes nothing."""
        if self.config_file is None:
            return False, "no config file to reload (started without --config.file)"
        with self._reload_lock:
            try:
                new = load_config(self.config_file)
                if self.web_config_flag is not None:
                    new = replace(new, web=replace(new.web, config_file=self.web_config_flag))
                patterns = build_patterns(new.logs.patterns)  # a bad pattern file is a bad config too
                web = load_web_config(new.web.config_file) if new.web.config_file else None
            except (ConfigError, ValueError) as error:
                message = str(error)
                self.reloads["failure"] += 1
                self.config_state = replace(self.config_state, last_reload_successful=False, error=message)
                logger.error("config reload ({}) failed, keeping the running config:\n{}", source, message)
                return False, message
            changes = config_diff(self.config, new)
            # Files the config names can change while their paths do not.
            if patterns.user_patterns != self.pipeline.handler.patterns.user_patterns:
                changes.setdefault("logs.patterns (contents)", [None, None])
            if web != self.web:
                changes.setdefault("web.config_file (contents)", [None, None])
            self.reloads["success"] += 1
            self.config_state = ConfigState(True, time.time(), None)
            if not changes:
                return True, "no change"
            self._record("config_change", {"source": source, "changes": changes}, EventKind.CONFIG_CHANGE)
            self._apply(new, changes, patterns, web)
            return True, f"applied: {', '.join(sorted(changes))}"

    def _apply(self, new: Config, changes: dict[str, Any], patterns: PatternSet, web) -> None:
        old, self.config = self.config, new
        sections = {key.split(".", 1)[0] for key in changes}
        if old.logs != new.logs or old.storage.path != new.storage.path:
            self.follower.stop()
            self.pipeline.close()
            if old.storage.path != new.storage.path:
                self.store.close()
                self.store = Store.open(new.store_file)
            self.pipeline = self._pipeline(new, patterns)
            self.follower = self._follower()
            self.follower.start()
        elif "logs.patterns (contents)" in changes:
            self.pipeline.set_patterns(patterns)
        if "miner" in sections:
            if self.supervisor is not None:
                self.supervisor.stop()
                self.supervisor = None
            if new.miner.dir is not None:
                self._build_supervisor()
                self.supervisor.start()
        elif "settings" in sections and self.supervisor is not None and self.settings_sync is not None:
            self.settings_sync.desired = new.settings
            if new.miner.mode == "run":
                self.supervisor.restart("config")  # stop, write settings.json while TDM is down, start
        if "session" in sections:
            self.session_checker = self._session_checker()
        if "web" in sections and self.server is not None:
            self.web = web
            self.listen_address = new.web.listen_address
            threading.Thread(target=self._restart_server, name="twitchminert-http-restart").start()

    def _restart_server(self) -> None:
        # Not from a request thread of the old server: shutting it down waits for that thread.
        if self.server is not None:
            self.server.stop()
        self._start_server()

    def _reload_answer(self, request: Request) -> Response:
        source = "cli" if request.query.get("source") == ["cli"] else "http"
        wanted = request.query.get("file")
        if wanted and self.config_file is not None and Path(wanted[0]).resolve() != self.config_file.resolve():
            # `config apply OTHER.yaml`: the daemon only ever reads its own file.
            return text(409, f"this daemon reads {self.config_file}, not {wanted[0]}: edit that file, or apply it there")
        ok, message = self.reload(source)
        return text(200 if ok else 400, message)

    def _restart(self, request: Request) -> Response:
        if self.supervisor is None:
            return text(409, "no miner is supervised (set miner.dir)")
        if self.config.miner.mode != "run":
            return text(409, "miner.mode is attach: twitchminert does not restart a TDM it did not start")
        restarted = self.supervisor.restart("manual")
        return text(200 if restarted else 409, "restarting" if restarted else "not restarted (stopping?)")

    # -- HTTP answers ---------------------------------------------------------------------------

    def _status(self, request: Request) -> Response:
        now = time.time()
        answer = miner_status(
            self.pipeline.snapshot(now), self._supervisor_status(), self.config_state, self.jar, self.cpu_percent, now,
            self.config.drop_minute_seconds,
        )
        if answer["cookies"] is not None:
            answer["cookies"]["token_expiry"] = self.token_expiry or answer["cookies"]["token_expiry"]
        return Response(200, json.dumps(answer, allow_nan=False).encode(), "application/json")  # strict JSON

    def _ready(self, request: Request) -> Response:
        return text(200, "ready") if not self._stopped else text(503, "stopping")

    def _events(self, request: Request) -> Response:
        def arg(name: str) -> str | None:
            values = request.query.get(name)
            return values[0] if values else None

        try:
            since = float(arg("since")) if arg("since") else None
            until = float(arg("until")) if arg("until") else None
            limit = int(arg("limit") or 100)
        except ValueError:
            return text(400, "since, until and limit must be numbers")
        events = self.store.query_events(arg("kind"), arg("level"), since, until, limit)
        return Response(200, json.dumps([e.to_dict() for e in events]).encode(), "application/json")

    def _landing(self, request: Request) -> Response:
        return Response(200, LANDING_PAGE.read_bytes(), "text/html; charset=utf-8")


def config_diff(old: Config, new: Config) -> dict[str, list[Any]]:
    """Per-key changes as `{"section.key": [old, new]}`, plain JSON-able values."""
    changes: dict[str, list[Any]] = {}
    for section in ("miner", "settings", "logs", "storage", "web", "session"):
        before, after = _plain(getattr(old, section)), _plain(getattr(new, section))
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                changes[f"{section}.{key}"] = [before.get(key), after.get(key)]
    return changes


def _plain(value: Any) -> dict[str, Any]:
    import dataclasses

    raw = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else dict(value)
    return json.loads(json.dumps(raw, default=str))


class _ExporterCollector:
    """Our own health: build info, config reloads, settings writes."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon

    def collect(self):
        daemon = self._daemon
        info = GaugeMetricFamily("tdm_exporter_build_info", "Twitchminert's version (1).", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        state = daemon.config_state
        yield GaugeMetricFamily(
            "tdm_config_last_reload_successful", "1 when the last config reload succeeded.", value=int(state.last_reload_successful)
        )
        if state.last_success_time is not None:
            yield GaugeMetricFamily(
                "tdm_config_last_reload_success_timestamp_seconds",
                "When the config was last loaded successfully.",
                value=state.last_success_time,
            )
        reloads = CounterMetricFamily("tdm_config_reloads_total", "Config reloads, by result.", labels=["result"])
        for result, count in daemon.reloads.items():
            reloads.add_metric([result], count)
        yield reloads
        writes = daemon.settings_sync.writes if daemon.settings_sync is not None else 0
        yield CounterMetricFamily("tdm_settings_writes_total", "Writes of TDM's settings.json.", value=writes)
        jar = daemon.jar
        if jar is not None:
            yield GaugeMetricFamily("tdm_cookies_present", "1 when TDM's cookies.jar holds a login.", value=int(jar.present and jar.has_auth_token))
            if jar.modified_time is not None:
                yield GaugeMetricFamily(
                    "tdm_cookies_modified_timestamp_seconds", "When cookies.jar was last written.", value=jar.modified_time
                )
        expiry = daemon.token_expiry or (jar.auth_token_expiry if jar is not None else None)
        if expiry is not None:
            yield GaugeMetricFamily(
                "tdm_session_token_expiry_timestamp_seconds", "When TDM's OAuth token expires.", value=expiry
            )


def run(config: Config, listen_address: str | None = None, config_file: Path | None = None,
        on_started: Callable[[Daemon], None] | None = None, web_config_file: Path | None = None) -> int:
    """Run until SIGTERM or SIGINT; SIGHUP reloads the config file."""
    stop = threading.Event()
    hup = threading.Event()
    # Watch from before the daemon is built: an edit made while it starts is reloaded, not missed.
    watcher = FileChangeWatcher(config_file, hup) if config_file is not None else None
    if web_config_file is not None:
        config = replace(config, web=replace(config.web, config_file=web_config_file))
    try:
        daemon = Daemon(config, listen_address, config_file)
        daemon.web_config_flag = web_config_file
    except BaseException:
        if watcher is not None:
            watcher.stop()
        raise

    def on_signal(signum, frame) -> None:
        if signum == signal.SIGHUP:
            hup.set()
            return
        logger.info("received {}, stopping", signal.Signals(signum).name)
        stop.set()

    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {sig: signal.signal(sig, on_signal) for sig in handled}
    try:
        daemon.start()
        if on_started is not None:
            on_started(daemon)
        while not stop.wait(0.5):
            if hup.is_set():
                hup.clear()
                daemon.reload(watcher.take_source() if watcher is not None else "sighup")
    finally:
        if watcher is not None:
            watcher.stop()
        daemon.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
