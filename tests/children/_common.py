"""Shared by the fake children: a JSON report next to the miner (the CWD), and a bounded wait."""

import json
import os
import sys
import time
from pathlib import Path

LIFETIME = 60.0  # a fake child never outlives a broken test by more than this


def report(**extra) -> None:
    """Write report-<pid>.json in the CWD: argv, DISPLAY, times, pids; atomically (tmp + replace)."""
    data = {
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "argv": sys.argv[1:],
        "display": os.environ.get("DISPLAY"),
        "monotonic": time.monotonic(),
        **extra,
    }
    path = Path.cwd() / f"report-{os.getpid()}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def reports(directory: Path) -> list[dict]:
    """The reports in `directory`, oldest first (for tests)."""
    found = [json.loads(p.read_text()) for p in Path(directory).glob("report-*.json")]
    return sorted(found, key=lambda r: r["monotonic"])


def live_for(seconds: float = LIFETIME) -> None:
    """Wait; signal handlers run meanwhile. Ends the process when the time is up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.1)
    sys.exit(99)
