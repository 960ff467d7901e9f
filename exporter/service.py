"""`twitchminert run`'s main loop: a Daemon until SIGTERM or SIGINT; SIGHUP or a config file edit reloads."""

from __future__ import annotations

import signal
import threading
from dataclasses import replace
from pathlib import Path
from typing import Callable

from loguru import logger

from .config import Config
from .daemon import Daemon
from .watcher import FileChangeWatcher


def run(config: Config, listen_address: str | None = None, config_file: Path | None = None,
        on_started: Callable[[Daemon], None] | None = None, web_config_file: Path | None = None,
        adjust: Callable[[Config], Config] | None = None) -> int:
    """Run until SIGTERM or SIGINT; SIGHUP reloads the config file. `web_config_file` (--web.config.file)
    wins over the config's web.config_file, and `adjust` over the file's values, at every reload too."""
    def overrides(loaded: Config) -> Config:
        if adjust is not None:
            loaded = adjust(loaded)
        if web_config_file is not None:
            loaded = replace(loaded, web=replace(loaded.web, config_file=web_config_file))
        return loaded

    config = overrides(config)
    stop = threading.Event()
    hup = threading.Event()
    # Watch from before the daemon is built: an edit made while it starts is reloaded, not missed.
    watcher = FileChangeWatcher(config_file, hup) if config_file is not None else None
    try:
        daemon = Daemon(config, listen_address, config_file, adjust=overrides)
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
