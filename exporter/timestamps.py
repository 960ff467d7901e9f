"""TDM writes local wall-clock time with no zone; turn it into POSIX seconds."""

from __future__ import annotations

from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo


def zone(name: str | None) -> tzinfo | None:
    """A configured zone name; None or "" or "local" means the machine's own zone."""
    if not name or name == "local":
        return None
    return ZoneInfo(name)  # raises ZoneInfoNotFoundError (a KeyError) for an unknown name


class LocalClock:
    """Converts TDM's "YYYY-MM-DD HH:MM:SS" plus msecs, caching the last second seen
    (consecutive records nearly always share it, and strptime is slow)."""

    def __init__(self, tz: tzinfo | None = None) -> None:
        self.tz = tz
        self._second = ""
        self._epoch = 0.0

    def to_epoch(self, timestamp: str, msecs: int) -> float:
        if timestamp != self._second:
            naive = datetime.strptime(timestamp, "%Y-%m-%d %H:%M:%S")
            # An ambiguous hour at a DST change reads as the first occurrence (fold=0).
            local = naive.replace(tzinfo=self.tz) if self.tz else naive.astimezone()
            self._epoch = local.timestamp()
            self._second = timestamp
        return self._epoch + msecs / 1000.0
