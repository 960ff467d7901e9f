"""Our private Xvfb: a display only the daemon's user can reach, held by its keeper while we live,
gone with its last client once we are gone."""

from __future__ import annotations

import os
import shutil
import stat
import struct
import subprocess
import threading

import psutil
import pytest
from conftest import wait_until
from helpers import unavailable

from exporter.xvfb import Xvfb
from exporter.xvfb_keeper import COOKIE_NAME, FAMILY_WILD, setup_request, write_auth_file

TK_CLIENT = "import tkinter; root = tkinter.Tk(); root.update()"
# A client that stays connected (as the miner does): it draws once per line on stdin, until stdin closes.
TK_HOLDER = TK_CLIENT + "\nimport sys\nprint('up', flush=True)\nfor line in sys.stdin:\n    root.update(); print('drawn', flush=True)"


def test_the_auth_file_holds_one_cookie_for_any_display_and_only_we_can_read_it(tmp_path):
    path, cookie = write_auth_file(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(tmp_path.stat().st_mode) == 0o700
    data = path.read_bytes()
    (family,) = struct.unpack(">H", data[:2])
    fields, rest = [], data[2:]
    while rest:
        (size,) = struct.unpack(">H", rest[:2])
        fields.append(rest[2 : 2 + size])
        rest = rest[2 + size :]
    assert family == FAMILY_WILD and fields == [b"", b"", COOKIE_NAME, cookie] and len(cookie) == 16
    again = tmp_path / "again"
    again.mkdir()
    assert write_auth_file(again)[1] != cookie  # a fresh cookie each time


def test_the_keepers_setup_request_is_x11_little_endian_with_the_padded_cookie():
    request = setup_request(b"c" * 16)
    assert request[:12] == b"l\0" + struct.pack("<HHHH", 11, 0, 18, 16) + b"\0\0"
    assert request[12:] == COOKIE_NAME + b"\0\0" + b"c" * 16 and len(request) % 4 == 0


@pytest.fixture
def need_xvfb_and_tk():
    if not shutil.which("Xvfb"):
        unavailable("no Xvfb (Debian: apt-get install xvfb)")
    if subprocess.run(["/usr/bin/python3", "-c", "import tkinter"], capture_output=True).returncode != 0:
        unavailable("no Tk for Debian's python3 (apt-get install python3-tk)")


def start_holder(env: dict) -> subprocess.Popen:
    holder = subprocess.Popen(
        ["/usr/bin/python3", "-c", TK_HOLDER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "up"
    return holder


def unix_sockets(pid: int) -> list:
    try:
        return psutil.Process(pid).net_connections(kind="unix")
    except psutil.NoSuchProcess:
        return []


def test_only_a_client_with_the_cookie_connects_and_xvfb_outlives_it_while_we_live(need_xvfb_and_tk):
    xvfb = Xvfb()
    try:
        xvfb.start()
        env = {**os.environ, **xvfb.environment()}
        assert "-auth" in psutil.Process(xvfb.pid).cmdline()
        assert psutil.Process(xvfb.pid).ppid() == xvfb.keeper_pid
        holder = start_holder(env)
        stranger = subprocess.run(
            ["/usr/bin/python3", "-c", TK_CLIENT], env={**env, "XAUTHORITY": os.devnull}, capture_output=True, timeout=30
        )
        assert stranger.returncode != 0 and b"couldn't connect" in stranger.stderr
        holder.stdin.close()
        assert holder.wait(10) == 0
        # The keeper is a client too: the display stays for the next miner until stop().
        assert xvfb.alive() and psutil.Process(xvfb.pid).status() != psutil.STATUS_ZOMBIE
        pid, auth = xvfb.pid, xvfb.auth_file
    finally:
        xvfb.stop()
    assert not psutil.pid_exists(pid) and not auth.parent.exists()


def started_in_a_thread_that_ends(xvfb: Xvfb) -> None:
    """As after a `kill -9` of the daemon: the thread that started the keeper ends (its hang-up)."""
    thread = threading.Thread(target=xvfb.start, name="ends-like-a-killed-daemon")
    thread.start()
    thread.join(30)


def test_once_we_are_gone_xvfb_ends_with_its_last_client_not_before(need_xvfb_and_tk):
    xvfb = Xvfb()
    holder = None
    try:
        # Started from a thread that stays until the miner (here: holder) is on the display.
        release = threading.Event()

        def start_and_live() -> None:
            xvfb.start()
            release.wait(30)

        thread = threading.Thread(target=start_and_live, name="daemon-like")
        thread.start()
        wait_until(lambda: xvfb.alive() and xvfb.display, 15, what="Xvfb to start")
        holder = start_holder({**os.environ, **xvfb.environment()})
        xvfb_process, keeper = psutil.Process(xvfb.pid), psutil.Process(xvfb.keeper_pid)
        auth = xvfb.auth_file
        assert unix_sockets(keeper.pid)  # the keeper's own X connection
        release.set()
        thread.join(30)
        # Hung up: the keeper lets go of the display, which stays for its miner...
        wait_until(lambda: not unix_sockets(keeper.pid), 10, what="the keeper to close its connection")
        holder.stdin.write("draw\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "drawn" and xvfb_process.is_running()
        # ...until the miner closes: then Xvfb, the keeper and the cookie's folder go.
        holder.stdin.close()
        assert holder.wait(10) == 0
        xvfb_process.wait(10)  # raises TimeoutExpired if it stays (not our child: no exit code)
        assert keeper.wait(10) == 0
        assert not auth.parent.exists()
    finally:
        if holder is not None and holder.poll() is None:
            holder.kill()
            holder.wait(10)
        xvfb.stop()


def test_once_we_are_gone_an_xvfb_nobody_connected_to_ends_at_once(need_xvfb_and_tk):
    xvfb = Xvfb()
    try:
        started_in_a_thread_that_ends(xvfb)
        pid, auth = xvfb.pid, xvfb.auth_file
        assert pid is not None  # it may be gone already: Xvfb is the keeper's child, reaped when it ends
        wait_until(lambda: not xvfb.alive(), 10, what="the keeper to end")  # once Xvfb has ended
        assert not psutil.pid_exists(pid) and not auth.parent.exists()
    finally:
        xvfb.stop()


def test_a_missing_program_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    xvfb = Xvfb(program=str(tmp_path / "no-such-Xvfb"))
    with pytest.raises(Exception, match="cannot run .*no-such-Xvfb.*install Debian package 'xvfb'"):
        xvfb.start()
    assert not xvfb.alive() and list(tmp_path.iterdir()) == []
