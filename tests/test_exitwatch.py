"""ExitWatch with real processes: the pidfd tells an exit (a zombie's too) without polling."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import psutil
import pytest

from exporter.exitwatch import watch_exit

pytestmark = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="pidfds are Linux-only")

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def sleeper():
    procs: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        procs.append(subprocess.Popen(SLEEPER))
        return procs[-1]

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(10)


def open_fds() -> set[int]:
    return set(map(int, os.listdir("/proc/self/fd")))


def test_an_exit_is_told_at_once_even_before_the_zombie_is_reaped(sleeper):
    proc = sleeper()
    told = threading.Event()
    watch = watch_exit(psutil.Process(proc.pid), told.set)
    assert watch is not None and not watch.exited
    proc.kill()  # not reaped: a zombie until proc.wait() below
    assert told.wait(10), "no exit told within 10 s"
    assert watch.exited and psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE
    watch.close()
    proc.wait(10)


def test_close_stops_the_watch_without_telling_and_releases_its_descriptors(sleeper):
    proc = sleeper()
    before = open_fds()
    told = threading.Event()
    watch = watch_exit(psutil.Process(proc.pid), told.set)
    assert watch is not None and len(open_fds() - before) == 3  # the pidfd and the cancel pipe
    watch.close()
    watch.close()  # idempotent
    assert open_fds() <= before
    assert not any(thread.name == f"exit-watch-{proc.pid}" for thread in threading.enumerate())
    proc.kill()
    proc.wait(10)
    assert not told.is_set() and not watch.exited


def test_a_process_gone_before_the_watch_cannot_be_watched(sleeper):
    proc = sleeper()
    process = psutil.Process(proc.pid)
    proc.kill()
    proc.wait(10)  # reaped: the pid names nothing (or, later, someone else)
    before = open_fds()
    assert watch_exit(process, lambda: None) is None
    assert open_fds() <= before

