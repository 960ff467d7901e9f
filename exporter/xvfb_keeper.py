"""The keeper of one private Xvfb: a small process of its own, run by path by `Xvfb.start()`, that
starts Xvfb, holds an X connection to it, and makes the kernel end Xvfb when nobody needs it.

Why a process: nothing the daemon does can run after a `kill -9` of it, and Xvfb cannot simply get a
parent-death signal from the daemon: it would then end the moment the daemon dies, while TDM (which
gets its own parent-death SIGTERM and closes normally, see pdeathsig) still draws its window. Tk
exits at once when its display goes, so TDM would never save its settings. What we want is "Xvfb
ends when the daemon is gone AND no miner is connected", and these three rules give it, each kept by
the kernel (no process of ours has to be alive to enforce it):

1. Xvfb gets SIGTERM when the keeper ends (PR_SET_PDEATHSIG; the keeper is single-threaded, so the
   thread that forked Xvfb ends only with the keeper).
2. Xvfb runs with `-terminate` (it ends when its last client leaves) and, from the moment it is
   ready, the keeper is one of its clients: Xvfb outlives a miner that exits, not the keeper.
3. The keeper gets HANGUP when the thread that started it ends (PR_SET_PDEATHSIG): the daemon's
   supervisor thread, at a `kill -9` of the daemon. Before Xvfb is ready no miner can be on it,
   so the keeper ends and Xvfb with it (rule 1). Once ready, the keeper only closes its connection:
   Xvfb ends with its last client (rule 2), at once if the miner has not connected yet, else when
   the miner has closed. The keeper waits for Xvfb, then ends.

SIGTERM (the daemon's `Xvfb.stop()`) stops Xvfb, then the keeper ends. The keeper owns the cookie's
folder and removes it once Xvfb is gone.

Output: one JSON line on stdout, {"display": N, "pid": Xvfb's pid, "auth": the cookie file} once
Xvfb accepts the miner, or {"error": "..."} (exit code 1). It imports only the standard library and
pdeathsig: it starts before every miner start.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and not __package__:  # run by path: sys.path[0] is exporter/ itself
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import json
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from exporter.pdeathsig import die_with_parent

KEEPER_PATH = Path(__file__).resolve()
HANGUP = signal.SIGHUP  # the keeper's parent-death signal: the daemon is gone
FAMILY_WILD = 0xFFFF  # Xau: an entry for any address; with an empty number, for any display
COOKIE_NAME = b"MIT-MAGIC-COOKIE-1"
SOCKET_DIR = "/tmp/.X11-unix"  # where every X server on this machine listens, whatever TMPDIR says
STOP_TIMEOUT = 5.0


class KeeperError(RuntimeError):
    pass


def write_auth_file(folder: Path) -> tuple[Path, bytes]:
    """folder/Xauthority with one fresh cookie for any display, and the cookie; the file is 0600, `folder` 0700."""
    folder.chmod(0o700)
    path = folder / "Xauthority"
    cookie = os.urandom(16)  # what secrets.token_bytes does, without hashlib's ~4 MiB in this process
    entry = struct.pack(">H", FAMILY_WILD) + b"".join(
        struct.pack(">H", len(part)) + part for part in (b"", b"", COOKIE_NAME, cookie)
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, entry)
    finally:
        os.close(fd)
    return path, cookie


def _padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def setup_request(cookie: bytes) -> bytes:
    """An X11 connection setup (little-endian, protocol 11.0) that authenticates with `cookie`."""
    header = struct.pack("<BxHHHH2x", ord("l"), 11, 0, len(COOKIE_NAME), len(cookie))
    return header + _padded(COOKIE_NAME) + _padded(cookie)


def _receive(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise KeeperError("Xvfb closed the keeper's connection during its setup")
        data += chunk
    return data


def connect(number: int, cookie: bytes, deadline: float) -> socket.socket:
    """An X client connection to display `number`, set up (the server counts it as a client)."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.settimeout(max(0.001, deadline - time.monotonic()))
        connection.connect(f"{SOCKET_DIR}/X{number}")
        connection.sendall(setup_request(cookie))
        status, reason_size, _, _, words = struct.unpack("<BBHHH", _receive(connection, 8))
        reply = _receive(connection, 4 * words)  # the rest of the setup: the screens, formats, ...
        if status != 1:  # 0 Failed (with a reason), 2 Authenticate
            reason = reply[:reason_size].decode("ascii", "replace") if status == 0 else "more authentication wanted"
            raise KeeperError(f"Xvfb refused the keeper's connection: {reason}")
        return connection
    except BaseException:
        connection.close()
        raise


def read_line(fd: int, deadline: float) -> bytes | None:
    """What `fd` gives up to its first newline, that included; less (maybe b"") if the writer closed
    it first, None if the deadline passed first."""
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return data
        data += chunk
    return data


def read_display(fd: int, deadline: float, xvfb: subprocess.Popen, program: str) -> int:
    """The display number Xvfb writes to `-displayfd` once it accepts connections."""
    data = read_line(fd, deadline)
    if data is None:
        raise KeeperError(f"{program} did not report a display within the timeout")
    if not data.endswith(b"\n"):  # Xvfb exited before it was ready
        try:
            code = xvfb.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None
        raise KeeperError(f"{program} exited with code {code} before it was ready")
    try:
        return int(data.strip())
    except ValueError:
        raise KeeperError(f"{program} reported a bad display number: {data!r}") from None


class Keeper:
    def __init__(self, program: str, screen: str, timeout: float) -> None:
        self.program = program
        self.screen = screen
        self.timeout = timeout
        self.xvfb: subprocess.Popen | None = None
        self.connection: socket.socket | None = None

    def on_hangup(self, signum, frame) -> None:
        """The daemon is gone (sent again as each of its threads ends: idempotent)."""
        if self.connection is None:
            raise SystemExit(1)  # Xvfb is not ready, so no miner is on it: it ends with us (rule 1)
        self.connection.close()  # Xvfb ends with its last client; xvfb.wait() in run() returns then

    def on_terminate(self, signum, frame) -> None:
        if self.xvfb is None:
            raise SystemExit(1)
        self.xvfb.send_signal(signal.SIGTERM)  # run() returns once Xvfb has gone

    def run(self) -> int:
        folder = Path(tempfile.mkdtemp(prefix="twitchminert-xauth-"))
        try:
            auth, cookie = write_auth_file(folder)
            return self._serve(auth, cookie)
        except KeeperError as error:
            report({"error": str(error)})
            return 1
        finally:
            if self.connection is not None:
                self.connection.close()
            if self.xvfb is not None and self.xvfb.poll() is None:
                self.xvfb.kill()
                self.xvfb.wait(STOP_TIMEOUT)
            shutil.rmtree(folder, ignore_errors=True)

    def _serve(self, auth: Path, cookie: bytes) -> int:
        deadline = time.monotonic() + self.timeout
        read_fd, write_fd = os.pipe()
        try:
            argv = [
                self.program, "-displayfd", str(write_fd), "-auth", str(auth), "-nolisten", "tcp",
                "-terminate", "-screen", "0", self.screen,
            ]
            try:
                self.xvfb = subprocess.Popen(
                    argv,
                    pass_fds=(write_fd,),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    preexec_fn=die_with_parent(signal.SIGTERM),  # rule 1
                )
            except OSError as error:
                raise KeeperError(f"cannot run {self.program}: {error} (install Debian package 'xvfb')") from error
            os.close(write_fd)
            write_fd = -1
            number = read_display(read_fd, deadline, self.xvfb, self.program)
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
        try:
            self.connection = connect(number, cookie, deadline)
        except OSError as error:
            raise KeeperError(f"cannot connect to {self.program} on display :{number}: {error}") from error
        report({"display": number, "pid": self.xvfb.pid, "auth": str(auth)})
        return self.xvfb.wait()


def report(message: dict) -> None:
    try:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()
    except OSError:
        pass  # the daemon is gone: nobody reads it


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xvfb_keeper", description="Start a private Xvfb and keep it.")
    # No defaults: Xvfb.start() always says (xvfb.py's XVFB, SCREEN and START_TIMEOUT are the only ones).
    parser.add_argument("--program", required=True)
    parser.add_argument("--screen", required=True)
    parser.add_argument("--timeout", type=float, required=True)
    args = parser.parse_args(argv)
    keeper = Keeper(args.program, args.screen, args.timeout)
    signal.signal(HANGUP, keeper.on_hangup)
    signal.signal(signal.SIGTERM, keeper.on_terminate)
    return keeper.run()


if __name__ == "__main__":
    sys.exit(main())
