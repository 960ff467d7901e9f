"""`twitchminert run`'s main loop: a Daemon until SIGTERM or SIGINT; SIGHUP or a config file edit reloads."""

from __future__ import annotations

import select
import signal
import socket
from dataclasses import replace
from pathlib import Path
from typing import Callable

from loguru import logger

from .config import Config
from .daemon import Daemon
from .watcher import FileChangeWatcher


class Wakeup:
    """What the main loop sleeps on, with no timeout to poll: a byte on a socket pair, written by set()
    from any thread, and by the interpreter itself when a signal arrives (signal.set_wakeup_fd), whichever
    thread the kernel gave the signal to. (A signal for the process may land on another thread, so a
    main thread asleep in Event.wait() would not see it until its timeout.)"""

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self.changed = False  # set() was called: the config file changed

    def fileno(self) -> int:
        return self._writer.fileno()

    def set(self) -> None:
        """The config watcher's call (it takes any object with set())."""
        self.changed = True
        self.poke()

    def poke(self) -> None:
        try:
            self._writer.send(b"\0")
        except OSError:  # full (a wake-up is already pending) or closed
            pass

    def wait(self, timeout: float) -> None:
        select.select([self._reader], [], [], timeout)
        try:
            while self._reader.recv(512):
                pass
        except OSError:  # drained
            pass

    def close(self) -> None:
        self._reader.close()
        self._writer.close()


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
    wakeup = Wakeup()
    stopping = hup = False
    # Watch from before the daemon is built: an edit made while it starts is reloaded, not missed.
    watcher = FileChangeWatcher(config_file, wakeup) if config_file is not None else None
    try:
        daemon = Daemon(config, listen_address, config_file, adjust=overrides)
    except BaseException:
        if watcher is not None:
            watcher.stop()
        wakeup.close()
        raise

    def on_signal(signum, frame) -> None:
        nonlocal stopping, hup
        if signum == signal.SIGHUP:
            hup = True
        else:
            logger.info("received {}, stopping", signal.Signals(signum).name)
            stopping = True
        wakeup.poke()  # in case the loop drained the interpreter's byte before this handler ran

    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {sig: signal.signal(sig, on_signal) for sig in handled}
    previous_wakeup_fd = signal.set_wakeup_fd(wakeup.fileno(), warn_on_full_buffer=False)
    try:
        daemon.start()
        if on_started is not None:
            on_started(daemon)
        while not stopping:
            wakeup.wait(60.0)  # the bound is only a safety net
            if (hup or wakeup.changed) and not stopping:
                asked, hup, wakeup.changed = hup, False, False
                source = watcher.take_source() if watcher is not None else "sighup"
                # The watcher alone may be seeing a write the daemon has read already (a settings save
                # from the web console): the Reloader skips that. A SIGHUP always reloads.
                daemon.reloader.reload(source, unless_read=not asked)
    finally:
        if watcher is not None:
            watcher.stop()
        daemon.stop()
        signal.set_wakeup_fd(previous_wakeup_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        wakeup.close()
    return 0
