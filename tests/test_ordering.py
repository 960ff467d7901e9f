"""Records of TDM's two files (log.txt and the captured output) reach the state in time order.

The real-TDM login test failed about one run in five on a loaded machine: the status stayed
`starting` while TDM waited for a login. TDM logs "Checking login" to log.txt, then prints "Please
log in to continue." in its GUI (the captured output) ~10 ms later. A follower that woke late read
both in one poll; the framer released the GUI line at once (a STATE header followed it) and held
log.txt's last record until the next poll, so the older "Checking login" was applied last. These
tests replay that with real files and a pipeline driven poll by poll, without TDM.
"""

from __future__ import annotations

from pathlib import Path

from exporter.events import Event, EventKind
from exporter.framing import Batch, Record
from exporter.ordering import TimeOrder, merged
from exporter.pipeline import Pipeline
from exporter.store import Store
from test_pipeline import counter, handler, line, records

DAY = "2026-11-23 22:23:54"
QUIET = 0.005  # the framer's default: a held record goes on after 5 ms without new bytes


def checking_then_login_wait(tmp_path: Path) -> tuple[Path, Path]:
    """What a fresh TDM wrote (times as in the failed run): log.txt's last record is the older one."""
    log, capture = tmp_path / "log.txt", tmp_path / "miner_output.log"
    log.write_text(line("Checking login", ts=DAY, msecs="182"))
    capture.write_text(
        line("Please log in to continue.", "GUI", ts=DAY, msecs="188")
        + line('{"v":1,"type":"login_wait","waiting":true}', "STATE", ts=DAY, msecs="192")
    )
    return log, capture


def wall(msecs: int) -> float:
    """The wall clock `msecs` after DAY's second began (UTC, as the test handler's clock)."""
    return handler().clock.to_epoch(DAY, msecs)


def status_and_session(pipeline: Pipeline) -> tuple[str, str]:
    snapshot = pipeline.snapshot(wall(1_000))  # a second later: no login timeout involved
    return snapshot.status, snapshot.session


def test_a_login_wait_read_in_one_late_poll_is_login_required_not_starting(tmp_path: Path) -> None:
    log, capture = checking_then_login_wait(tmp_path)
    heard: list[Event] = []
    pipeline = Pipeline([str(log), str(capture)], handler(listeners=[heard.append]), quiet_seconds=QUIET)
    pipeline.poll(0.0)  # both files at once; log.txt's record is held until its file is quiet
    assert heard == []  # the GUI line waits for the older record
    pipeline.poll(1.0)
    assert status_and_session(pipeline) == ("login_required", "login_required")
    assert [event.kind for event in heard] == [EventKind.LOGIN_CHECKING, EventKind.LOGIN_REQUIRED]
    pipeline.close()


def test_records_released_in_the_same_poll_go_on_by_time_not_by_file(tmp_path: Path) -> None:
    """The captured output's framer was made first (the launcher's hello comes before TDM logs),
    so its quiet flush used to come first too."""
    log, capture = tmp_path / "log.txt", tmp_path / "miner_output.log"
    capture.write_text(line('{"v":1,"type":"hello","pid":1,"capabilities":{}}', "STATE", ts=DAY, msecs="037"))
    pipeline = Pipeline([str(log), str(capture)], handler(), quiet_seconds=QUIET)
    pipeline.poll(0.0)
    pipeline.poll(1.0)
    log.write_text(line("Checking login", ts=DAY, msecs="182"))
    with capture.open("a") as file:
        file.write(line("Please log in to continue.", "GUI", ts=DAY, msecs="188"))
    pipeline.poll(2.0)  # both last records held
    pipeline.poll(3.0)  # both quiet: released in the same poll
    assert status_and_session(pipeline) == ("login_required", "login_required")
    pipeline.close()


def test_a_commit_while_records_wait_resumes_exactly(tmp_path: Path) -> None:
    """An event from log.txt is committed at once while the GUI line still waits: the capture's
    position stays before it, so a daemon killed then counts every record once."""
    log, capture = checking_then_login_wait(tmp_path)
    log.write_text(line("Websocket[0] connected.", ts=DAY, msecs="100") + log.read_text())
    db = tmp_path / "state.db"
    with Store.open(db) as store:
        first = Pipeline([str(log), str(capture)], handler(), store, quiet_seconds=QUIET)
        first.poll(0.0)  # the websocket record goes on (and is committed); the GUI line waits
        assert store.load_positions().get(str(capture)) is None or store.load_positions()[str(capture)].offset == 0
        assert len(store.query_events(limit=10)) == 1
        # killed here: never closed
    with Store.open(db) as store:
        second = Pipeline([str(log), str(capture)], handler(), store, quiet_seconds=QUIET)
        second.poll(10.0)
        second.poll(11.0)
        state = second.handler.state
        assert status_and_session(second) == ("login_required", "login_required")
        assert (records(state, "INFO"), records(state, "GUI"), records(state, "STATE")) == (2, 1, 1)
        assert counter(state, "tdm_events_total", kind="ws_connected") == 1
        assert counter(state, "tdm_events_total", kind="login_required") == 1
        second.close()
        assert store.load_positions()[str(capture)].offset == capture.stat().st_size
        stored = [event.kind.value for event in reversed(store.query_events(limit=10))]
        assert stored == ["ws_connected", "login_checking", "login_required"]


def test_a_file_whose_last_line_never_ends_holds_the_others_back_one_second(tmp_path: Path) -> None:
    log, capture = checking_then_login_wait(tmp_path)
    with log.open("a") as file:
        file.write(f"{DAY}.190:\t   INFO:\tWebsocket[0] conn")  # TDM killed mid-write
    pipeline = Pipeline([str(log), str(capture)], handler(), quiet_seconds=QUIET)
    pipeline.poll(0.0)
    pipeline.poll(0.5)  # the capture is quiet, log.txt's last line still unfinished
    assert pipeline.snapshot(wall(1_000)).status == "starting"  # the GUI line may be older than the cut one
    assert pipeline.next_deadline() == 1.0  # when log.txt counts as stalled
    pipeline.poll(1.0)
    assert status_and_session(pipeline) == ("login_required", "login_required")
    pipeline.close()


class WritesAfterReading:
    """The pipeline's tails, and a write that lands after one poll has read the files (as when TDM
    writes log.txt just after the follower read it, then the captured output)."""

    def __init__(self, tails, write) -> None:
        self._tails, self._write = tails, write

    def read(self):
        items = self._tails.read()
        write, self._write = self._write, lambda: None
        write()
        return items

    def __getattr__(self, name):
        return getattr(self._tails, name)


def test_a_record_written_to_log_txt_after_it_was_read_still_goes_on_first(tmp_path: Path) -> None:
    log, capture = checking_then_login_wait(tmp_path)
    older = log.read_text()
    log.write_text("")
    heard: list[Event] = []
    pipeline = Pipeline([str(log), str(capture)], handler(listeners=[heard.append]), quiet_seconds=QUIET)
    pipeline.tails = WritesAfterReading(pipeline.tails, lambda: log.write_text(older))
    pipeline.poll(0.0)  # the GUI line is read, "Checking login" is not: log.txt grew after its read
    assert heard == []
    pipeline.poll(1.0)
    pipeline.poll(2.0)
    assert [event.kind for event in heard] == [EventKind.LOGIN_CHECKING, EventKind.LOGIN_REQUIRED]
    assert status_and_session(pipeline) == ("login_required", "login_required")
    pipeline.close()


# -- TimeOrder alone -----------------------------------------------------------------------------


def batch(source: str, *stamps: int, start: int = 0) -> Batch:
    found = [
        Record(source, DAY, msecs, "INFO", f"at {msecs}", start + 10 * i, start + 10 * (i + 1))
        for i, msecs in enumerate(stamps)
    ]
    return Batch(records=found, consumed=10 * len(stamps))


def test_batches_that_overlap_in_time_go_on_together_interleaved() -> None:
    order = TimeOrder()
    order.add("a", batch("a", 1, 5, 9), 0)
    order.add("b", batch("b", 3, 7), 0)
    released = order.take(0.0, behind={})
    assert [record.msecs for record in merged(released)] == [1, 3, 5, 7, 9]
    assert not order.waiting


def test_a_batch_newer_than_a_held_record_could_be_waits_and_keeps_its_files_order() -> None:
    order = TimeOrder()
    order.add("a", batch("a", 4), 0)  # a's framer holds a record at least this new
    order.add("b", batch("b", 2), 0)
    order.add("b", batch("b", 6), 10)
    order.add("b", Batch(counted={"DEBUG": 1}, consumed=10), 20)  # after the waiting one: waits too
    released = order.take(0.0, behind={"a": 99})
    assert [(source, [r.msecs for r in b.records]) for source, b in released] == [("a", [4]), ("b", [2])]
    assert order.first_waiting("b") == 10 and order.first_waiting("a") is None
    order.add("a", batch("a", 8), 10)  # released with the rest once a is quiet
    assert [record.msecs for record in merged(order.take(0.01, behind={}))] == [6, 8]
    assert not order.waiting


def test_past_the_waiting_limit_all_goes_on_merged_so_a_catch_up_keeps_few_records() -> None:
    """Chunks of two files in a catch-up overlap in time: neither can go on whole before the other."""
    order = TimeOrder(max_waiting_bytes=50)
    order.add("a", batch("a", 1, 5), 0)
    order.add("b", batch("b", 3, 7), 0)
    assert order.take(0.0, behind={"a": 20, "b": 20}) == []  # both may still give older ones
    order.add("a", batch("a", 8, 9), 20)
    order.add("b", batch("b", 10, 11), 20)  # 80 bytes wait now
    assert [record.msecs for record in merged(order.take(0.0, behind={"a": 40, "b": 40}))] == [1, 3, 5, 7, 8, 9, 10, 11]
    assert not order.waiting
