"""The daemon's private Xvfb, end to end: a real `twitchminert run` without DISPLAY, a real Xvfb,
real miners (one that never opens a window, one with a Tk window), and real signals, `kill -9` too.

A process supervisor must never leave orphans: whatever moment the daemon is killed at, no Xvfb, no
keeper and no cookie folder of it stays; a miner on the display still closes normally, its window up.
TMPDIR is the test's folder, so Xvfb's command line (its -auth file) and the cookie folders name it.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from conftest import http_post, processes_mentioning, run_args, status_when, stop_all, wait_until
from helpers import unavailable

pytestmark = pytest.mark.slow

CHILDREN = Path(__file__).resolve().parent / "children"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with Tk (python3-tk); our venv's may lack it


@pytest.fixture(autouse=True)
def need_xvfb():
    if not shutil.which("Xvfb"):
        unavailable("no Xvfb (Debian: apt-get install xvfb)")


@pytest.fixture
def need_tk():
    if subprocess.run([SYSTEM_PYTHON, "-c", "import tkinter"], capture_output=True).returncode != 0:
        unavailable("no Tk for Debian's python3 (apt-get install python3-tk)")


def config(workdir: Path, command: list[str]) -> Path:
    """A `run` config: `command` as the miner in workdir/miner, display auto."""
    miner = workdir / "miner"
    miner.mkdir()
    path = workdir / "twitchminert.yaml"
    path.write_text(
        "miner:\n"
        f"  dir: {json.dumps(str(miner))}\n"
        f"  command: {json.dumps(command)}\n"
        "  display: auto\n"
        "  stop_timeout: 5s\n"
        "storage:\n"
        f"  path: {json.dumps(str(workdir / 'data'))}\n"
    )
    return path


@pytest.fixture
def daemon(daemon_factory, tmp_path: Path):
    """`twitchminert run` with `command` as the miner, without DISPLAY, TMPDIR in tmp_path; listening.
    Afterwards: stopped, and whatever still mentions tmp_path killed (a failed test leaks nothing)."""
    started = []
    temp = tmp_path / "tmp"
    temp.mkdir()

    def start(command: list[str]):
        process = daemon_factory(*run_args(config(tmp_path, command)), env={"TMPDIR": str(temp), "DISPLAY": ""})
        started.append(process)
        process.wait_listening()
        return process

    yield start
    stop_all(started, tmp_path)


def xvfbs(tmp_path: Path) -> list[psutil.Process]:
    """Xvfb processes of this test: their -auth file is in the test's TMPDIR."""
    found = []
    for process in processes_mentioning(str(tmp_path)):
        try:
            if process.name() == "Xvfb":
                found.append(process)
        except psutil.Error:
            pass
    return found


def descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def cookie_folders(tmp_path: Path) -> list[Path]:
    return list((tmp_path / "tmp").glob("twitchminert-xauth-*"))


def reports(miner: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in miner.glob("report-*.json")]


def running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_all_end(processes: list[psutil.Process], tmp_path: Path, what: str) -> None:
    wait_until(lambda: not any(running(p) for p in processes), 15, what=what)
    assert processes_mentioning(str(tmp_path)) == []


def assert_no_cookie_folder(tmp_path: Path) -> None:
    wait_until(lambda: not cookie_folders(tmp_path), 5, what="the cookie folder to be removed")


def test_kill_9_of_the_daemon_before_the_miner_connected_to_xvfb_leaves_no_xvfb(daemon, tmp_path: Path):
    # graceful.py never opens a window: the moment between Xvfb's start and the miner's first
    # connection lasts until the kill (with TDM it is the first second or so).
    tm = daemon([sys.executable, str(CHILDREN / "graceful.py")])
    (xvfb,) = wait_until(lambda: xvfbs(tmp_path), 15, what="Xvfb to run")
    wait_until(lambda: reports(tmp_path / "miner"), 15, what="the miner to run")
    assert all(r["display"] and r["display"].startswith(":") for r in reports(tmp_path / "miner"))
    ours = descendants(tm.proc.pid)
    assert xvfb in ours
    assert tm.stop(signal.SIGKILL) == -signal.SIGKILL
    # The miner gets its parent-death SIGTERM; Xvfb, which never had the miner as a client, ends too.
    assert_all_end(ours, tmp_path, "no Xvfb, keeper or miner of the killed daemon")
    assert_no_cookie_folder(tmp_path)


def test_kill_9_of_the_daemon_lets_a_miner_with_a_window_close_normally_then_xvfb_ends(daemon, tmp_path: Path, need_tk):
    tm = daemon([SYSTEM_PYTHON, str(CHILDREN / "tk_window.py")])
    (connected,) = wait_until(lambda: reports(tmp_path / "miner"), 20, what="the miner's window")
    (xvfb,) = xvfbs(tmp_path)
    ours = descendants(tm.proc.pid)
    assert tm.stop(signal.SIGKILL) == -signal.SIGKILL
    assert_all_end(ours, tmp_path, "the miner, then Xvfb and its keeper to end")
    # Its window stayed up while it closed (an Xvfb killed with the daemon would have cut that short).
    assert (tmp_path / "miner" / f"closed-{connected['pid']}").read_text() == "saved\n"
    assert_no_cookie_folder(tmp_path)


def test_a_restart_and_a_stop_leave_no_xvfb_and_no_cookie_folder(daemon, tmp_path: Path, need_tk):
    tm = daemon([SYSTEM_PYTHON, str(CHILDREN / "tk_window.py")])
    (first,) = wait_until(lambda: reports(tmp_path / "miner"), 20, what="the miner's window")
    (first_xvfb,) = xvfbs(tmp_path)
    assert http_post(tm.url + "/-/restart")[0] == 200
    wait_until(lambda: len(reports(tmp_path / "miner")) == 2, 20, what="the restarted miner's window")
    wait_until(lambda: status_when(tm, lambda s: s["supervisor"]["state"] == "running"), 10, what="running")
    # A fresh Xvfb for the new start; the first one, and its cookie folder, are gone.
    assert not first_xvfb.is_running()
    (second_xvfb,) = xvfbs(tmp_path)
    assert len(cookie_folders(tmp_path)) == 1
    assert (tmp_path / "miner" / f"closed-{first['pid']}").exists()
    ours = descendants(tm.proc.pid)
    assert second_xvfb in ours
    assert tm.stop(signal.SIGTERM) == 0
    assert not any(running(p) for p in ours)  # stop() waited for every one of them
    assert processes_mentioning(str(tmp_path)) == [] and cookie_folders(tmp_path) == []
