from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.framing import Framer, Record

from conftest import RUNS as FIXTURES

FIXTURE_LOGS = sorted(FIXTURES.glob("*/log.txt"))
HEADER_LINE = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})\.(\d{3,4}):\t *([A-Z]+):\t(.*)$")


def line(message: str, level: str = "INFO", msecs: str = "123", ts: str = "2026-11-23 22:23:54") -> bytes:
    return f"{ts}.{msecs}:\t{level:>7}:\t{message}\n".encode()


def frame_all(data: bytes, **kwargs) -> tuple[list[Record], Framer]:
    framer = Framer("f", **kwargs)
    records = framer.feed(data, 0.0).records + framer.flush().records
    return records, framer


def frame_in_pieces(data: bytes, cuts: list[int], **kwargs) -> list[Record]:
    framer = Framer("f", **kwargs)
    records: list[Record] = []
    previous = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        records += framer.feed(data[previous:cut], 0.0).records
        previous = cut
    return records + framer.flush().records


@pytest.mark.parametrize("log", FIXTURE_LOGS, ids=lambda p: p.parent.name)
def test_every_fixture_line_belongs_to_a_record(log: Path) -> None:
    data = log.read_bytes()
    records, framer = frame_all(data)
    physical = data.decode().split("\n")[:-1]
    headers = [l for l in physical if HEADER_LINE.match(l)]
    assert framer.orphan_lines == 0
    assert len(records) == len(headers)
    # records tile the file exactly
    assert records[0].start == 0 and records[-1].end == len(data)
    assert all(a.end == b.start for a, b in zip(records, records[1:]))
    # the message lines plus the headers give back every physical line
    assert sum(r.message.count("\n") + 1 for r in records) == len(physical)


def test_fixture_multi_line_records() -> None:
    records, _ = frame_all((FIXTURES / "F_errors_and_fatal_vvv" / "log.txt").read_bytes())
    by_start = {r.message.split("\n")[0]: r for r in records}
    two_line = by_start["Received a drop claim ID for a non-existing drop: zzz"]
    assert two_line.level == "ERROR"
    assert two_line.message == "Received a drop claim ID for a non-existing drop: zzz\nDrop claim ID: x#y#zzz"
    traceback = by_start["Exception in process_stream_state task"]
    assert traceback.message.endswith("KeyError: 'viewers'")
    assert traceback.message.count("\n") == 7


def test_response_records_are_three_lines() -> None:
    records, _ = frame_all((FIXTURES / "A_fresh_login_vvvv" / "log.txt").read_bytes())
    responses = [r for r in records if r.message.startswith("Response:")]
    assert responses and all(r.level == "DEBUG" for r in responses)
    # '<ClientResponse(...)>\n<CIMultiDictProxy(...)>\n' : the third physical line is empty
    assert all(r.message.count("\n") == 2 and r.message.endswith(">\n") for r in responses)


def test_header_fields_levels_and_msecs() -> None:
    data = (
        line("a", "ERROR", "000")
        + line("b", "WARNING", "999")
        + line("c", "CALL", "1000")
        + line("Watching: X", "GUI")
        + line("noise", "STDERR")
    )
    records, _ = frame_all(data)
    assert [(r.level, r.msecs, r.message) for r in records] == [
        ("ERROR", 0, "a"),
        ("WARNING", 999, "b"),
        ("CALL", 1000, "c"),
        ("GUI", 123, "Watching: X"),
        ("STDERR", 123, "noise"),
    ]
    assert records[0].timestamp == "2026-11-23 22:23:54"


def test_emoji_and_invalid_bytes() -> None:
    data = line("Chan status has been updated (🎁: ✔ -> ❌)") + line("bad \xff").replace(b"\xc3\xbf", b"\xff\xfe")
    records, _ = frame_all(data)
    assert records[0].message == "Chan status has been updated (🎁: ✔ -> ❌)"
    assert records[1].message == "bad \ufffd\ufffd"


def test_partial_last_line_waits_for_its_newline() -> None:
    framer = Framer("f", quiet_seconds=0.01)
    assert framer.feed(line("first"), now=0.0).records == []  # held: a continuation could follow
    released = framer.feed(line("second")[:-3], now=1.0).records
    assert [r.message for r in released] == ["first"]
    assert framer.deadline() is None  # a partial line is pending: time alone never emits it
    assert framer.flush_due(now=100.0).records == []
    assert framer.feed(line("second")[-3:], now=2.0).records == []
    assert [r.message for r in framer.flush_due(now=2.02).records] == ["second"]
    assert framer.offset == len(line("first")) + len(line("second"))


def test_next_header_prefix_releases_the_held_record() -> None:
    framer = Framer("f")
    framer.feed(line("first"), now=0.0)
    records = framer.feed(line("second")[:40], now=0.0).records
    assert [r.message for r in records] == ["first"]


def test_quiet_flush_keeps_last_record_of_a_burst_for_only_the_quiet_period() -> None:
    framer = Framer("f", quiet_seconds=0.5)
    batch = framer.feed(line("a") + line("b"), now=10.0)
    assert batch.records == [Record("f", "2026-11-23 22:23:54", 123, "INFO", "a", 0, len(line("a")))]
    assert batch.consumed == len(line("a"))
    assert framer.deadline() == pytest.approx(10.5)
    assert framer.flush_due(now=10.4).records == []
    assert [r.message for r in framer.flush_due(now=10.5).records] == ["b"]
    assert framer.deadline() is None


def test_continuation_lines_join_the_previous_record() -> None:
    data = line("Exception in _watch_loop task", "ERROR") + b"Traceback (most recent call last):\n  File x\nKeyError: 1\n" + line("next")
    records, _ = frame_all(data)
    assert records[0].message == "Exception in _watch_loop task\nTraceback (most recent call last):\n  File x\nKeyError: 1"
    assert records[1].message == "next"


def test_orphan_lines_before_any_header_are_counted_and_dropped() -> None:
    records, framer = frame_all(b"tail of a record\nanother\n" + line("a"))
    assert [r.message for r in records] == ["a"]
    assert framer.orphan_lines == 2


def test_windows_line_endings() -> None:
    records, _ = frame_all(line("a").replace(b"\n", b"\r\n") + b"more\r\n" + line("b").replace(b"\n", b"\r\n"))
    assert [r.message for r in records] == ["a\nmore", "b"]


def test_oversized_record_is_cut_counted_and_memory_stays_bounded() -> None:
    limit = 64 * 1024
    framer = Framer("f", max_record_bytes=limit)
    out = framer.feed(line("start", "ERROR")[:-1], 0.0).records
    chunk = b"x" * 65536
    for _ in range(160):  # a 10 MB line arriving in pieces
        out += framer.feed(chunk, 0.0).records
        assert len(framer._buf) <= limit + len(chunk)
    out += framer.feed(b"\ncontinuation of the huge record\n" + line("after"), 0.0).records
    out += framer.flush().records
    assert [r.truncated for r in out] == [True, False]
    assert len(out[0].message.encode()) <= limit
    assert out[0].message.startswith("start")
    assert out[1].message == "after"
    assert framer.oversized_records == 1
    assert framer.orphan_lines == 0
    assert out[1].end == framer.offset


def test_offset_is_always_a_safe_resume_point() -> None:
    data = b"".join(line(f"m{i}") + (b"cont\n" if i % 3 == 0 else b"") for i in range(30))
    framer = Framer("f")
    emitted: list[Record] = []
    for i in range(0, len(data), 37):
        emitted += framer.feed(data[i : i + 37], 0.0).records
        # restart from offset: the records after it, plus those already emitted, are all of them
        resumed, _ = frame_all(data[framer.offset :])
        assert [r.message for r in emitted] + [r.message for r in resumed] == [r.message for r in frame_all(data)[0]]


def test_fed_until_tracks_the_stream() -> None:
    framer = Framer("f", offset=100)
    framer.feed(b"abc", 0.0)
    assert framer.fed_until == 103


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4000), st.lists(st.integers(min_value=0, max_value=4000), max_size=20))
def test_random_bytes_never_crash_and_chunking_does_not_matter(noise: bytes, cuts: list[int]) -> None:
    data = line("a") + noise + line("b") + noise
    whole, _ = frame_all(data, max_record_bytes=1500)
    pieces = frame_in_pieces(data, [c for c in cuts if c <= len(data)], max_record_bytes=1500)
    assert whole == pieces


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["ERROR", "WARNING", "INFO", "CALL", "DEBUG", "GUI"]),
            st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\n\r"), max_size=80),
            st.lists(st.text(alphabet="abc xyz:()", max_size=30).filter(lambda s: not s[:4].isdigit()), max_size=3),
        ),
        min_size=1,
        max_size=30,
    ),
    st.lists(st.integers(min_value=0, max_value=20000), max_size=15),
)
def test_generated_logs_frame_to_their_ground_truth(entries, cuts) -> None:
    data = b""
    for level, message, continuation in entries:
        data += line(message, level) + b"".join(c.encode() + b"\n" for c in continuation)
    records = frame_in_pieces(data, [c for c in cuts if c <= len(data)])
    assert [(r.level, r.message) for r in records] == [
        (level, "\n".join([message, *continuation])) for level, message, continuation in entries
    ]


def test_count_only_levels_are_counted_not_built() -> None:
    data = line("req", "DEBUG", "001") + line("a") + line("resp", "DEBUG", "002") + b"hdrs\n\n" + line("b", "DEBUG", "003")
    framer = Framer("f", count_only=frozenset({"DEBUG"}))
    fed, flushed = framer.feed(data, 0.0), framer.flush()
    assert [r.message for r in fed.records + flushed.records] == ["a"]
    assert fed.counted == {"DEBUG": 2} and fed.counted_time == ("2026-11-23 22:23:54", 2)
    assert flushed.counted == {"DEBUG": 1} and flushed.counted_time == ("2026-11-23 22:23:54", 3)
    assert fed.counted_truncated == flushed.counted_truncated == 0
    assert fed.consumed + flushed.consumed == framer.offset == len(data)
    assert len(fed) == 3 and len(flushed) == 1


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["ERROR", "INFO", "CALL", "DEBUG", "DEBUG", "DEBUG", "STDOUT", "NOTICE"]),
            st.text(alphabet="ab :\t", max_size=40),
            st.lists(st.text(alphabet="abc xyz:\t", max_size=30).filter(lambda s: not s[:4].isdigit()), max_size=3),
        ),
        min_size=1,
        max_size=40,
    ),
    st.lists(st.integers(min_value=0, max_value=6000), max_size=15),
    st.sampled_from([120, 1 << 20]),
)
def test_count_only_levels_in_any_chunking_give_the_ground_truth(entries, cuts, limit) -> None:
    """Bulk framing (count-only headers counted per chunk) and the record-by-record path (records
    near the size limit) agree with the ground truth, however the bytes arrive."""
    data = b""
    for level, message, continuation in entries:
        data += line(message, level) + b"".join(c.encode() + b"\n" for c in continuation)
    framer = Framer("f", max_record_bytes=limit, count_only=frozenset({"DEBUG", "STDOUT"}))
    built, counted, consumed = [], {}, 0
    previous = 0
    for cut in sorted(set(c for c in cuts if c <= len(data))) + [len(data), None]:
        batch = framer.feed(data[previous:cut], 0.0) if cut is not None else framer.flush()
        built += batch.records
        for level, n in batch.counted.items():
            counted[level] = counted.get(level, 0) + n
        consumed += batch.consumed
        previous = cut
    expected = [
        (level, "\n".join([message, *continuation])) for level, message, continuation in entries if level not in ("DEBUG", "STDOUT")
    ]
    if limit > len(data):  # nothing cut
        assert [(r.level, r.message) for r in built] == expected
    else:
        assert [r.level for r in built] == [level for level, _ in expected]
    truth = {}
    for level, _, _ in entries:
        if level in ("DEBUG", "STDOUT"):
            truth[level] = truth.get(level, 0) + 1
    assert counted == truth
    assert consumed == framer.offset == len(data)
