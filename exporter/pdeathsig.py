"""Children that die with the daemon, even after a `kill -9` of it: Linux's PR_SET_PDEATHSIG.

`die_with_parent(sig)` is a `preexec_fn` for subprocess.Popen: it runs in the child between fork and
exec and asks the kernel to send `sig` to the child when the thread that forked it ends. The setting
survives exec (not for set-user-ID programs). If the parent is already gone by then, nobody would
send it, so the child sends it to itself. Where prctl is missing (not Linux) it does nothing.

The thread matters: the kernel signals the child each time the thread it counts as its parent ends,
and a multi-threaded parent killed with SIGKILL hands the child from thread to thread as they end:
the child gets the signal several times, milliseconds apart. TDM must get ONE SIGTERM: its handler
starts a normal close and is removed at once, so a second SIGTERM kills it before it saved anything.
The launcher (inside TDM's process) therefore asks for RELAY_SIGNAL and `relay_parent_death()` turns
the first one into a single SIGTERM and ignores the rest. Without the launcher it is SIGTERM itself.
"""

from __future__ import annotations

import ctypes
import os
import signal
from typing import Callable

PR_SET_PDEATHSIG = 1
RELAY_SIGNAL = signal.SIGUSR1  # unused by TDM

try:  # resolved here, not in the child: between fork and exec nothing should load a library
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # pragma: no cover - not Linux
    _prctl = None


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A preexec_fn that makes the child get `sig` when this thread ends; None where unsupported."""
    if _prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        _prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os.kill(os.getpid(), sig)

    return preexec


def relay_parent_death(sig: int = signal.SIGTERM) -> None:
    """In the child (the launcher, before TDM runs): the first RELAY_SIGNAL sends `sig` to this process
    once; later ones are ignored. Python runs the handler in the main thread, TDM's asyncio loop."""
    relayed = False

    def relay(signum, frame) -> None:
        nonlocal relayed
        if not relayed:
            relayed = True
            os.kill(os.getpid(), sig)

    signal.signal(RELAY_SIGNAL, relay)
