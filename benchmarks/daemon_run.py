"""`twitchminert run` as the benchmarks start it: on a config file, at a free port on 127.0.0.1."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path


def spawn(config: Path) -> subprocess.Popen:
    """The daemon on `config`; its stderr is a pipe that `listening_url` reads."""
    return subprocess.Popen(
        [sys.executable, "-m", "exporter", "run", "--config.file", str(config), "--web.listen-address", "127.0.0.1:0"],
        stderr=subprocess.PIPE,
        text=True,
    )


def listening_url(daemon: subprocess.Popen, timeout: float = 30.0) -> str:
    """The daemon's base URL (http://127.0.0.1:PORT) once it logs that it listens; SystemExit if it does
    not within `timeout`. From then on its stderr is drained on a thread, so a full pipe never blocks it."""
    assert daemon.stderr is not None
    url = None
    deadline = time.monotonic() + timeout
    while url is None and time.monotonic() < deadline:
        found = re.search(r"listening on (http://[\d.:]+)/", daemon.stderr.readline())
        url = found and found.group(1)
    if url is None:
        raise SystemExit("the daemon did not start")
    threading.Thread(target=daemon.stderr.read, daemon=True).start()
    return url
