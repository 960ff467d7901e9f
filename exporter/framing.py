"""Framing: split TDM's log bytes into records (header line plus continuation lines).

Pure: bytes and `now` go in, records come out. No files, no threads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Record:
    source: str  # key of the file it came from
    timestamp: str  # "YYYY-MM-DD HH:MM:SS", local time as TDM wrote it
    msecs: int  # 0..1000 (Python 3.10 builds can print 1000)
    level: str  # ERROR, WARNING, INFO, CALL, DEBUG, or GUI/STDOUT/STDERR from our captured output
    message: str  # the whole text; continuation lines joined by "\n", no trailing newline
    start: int  # byte offset of the header in the file
    end: int  # byte offset just after the record's last newline
    truncated: bool = False  # longer than the framer's limit and cut


# TDM's FILE_FORMATTER: "{asctime}.{msecs:03.0f}:\t{levelname:>7}:\t{message}"; our captured-output
# file uses the same header with GUI/STDOUT/STDERR levels. msecs can be 1000 on Python 3.10 builds.
HEADER = re.compile(rb"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{3,4}):\t *([A-Z]+):\t", re.M)

DEFAULT_MAX_RECORD_BYTES = 1 << 20
DEFAULT_QUIET_SECONDS = 0.01


@dataclass(slots=True)
class _Pending:
    timestamp: str
    msecs: int
    level: str
    message_start: int  # index in the buffer where the message text begins


class Framer:
    """Turns a byte stream of one file into Records.

    A record is a header line plus every following line that is not a header. The last
    record is held until the next header arrives, or until the stream has been quiet for
    `quiet_seconds` with no partial line pending (so the end of a burst is not held forever).
    `offset` is always a safe resume point: every byte before it has been emitted or dropped.
    """

    def __init__(
        self,
        source: str,
        offset: int = 0,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        quiet_seconds: float = DEFAULT_QUIET_SECONDS,
    ) -> None:
        self.source = source
        self.offset = offset  # file offset of self._buf[0]
        self.max_record_bytes = max_record_bytes
        self.quiet_seconds = quiet_seconds
        self.orphan_lines = 0  # lines with no header before them (started mid-record)
        self.oversized_records = 0
        self._discarding = False  # dropping the rest of a record that was cut at the limit
        self._buf = bytearray()
        self._scanned = 0  # self._buf[:_scanned] is whole lines already searched for headers
        self._pending: _Pending | None = None
        self._mid_line = False  # self._buf[0] is in the middle of a line we are discarding
        self._last_data_at = 0.0

    @property
    def fed_until(self) -> int:
        """File offset of the next byte this framer expects."""
        return self.offset + len(self._buf)

    # -- feeding ---------------------------------------------------------------------------

    def feed(self, data: bytes, now: float) -> list[Record]:
        if not data:
            return []
        self._last_data_at = now
        self._buf += data
        out: list[Record] = []
        if self._mid_line and not self._skip_to_line_start():
            return out
        complete_end = self._buf.rfind(b"\n") + 1
        if complete_end > self._scanned:
            # Collect first: the regex scanner holds the buffer, which _emit resizes.
            headers = [
                (m.start(), m.end(), m.groups())
                for m in HEADER.finditer(self._buf, self._scanned, complete_end)
            ]
            consumed_before = self.offset
            for start, end, groups in headers:
                shift = self.offset - consumed_before
                self._start_record(start - shift, end - shift, groups, out)
            complete_end -= self.offset - consumed_before  # emitting consumed the buffer's front
            self._scanned = complete_end
            if self._pending is None:
                self._drop_orphans(complete_end)
        # The next header is already visible: the pending record cannot grow any more.
        if self._pending is not None and complete_end < len(self._buf):
            tail = HEADER.match(self._buf, complete_end)
            if tail is not None:
                self._start_record(tail.start(), tail.end(), tail.groups(), out)
        if len(self._buf) > self.max_record_bytes:
            self._cut_oversized(out)
        return out

    def flush_due(self, now: float) -> list[Record]:
        """Emit the held record once the stream has been quiet long enough."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return []
        return self.flush()

    def deadline(self) -> float | None:
        """When flush_due will emit the held record, or None if nothing is waiting."""
        if self._pending is None or self._scanned != len(self._buf):
            return None  # nothing held, or a partial line is still being written
        return self._last_data_at + self.quiet_seconds

    def flush(self) -> list[Record]:
        """Emit everything held, partial last line included (end of a file that is complete)."""
        out: list[Record] = []
        if self._pending is not None:
            out.append(self._emit(len(self._buf)))
        elif self._buf:
            self._count_orphans(len(self._buf))
            self._consume(len(self._buf))
        self._mid_line = False
        return out

    # -- internals -------------------------------------------------------------------------

    def _start_record(self, start: int, end: int, groups: tuple, out: list[Record]) -> None:
        if start > 0:
            if self._pending is not None:
                out.append(self._emit(start))
            else:
                self._count_orphans(start)
                self._consume(start)
        self._discarding = False
        timestamp, msecs, level = groups
        self._pending = _Pending(
            timestamp.decode("ascii"), int(msecs), level.decode("ascii"), end - start
        )

    def _emit(self, end: int) -> Record:
        pending = self._pending
        assert pending is not None
        truncated = end > self.max_record_bytes
        if truncated:
            self.oversized_records += 1
        text_end = min(end, self.max_record_bytes)
        raw = bytes(self._buf[pending.message_start:text_end])
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        message = raw.decode("utf-8", "replace")
        if "\r" in message:  # a log written on Windows
            message = message.replace("\r\n", "\n").rstrip("\r")
        record = Record(
            self.source,
            pending.timestamp,
            pending.msecs,
            pending.level,
            message,
            self.offset,
            self.offset + end,
            truncated,
        )
        self._pending = None
        self._consume(end)
        return record

    def _consume(self, n: int) -> None:
        del self._buf[:n]
        self.offset += n
        self._scanned = max(0, self._scanned - n)

    def _drop_orphans(self, complete_end: int) -> None:
        # Whole lines with no header before them can never join a record.
        if complete_end:
            self._count_orphans(complete_end)
            self._consume(complete_end)

    def _count_orphans(self, end: int) -> None:
        if self._discarding:
            return
        self.orphan_lines += self._buf.count(b"\n", 0, end) or 1

    def _skip_to_line_start(self) -> bool:
        newline = self._buf.find(b"\n")
        if newline < 0:
            self._consume(len(self._buf))
            return False
        self._consume(newline + 1)
        self._mid_line = False
        return True

    def _cut_oversized(self, out: list[Record]) -> None:
        if self._pending is None:
            tail = HEADER.match(self._buf, self._scanned)
            if tail is None:  # a huge line with no header: drop it
                self._count_orphans(len(self._buf))
                self._mid_line = not self._buf.endswith(b"\n")
                self._consume(len(self._buf))
                return
            self._start_record(tail.start(), tail.end(), tail.groups(), out)
        self._mid_line = not self._buf.endswith(b"\n")
        out.append(self._emit(len(self._buf)))
        self._discarding = True
