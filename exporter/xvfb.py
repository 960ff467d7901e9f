"""A private Xvfb for a headless miner (TDM is a Tk GUI and needs a display).

Xvfb picks a free display number itself and writes it to `-displayfd` once it accepts connections,
so there is no race on :N and no polling of the socket.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time

from loguru import logger

XVFB = "Xvfb"
SCREEN = "1280x720x24"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class XvfbError(RuntimeError):
    pass


class Xvfb:
    """`start()` returns the display (":N"); `stop()` is idempotent."""

    def __init__(self, program: str = XVFB, screen: str = SCREEN) -> None:
        self.program = program
        self.screen = screen
        self.display: str | None = None
        self._proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> str:
        if self.alive():
            assert self.display is not None
            return self.display
        self.stop()
        read_fd, write_fd = os.pipe()
        try:
            argv = [self.program, "-displayfd", str(write_fd), "-nolisten", "tcp", "-screen", "0", self.screen]
            try:
                self._proc = subprocess.Popen(
                    argv,
                    pass_fds=(write_fd,),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,  # a terminal's Ctrl-C is ours to handle, not Xvfb's
                )
            except OSError as error:
                raise XvfbError(f"cannot run {self.program}: {error} (install Debian package 'xvfb')") from error
            os.close(write_fd)
            write_fd = -1
            number = self._read_display(read_fd, time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
        self.display = f":{number}"
        logger.info("started Xvfb on display {} (pid {})", self.display, self.pid)
        return self.display

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        proc, self._proc, self.display = self._proc, None, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
            logger.info("stopped Xvfb (pid {})", proc.pid)

    def _read_display(self, fd: int, deadline: float) -> int:
        data = b""
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise XvfbError(f"{self.program} did not report a display within the timeout")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 64)
            if not chunk:  # Xvfb exited before it was ready
                code = self._proc.wait(STOP_TIMEOUT) if self._proc else None
                raise XvfbError(f"{self.program} exited with code {code} before it was ready")
            data += chunk
        try:
            return int(data.strip())
        except ValueError:
            raise XvfbError(f"{self.program} reported a bad display number: {data!r}") from None
