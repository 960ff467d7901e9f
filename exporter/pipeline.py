"""The log pipeline: tails -> framers -> patterns -> state, committed to the store in one step.

`RecordHandler` is the pure part shared by `replay` and the daemon. `Pipeline` adds files and the
store; `Follower` is the thread that drives it on filesystem wake-ups and a fallback poll.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from loguru import logger

from .bridge import STATE_LEVEL
from .events import Event, EventKind
from .inventory import InventoryState
from .framing import DEFAULT_MAX_RECORD_BYTES, DEFAULT_QUIET_SECONDS, Batch, Framer, Record
from .ordering import TimeOrder, merged
from .patterns import PatternSet
from .state import MinerState, Snapshot
from .positions import Position
from .tailer import Data, Reset, TailSet
from .timestamps import LocalClock
from .watcher import WATCHED_POLL_SECONDS

FALLBACK_POLL_SECONDS = 1.0
REPLAY_CHUNK = 1 << 20
# Events are committed at once (the history answers what /metrics shows); a change without events
# (the bridge's picture, DEBUG records, positions) waits up to this long to share a commit.
COMMIT_SECONDS = 1.0
CATCH_UP_BYTES = 8 << 20  # further behind than this, progress is logged while catching up
CATCH_UP_LOG_SECONDS = 5.0
RECORD_ERROR_LOG_SECONDS = 60.0  # one failing record is logged; more in this window are only counted
_ROTATION_REASONS = frozenset({"rotated", "replaced", "deleted"})


@dataclass
class RecordHandler:
    """Folds records into the state and collects the events worth storing.

    One record never stops the others: a time that cannot be read takes the time of the record
    before it, and a record whose patterns or state update fail is still counted.
    """

    patterns: PatternSet
    clock: LocalClock
    state: MinerState
    keep_events: bool = True
    listeners: list[Callable[[Event], None]] = field(default_factory=list)  # told of every event
    events: list[Event] = field(default_factory=list)
    _last_time: float | None = None
    _error_logged_at: float = float("-inf")

    def take(self, source: str, batch: Batch) -> int:
        """Handle what one framer call gave; returns how many records it finished."""
        self.handle(batch.records)
        return self.count(source, batch)

    def count(self, source: str, batch: Batch) -> int:
        """Count what one framer call gave, its records already handled; returns how many it finished."""
        if batch.counted:
            try:
                when = self.clock.to_epoch(*batch.counted_time)
            except ValueError:  # count-only records' times are not read one by one: not counted as bad
                when = self._last_time if self._last_time is not None else time.time()
            self.state.count_records(batch.counted, when, batch.counted_truncated)
        self.state.count_file(source, read_bytes=batch.consumed)
        return len(batch)

    def handle(self, records: Iterable[Record]) -> None:
        # The hot path of a catch-up: names are looked up once, records are counted by level once
        # per batch, and events are only built when someone keeps or hears them.
        state, listeners, keep, kept = self.state, self.listeners, self.keep_events, self.events
        second_of, matches_of, apply_match = self.clock.second, self.patterns.matches, state.apply_match
        build = keep or bool(listeners)
        levels: dict[str, int] = {}
        truncated = 0
        when = newest = self._last_time
        stamp, second = None, 0.0  # many records share a second: each is converted once
        for record in records:
            source, timestamp, msecs, level, text, _, _, cut = record  # one unpacking: faster than each field by name
            try:
                if timestamp != stamp:
                    second = second_of(timestamp)
                    stamp = timestamp
                when = second + msecs / 1000.0  # as LocalClock.to_epoch
            except ValueError:  # 2026-02-30: the header has the shape of a time but is none
                when = self._bad_time(when)
            if newest is None or when > newest:
                newest = when
            levels[level] = levels.get(level, 0) + 1
            if cut:
                truncated += 1
            if level == STATE_LEVEL:  # the bridge's: TDM's own picture, not text for patterns
                state.inventory.apply(text, when)  # never raises: it counts what it cannot read
                continue
            try:
                message, matches = matches_of(level, text)
                for kind, fields in matches:
                    if not build or kind is EventKind.USER_METRIC:
                        apply_match(kind, when, level, message, fields)
                        continue
                    event = Event(kind, when, level, source, message, dict(fields))
                    apply_match(kind, when, level, message, event.fields)
                    if keep:
                        kept.append(event)
                    for listener in listeners:
                        listener(event)
            except Exception as error:  # a bug in one step must not lose the records after it
                self._failed(record, error)
        if levels:
            self._last_time = when
            state.count_records(levels, newest, truncated)

    def take_events(self) -> list[Event]:
        events, self.events = self.events, []
        return events

    def _bad_time(self, previous: float | None) -> float:
        """The time for a record whose own cannot be read: the one before it's, or now."""
        self.state.count_bad_timestamp()
        return previous if previous is not None else time.time()

    def _failed(self, record: Record, error: Exception) -> None:
        self.state.count_record_error()
        now = time.monotonic()
        if now - self._error_logged_at >= RECORD_ERROR_LOG_SECONDS:
            self._error_logged_at = now
            logger.opt(exception=error).error(
                "log record at {}:{} could not be handled (counted, events skipped): {!r}",
                record.source, record.start, error,
            )


def replay(
    paths: Sequence[Path],
    handler: RecordHandler,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    progress: bool = False,
) -> None:
    """Read whole files from the start, as `mtail -one_shot` does. Writes nothing.

    `progress`: draw a progress bar (bytes, records/s) on stderr.
    """
    bar = None
    if progress:
        from tqdm import tqdm  # only when asked: it is not needed otherwise

        total = sum(path.stat().st_size for path in paths)
        bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="replay", dynamic_ncols=True)
    chunk = bytearray(REPLAY_CHUNK)  # one buffer read into again and again: no fresh pages per read
    records = 0
    try:
        for path in paths:
            key = str(path)
            framer = Framer(key, max_record_bytes=max_record_bytes, count_only=handler.patterns.silent_levels())
            with open(path, "rb", buffering=0) as file:
                while size := file.readinto(chunk):
                    records += handler.take(key, framer.feed(memoryview(chunk)[:size], 0.0))
                    if bar is not None:
                        bar.update(size)
                        bar.set_postfix(records=records, refresh=False)
            records += handler.take(key, framer.flush())
    finally:
        if bar is not None:
            bar.set_postfix(records=records)
            bar.close()


class Pipeline:
    """Follows files and commits records, positions and totals together, so a restart resumes
    exactly where the last commit ended: nothing lost, nothing counted twice."""

    def __init__(
        self,
        sources: Sequence[str],
        handler: RecordHandler,
        store=None,
        start_at: str = "beginning",
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        quiet_seconds: float = DEFAULT_QUIET_SECONDS,
    ) -> None:
        self.handler = handler
        self.store = store
        self.lock = threading.Lock()  # guards the state against scrapes
        self._sources = sources
        self._start_at = start_at
        self._max_record_bytes = max_record_bytes
        self._quiet = quiet_seconds
        self._count_only = handler.patterns.silent_levels()
        self._framers: dict[str, Framer] = {}
        self._read_errors: dict[str, str] = {}  # file -> what the last read said, while it fails
        self._order = TimeOrder()  # released records wait there until they can go on in time order
        self.catch_up = CatchUp()
        self._rolled_back = False
        self._dirty = False  # handled since the last commit
        self._committed_at = float("-inf")
        self.tails = self._restore()

    def _restore(self) -> TailSet:
        """Tails at the committed positions, and the state as committed with them."""
        positions = {}
        if self.store is not None:
            positions = self.store.load_positions()
            totals, saved = self.store.load_totals(), self.store.load_state()
            self.handler.state.restore(totals, saved.get("miner"))
            self.handler.state.inventory = InventoryState()  # a rollback forgets what was not committed
            self.handler.state.inventory.restore(saved.get("bridge"))
        # What the store holds now: a commit writes only what differs from it.
        self._committed = _Committed(dict(positions), self.handler.state.totals(), self.handler.state.to_json())
        self._saved_inventory = self.handler.state.inventory.revision
        return TailSet(self._sources, positions, start_at=self._start_at)

    def set_patterns(self, patterns: PatternSet) -> None:
        """New user patterns from a reload; records already read keep what they gave."""
        with self.lock:
            self.handler.patterns = patterns
            self._count_only = patterns.silent_levels()
            for framer in self._framers.values():
                framer.count_only = self._count_only

    @property
    def patterns(self) -> PatternSet:
        return self.handler.patterns

    def mark_session_invalid(self) -> None:
        """The token check found TDM's login invalid: say so until TDM logs in again."""
        with self.lock:
            self.handler.state.session = "invalid"

    def snapshot(self, wall_now: float | None = None) -> Snapshot:
        with self.lock:
            return self.handler.state.snapshot(time.time() if wall_now is None else wall_now)

    def known_games(self) -> list[str]:
        """The games TDM can mine (the bridge's list and its campaigns') and those seen in its log."""
        with self.lock:
            state = self.handler.state
            inventory = state.snapshot(time.time()).inventory
            bridged = list(inventory.games) + [c.game for c in inventory.campaigns if c.game] if inventory is not None else []
            return bridged + list(state.known_games)

    def poll(self, now: float) -> int:
        """Read what is new everywhere, emit due records, commit (at most once a second).
        Returns the records handled.

        If anything fails on the way, what was read since the last commit is forgotten and read
        again next time: a position is never committed past records that were not handled.
        """
        with self.lock:
            try:
                return self._poll(now)
            except BaseException:
                self._rollback()
                raise

    def _poll(self, now: float) -> int:
        if self._rolled_back:
            self.tails = self._restore()
            self._rolled_back = False
        records = read = 0
        items = self.tails.read()
        changed = bool(items)
        backlog = self.tails.backlog()  # measured right after reading: a file that grew since is behind
        self.handler.state.backlog = backlog
        unfed = Counter(item.key for item in items if isinstance(item, Data))
        for item in items:
            if isinstance(item, Reset):
                records += self._reset(item, now)
            else:
                self._feed(item, now)
                read += len(item.data)
                unfed[item.key] -= 1
                # Chunk by chunk, as far as the order allows: a catch-up keeps one chunk's records, not a poll's.
                records += self._hand_on(now, backlog, unfed)
        changed |= self._note_read_errors()
        for key, framer in self._framers.items():
            start = framer.offset
            batch = framer.flush_due(now)
            if batch.consumed:
                self._order.add(key, batch, start)
                changed = True
        records += self._hand_on(now, backlog, unfed)
        message = self.catch_up.update(now, sum(backlog.values()), read, records)
        if message is not None:
            logger.info("log files: {}", message)
        self._dirty |= changed
        if self._dirty and (self.handler.events or now - self._committed_at >= COMMIT_SECONDS):
            self._commit()
            self._dirty, self._committed_at = False, now
        return records

    def _rollback(self) -> None:
        if self.store is None:  # nothing committed to go back to: carry on from here
            return
        self.handler.take_events()
        self._framers.clear()
        self._order.clear()
        self.tails.close()
        self._dirty = False
        self._rolled_back = True  # the next poll reopens the files at the committed positions

    def next_deadline(self) -> float | None:
        """When a held record is due, or what was handled is to be committed."""
        deadlines = [d for f in self._framers.values() if (d := f.deadline()) is not None]
        if (stalled := self._order.deadline()) is not None:
            deadlines.append(stalled)
        if self._dirty:
            deadlines.append(self._committed_at + COMMIT_SECONDS)
        return min(deadlines, default=None)

    def wants_more(self) -> bool:
        """A tail stopped early (a large backlog): poll again without waiting."""
        return self.tails.pending and not self._rolled_back

    def _feed(self, item: Data, now: float) -> None:
        framer = self._framers.get(item.key)
        if framer is None or framer.fed_until != item.offset:
            if framer is not None:  # a gap: the tail moved on without telling; start clean
                self._release(item.key, framer, framer.flush())
            framer = self._framers[item.key] = Framer(
                item.key, item.offset, self._max_record_bytes, self._quiet, self._count_only
            )
        self._release(item.key, framer, framer.feed(item.data, now))

    def _release(self, key: str, framer: Framer, batch: Batch) -> None:
        """A batch the framer released: it waits for its turn (`_hand_on`)."""
        self._order.add(key, batch, framer.offset - batch.consumed)

    def _hand_on(
        self, now: float, backlog: Mapping[str, int], unfed: Mapping[str, int], everything: bool = False
    ) -> int:
        """Give the handler, in time order, the records no other file can still precede; returns
        how many records went on. `backlog`: what each file has not been read of (it grew since);
        `unfed`: chunks read from each file that its framer has not had yet."""
        framers = self._framers
        behind = {}
        for key in framers.keys() | backlog.keys() | unfed.keys():
            framer = framers.get(key)
            if backlog.get(key) or unfed.get(key) or (framer is not None and framer.fed_until > framer.offset):
                behind[key] = framer.fed_until if framer is not None else -1  # how far read: moves unless stalled
        released = self._order.take(now, behind, everything)
        if len({key for key, batch in released if batch.records}) <= 1:  # one file: nothing to interleave
            return sum(self.handler.take(key, batch) for key, batch in released)
        self.handler.handle(merged(released))
        return sum(self.handler.count(key, batch) for key, batch in released)

    def _reset(self, item: Reset, now: float) -> int:
        framer = self._framers.pop(item.key, None)
        records = 0
        if framer is not None:
            self._release(item.key, framer, framer.flush())  # the old file is complete
            # What waits goes on now: a position in the old file means nothing in the new one.
            records = self._hand_on(now, {}, {}, everything=True)
        if item.reason in _ROTATION_REASONS:
            self.handler.state.count_file(item.key, rotations=1)
        elif item.reason == "truncated":
            self.handler.state.count_file(item.key, truncations=1)
        logger.info("log file {}: {}", item.key, item.reason)
        return records

    def _note_read_errors(self) -> bool:
        """Count every failed read; log a file's problem once, and again when it changes or ends."""
        errors = {key: _describe(error) for key, error in self.tails.errors().items()}
        for key, problem in errors.items():
            self.handler.state.count_file(key, read_errors=1)
            if self._read_errors.get(key) != problem:
                logger.warning("log file {}: cannot read: {}", key, problem)
        for key in self._read_errors.keys() - errors.keys():
            logger.info("log file {}: readable again", key)
        self._read_errors = errors
        return bool(errors)

    def _commit(self) -> None:
        """Store the events, and the positions, totals and state that differ from the last commit
        (at rest only a few counters move: rewriting every row cost more than the records)."""
        events = self.handler.take_events()
        if self.store is None:
            return
        committed = self._committed
        positions = {}
        for key, tail in self.tails.items():
            framer = self._framers.get(key)
            waiting = self._order.first_waiting(key)
            offset = waiting if waiting is not None else framer.offset if framer is not None else None
            position = tail.position_at(offset) if offset is not None else tail.position()
            if position is not None and committed.positions.get(key) != position:
                positions[key] = position
        state = self.handler.state
        totals = state.totals()
        changed = {key: value for key, value in totals.items() if committed.totals.get(key) != value}
        miner = state.to_json()
        rows = {"miner": miner} if miner != committed.state else {}
        if state.inventory.revision != self._saved_inventory:  # it can be large: saved when it moved
            rows["bridge"] = state.inventory.to_json()
        if not (events or positions or changed or rows):
            return
        self.store.commit(events, positions.values(), changed, rows)
        committed.positions.update(positions)
        committed.totals, committed.state = totals, miner
        self._saved_inventory = state.inventory.revision

    def close(self) -> None:
        """Commit what was handled since the last commit, and close the files."""
        with self.lock:
            try:
                if self._dirty and not self._rolled_back:
                    self._commit()
                    self._dirty = False
            finally:
                self.tails.close()


@dataclass
class _Committed:
    """What the last commit left in the store."""

    positions: dict[str, Position]
    totals: dict
    state: str


def _describe(error: OSError) -> str:
    return error.strerror or str(error)


class CatchUp:
    """Progress of reading a backlog, for a log line every few seconds while far behind.

    Pure: the pipeline gives it the time, what is left and what was just read.
    """

    def __init__(self, threshold: int = CATCH_UP_BYTES, every: float = CATCH_UP_LOG_SECONDS) -> None:
        self.threshold = threshold
        self.every = every
        self._started: float | None = None  # when the backlog was first seen past the threshold
        self._next_report = 0.0
        self._bytes = self._records = 0  # read since then

    def update(self, now: float, backlog: int, read: int, records: int) -> str | None:
        """A line to log now, or None."""
        if self._started is None:
            if backlog <= self.threshold:
                return None
            self._started, self._next_report = now, now + self.every
            self._bytes, self._records = read, records  # the read that found the backlog counts
            return f"catching up: {_megabytes(backlog + read)} to read"
        self._bytes += read
        self._records += records
        elapsed = max(now - self._started, 1e-9)
        if backlog == 0:
            self._started = None
            return (
                f"caught up: {_megabytes(self._bytes)}, {self._records:,} records "
                f"in {elapsed:.1f} s ({self._records / elapsed:,.0f} records/s)"
            )
        if now < self._next_report:
            return None
        self._next_report = now + self.every
        done = self._bytes / (self._bytes + backlog)
        speed = self._bytes / elapsed
        eta = f"{backlog / speed:.0f} s" if speed > 0 else "unknown"
        return (
            f"catching up: {100 * done:.0f}% ({_megabytes(backlog)} left), "
            f"{self._records / elapsed:,.0f} records/s, ETA {eta}"
        )


def _megabytes(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"


class Follower:
    """The pipeline's thread: wakes on filesystem events or the fallback poll."""

    def __init__(self, pipeline: Pipeline, watcher, poll_seconds: float = FALLBACK_POLL_SECONDS) -> None:
        self.pipeline = pipeline
        self.watcher = watcher
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="twitchminert-follower")

    def start(self) -> None:
        self.watcher.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.watcher.wake()
        if self._thread.is_alive():
            self._thread.join()
        self.watcher.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.pipeline.poll(time.monotonic())
            except Exception as error:  # a bad disk or file must not kill the follower
                logger.exception("log pipeline: {}", error)
            if self.pipeline.wants_more():
                continue
            timeout = self.poll_seconds if not self.watcher.watching() else max(self.poll_seconds, WATCHED_POLL_SECONDS)
            deadline = self.pipeline.next_deadline()
            if deadline is not None:
                timeout = max(0.0, min(timeout, deadline - time.monotonic()))
            self.watcher.wait(timeout)
