"""Framing: split TDM's log bytes into records (header line plus continuation lines).

Pure: bytes and `now` go in, a Batch comes out. No files, no threads.

Most of a verbose log is DEBUG noise no pattern reads. Records of such count-only levels never
become Python objects: the headers of a whole chunk are counted by level in one regex pass, and a
second pass finds the records that are built. Only chunks that could hold a record over the size
limit take the record-by-record path.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
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


@dataclass(slots=True)
class Batch:
    """What one framer call produced: every record it finished, built or only counted."""

    records: list[Record] = field(default_factory=list)
    counted: dict[str, int] = field(default_factory=dict)  # count-only records, by level
    counted_time: tuple[str, int] | None = None  # (timestamp, msecs) of the newest one counted
    counted_truncated: int = 0  # count-only records cut at the size limit
    consumed: int = 0  # bytes of the file turned into records (or dropped as orphans)

    def __len__(self) -> int:
        """Records finished, built or counted."""
        return len(self.records) + sum(self.counted.values())


_STAMP = rb"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{3,4}):\t *"
# TDM's FILE_FORMATTER: "{asctime}.{msecs:03.0f}:\t{levelname:>7}:\t{message}"; our captured-output
# file uses the same header with GUI/STDOUT/STDERR levels. msecs can be 1000 on Python 3.10 builds.
HEADER = re.compile(rb"^" + _STAMP + rb"([A-Z]+):\t", re.M)
# The same, found after a newline: a leading literal lets the regex engine skip ahead
# instead of trying `^` at every byte, which made searching 5x slower.
_NEXT_HEADER = re.compile(rb"\n" + _STAMP + rb"([A-Z]+):\t")

DEFAULT_MAX_RECORD_BYTES = 1 << 20
DEFAULT_QUIET_SECONDS = 0.005  # TDM writes a record in one write(); parts of one are µs apart
_LAST_HEADER_WINDOW = 4096


class _Pending(NamedTuple):
    """The record being assembled: header fields as raw bytes (most are only counted, never
    decoded) and where its message starts, counted from the record's first byte."""

    timestamp: bytes
    msecs: bytes
    level: bytes
    message_start: int


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
        self.count_only = count_only
        self._batch = Batch()
        self._discarding = False  # dropping the rest of a record that was cut at the limit
        self._buf = bytearray()
        self._scanned = 0  # self._buf[:_scanned] is whole lines already searched for headers
        self._pending: _Pending | None = None
        self._mid_line = False  # self._buf[0] is in the middle of a line we are discarding
        self._last_data_at = 0.0
        self._stamp = (b"", "")  # the last header time decoded, raw and as text

    @property
    def count_only(self) -> frozenset[str]:
        """Levels nobody reads the text of (DEBUG noise, usually): counted, never built into Records."""
        return self._count_only

    @count_only.setter
    def count_only(self, levels: frozenset[str]) -> None:
        self._count_only = frozenset(levels)
        self._count_only_raw = frozenset(level.encode("ascii") for level in levels)
        self._counted_levels = sorted(levels)
        alternatives = b"|".join(sorted(self._count_only_raw)) or b"(?!)"
        # Every header after a newline, in one pass, in order: a count-only one or the header of
        # a record to build. Each record ends where the next match starts. The time is matched
        # once (groups 1-2), then the level: one group per count-only level, then one per known
        # level to build, then any other level. Which group matched says the level: no level is
        # decoded or looked up by its text.
        built = [level for level in _KNOWN_LEVELS if level not in self._count_only]
        self._level_of_group = (None, None, None, *self._counted_levels, *built, None)  # None: read it
        levels = b"".join(b"(" + level.encode("ascii") + b"):\t|" for level in (*self._counted_levels, *built))
        self._bulk = re.compile(rb"\n" + _STAMP + rb"(?:" + levels + rb"([A-Z]+):\t)")
        self._counted_stamp = re.compile(rb"\n" + _STAMP + rb"(?:" + alternatives + rb"):\t")

    @property
    def fed_until(self) -> int:
        """File offset of the next byte this framer expects."""
        return self.offset + len(self._buf)

    # -- feeding ---------------------------------------------------------------------------

    def feed(self, data: bytes, now: float) -> Batch:
        if not data:
            return Batch()
        start = self.offset
        self._last_data_at = now
        self._buf += data
        if not self._mid_line or self._skip_to_line_start():
            self._frame()
        return self._take(start)

    def flush_due(self, now: float) -> Batch:
        """Emit the held record once the stream has been quiet long enough."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return Batch()
        return self.flush()

    def deadline(self) -> float | None:
        """When flush_due will emit the held record, or None if nothing is waiting."""
        if self._pending is None or self._scanned != len(self._buf):
            return None  # nothing held, or a partial line is still being written
        return self._last_data_at + self.quiet_seconds

    def flush(self) -> Batch:
        """Emit everything held, partial last line included (end of a file that is complete)."""
        start = self.offset
        self._release_pending(len(self._buf))
        self._mid_line = False
        return self._take(start)

    # -- internals -------------------------------------------------------------------------

    def _take(self, start: int) -> Batch:
        batch, self._batch = self._batch, Batch()
        batch.consumed = self.offset - start
        return batch

    def _frame(self) -> None:
        buf = self._buf
        complete_end = buf.rfind(b"\n") + 1
        if complete_end > self._scanned:
            if self._scanned == 0 and self._pending is None:
                first = HEADER.match(buf, 0, complete_end)
                if first is not None:
                    self._pending = _Pending(*first.groups(), first.end())
                first = None  # a match reads the buffer by offsets: none is kept across a resize
            last = self._last_header(max(self._scanned - 1, 0), complete_end)
            if last is None:
                if self._pending is None:  # whole lines with no header before them can never join a record
                    self._count_orphans(0, complete_end)
                    self._consume(complete_end)
            elif self._holds_oversized(last):
                self._frame_one_by_one(complete_end)
            else:
                self._frame_in_bulk(last)
            self._scanned = buf.rfind(b"\n") + 1
        # The next header is already visible: the pending record cannot grow any more.
        complete_end = buf.rfind(b"\n") + 1
        if self._pending is not None and complete_end < len(buf):
            tail = HEADER.match(buf, complete_end)
            if tail is not None:
                following = _Pending(*tail.groups(), tail.end() - complete_end)  # before the buffer moves
                self._release_pending(complete_end)
                self._pending = following
        if len(buf) > self.max_record_bytes:
            self._cut_oversized()

    def _last_header(self, start: int, end: int) -> int | None:
        """Where the last header in buf[start:end] begins (it follows a newline), or None."""
        window = _LAST_HEADER_WINDOW
        while True:
            low = max(start, end - window)
            found = None
            for found in _NEXT_HEADER.finditer(self._buf, low, end):
                pass
            if found is not None:
                return found.start() + 1
            if low == start:
                return None
            window *= 4

    def _holds_oversized(self, end: int) -> bool:
        """Whether a record in buf[:end] could be over the size limit: some stretch of half the limit
        with no header in it. (A record over the limit always spans one of the probes.)"""
        half = self.max_record_bytes // 2
        for probe in range(0, end - half, max(half, 1)):
            found = _NEXT_HEADER.search(self._buf, probe)
            if found is None or found.start() - probe >= half:
                return True
        return False

    def _frame_in_bulk(self, last: int) -> None:
        """Finish every record in buf[:last] (none over the limit); the header at `last` is held.

        Count-only records are counted by level in one pass; the others are found by a second one.
        """
        buf, batch = self._buf, self._batch
        pending = self._pending
        if pending is None:  # orphan lines, then the first header
            first = _NEXT_HEADER.search(buf, 0)  # there is one: the header at `last`
            start = first.start() + 1
            pending = _Pending(*first.groups(), first.end() - start)
            first = None
            self._count_orphans(0, start)
            self._consume(start)
            last -= start
            if last == 0:  # the first header is the last: its record may still grow
                self._pending = pending
                return
        records = batch.records
        end = self._record_end(pending.message_start, last)
        if pending.level in self._count_only_raw:
            self._count_one(pending, end)
        else:
            records.append(self._record(pending, 0, end))
        # The loop below is the hot path of a catch-up: everything it calls is looked up once.
        # A record to build is held (its header's match) until the next header ends it.
        append, built = records.append, self._built
        levels = len(self._counted_levels)
        counted_groups = levels + 2
        counts = [0] * (levels + 3)
        held = None
        for match in self._bulk.finditer(buf, end - 1, last):
            if held is not None:
                append(built(held, match.start()))
                held = None
            index = match.lastindex
            if index <= counted_groups:  # a count-only header: counted, nothing else
                counts[index] += 1
            else:
                held = match
        if held is not None:
            append(built(held, last - 1))
            held = None
        match = None
        if any(counts):
            counted = batch.counted
            for level, n in zip(self._counted_levels, counts[3:]):
                if n:
                    counted[level] = counted.get(level, 0) + n
            newest = self._last_match(self._counted_stamp, last)
            batch.counted_time = (newest[0].decode("ascii"), int(newest[1]))
        self._discarding = False
        following = HEADER.match(buf, last)
        self._pending = _Pending(*following.groups(), following.end() - last)
        following = None
        self._consume(last)

    def _built(self, header: re.Match[bytes], newline: int) -> Record:
        """The record to build whose header `_bulk` matched, up to its final newline."""
        timestamp, msecs = header.group(1, 2)
        level = self._level_of_group[header.lastindex] or header.group(header.lastindex).decode("ascii")
        if timestamp != self._stamp[0]:  # records come many to a second: each second is decoded once
            self._stamp = (timestamp, timestamp.decode("ascii"))
        start, message_start = header.span()
        message = self._buf[message_start:newline].decode("utf-8", "replace")
        if "\r" in message:  # a log written on Windows
            message = message.replace("\r\n", "\n").rstrip("\r")
        offset = self.offset
        return _new_record(
            Record,
            (
                self.source,
                self._stamp[1],
                int(msecs),
                level,
                message,
                offset + start + 1,
                offset + newline + 1,
                False,
            ),
        )

    def _record_end(self, message_start: int, limit: int) -> int:
        """Where the record whose message starts at `message_start` ends: the next header, or `limit`."""
        buf = self._buf
        newline = buf.find(b"\n", message_start, limit)
        if newline < 0 or newline + 1 >= limit:
            return limit
        if HEADER.match(buf, newline + 1) is not None:  # the usual one-line record
            return newline + 1
        found = _NEXT_HEADER.search(buf, newline, limit)
        return limit if found is None else found.start() + 1

    def _last_match(self, pattern: re.Pattern[bytes], end: int) -> tuple[bytes, ...]:
        window = _LAST_HEADER_WINDOW
        while True:
            low = max(0, end - window)
            found = None
            for found in pattern.finditer(self._buf, low, end):
                pass
            if found is not None:
                return found.groups()
            window *= 4

    def _frame_one_by_one(self, complete_end: int) -> None:
        """The general path: every header in turn, records over the size limit cut and counted."""
        buf = self._buf
        done = 0  # buf[:done] is emitted or dropped; consumed once, after the scan
        pending = self._pending
        count_only = self._count_only_raw
        for match in _NEXT_HEADER.finditer(buf, max(self._scanned - 1, 0), complete_end):
            start = match.start() + 1
            if start > done:
                if pending is not None:
                    if pending.level in count_only:
                        self._count_one(pending, start - done)
                    else:
                        self._batch.records.append(self._record(pending, done, start))
                else:
                    self._count_orphans(done, start)
                done = start
            pending = _Pending(*match.groups(), match.end() - start)  # decoded only if it is built
        match = None  # noqa: F841 - drop the match before the buffer is resized
        self._pending = pending
        self._consume(done)

    def _release_pending(self, end: int) -> None:
        """Emit the held record as ending at `end` (or drop orphan bytes), and consume them."""
        if end == 0:
            return
        if self._pending is not None:
            if self._pending.level in self._count_only_raw:
                self._count_one(self._pending, end)
            else:
                self._batch.records.append(self._record(self._pending, 0, end))
            self._pending = None
        else:
            self._count_orphans(0, end)
        self._consume(end)

    def _count_one(self, pending: _Pending, size: int) -> None:
        batch = self._batch
        level = pending.level.decode("ascii")
        batch.counted[level] = batch.counted.get(level, 0) + 1
        batch.counted_time = (pending.timestamp.decode("ascii"), int(pending.msecs))
        if size > self.max_record_bytes:
            self.oversized_records += 1
            batch.counted_truncated += 1
        self._discarding = False

    def _record(self, pending: _Pending, start: int, end: int) -> Record:
        """The record in buf[start:end]; the buffer is left as it is."""
        timestamp, msecs, level, message_start = pending
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
        return Record(
            self.source,
            timestamp.decode("ascii"),
            int(msecs),
            _LEVELS.get(level) or level.decode("ascii"),
            message,
            self.offset + start,
            self.offset + end,
            truncated,
        )

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

    def _cut_oversized(self) -> None:
        if self._pending is None:
            tail = HEADER.match(self._buf, self._scanned)
            if tail is None:  # a huge line with no header: drop it
                self._count_orphans(0, len(self._buf))
                self._mid_line = not self._buf.endswith(b"\n")
                self._consume(len(self._buf))
                return
            following = _Pending(*tail.groups(), tail.end() - tail.start())
            self._release_pending(self._scanned)
            self._pending = following
        self._mid_line = not self._buf.endswith(b"\n")
        self._release_pending(len(self._buf))
        self._discarding = True


_new_record = tuple.__new__  # builds a Record without the Python-level __new__ of a named tuple
_KNOWN_LEVELS = ("ERROR", "WARNING", "INFO", "CALL", "DEBUG", "GUI", "STDOUT", "STDERR")
_LEVELS = {level.encode("ascii"): level for level in _KNOWN_LEVELS}
