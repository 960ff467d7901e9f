"""A private Xvfb for a headless miner (TDM is a Tk GUI and needs a display).

Xvfb picks a free display number itself and writes it to `-displayfd` once it accepts connections,
so there is no race on :N and no polling of the socket.

Only we may connect: `-auth` names a fresh MIT-MAGIC-COOKIE-1 in a file of a private folder (0700,
the file 0600), and the miner gets it as XAUTHORITY. The entry is written for any display
(FamilyWild, no display number) since the number is only known once Xvfb runs.

`-terminate`: Xvfb ends when its last client, the miner, disconnects, so a miner that outlives us
(the daemon killed with SIGKILL; the miner then gets its parent-death SIGTERM and closes) takes its
display with it. The supervisor starts a fresh Xvfb for each miner start.
"""

from __future__ import annotations

import os
import secrets
import select
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from loguru import logger

XVFB = "Xvfb"
SCREEN = "1280x720x24"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
FAMILY_WILD = 0xFFFF  # Xau: an entry for any address; with an empty number, for any display
COOKIE_NAME = b"MIT-MAGIC-COOKIE-1"


class XvfbError(RuntimeError):
    pass


class Xvfb:
    """`start()` returns the display (":N"); `stop()` is idempotent."""

    def __init__(self, program: str = XVFB, screen: str = SCREEN) -> None:
        self.program = program
        self.screen = screen
        self.display: str | None = None
        self.auth_file: Path | None = None
        self._proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def environment(self) -> dict[str, str]:
        """What a client needs to connect: DISPLAY and XAUTHORITY (after start())."""
        assert self.display is not None and self.auth_file is not None, "start() first"
        return {"DISPLAY": self.display, "XAUTHORITY": str(self.auth_file)}

    def start(self, timeout: float = START_TIMEOUT) -> str:
        if self.alive():
            assert self.display is not None
            return self.display
        self.stop()
        self.auth_file = write_auth_file(Path(tempfile.mkdtemp(prefix="twitchminert-xauth-")))
        read_fd, write_fd = os.pipe()
        try:
            argv = [
                self.program, "-displayfd", str(write_fd), "-auth", str(self.auth_file), "-nolisten", "tcp",
                "-terminate", "-screen", "0", self.screen,
            ]
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
        if self.auth_file is not None:
            shutil.rmtree(self.auth_file.parent, ignore_errors=True)
            self.auth_file = None
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


def write_auth_file(folder: Path) -> Path:
    """folder/Xauthority with one fresh cookie for any display; the file is 0600, `folder` 0700."""
    folder.chmod(0o700)
    path = folder / "Xauthority"
    entry = struct.pack(">H", FAMILY_WILD) + b"".join(
        struct.pack(">H", len(part)) + part for part in (b"", b"", COOKIE_NAME, secrets.token_bytes(16))
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, entry)
    finally:
        os.close(fd)
    return path
