"""Framing: split TDM's log bytes into records (header line plus continuation lines).

Pure: bytes and `now` go in, records come out. No files, no threads.
"""

from __future__ import annotations

import re
from typing import NamedTuple


class Record(NamedTuple):
    """One log record. A named tuple: one is built per record, and that is the hot path."""

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
# The same, found after a newline: a leading literal lets the regex engine skip ahead with memchr
# instead of trying `^` at every byte, which made searching 5x slower.
_NEXT_HEADER = re.compile(rb"\n(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{3,4}):\t *([A-Z]+):\t")

DEFAULT_MAX_RECORD_BYTES = 1 << 20
DEFAULT_QUIET_SECONDS = 0.005  # TDM writes a record in one write(); parts of one are µs apart


# The record being assembled: (timestamp, msecs, level) as raw bytes, and where its message starts
# in the buffer, counted from the record's first byte. A tuple of bytes: one is made per record on
# the hot path, and most (DEBUG) are only counted, never decoded.
_Pending = tuple


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
        count_only: frozenset[str] = frozenset(),
    ) -> None:
        self.source = source
        self.offset = offset  # file offset of self._buf[0]
        self.max_record_bytes = max_record_bytes
        self.quiet_seconds = quiet_seconds
        self.orphan_lines = 0  # lines with no header before them (started mid-record)
        self.oversized_records = 0
        # Levels nobody reads the text of (DEBUG noise, usually): counted, never built into Records.
        self.count_only = count_only
        self.counted: dict[bytes, int] = {}
        self.counted_last: tuple[bytes, bytes] | None = None  # (timestamp, msecs) of the last one counted
        self.counted_truncated = 0
        self._discarding = False  # dropping the rest of a record that was cut at the limit
        self._buf = bytearray()
        self._scanned = 0  # self._buf[:_scanned] is whole lines already searched for headers
        self._pending: _Pending | None = None
        self._mid_line = False  # self._buf[0] is in the middle of a line we are discarding
        self._last_data_at = 0.0

    @property
    def count_only(self) -> frozenset[str]:
        return self._count_only

    @count_only.setter
    def count_only(self, levels: frozenset[str]) -> None:
        self._count_only = frozenset(levels)
        self._count_only_raw = frozenset(level.encode("ascii") for level in levels)

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
        buf = self._buf
        complete_end = buf.rfind(b"\n") + 1
        if complete_end > self._scanned:
            done = 0  # buf[:done] is emitted or dropped; consumed once, after the scan
            pending = self._pending
            count_only = self._count_only_raw
            if self._scanned == 0 and (first := HEADER.match(buf, 0, complete_end)) is not None:
                pending = (*first.groups(), first.end())
            # A header after a newline: the leading literal lets the regex engine skip ahead quickly.
            for match in _NEXT_HEADER.finditer(buf, max(self._scanned - 1, 0), complete_end):
                start = match.start() + 1
                if start > done:
                    if pending is not None:
                        if pending[2] in count_only:
                            self._count(pending, start - done)
                        else:
                            out.append(self._record(pending, done, start))
                    else:
                        self._count_orphans(done, start)
                    done = start
                timestamp, msecs, level = match.groups()
                pending = (timestamp, msecs, level, match.end() - start)  # decoded only if it is built
            match = first = None  # noqa: F841 - drop the matches before the buffer is resized
            if pending is None:  # whole lines with no header before them can never join a record
                self._count_orphans(done, complete_end)
                done = complete_end
            self._pending = pending
            self._consume(done)
            complete_end -= done
            self._scanned = complete_end
        # The next header is already visible: the pending record cannot grow any more.
        if self._pending is not None and complete_end < len(buf):
            tail = HEADER.match(buf, complete_end)
            if tail is not None:
                following = self._pending_from(tail)  # read it before the buffer moves
                self._release_pending(complete_end, out)
                self._pending = following
        if len(buf) > self.max_record_bytes:
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
        self._release_pending(len(self._buf), out)
        self._mid_line = False
        return out

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _pending_from(match: re.Match) -> _Pending:
        return (*match.groups(), match.end() - match.start())

    def _release_pending(self, end: int, out: list[Record]) -> None:
        """Emit the held record as ending at `end` (or drop orphan bytes), and consume them."""
        if end == 0:
            return
        if self._pending is not None:
            if self._pending[2] in self._count_only_raw:
                self._count(self._pending, end)
            else:
                out.append(self._record(self._pending, 0, end))
            self._pending = None
        else:
            self._count_orphans(0, end)
        self._consume(end)

    def take_counted(self) -> tuple[dict[str, int], tuple[str, int] | None, int]:
        """Records of count-only levels since the last call: per level, the (timestamp, msecs)
        of the last one, and how many of them were cut at the size limit."""
        counted = {level.decode("ascii"): n for level, n in self.counted.items()}
        last = None if self.counted_last is None else (self.counted_last[0].decode("ascii"), int(self.counted_last[1]))
        taken = (counted, last, self.counted_truncated)
        self.counted, self.counted_last, self.counted_truncated = {}, None, 0
        return taken

    def _count(self, pending: _Pending, size: int) -> None:
        level = pending[2]
        self.counted[level] = self.counted.get(level, 0) + 1
        self.counted_last = (pending[0], pending[1])
        if size > self.max_record_bytes:
            self.oversized_records += 1
            self.counted_truncated += 1
        self._discarding = False

    def _record(self, pending: _Pending, start: int, end: int) -> Record:
        """The record in buf[start:end]; the buffer is left as it is."""
        timestamp, msecs, level, message_start = pending
        timestamp, msecs, level = timestamp.decode("ascii"), int(msecs), level.decode("ascii")
        truncated = end - start > self.max_record_bytes
        if truncated:
            self.oversized_records += 1
        text_end = start + self.max_record_bytes if truncated else end
        if self._buf[text_end - 1] == 10:  # the record's final newline is not part of the message
            text_end -= 1
        message = self._buf[start + message_start : text_end].decode("utf-8", "replace")
        if "\r" in message:  # a log written on Windows
            message = message.replace("\r\n", "\n").rstrip("\r")
        self._discarding = False
        return Record(self.source, timestamp, msecs, level, message, self.offset + start, self.offset + end, truncated)

    def _consume(self, n: int) -> None:
        if n:
            del self._buf[:n]
            self.offset += n
            self._scanned = max(0, self._scanned - n)

    def _count_orphans(self, start: int, end: int) -> None:
        if end > start and not self._discarding:
            self.orphan_lines += self._buf.count(b"\n", start, end) or 1

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
                self._count_orphans(0, len(self._buf))
                self._mid_line = not self._buf.endswith(b"\n")
                self._consume(len(self._buf))
                return
            following = self._pending_from(tail)
            self._release_pending(self._scanned, out)
            self._pending = following
        self._mid_line = not self._buf.endswith(b"\n")
        self._release_pending(len(self._buf), out)
        self._discarding = True

