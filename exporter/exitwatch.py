"""ExitWatch: be told when a process that is not our child ends, without polling it.

A pidfd (os.pidfd_open, Linux 5.3+) becomes readable when its process ends (a zombie counts as
ended), and it names that process only: a later process that reuses the pid does not make it
readable, nor stop it from being. One thread per watch sleeps in poll() on the pidfd and on a pipe
that close() writes to, so a followed process costs no wake-ups while it runs.

`watch_exit` returns None where there are no pidfds (another OS, an older kernel, a seccomp
filter), and when the process is gone or its pid reused before the pidfd was opened: the caller
then polls the process as before.
"""

from __future__ import annotations

import os
import select
import threading
from typing import Callable

import psutil


class ExitWatch:
    def __init__(self, pidfd: int, pid: int, on_exit: Callable[[], None]) -> None:
        self.pid = pid
        self.exited = False  # set before on_exit is called
        self._pidfd = pidfd
        self._on_exit = on_exit
        self._cancel_read, self._cancel_write = os.pipe()
        self._thread = threading.Thread(target=self._run, name=f"exit-watch-{pid}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop watching and release the descriptors. Idempotent; not from within on_exit."""
        if self._thread is None:
            return
        os.write(self._cancel_write, b"x")
        self._thread.join()
        self._thread = None
        for fd in (self._pidfd, self._cancel_read, self._cancel_write):
            os.close(fd)

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._pidfd, select.POLLIN)
        poller.register(self._cancel_read, select.POLLIN)
        ready = {fd for fd, _ in poller.poll()}  # no timeout: nothing to do until one of the two
        if self._pidfd in ready and self._cancel_read not in ready:
            self.exited = True
            self._on_exit()


def watch_exit(process: psutil.Process, on_exit: Callable[[], None]) -> ExitWatch | None:
    """Call `on_exit` (from another thread) once `process` ends; None when this cannot be watched."""
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):  # no pidfd_open here, or the pid is gone already
        return None
    try:
        # Opened by pid: if the pid was reused since psutil looked, the pidfd names the newcomer.
        # psutil compares start times, so a True here means the pidfd names `process`.
        same = process.is_running()
    except psutil.Error:
        same = False
    if not same:
        os.close(pidfd)
        return None
    return ExitWatch(pidfd, process.pid, on_exit)
