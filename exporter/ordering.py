"""Records of several files handed on in time order. Pure: no I/O, `now` is passed in.

TDM writes two files the pipeline follows: log.txt, and (through the launcher) the captured output
with its GUI-only lines and the bridge's STATE records. Each is in time order on its own, but the
state needs them in time order together: "Checking login" (log.txt) opens a login and sets the
status `starting`; "Please log in to continue." (captured output) comes about 10 ms later and sets
`login_required`. A follower that wakes late (a loaded machine) reads both in one go; the framer
releases the GUI line at once, as the next header follows it, but holds log.txt's last record until
that file has been quiet. Handed on in the order the framers released them, the older record came
last and the status said `starting` for as long as TDM waited for a login.

So a batch a framer releases waits here while another file may still give an older record:
- that file is behind: its framer holds bytes it has not released, or the file grew after the poll
  read it (TDM wrote log.txt just after it was read, then the captured output just before it was).
  What comes from it is not older than the newest record it gave;
- or that file has an older batch that waits itself.
What goes on together is merged by the records' time stamps, each file's own order kept. Batches
go on whole and each file's in order, so the pipeline can commit a position at the first batch
still waiting.

A file that stays behind without being read further for `stall_seconds` (a last line never
finished, a file that cannot be read) is not waited for. In a catch-up on both files, batches of
a chunk each overlap in time and cannot go on whole in order: past `max_waiting_bytes` all that
waits goes on, merged, so memory stays at a few chunks' records; the order across such blocks is
then the files', as before this module.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass
from itertools import chain, islice
from operator import itemgetter, le
from typing import Iterable, Mapping

from .framing import Batch, Record

Stamp = tuple[str, int]  # a record's (timestamp, msecs): TDM's local time, comparable as is
STALL_SECONDS = 1.0
MAX_WAITING_BYTES = 2 << 20  # two chunks of a catch-up: its records, not a poll's, are kept


stamp = itemgetter(1, 2)  # a Record's (timestamp, msecs), taken in C: merging calls it for every record
assert stamp(Record("", "t", 1, "", "", 0, 0)) == ("t", 1)


@dataclass(slots=True)
class _Waiting:
    batch: Batch
    start: int  # file offset of the batch's first byte


class TimeOrder:
    """Batches released by the framers of several files, until they can go on in time order."""

    def __init__(self, stall_seconds: float = STALL_SECONDS, max_waiting_bytes: int = MAX_WAITING_BYTES) -> None:
        self.stall_seconds = stall_seconds
        self.max_waiting_bytes = max_waiting_bytes
        self._waiting: dict[str, deque[_Waiting]] = {}
        self._waiting_bytes = 0
        self._newest: dict[str, Stamp] = {}  # per file: the newest stamp handed on
        self._behind: dict[str, tuple[int, float]] = {}  # per file behind: (how far read, since when)

    def add(self, source: str, batch: Batch, start: int) -> None:
        """A batch a framer released; `start`: the file offset it begins at."""
        if not (batch.records or batch.counted or batch.consumed):
            return
        self._waiting.setdefault(source, deque()).append(_Waiting(batch, start))
        self._waiting_bytes += batch.consumed

    @property
    def waiting(self) -> bool:
        return any(self._waiting.values())

    def first_waiting(self, source: str) -> int | None:
        """The file offset of the first batch of `source` not handed on yet (a safe commit point)."""
        queue = self._waiting.get(source)
        return queue[0].start if queue else None

    def take(self, now: float, behind: Mapping[str, int], everything: bool = False) -> list[tuple[str, Batch]]:
        """The batches that may go on now, each file's in its order (`merged` orders their records).

        `behind`: for each file that may still give more (its framer holds bytes it has not released,
        or the file has bytes not read yet), how far it has been read.
        `everything`: all that waits, whatever the order (a file rotated).
        """
        self._note_behind(behind, now)
        if not self.waiting:
            return []
        if everything or self._waiting_bytes > self.max_waiting_bytes:
            counts = {source: len(queue) for source, queue in self._waiting.items()}
        else:
            counts = self._releasable(now)
        released: list[tuple[str, Batch]] = []
        for source, count in counts.items():
            queue = self._waiting[source]
            for _ in range(count):
                item = queue.popleft()
                self._waiting_bytes -= item.batch.consumed
                released.append((source, item.batch))
                if item.batch.records:
                    self._newest[source] = stamp(item.batch.records[-1])
        return released

    def deadline(self) -> float | None:
        """When a file that holds others back counts as stalled (then they go on without it)."""
        if not self.waiting:
            return None
        return min((since + self.stall_seconds for _, since in self._behind.values()), default=None)

    def clear(self) -> None:
        """Forget what waits and what went on (the pipeline rolls back and reads it again)."""
        self._waiting.clear()
        self._waiting_bytes = 0
        self._behind.clear()
        self._newest.clear()

    def _note_behind(self, behind: Mapping[str, int], now: float) -> None:
        for source in list(self._behind):
            if source not in behind:
                del self._behind[source]
        for source, read in behind.items():
            previous = self._behind.get(source)
            if previous is None or previous[0] != read:
                self._behind[source] = (read, now)

    def _releasable(self, now: float) -> dict[str, int]:
        """How many leading batches of each file can go on: start from all of them and keep back,
        until nothing changes, each batch newer than what another file may still give."""
        counts = {source: len(queue) for source, queue in self._waiting.items()}
        blocking = [source for source, (_, since) in self._behind.items() if now - since < self.stall_seconds]
        while True:
            floors = [(source, self._bound(source)) for source in blocking]
            for source, queue in self._waiting.items():
                first = _first_stamp(list(queue)[counts[source]:])
                if first is not None:
                    floors.append((source, first))
            changed = False
            for source, queue in self._waiting.items():
                limits = [floor for other, floor in floors if other != source]
                if not limits:
                    continue
                limit = None if None in limits else min(limits)  # None: a file held back with nothing seen
                for index in range(counts[source]):
                    records = queue[index].batch.records
                    if records and (limit is None or stamp(records[-1]) > limit):
                        counts[source], changed = index, True
                        break
            if not changed:
                return counts

    def _bound(self, source: str) -> Stamp | None:
        """What a file that is behind gives next is at least as new as: the newest it released (None:
        nothing yet)."""
        for item in reversed(self._waiting.get(source, ())):
            if item.batch.records:
                return stamp(item.batch.records[-1])
        return self._newest.get(source)


def _first_stamp(items: list[_Waiting]) -> Stamp | None:
    for item in items:
        if item.batch.records:
            return stamp(item.batch.records[0])
    return None


def merged(released: list[tuple[str, Batch]]) -> Iterable[Record]:
    """The records of `released` by time stamp; each file's own order is kept (a clock set back)."""
    by_source: dict[str, list[Record]] = {}
    for source, batch in released:
        if batch.records:
            by_source.setdefault(source, []).extend(batch.records)
    files = list(by_source.values())
    if len(files) == 1:
        return files[0]
    if all(map(_ascending, files)):
        # A stable sort of sorted runs is their merge, done in C (heapq.merge is Python: 3x slower).
        return sorted(chain.from_iterable(files), key=stamp)
    return heapq.merge(*files, key=stamp)  # a file's clock went back: sorting would reorder that file


def _ascending(records: list[Record]) -> bool:
    stamps = list(map(stamp, records))
    return all(map(le, stamps, islice(stamps, 1, None)))
