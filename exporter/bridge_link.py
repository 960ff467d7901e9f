"""The daemon's end of the bridge's control socket: calls with timeouts, and whether TDM answers.

`tick(now)` (from housekeeping) pings the launcher every PING_EVERY seconds. When it starts to
answer (TDM started, or the daemon did), the link asks for a `state` snapshot: the launcher writes it
into the captured output as a `snapshot` record, so the picture in the store follows from the file
alone, even when the daemon missed records. A dead or missing launcher is reported, never waited on.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

from loguru import logger

from .bridge import CALL_TIMEOUT, BridgeUnavailable, call

PING_EVERY = 5.0
PING_TIMEOUT = 1.0


class BridgeLink:
    def __init__(self, path: Path | None, expected: bool,
                 caller: Callable[..., dict[str, Any]] = call, timeout: float = CALL_TIMEOUT) -> None:
        self.path = path
        self.expected = expected  # TDM runs through our launcher (a source install we start)
        self._call = caller
        self._timeout = timeout
        self._lock = threading.Lock()
        self.connected = False
        self._next_ping: float | None = None

    def request(self, op: str) -> dict[str, Any]:
        """One call; raises BridgeUnavailable when TDM cannot be reached in time."""
        if self.path is None or not self.expected:
            raise BridgeUnavailable("TDM does not run through the launcher: it takes no calls")
        answer = self._call(self.path, op, self._timeout)
        self.connected = True
        return answer

    def tick(self, now: float) -> None:
        """Ping when due; ask for a snapshot when TDM starts to answer."""
        if self.path is None or not self.expected:
            return
        with self._lock:
            if self._next_ping is not None and now < self._next_ping:
                return
            self._next_ping = now + PING_EVERY
        was = self.connected
        try:
            self._call(self.path, "ping", PING_TIMEOUT)
        except BridgeUnavailable:
            self.connected = False
            return
        self.connected = True
        if not was:
            try:
                self._call(self.path, "state", self._timeout)
            except BridgeUnavailable as error:
                logger.debug("bridge: no snapshot yet ({})", error)

    def reset(self) -> None:
        """TDM stopped: the next ping decides again (and a new TDM sends a new snapshot)."""
        self.connected = False
        with self._lock:
            self._next_ping = None
