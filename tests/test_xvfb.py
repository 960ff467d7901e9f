"""Our private Xvfb: a display only the daemon's user can reach, gone with its last client."""

from __future__ import annotations

import os
import shutil
import stat
import struct
import subprocess

import psutil
from helpers import unavailable

from exporter.xvfb import COOKIE_NAME, FAMILY_WILD, Xvfb, write_auth_file

TK_CLIENT = "import tkinter; tkinter.Tk().update()"


def test_the_auth_file_holds_one_cookie_for_any_display_and_only_we_can_read_it(tmp_path):
    path = write_auth_file(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(tmp_path.stat().st_mode) == 0o700
    data = path.read_bytes()
    (family,) = struct.unpack(">H", data[:2])
    fields, rest = [], data[2:]
    while rest:
        (size,) = struct.unpack(">H", rest[:2])
        fields.append(rest[2 : 2 + size])
        rest = rest[2 + size :]
    assert family == FAMILY_WILD and fields[:3] == [b"", b"", COOKIE_NAME] and len(fields[3]) == 16
    again = tmp_path / "again"
    again.mkdir()
    assert write_auth_file(again).read_bytes()[-16:] != data[-16:]  # a fresh cookie each time


def test_only_a_client_with_the_cookie_connects_and_xvfb_ends_with_its_last_client():
    if not shutil.which("Xvfb"):
        unavailable("no Xvfb (Debian: apt-get install xvfb)")
    if subprocess.run(["/usr/bin/python3", "-c", "import tkinter"], capture_output=True).returncode != 0:
        unavailable("no Tk for Debian's python3 (apt-get install python3-tk)")
    xvfb = Xvfb()
    try:
        xvfb.start()
        env = {**os.environ, **xvfb.environment()}
        assert "-auth" in psutil.Process(xvfb.pid).cmdline()
        # A client that stays connected (as the miner does) until its stdin closes.
        holder = subprocess.Popen(
            ["/usr/bin/python3", "-c", TK_CLIENT + "; print('up', flush=True); import sys; sys.stdin.read()"],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert holder.stdout.readline().strip() == "up"
        stranger = subprocess.run(
            ["/usr/bin/python3", "-c", TK_CLIENT], env={**env, "XAUTHORITY": os.devnull}, capture_output=True, timeout=30
        )
        assert stranger.returncode != 0 and b"couldn't connect" in stranger.stderr
        assert xvfb.alive()
        holder.stdin.close()
        assert holder.wait(10) == 0
        # -terminate: the last client left, so Xvfb ends by itself (the miner's display goes with it).
        assert xvfb._proc.wait(10) == 0
        auth = xvfb.auth_file
    finally:
        xvfb.stop()
    assert not auth.parent.exists()
