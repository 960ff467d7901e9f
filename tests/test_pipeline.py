"""The log pipeline in-process: RecordHandler, replay, Pipeline with a real store, Follower with a real watcher.

Bad input must never lose data: a record with an impossible date, a pattern or state step that
raises, a commit that fails, a log path that cannot be read.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from loguru import logger
from prometheus_client import CollectorRegistry

from conftest import REPO, sample, wait_until
from exporter.events import EventKind
from exporter.patterns import PatternSet
from exporter.metrics import StateCollector
from exporter.pipeline import CatchUp, Follower, Pipeline, RecordHandler, replay
from exporter.state import MinerState
from exporter.store import Store
from exporter.timestamps import LocalClock, zone
from exporter.watcher import Watcher


def line(message: str, level: str = "INFO", ts: str = "2026-11-23 22:23:54", msecs: str = "123") -> str:
    return f"{ts}.{msecs}:\t{level:>7}:\t{message}\n"


def handler(**kwargs) -> RecordHandler:
    return RecordHandler(PatternSet.builtin(), LocalClock(zone("UTC")), MinerState(), **kwargs)


def records(state: MinerState, level: str) -> float:
    return state.counters.get(("tdm_log_records_total", (("level", level),)), 0.0)


def snapshot_records(pipeline: Pipeline, level: str) -> float:
    return pipeline.snapshot().counters.get(("tdm_log_records_total", (("level", level),)), 0.0)


def counter(state: MinerState, name: str, **labels: str) -> float:
    return state.counters.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def log_lines() -> list[str]:
    """Records around a header whose date does not exist, of every kind of level."""
    return [
        line("Checking login", ts="2026-11-23 22:00:00"),
        line("Request: x", "DEBUG"),
        line("Websocket[0] connected.", ts="2026-02-30 10:00:00"),  # no 30th of February
        line("Request: y", "DEBUG", ts="2026-13-45 10:00:00"),  # no 13th month: counted only
        line("Websocket[1] connected.", ts="2026-13-45 10:00:00"),
        line("Login successful, user ID: 1", ts="2026-11-23 22:00:05"),
    ]


# -- impossible dates ------------------------------------------------------------------------------


def test_a_record_with_an_impossible_date_is_counted_with_the_time_before_it(tmp_path: Path, log_lines) -> None:
    log = tmp_path / "log.txt"
    log.write_text("".join(log_lines))
    h = handler(keep_events=True)
    replay([log], h)
    state = h.state
    assert records(state, "INFO") == 4 and records(state, "DEBUG") == 2
    assert counter(state, "tdm_log_bad_timestamps_total") == 2  # the two INFO records read with bad dates
    assert counter(state, "tdm_events_total", kind="ws_connected") == 2
    assert state.websocket_shards == {0, 1}
    times = {e.fields.get("shard"): e.time for e in h.take_events() if e.kind is EventKind.WS_CONNECTED}
    checking = datetime(2026, 11, 23, 22, 0, 0, tzinfo=timezone.utc).timestamp() + 0.123  # the record before them
    assert times == {0: checking, 1: checking}
    assert state.session == "authenticated"


def test_the_first_record_with_an_impossible_date_takes_the_time_of_the_read(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    log.write_text(line("Checking login", ts="2026-02-30 10:00:00") + line("Websocket[0] connected."))
    h = handler()
    replay([log], h)
    assert records(h.state, "INFO") == 2
    assert counter(h.state, "tdm_log_bad_timestamps_total") == 1
    assert h.state.checking_since is not None and h.state.checking_since > 1.7e9  # now-ish, not 0


def test_replay_of_a_file_with_an_impossible_date_exits_0_with_every_record(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    body = [line(f"Websocket[{i % 4}] connected.", ts=f"2026-11-23 22:{i // 60 % 60:02d}:{i % 60:02d}") for i in range(5000)]
    log.write_text(line("Checking login", ts="2026-02-30 10:00:00") + "".join(body) + line("x", "ERROR", ts="2026-13-45 25:61:61"))
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "replay", str(log), "--timezone", "UTC"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert sample(result.stdout, "tdm_log_records_total", level="INFO") == 5001
    assert sample(result.stdout, "tdm_log_records_total", level="ERROR") == 1
    assert sample(result.stdout, "tdm_log_bad_timestamps_total") == 2
    assert sample(result.stdout, "tdm_events_total", kind="ws_connected") == 5000


# -- one failing record never loses the others -------------------------------------------------------


class ExplodingPatterns(PatternSet):
    """Built-in patterns, except that one message makes matching raise (a bug in a pattern)."""

    def matches(self, level, message):
        if message == "boom":
            raise RuntimeError("a pattern failed")
        return super().matches(level, message)


class ExplodingState(MinerState):
    """A state whose handling of one event kind raises (a bug in a state step)."""

    def apply_match(self, kind, time, level, message, fields):
        if kind is EventKind.LOGIN_SUCCESSFUL:
            raise KeyError("a state step failed")
        super().apply_match(kind, time, level, message, fields)


@pytest.mark.parametrize("keep_events", [False, True], ids=["lazy-events", "built-events"])
def test_a_failing_pattern_or_state_step_loses_no_other_record(tmp_path: Path, keep_events: bool) -> None:
    log = tmp_path / "log.txt"
    log.write_text(
        line("Websocket[0] connected.")
        + line("boom")
        + line("Login successful, user ID: 1")
        + line("Request", "DEBUG")
        + line("Websocket[1] connected.")
    )
    messages: list[str] = []
    sink = logger.add(messages.append, level="ERROR")
    try:
        h = RecordHandler(
            ExplodingPatterns(PatternSet.builtin()._builtins), LocalClock(zone("UTC")), ExplodingState(), keep_events
        )
        replay([log], h)
    finally:
        logger.remove(sink)
    state = h.state
    assert records(state, "INFO") == 4 and records(state, "DEBUG") == 1
    assert counter(state, "tdm_log_record_errors_total") == 2
    assert state.websocket_shards == {0, 1}  # the record after the failures was handled
    assert len(messages) == 1 and "could not be handled" in messages[0]  # logged once, not per record


# -- Pipeline with a store ---------------------------------------------------------------------------


class FailingStore:
    """A real store whose next commit fails (a full disk), once."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.fail_next = False

    def commit(self, *args, **kwargs):
        if self.fail_next:
            self.fail_next = False
            raise OSError(28, "No space left on device")
        return self._store.commit(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._store, name)


def test_a_failed_commit_rereads_from_the_committed_position(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    log.write_text(line("Websocket[0] connected.") + line("x"))
    with Store.open(tmp_path / "state.db") as real:
        store = FailingStore(real)
        pipeline = Pipeline([str(log)], handler(), store, quiet_seconds=0.0)
        pipeline.poll(0.0)
        pipeline.poll(1.0)  # the quiet flush of the held last record
        assert records(pipeline.handler.state, "INFO") == 2
        with log.open("a") as file:
            file.write(line("Websocket[1] connected.") + line("Websocket[2] connected.") + line("y"))
        store.fail_next = True
        with pytest.raises(OSError):
            pipeline.poll(2.0)
        for now in (3.0, 4.0):
            pipeline.poll(now)
        state = pipeline.handler.state
        assert records(state, "INFO") == 5  # none lost, none counted twice
        assert counter(state, "tdm_events_total", kind="ws_connected") == 3
        pipeline.close()
        assert real.load_totals()[("tdm_log_records_total", (("level", "INFO"),))] == 5
        assert real.load_positions()[str(log)].offset == log.stat().st_size


def test_pipeline_restart_resumes_exactly(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    log.write_text("".join(line(f"m{i}") + line("noise", "DEBUG") for i in range(100)))
    db = tmp_path / "state.db"
    with Store.open(db) as store:
        first = Pipeline([str(log)], handler(), store, quiet_seconds=0.0)
        first.poll(0.0)
        first.close()
    with log.open("a") as file:
        file.write(line("last"))
    with Store.open(db) as store:
        second = Pipeline([str(log)], handler(), store, quiet_seconds=0.0)
        second.poll(0.0)
        second.poll(1.0)
        second.close()
        state = second.handler.state
        assert records(state, "INFO") == 101 and records(state, "DEBUG") == 100
        assert counter(state, "tdm_log_read_bytes_total", file=str(log)) == log.stat().st_size


@pytest.mark.parametrize("how", ["directory", "path through a file"])
def test_a_log_that_cannot_be_read_is_counted_and_logged_once(tmp_path: Path, how: str) -> None:
    if how == "directory":
        path = tmp_path / "log.txt"
        path.mkdir()  # unreadable as a log, even for root
    else:
        (tmp_path / "file").write_text("")
        path = tmp_path / "file" / "log.txt"
    messages: list[str] = []
    sink = logger.add(messages.append, level="WARNING")
    try:
        pipeline = Pipeline([str(path)], handler())
        for now in range(3):
            pipeline.poll(float(now))
    finally:
        logger.remove(sink)
    state = pipeline.handler.state
    assert counter(state, "tdm_log_read_errors_total", file=str(path)) == 3
    assert len([m for m in messages if "cannot read" in m]) == 1, messages
    assert str(path) in messages[0]
    pipeline.close()


def test_a_log_that_becomes_readable_is_followed(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.mkdir()
    messages: list[str] = []
    sink = logger.add(messages.append, level="INFO")
    try:
        pipeline = Pipeline([str(path)], handler(), quiet_seconds=0.0)
        pipeline.poll(0.0)
        path.rmdir()
        path.write_text(line("Checking login"))
        pipeline.poll(1.0)
        pipeline.poll(2.0)
    finally:
        logger.remove(sink)
    assert records(pipeline.handler.state, "INFO") == 1
    assert any("readable again" in m for m in messages)
    pipeline.close()


# -- Follower: the thread, with a real watcher ---------------------------------------------------------


def test_follower_follows_appends_and_stops_cleanly(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    log.write_text(line("Checking login"))
    pipeline = Pipeline([str(log)], handler())
    follower = Follower(pipeline, Watcher([str(log)]), poll_seconds=0.2)
    follower.start()
    try:
        wait_until(lambda: snapshot_records(pipeline, "INFO") == 1, what="the first record")
        with log.open("a") as file:
            file.write(line("Websocket[3] connected.") + line("noise", "DEBUG"))
        wait_until(lambda: pipeline.snapshot().websocket_shards == {3}, what="the appended records")
        wait_until(lambda: snapshot_records(pipeline, "DEBUG") == 1, what="the counted record")
    finally:
        follower.stop()
        pipeline.close()


# -- catching up on a backlog ------------------------------------------------------------------------


def test_catch_up_reports_percent_rate_and_eta_then_caught_up() -> None:
    catch_up = CatchUp(threshold=100, every=5.0)
    assert catch_up.update(0.0, 50, 10, 1) is None  # a few bytes behind: nothing to say
    assert catch_up.update(1.0, 3 << 20, 1 << 20, 10) == "catching up: 4.0 MiB to read"  # the first read too
    assert catch_up.update(2.0, 2 << 20, 1 << 20, 10) is None  # not 5 s yet
    line = catch_up.update(6.0, 2 << 20, 0, 30)
    assert line == "catching up: 50% (2.0 MiB left), 10 records/s, ETA 5 s"
    assert catch_up.update(8.0, 0, 2 << 20, 50).startswith("caught up: 4.0 MiB, 100 records in 7.0 s")
    assert catch_up.update(9.0, 50, 0, 0) is None


def test_a_large_backlog_is_exported_and_its_catch_up_logged(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    block = "".join(line(f"Websocket[{i % 4}] connected.") + line("Request: " + "x" * 300, "DEBUG") for i in range(1000))
    with log.open("w") as file:
        while file.tell() < 20 << 20:  # more than one poll reads (8 MiB): a backlog
            file.write(block)
    messages: list[str] = []
    sink = logger.add(messages.append, level="INFO", format="{message}")
    try:
        pipeline = Pipeline([str(log)], handler(), quiet_seconds=0.0)
        pipeline.catch_up.every = 0.0
        pipeline.poll(0.0)
        registry = CollectorRegistry()
        registry.register(StateCollector(pipeline.snapshot))
        behind = registry.get_sample_value("tdm_log_backlog_bytes", {"file": str(log)})
        assert 0 < behind < log.stat().st_size
        polls = 1
        while pipeline.wants_more():
            pipeline.poll(float(polls))
            polls += 1
            assert polls < 10
        pipeline.poll(float(polls))
        assert registry.get_sample_value("tdm_log_backlog_bytes", {"file": str(log)}) == 0
    finally:
        logger.remove(sink)
    assert records(pipeline.handler.state, "DEBUG") == log.stat().st_size // len(block) * 1000
    progress = [m for m in messages if "catching up" in m or "caught up" in m]
    assert progress[0].startswith("log files: catching up:") and "MiB to read" in progress[0]
    assert any("% (" in m and "records/s, ETA" in m for m in progress), progress
    assert progress[-1].startswith("log files: caught up:")
    pipeline.close()


def test_replay_progress_bar(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    log.write_text("".join(line(f"Websocket[{i % 4}] connected.") for i in range(3000)))
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "replay", str(log), "--progress"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "replay: 100%" in result.stderr and "records=3000" in result.stderr
    assert sample(result.stdout, "tdm_log_records_total", level="INFO") == 3000


def test_events_are_committed_at_once_other_changes_within_a_second_and_all_on_close(tmp_path: Path) -> None:
    """At rest each record was its own transaction; changes without events (DEBUG records, the
    bridge's picture) now share one a second, while events still reach the history at once."""
    log = tmp_path / "log.txt"
    log.write_text(line("Websocket[0] connected."))
    with Store.open(tmp_path / "state.db") as store:
        pipeline = Pipeline([str(log)], handler(keep_events=True), store, quiet_seconds=0.0)
        pipeline.poll(10.0)  # read, and flushed at once (no quiet time): the first commit
        assert store.load_positions()[str(log)].offset == log.stat().st_size
        with log.open("a") as file:
            file.write(line("Request", "DEBUG"))
        pipeline.poll(10.2)
        assert store.load_positions()[str(log)].offset < log.stat().st_size  # not yet: no event, within the second
        assert pipeline.next_deadline() == pytest.approx(11.0)  # a second after the last commit
        pipeline.poll(11.0)
        assert store.load_positions()[str(log)].offset == log.stat().st_size
        with log.open("a") as file:
            file.write(line("Websocket[1] connected."))
        pipeline.poll(11.2)  # an event: committed at once
        assert len(store.query_events(limit=10)) == 2
        with log.open("a") as file:
            file.write(line("Request", "DEBUG"))
        pipeline.poll(11.3)
        pipeline.close()
        assert store.load_positions()[str(log)].offset == log.stat().st_size
        assert store.load_totals()[("tdm_log_records_total", (("level", "DEBUG"),))] == 2
