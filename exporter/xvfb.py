"""A private Xvfb for a headless miner (TDM is a Tk GUI and needs a display).

Xvfb picks a free display number itself and writes it to `-displayfd` once it accepts connections,
so there is no race on :N and no polling of the socket.

Only we may connect: `-auth` names a fresh MIT-MAGIC-COOKIE-1 in a file of a private folder (0700,
the file 0600), and the miner gets it as XAUTHORITY. The entry is written for any display
(FamilyWild, no display number) since the number is only known once Xvfb runs.

No Xvfb outlives us, even after a `kill -9` of the daemon, yet one never goes before the miner
that draws on it has closed: Xvfb is started and held by a keeper process (xvfb_keeper.py, which
explains how the kernel enforces both). The keeper gets its hang-up when the thread that called
`start()` ends, so call it from a thread that lives as long as the display is needed (the
supervisor's). The supervisor starts a fresh Xvfb for each miner start.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from loguru import logger

from .pdeathsig import die_with_parent
from .xvfb_keeper import HANGUP, KEEPER_PATH, read_line

XVFB = "Xvfb"
SCREEN = "1280x720x24"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
KEEPER_START = 5.0  # the keeper's own start (an interpreter), on top of Xvfb's timeout


class XvfbError(RuntimeError):
    pass


class Xvfb:
    """`start()` returns the display (":N"); `stop()` is idempotent."""

    def __init__(self, program: str = XVFB, screen: str = SCREEN) -> None:
        self.program = program
        self.screen = screen
        self.display: str | None = None
        self.auth_file: Path | None = None
        self._keeper: subprocess.Popen | None = None
        self._pid: int | None = None  # Xvfb's (the keeper's child)

    @property
    def pid(self) -> int | None:
        return self._pid if self._keeper is not None else None

    @property
    def keeper_pid(self) -> int | None:
        return self._keeper.pid if self._keeper is not None else None

    def alive(self) -> bool:
        """The keeper ends once its Xvfb has ended."""
        return self._keeper is not None and self._keeper.poll() is None

    def environment(self) -> dict[str, str]:
        """What a client needs to connect: DISPLAY and XAUTHORITY (after start())."""
        assert self.display is not None and self.auth_file is not None, "start() first"
        return {"DISPLAY": self.display, "XAUTHORITY": str(self.auth_file)}

    def start(self, timeout: float = START_TIMEOUT) -> str:
        if self.alive():
            assert self.display is not None
            return self.display
        self.stop()
        argv = [sys.executable, str(KEEPER_PATH), "--program", self.program, "--screen", self.screen, "--timeout", f"{timeout:g}"]
        try:
            self._keeper = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                start_new_session=True,  # a terminal's Ctrl-C is ours to handle, not Xvfb's
                preexec_fn=die_with_parent(HANGUP),  # at our death: Xvfb ends once the miner has closed
            )
        except OSError as error:
            raise XvfbError(f"cannot run the Xvfb keeper {argv[0]}: {error}") from error
        try:
            answer = self._read_answer(time.monotonic() + timeout + KEEPER_START)
            if "error" in answer:
                raise XvfbError(answer["error"])
            self._pid, self.auth_file = int(answer["pid"]), Path(answer["auth"])
            self.display = f":{int(answer['display'])}"
        except BaseException:
            self.stop()
            raise
        logger.info("started Xvfb on display {} (pid {}, keeper pid {})", self.display, self._pid, self._keeper.pid)
        return self.display

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM to the keeper: it stops Xvfb, removes the cookie's folder and ends."""
        keeper, self._keeper, self.display, self.auth_file = self._keeper, None, None, None
        if keeper is None:
            return
        if keeper.poll() is None:
            keeper.send_signal(signal.SIGTERM)
            try:
                keeper.wait(timeout)
            except subprocess.TimeoutExpired:
                keeper.kill()  # Xvfb gets its parent-death SIGTERM
                keeper.wait(timeout)
            logger.info("stopped Xvfb (pid {})", self._pid)
        if keeper.stdout is not None:
            keeper.stdout.close()

    def _read_answer(self, deadline: float) -> dict:
        assert self._keeper is not None and self._keeper.stdout is not None
        data = read_line(self._keeper.stdout.fileno(), deadline)
        if data is None:
            raise XvfbError(f"{self.program} did not report a display within the timeout")
        if not data.endswith(b"\n"):
            code = self._keeper.wait(STOP_TIMEOUT)
            raise XvfbError(f"the Xvfb keeper exited with code {code} before {self.program} was ready")
        try:
            answer = json.loads(data)
        except ValueError:
            raise XvfbError(f"the Xvfb keeper gave a bad answer: {data!r}") from None
        if not isinstance(answer, dict):
            raise XvfbError(f"the Xvfb keeper gave a bad answer: {data!r}")
        return answer
