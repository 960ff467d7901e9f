"""TDM writes local wall-clock time with no zone; turn it into POSIX seconds."""

from __future__ import annotations

from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

_CACHE_LIMIT = 512  # distinct seconds remembered; then forgotten all at once (a log moves forward)


def zone(name: str | None) -> tzinfo | None:
    """A configured zone name; None or "" or "local" means the machine's own zone."""
    if not name or name == "local":
        return None
    return ZoneInfo(name)  # raises ZoneInfoNotFoundError (a KeyError) for an unknown name


class LocalClock:
    """Converts TDM's "YYYY-MM-DD HH:MM:SS" plus msecs, converting each distinct second once
    (a log has many records per second, and strptime is slow)."""

    def __init__(self, tz: tzinfo | None = None) -> None:
        self.tz = tz
        self._seconds: dict[str, float] = {}

    def to_epoch(self, timestamp: str, msecs: int) -> float:
        """Raises ValueError for a time that does not exist in the calendar (2026-02-30)."""
        return self.second(timestamp) + msecs / 1000.0

    def second(self, timestamp: str) -> float:
        """The POSIX time of the start of this second; ValueError as `to_epoch`."""
        epoch = self._seconds.get(timestamp)
        if epoch is None:
            naive = _parse(timestamp)
            # An ambiguous hour at a DST change reads as the first occurrence (fold=0). A naive
            # time is the machine's local time to timestamp(), which is 8x faster than astimezone().
            epoch = (naive.replace(tzinfo=self.tz) if self.tz else naive).timestamp()
            if len(self._seconds) >= _CACHE_LIMIT:
                self._seconds.clear()
            self._seconds[timestamp] = epoch
        return epoch


def _parse(timestamp: str) -> datetime:
    """"YYYY-MM-DD HH:MM:SS" as a naive datetime; ValueError if it is not one (or no real time)."""
    if len(timestamp) == 19 and timestamp[4] == timestamp[7] == "-" and timestamp[13] == timestamp[16] == ":":
        # The framer only gives digits here; fromisoformat reads this shape 5x faster than strptime.
        return datetime.fromisoformat(timestamp)
    return datetime.strptime(timestamp, "%Y-%m-%d %H:%M:%S")
