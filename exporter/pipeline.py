"""The log pipeline: tails -> framers -> patterns -> state, committed to the store in one step.

`RecordHandler` is the pure part shared by `replay` and the daemon. `Pipeline` adds files and the
store; `Follower` is the thread that drives it on filesystem wake-ups and a fallback poll.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from loguru import logger

from .events import Event, EventKind
from .framing import DEFAULT_MAX_RECORD_BYTES, DEFAULT_QUIET_SECONDS, Framer, Record
from .patterns import PatternSet
from .state import MinerState, Snapshot
from .tailer import Data, Reset, TailSet
from .timestamps import LocalClock

FALLBACK_POLL_SECONDS = 1.0
REPLAY_CHUNK = 1 << 20
_ROTATION_REASONS = frozenset({"rotated", "replaced", "deleted"})


@dataclass
class RecordHandler:
    """Folds records into the state and collects the events worth storing."""

    patterns: PatternSet
    clock: LocalClock
    state: MinerState
    keep_events: bool = True
    listeners: list[Callable[[Event], None]] = field(default_factory=list)  # told of every event
    events: list[Event] = field(default_factory=list)

    def handle(self, records: Iterable[Record]) -> None:
        state, patterns, clock = self.state, self.patterns, self.clock
        for record in records:
            when = clock.to_epoch(record.timestamp, record.msecs)
            state.count_record(record.level, when, record.truncated)
            for event in patterns.events(record, when):
                state.apply(event)
                if event.kind is EventKind.USER_METRIC:
                    continue
                if self.keep_events:
                    self.events.append(event)
                for listener in self.listeners:
                    listener(event)

    def take(self, framer: Framer, records: list[Record]) -> int:
        """Handle what a framer call gave, the records it only counted included."""
        self.handle(records)
        counted, last, truncated = framer.take_counted()
        if counted:
            when = self.clock.to_epoch(*last)
            self.state.count_records(counted, when, truncated)
        return len(records) + sum(counted.values())

    def take_events(self) -> list[Event]:
        events, self.events = self.events, []
        return events


def replay(paths: Sequence[Path], handler: RecordHandler, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> None:
    """Read whole files from the start, as `mtail -one_shot` does. Writes nothing."""
    for path in paths:
        key = str(path)
        framer = Framer(key, max_record_bytes=max_record_bytes, count_only=handler.patterns.silent_levels())
        with open(path, "rb") as file:
            while chunk := file.read(REPLAY_CHUNK):
                handler.take(framer, framer.feed(chunk, 0.0))
                handler.state.count_file(key, read_bytes=len(chunk))
        handler.take(framer, framer.flush())


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
        self._max_record_bytes = max_record_bytes
        self._quiet = quiet_seconds
        self._count_only = handler.patterns.silent_levels()
        self._framers: dict[str, Framer] = {}
        positions = {}
        if store is not None:
            positions = store.load_positions()
            totals, saved = store.load_totals(), store.load_state()
            handler.state.restore(totals, saved.get("miner"))
        self.tails = TailSet(sources, positions, start_at=start_at)

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

    def poll(self, now: float) -> int:
        """Read what is new everywhere, emit due records, commit. Returns records committed."""
        with self.lock:
            records = 0
            changed = False
            for item in self.tails.read():
                changed = True
                if isinstance(item, Reset):
                    records += self._reset(item)
                else:
                    records += self._feed(item, now)
            for key, framer in self._framers.items():
                before = framer.offset
                emitted = self.handler.take(framer, framer.flush_due(now))
                if emitted:
                    records += emitted
                    self.handler.state.count_file(key, read_bytes=framer.offset - before)
                    changed = True
            if changed:
                self._commit()
            return records

    def next_deadline(self) -> float | None:
        deadlines = [d for f in self._framers.values() if (d := f.deadline()) is not None]
        return min(deadlines, default=None)

    def wants_more(self) -> bool:
        """A tail stopped early (a large backlog): poll again without waiting."""
        return self.tails.pending

    def _feed(self, item: Data, now: float) -> int:
        framer = self._framers.get(item.key)
        if framer is None or framer.fed_until != item.offset:
            if framer is not None:  # a gap: the tail moved on without telling; start clean
                self.handler.take(framer, framer.flush())
            framer = self._framers[item.key] = Framer(
                item.key, item.offset, self._max_record_bytes, self._quiet, self._count_only
            )
        before = framer.offset
        records = self.handler.take(framer, framer.feed(item.data, now))
        self.handler.state.count_file(item.key, read_bytes=framer.offset - before)
        return records

    def _reset(self, item: Reset) -> int:
        framer = self._framers.pop(item.key, None)
        records = 0
        if framer is not None:
            before = framer.offset
            records = self.handler.take(framer, framer.flush())  # the old file is complete
            self.handler.state.count_file(item.key, read_bytes=framer.offset - before)
        if item.reason in _ROTATION_REASONS:
            self.handler.state.count_file(item.key, rotations=1)
        elif item.reason == "truncated":
            self.handler.state.count_file(item.key, truncations=1)
        logger.info("log file {}: {}", item.key, item.reason)
        return records

    def _commit(self) -> None:
        events = self.handler.take_events()
        if self.store is None:
            return
        positions = []
        for key, tail in self.tails.items():
            framer = self._framers.get(key)
            position = tail.position_at(framer.offset) if framer is not None else tail.position()
            if position is not None:
                positions.append(position)
        state = self.handler.state
        self.store.commit(events, positions, state.totals(), {"miner": state.to_json()})

    def close(self) -> None:
        self.tails.close()


class Follower:
    """The pipeline's thread: wakes on filesystem events or the fallback poll."""

    def __init__(
        self,
        pipeline: Pipeline,
        watcher,
        on_error: Callable[[Exception], None] | None = None,
        poll_seconds: float = FALLBACK_POLL_SECONDS,
        housekeeping: Callable[[], None] | None = None,
        housekeeping_seconds: float = 600.0,
    ) -> None:
        self.pipeline = pipeline
        self.watcher = watcher
        self.poll_seconds = poll_seconds
        self._on_error = on_error
        self._housekeeping = housekeeping
        self._housekeeping_seconds = housekeeping_seconds
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
        next_housekeeping = time.monotonic() + self._housekeeping_seconds
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                self.pipeline.poll(now)
                if self._housekeeping is not None and now >= next_housekeeping:
                    next_housekeeping = now + self._housekeeping_seconds
                    self._housekeeping()
            except Exception as error:  # a bad disk or file must not kill the follower
                logger.exception("log pipeline: {}", error)
                if self._on_error is not None:
                    self._on_error(error)
            if self.pipeline.wants_more():
                continue
            timeout = self.poll_seconds
            deadline = self.pipeline.next_deadline()
            if deadline is not None:
                timeout = max(0.0, min(timeout, deadline - time.monotonic()))
            self.watcher.wait(timeout)
