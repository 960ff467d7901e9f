"""FileTail and GlobTail on real files: every byte written comes out exactly once, generation by generation."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.positions import HEAD_BYTES
from exporter.tailer import RESET_REASONS, Data, FileTail, GlobTail, Reset, TailSet, head_hash, watch_paths

MAX_READS = 1000  # bound for every read-until-caught-up loop


class Stream:
    """What a tail returned, split into generations at each Reset; checks that offsets run on without gaps."""

    def __init__(self, first_offset: int = 0) -> None:
        self.gens: list[bytearray] = [bytearray()]
        self.reasons: list[str] = []
        self._next = first_offset

    def feed(self, items: list) -> None:
        for item in items:
            if isinstance(item, Reset):
                assert item.reason in RESET_REASONS
                self.reasons.append(item.reason)
                self.gens.append(bytearray())
                self._next = 0
            else:
                assert isinstance(item, Data)
                assert item.offset == self._next, f"gap or overlap at {item.offset}, expected {self._next}"
                assert item.data, "empty Data"
                self.gens[-1] += item.data
                self._next += len(item.data)

    def nonempty(self) -> list[bytes]:
        return [bytes(g) for g in self.gens if g]


def catch_up(tail: FileTail | GlobTail, stream: Stream | None = None) -> Stream:
    """Read until the tail has nothing pending (bounded)."""
    stream = stream if stream is not None else Stream()
    for _ in range(MAX_READS):
        stream.feed(tail.read())
        if not tail.pending:
            return stream
    raise AssertionError("tail still pending after MAX_READS reads")


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "log.txt"


@pytest.fixture
def tail(log: Path):
    with FileTail("log", log) as t:
        yield t


# --- plain following ---


def test_reads_existing_file_then_appends_exactly_once(log: Path, tail: FileTail) -> None:
    log.write_bytes(b"one\n")
    s = catch_up(tail)
    append(log, b"two\n")
    append(log, b"three\n")
    catch_up(tail, s)
    catch_up(tail, s)  # nothing new: nothing returned
    assert s.gens == [b"one\ntwo\nthree\n"]
    assert s.reasons == []
    assert tail.position().offset == 14


def test_partial_last_line_is_returned_as_bytes(log: Path, tail: FileTail) -> None:
    log.write_bytes(b"2026-11-23 22:23:54.665:\t   INFO:\tChec")
    assert tail.read() == [Data("log", b"2026-11-23 22:23:54.665:\t   INFO:\tChec", 0)]
    append(log, b"king login\n")
    assert tail.read() == [Data("log", b"king login\n", 38)]


def test_missing_at_start_then_created(log: Path, tail: FileTail) -> None:
    assert tail.read() == []
    assert tail.position() is None
    assert tail.position_at(0) is None
    log.write_bytes(b"hello\n")
    assert tail.read() == [Reset("log", "created"), Data("log", b"hello\n", 0)]


def test_missing_directory_is_not_an_error(tmp_path: Path) -> None:
    with FileTail("log", tmp_path / "nowhere" / "log.txt") as t:
        assert t.read() == []
        assert t.last_error is None


def test_a_path_through_a_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with FileTail("log", tmp_path / "file" / "log.txt") as t:
        assert t.read() == []
        assert isinstance(t.last_error, NotADirectoryError)


# --- rotation, truncation, replacement ---


def test_rotation_by_rename_drains_old_file_first(log: Path, tail: FileTail) -> None:
    log.write_bytes(b"a1\n")
    s = catch_up(tail)
    append(log, b"a2\n")
    log.rename(log.with_name("log.txt.1"))
    append(log.with_name("log.txt.1"), b"a3 written after the rename\n")  # the writer had not reopened yet
    log.write_bytes(b"b1\n")
    catch_up(tail, s)
    assert s.gens == [b"a1\na2\na3 written after the rename\n", b"b1\n"]
    assert s.reasons == ["rotated"]
    assert tail.position().ino == log.stat().st_ino


def test_rotation_stays_on_renamed_file_while_new_one_is_empty(log: Path, tail: FileTail) -> None:
    """TDM never reopens log.txt: after a rename it keeps writing to log.txt.1."""
    old = log.with_name("log.txt.1")
    log.write_bytes(b"a1\n")
    s = catch_up(tail)
    log.rename(old)
    catch_up(tail, s)  # path missing for a while
    log.touch()
    append(old, b"a2\n")
    catch_up(tail, s)
    append(old, b"a3\n")
    catch_up(tail, s)
    assert s.gens == [b"a1\na2\na3\n"] and s.reasons == []
    assert tail.position().ino == old.stat().st_ino
    append(log, b"b1\n")  # a writer that does reopen
    catch_up(tail, s)
    assert s.gens == [b"a1\na2\na3\n", b"b1\n"] and s.reasons == ["rotated"]


@pytest.mark.parametrize("new", [b"x\n", b"a much longer first line after truncation\n"])
def test_copytruncate(log: Path, tail: FileTail, new: bytes) -> None:
    log.write_bytes(b"0123456789\n")
    s = catch_up(tail)
    shutil.copyfile(log, log.with_name("log.txt.1"))
    os.truncate(log, 0)
    append(log, new)
    catch_up(tail, s)
    assert s.gens == [b"0123456789\n", new]
    # Cut below our offset: truncated. Already regrown past it: only the head shows it, "replaced".
    assert s.reasons == (["truncated"] if len(new) < 11 else ["replaced"])


def test_copytruncate_seen_while_empty(log: Path, tail: FileTail) -> None:
    log.write_bytes(b"abc\n")
    s = catch_up(tail)
    os.truncate(log, 0)
    catch_up(tail, s)
    append(log, b"def\n")
    catch_up(tail, s)
    assert s.gens == [b"abc\n", b"def\n"] and s.reasons == ["truncated"]


def test_delete_and_recreate_drains_open_file(log: Path, tail: FileTail) -> None:
    log.write_bytes(b"a1\n")
    s = catch_up(tail)
    append(log, b"a2\n")
    log.unlink()
    log.write_bytes(b"b1\n")
    catch_up(tail, s)
    assert s.gens == [b"a1\na2\n", b"b1\n"] and s.reasons == ["replaced"]


def test_delete_then_create_later(log: Path, tail: FileTail) -> None:
    log.write_bytes(b"a1\n")
    s = catch_up(tail)
    append(log, b"a2\n")
    log.unlink()
    catch_up(tail, s)
    assert tail.position() is None
    log.write_bytes(b"b1\n")
    catch_up(tail, s)
    assert s.gens == [b"a1\na2\n", b"", b"b1\n"] and s.reasons == ["deleted", "created"]


def test_same_inode_rewritten_in_place_is_replaced(log: Path, tail: FileTail) -> None:
    log.write_bytes(b"first content\n")
    s = catch_up(tail)
    with open(log, "r+b") as f:  # same inode, same size or larger, other bytes
        f.write(b"other content, and longer\n")
    catch_up(tail, s)
    assert s.gens == [b"first content\n", b"other content, and longer\n"]
    assert s.reasons == ["replaced"]


def test_several_files_at_once(tmp_path: Path) -> None:
    paths = [tmp_path / f"f{i}.log" for i in range(3)]
    tails = [FileTail(p.name, p) for p in paths]
    streams = [Stream() for _ in paths]
    written = [bytearray() for _ in paths]
    try:
        for round_ in range(20):
            for i, p in enumerate(paths):
                if (round_ + i) % 2:
                    data = f"{p.name} line {round_}\n".encode()
                    append(p, data)
                    written[i] += data
            for t, s in zip(tails, streams):
                catch_up(t, s)
        assert [s.nonempty() for s in streams] == [[bytes(w)] for w in written]
        for s in streams:
            assert s.reasons == ["created"] or s.reasons == []
    finally:
        for t in tails:
            t.close()


# --- bounded reads ---


def test_large_file_is_read_in_bounded_chunks(log: Path) -> None:
    content = os.urandom(10_000)
    log.write_bytes(content)
    with FileTail("log", log, chunk_size=1024, max_chunks=4) as t:
        first = t.read()
        assert [len(i.data) for i in first] == [1024] * 4
        assert t.pending
        s = Stream()
        s.feed(first)
        catch_up(t, s)
        assert s.gens == [content]
        assert not t.pending


def test_bounded_drain_of_rotated_file_keeps_order(log: Path) -> None:
    old = os.urandom(5000)
    with FileTail("log", log, chunk_size=512, max_chunks=2) as t:
        log.write_bytes(b"x")
        s = catch_up(t)
        append(log, old)
        log.rename(log.with_name("log.txt.1"))
        log.write_bytes(b"new\n")
        reads = 0
        while True:
            s.feed(t.read())
            reads += 1
            if not t.pending or reads > MAX_READS:
                break
        assert reads > 3
        assert s.gens == [b"x" + old, b"new\n"] and s.reasons == ["rotated"]


# --- start_at ---


def test_start_at_end_skips_existing_content(log: Path) -> None:
    log.write_bytes(b"old history\n")
    with FileTail("log", log, start_at="end") as t:
        assert t.read() == []
        append(log, b"new\n")
        assert t.read() == [Data("log", b"new\n", 12)]


def test_start_at_end_file_created_later_is_read_from_zero(log: Path) -> None:
    with FileTail("log", log, start_at="end") as t:
        assert t.read() == []
        log.write_bytes(b"all new\n")
        assert t.read() == [Reset("log", "created"), Data("log", b"all new\n", 0)]


def test_bad_start_at() -> None:
    with pytest.raises(ValueError, match="'middle'"):
        FileTail("log", "log.txt", start_at="middle")


# --- positions and resume ---


def saved_position(log: Path, offset: int | None = None):
    """Follow log from the start, and hand back the position a caller would persist."""
    with FileTail("log", log) as t:
        catch_up(t)
        return t.position() if offset is None else t.position_at(offset)


def test_position_records_identity_and_head(log: Path, tail: FileTail) -> None:
    content = b"x" * (HEAD_BYTES + 100)
    log.write_bytes(content[:10])
    s = catch_up(tail)
    p = tail.position()
    info = log.stat()
    assert (p.key, p.dev, p.ino, p.offset) == ("log", info.st_dev, info.st_ino, 10)
    assert (p.head_len, p.head_hash) == (10, head_hash(content[:10]))
    append(log, content[10:])
    catch_up(tail, s)
    p = tail.position_at(5)
    assert (p.offset, p.head_len, p.head_hash) == (5, HEAD_BYTES, head_hash(content[:HEAD_BYTES]))
    with pytest.raises(ValueError):
        tail.position_at(len(content) + 1)


@pytest.mark.parametrize("start_at", ["beginning", "end"])
def test_resume_same_file_grown(log: Path, start_at: str) -> None:
    log.write_bytes(b"line 1\nline 2\n")
    pos = saved_position(log)
    append(log, b"line 3\n")
    with FileTail("log", log, pos, start_at=start_at) as t:  # a saved position wins over start_at
        assert t.read() == [Data("log", b"line 3\n", 14)]


def test_resume_at_committed_offset_rereads_uncommitted_bytes(log: Path) -> None:
    log.write_bytes(b"line 1\npartial")
    pos = saved_position(log, offset=7)  # the framer held back "partial"
    append(log, b" record\n")
    with FileTail("log", log, pos) as t:
        assert t.read() == [Data("log", b"partial record\n", 7)]


def test_resume_unchanged_file_reads_nothing(log: Path) -> None:
    log.write_bytes(b"line 1\n")
    pos = saved_position(log)
    with FileTail("log", log, pos) as t:
        assert t.read() == []
        assert t.position() == pos


@pytest.mark.parametrize("rotated_name", ["log.txt.1", "log.txt.0", "log.txt-20261123"])
def test_resume_after_rotation_while_down(log: Path, rotated_name: str) -> None:
    log.write_bytes(b"a1\n")
    pos = saved_position(log)
    append(log, b"a2\n")
    log.rename(log.with_name(rotated_name))
    log.write_bytes(b"b1\n")
    with FileTail("log", log, pos) as t:
        s = catch_up(t, Stream(first_offset=pos.offset))
    assert s.gens == [b"a2\n", b"b1\n"] and s.reasons == ["rotated"]


def test_resume_when_saved_file_is_gone(log: Path) -> None:
    log.write_bytes(b"a1\n")
    pos = saved_position(log)
    log.rename(log.with_name("log.txt.1"))
    log.with_name("log.txt.1").unlink()  # rotated and compressed away
    log.write_bytes(b"b1\n")
    with FileTail("log", log, pos) as t:
        assert t.read() == [Reset("log", "replaced"), Data("log", b"b1\n", 0)]


def test_resume_when_nothing_exists(log: Path) -> None:
    log.write_bytes(b"a1\n")
    pos = saved_position(log)
    log.unlink()
    with FileTail("log", log, pos) as t:
        assert t.read() == [Reset("log", "deleted")]
        assert t.position() is None
        log.write_bytes(b"b1\n")
        assert t.read() == [Reset("log", "created"), Data("log", b"b1\n", 0)]


def test_resume_after_truncation_while_down(log: Path) -> None:
    log.write_bytes(b"a long first generation\n")
    pos = saved_position(log)
    os.truncate(log, 0)
    append(log, b"short\n")
    with FileTail("log", log, pos) as t:
        assert t.read() == [Reset("log", "truncated"), Data("log", b"short\n", 0)]


@pytest.mark.parametrize("how", ["new file", "same inode"])
@pytest.mark.parametrize("size", ["equal", "larger"])
def test_resume_after_replacement_while_down(log: Path, how: str, size: str) -> None:
    log.write_bytes(b"first generation\n")
    pos = saved_position(log)
    new = b"other generation\n" if size == "equal" else b"another generation, larger\n" * 20
    if how == "new file":
        log.unlink()  # the inode may well be reused by the new file: the head hash tells them apart
        log.write_bytes(new)
    else:
        with open(log, "r+b") as f:
            f.write(new)
    with FileTail("log", log, pos) as t:
        assert t.read() == [Reset("log", "replaced"), Data("log", new, 0)]


def test_resume_with_short_head_then_file_grows(log: Path) -> None:
    """head_len < HEAD_BYTES: only that many bytes are compared, the rest of the head fills in later."""
    log.write_bytes(b"ab\n")
    pos = saved_position(log)
    assert pos.head_len == 3
    append(log, b"x" * HEAD_BYTES)
    with FileTail("log", log, pos) as t:
        s = catch_up(t, Stream(first_offset=3))
        assert s.gens == [b"x" * HEAD_BYTES]
        assert t.position().head_len == HEAD_BYTES


# --- globs ---


def test_glob_picks_up_new_files(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_bytes(b"a history\n")
    (tmp_path / "other.txt").write_bytes(b"not followed\n")
    with GlobTail(str(tmp_path / "*.log"), start_at="end") as g:
        assert g.read() == []
        b = str(tmp_path / "b.log")
        Path(b).write_bytes(b"b1\n")
        append(tmp_path / "a.log", b"a1\n")
        items = g.read()
        a = str(tmp_path / "a.log")
        assert items == [Reset(b, "created"), Data(a, b"a1\n", 10), Data(b, b"b1\n", 0)]
        assert sorted(g.tails) == [a, b]
        assert g.tails[b].position_at(3).offset == 3
        Path(b).unlink()
        assert g.read() == [Reset(b, "deleted")]
        assert sorted(g.tails) == [a]


def test_glob_resumes_from_positions(tmp_path: Path) -> None:
    a = tmp_path / "a.log"
    a.write_bytes(b"a1\n")
    with GlobTail(str(tmp_path / "*.log")) as g:
        catch_up(g)
        positions = {key: tail.position() for key, tail in g.tails.items()}
    append(a, b"a2\n")
    with GlobTail(str(tmp_path / "*.log"), positions) as g:
        assert g.read() == [Data(str(a), b"a2\n", 3)]


def test_glob_resumes_file_rotated_away_while_down(tmp_path: Path) -> None:
    a = tmp_path / "a.log"
    a.write_bytes(b"a1\n")
    with GlobTail(str(tmp_path / "*.log")) as g:
        catch_up(g)
        positions = {key: tail.position() for key, tail in g.tails.items()}
    append(a, b"a2\n")
    a.rename(tmp_path / "a.log.1")  # no new a.log yet
    with GlobTail(str(tmp_path / "*.log"), positions) as g:
        assert g.read() == [Data(str(a), b"a2\n", 3)]
        a.write_bytes(b"b1\n")
        assert g.read() == [Reset(str(a), "rotated"), Data(str(a), b"b1\n", 0)]


# --- TailSet: what the pipeline drives ---


def test_tail_set_follows_paths_and_globs_once(tmp_path: Path) -> None:
    log, out = tmp_path / "log.txt", tmp_path / "out.log"
    log.write_bytes(b"l1\n")
    out.write_bytes(b"o1\n")
    sources = [str(log), str(tmp_path / "*.log"), str(tmp_path / "*.txt"), str(log)]
    assert watch_paths(sources) == sources
    with TailSet(sources) as tails:
        items = tails.read()
        assert sorted(items, key=lambda i: i.key) == [Data(str(log), b"l1\n", 0), Data(str(out), b"o1\n", 0)]
        assert sorted(key for key, _ in tails.items()) == [str(log), str(out)]
        (tmp_path / "new.log").write_bytes(b"n1\n")
        assert tails.read() == [Reset(str(tmp_path / "new.log"), "created"), Data(str(tmp_path / "new.log"), b"n1\n", 0)]
        positions = {key: tail.position_at(3) for key, tail in tails.items()}
    append(log, b"l2\n")
    append(out, b"o2\n")
    with TailSet(sources, positions, start_at="end") as tails:
        assert sorted(tails.read(), key=lambda i: i.key) == [Data(str(log), b"l2\n", 3), Data(str(out), b"o2\n", 3)]


def test_tail_set_pending_while_any_tail_has_a_backlog(tmp_path: Path) -> None:
    (tmp_path / "big.log").write_bytes(b"x" * 5000)
    (tmp_path / "small.txt").write_bytes(b"y\n")
    with TailSet([str(tmp_path / "*.log"), str(tmp_path / "small.txt")], chunk_size=1000, max_chunks=2) as tails:
        s = Stream()
        s.feed([i for i in tails.read() if i.key.endswith("big.log")])
        assert tails.pending
        for _ in range(MAX_READS):
            s.feed([i for i in tails.read() if i.key.endswith("big.log")])
            if not tails.pending:
                break
        assert s.gens == [b"x" * 5000]


# --- errors ---


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_recorded_not_raised(log: Path, tail: FileTail) -> None:
    log.write_bytes(b"secret\n")
    log.chmod(0)
    assert tail.read() == []
    assert isinstance(tail.last_error, PermissionError)
    log.chmod(0o600)
    assert tail.read() == [Data("log", b"secret\n", 0)]
    assert tail.last_error is None


def test_not_a_regular_file_is_recorded_not_raised(log: Path, tail: FileTail) -> None:
    log.mkdir()
    assert tail.read() == []
    assert tail.last_error is not None and tail.last_error.filename == str(log)
    log.rmdir()
    log.write_bytes(b"a1\n")
    assert tail.read() == [Data("log", b"a1\n", 0)]  # the first file seen: no Reset
    assert tail.last_error is None


def test_position_before_first_read_is_the_saved_one(log: Path) -> None:
    """A caller that persists positions before the first read must not lose the saved one."""
    log.write_bytes(b"line 1\nline 2\n")
    pos = saved_position(log)
    with FileTail("log", log, pos) as t:
        assert t.position() == pos
        assert t.position_at(7).offset == 7
        with pytest.raises(ValueError):
            t.position_at(pos.offset + 1)


def test_failed_start_is_retried_from_the_saved_position(log: Path) -> None:
    log.write_bytes(b"line 1\n")
    pos = saved_position(log)
    log.unlink()
    log.mkdir()  # the path is unusable for a while
    with FileTail("log", log, pos) as t:
        assert t.read() == []
        assert t.last_error is not None
        assert t.position() == pos  # still what a caller persists
        log.rmdir()
        log.write_bytes(b"a new, longer line\n")  # longer: "replaced" even if the old inode is reused
        assert t.read() == [Reset("log", "replaced"), Data("log", b"a new, longer line\n", 0)]


# --- property: random writes, rotations and restarts; every byte exactly once ---

OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.binary(max_size=200)),
        st.tuples(st.just("read")),
        st.tuples(st.just("rotate"), st.binary(max_size=40), st.booleans()),
        st.tuples(st.just("copytruncate")),
        st.tuples(st.just("recreate")),
        st.tuples(st.just("delete")),
        st.tuples(st.just("restart")),
    ),
    max_size=30,
)


class Model:
    """The files and what the tail must deliver: one segment per generation, in order.

    Destructive operations happen right after a read: bytes written before a copytruncate, or to a
    file deleted before we ever saw it, cannot be recovered by any tailer.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / "log.txt"
        self.rotated = [directory / "log.txt.1", directory / "log.txt.2"]
        self.segments: list[bytearray] = []
        self.at_path: bytearray | None = None  # the segment the file at path belongs to
        self.serial = 0

    def tagged(self, payload: bytes) -> bytes:
        self.serial += 1  # a unique tag per write, so a rewritten file never starts like the old one
        return b"%d:" % self.serial + payload

    def new_segment(self) -> bytearray:
        self.segments.append(bytearray())
        return self.segments[-1]

    def append(self, payload: bytes) -> None:
        if self.at_path is None:
            self.at_path = self.new_segment()
        data = self.tagged(payload)
        append(self.path, data)
        self.at_path += data

    def shift_rotated(self) -> None:
        if self.rotated[0].exists():
            os.replace(self.rotated[0], self.rotated[1])

    def rotate(self, late: bytes, create: bool) -> None:
        self.shift_rotated()
        self.path.rename(self.rotated[0])
        if self.at_path:  # the writer appends once more to the file it had open
            data = self.tagged(late)
            append(self.rotated[0], data)
            self.at_path += data
        self.at_path = None
        if create:
            self.path.touch()
            self.at_path = self.new_segment()

    def copytruncate(self) -> None:
        self.shift_rotated()
        shutil.copyfile(self.path, self.rotated[0])
        os.truncate(self.path, 0)
        self.at_path = self.new_segment()

    def recreate(self) -> None:
        self.path.unlink()
        self.path.touch()
        self.at_path = self.new_segment()

    def delete(self) -> None:
        self.path.unlink()
        self.at_path = None

    def expected(self) -> list[bytes]:
        return [bytes(s) for s in self.segments if s]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(initial=st.binary(max_size=100), ops=OPERATIONS)
def test_every_byte_exactly_once(initial: bytes, ops: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as d:
        model = Model(Path(d))
        if initial:
            model.append(initial)
        stream = Stream()
        tail = FileTail("log", model.path, chunk_size=64, max_chunks=2)

        def read() -> None:
            catch_up(tail, stream)
            assert stream.nonempty() == model.expected()

        try:
            for op, *args in ops:
                exists = model.path.exists()
                if op == "append":
                    model.append(*args)
                elif op == "read":
                    read()
                elif op == "restart":
                    position = tail.position()
                    tail.close()
                    tail = FileTail("log", model.path, position, chunk_size=64, max_chunks=2)
                elif exists:  # destructive: right after a read
                    read()
                    getattr(model, op)(*args)
            read()
        finally:
            tail.close()
