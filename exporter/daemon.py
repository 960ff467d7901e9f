"""Wiring: builds every part from the config, starts them, and stops them in reverse order."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

from loguru import logger
from prometheus_client import CollectorRegistry

from . import __version__
from .config import Config
from .http import Request, Response, Route, Server, get, metrics_route, parse_listen_address, text
from .metrics import StateCollector
from .patterns import PatternSet, load_user_patterns
from .pipeline import Follower, Pipeline, RecordHandler
from .state import MinerState
from .store import Store
from .tailer import watch_paths
from .timestamps import LocalClock, zone
from .watcher import Watcher


def build_patterns(files: tuple[Path, ...]) -> PatternSet:
    """Compile every user pattern now: a bad one stops start-up (PatternError names it)."""
    user = [pattern for file in files for pattern in load_user_patterns(file)]
    return PatternSet.builtin().extended(user)


class Daemon:
    def __init__(self, config: Config, listen_address: str | None = None) -> None:
        self.config = config
        self.listen_address = listen_address or config.web.listen_address
        self.registry = CollectorRegistry()
        patterns = build_patterns(config.logs.patterns)
        self.store = Store.open(config.store_file)
        handler = RecordHandler(patterns, LocalClock(zone(config.logs.timezone)), MinerState())
        sources = config.log_sources()
        self.pipeline = Pipeline(
            sources, handler, self.store, config.logs.start_at, config.logs.max_record_bytes
        )
        self.registry.register(StateCollector(self.pipeline.snapshot))
        self.follower = Follower(
            self.pipeline, Watcher(watch_paths(sources)), housekeeping=self._prune
        )
        self.server: Server | None = None
        self._stopped = threading.Event()

    def routes(self) -> dict[str, Route]:
        return {
            "/": get(self._landing),
            "/metrics": metrics_route(self.registry),
            "/-/healthy": get(lambda request: text(200, "OK")),
            "/-/ready": get(lambda request: text(200, "ready")),
            "/api/events": get(self._events),
        }

    def start(self) -> None:
        self.follower.start()
        host, port = parse_listen_address(self.listen_address)
        self.server = Server(host, port, self.routes()).start()
        logger.info("twitchminert {} listening on http://{}:{}/", __version__, self.server.host, self.server.port)

    def stop(self) -> None:
        """Idempotent; stops in reverse start order."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self.server is not None:
            self.server.stop()
        self.follower.stop()
        self.pipeline.close()
        self.store.close()

    def _prune(self) -> None:
        storage = self.config.storage
        deleted = self.store.prune(time.time(), storage.max_age_days * 86400, int(storage.max_size_mb * 1e6))
        if deleted:
            logger.info("store: pruned {} old events", deleted)

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
        body = [
            {
                "time": e.time,
                "kind": e.kind.value,
                "level": e.level,
                "source": e.source,
                "message": e.message,
                "fields": dict(e.fields),
            }
            for e in events
        ]
        return Response(200, json.dumps(body).encode(), "application/json")

    def _landing(self, request: Request) -> Response:
        snap = self.pipeline.snapshot()
        page = (
            "<!doctype html><title>Twitchminert</title><h1>Twitchminert</h1>"
            f"<p>Status: {snap.status}</p><p><a href='/metrics'>Metrics</a> · <a href='/api/events'>Events</a></p>"
        )
        return Response(200, page.encode(), "text/html; charset=utf-8")


def run(config: Config, listen_address: str | None = None) -> int:
    """Run until SIGTERM or SIGINT."""
    daemon = Daemon(config, listen_address)
    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        logger.info("received {}, stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        daemon.start()
        while not stop.wait(3600):
            pass
    finally:
        daemon.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
