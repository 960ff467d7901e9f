"""The SQLite store on real files: round trips, atomicity, kill -9 resume, queries, retention, threads."""

from __future__ import annotations

import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from exporter.events import Event, EventKind
from exporter.positions import Position
from exporter.store import MAX_QUERY_LIMIT, PRUNE_BATCH, SCHEMA_VERSION, Store, StoreError

ROOT = Path(__file__).resolve().parents[1]


def event(t: float, kind: EventKind = EventKind.DROP_PROGRESS, level: str = "INFO", **fields: object) -> Event:
    return Event(kind=kind, time=t, level=level, source="tdm.log", message=f"record at {t}", fields=fields)


def sql(path: Path, statement: str) -> list[tuple]:
    """Run one statement on its own connection, as another program touching the file would."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        return conn.execute(statement).fetchall()
    finally:
        conn.close()


def position(offset: int, key: str = "tdm.log") -> Position:
    return Position(key=key, dev=2049, ino=1234, offset=offset, head_hash="ab" * 32, head_len=256)


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "store.db") as store:
        yield store


# opening


def test_open_creates_private_files_and_versioned_schema(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "store.db"
    with Store.open(path):
        assert sql(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
        if os.name == "posix":
            for name in ("store.db", "store.db-wal", "store.db-shm"):
                assert (path.parent / name).stat().st_mode & 0o777 == 0o600, name


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_open_makes_an_existing_file_private(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    Store.open(path).close()
    assert path.stat().st_mode & 0o777 == 0o600


def test_open_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    Store.open(path).close()
    sql(path, "PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="schema version 99 was written by a newer"):
        Store.open(path)


def test_open_reports_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"store\.db: open failed: file is not a database"):
        Store.open(path)


def test_close_is_idempotent_and_later_use_fails_clearly(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store.db")
    store.close()
    store.close()
    with pytest.raises(StoreError, match="commit failed"):
        store.commit([event(1.0)], [], {}, {})


# round trip and atomicity


def test_round_trip_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    events = [
        event(1.5, EventKind.DROP_PROGRESS, drop="Drop ✓", game="Game", current=3, required=60),
        event(2.5, EventKind.WS_CLOSED, "WARNING", shard=1, code=None, nested={"a": [1, 2.5]}),
    ]
    big_inode = Position(key="other.log", dev=2**64 - 1, ino=2**64 - 2, offset=7, head_hash="", head_len=0)
    totals = {
        ("drops_claimed_total", (("game", "Game"), ("channel", "x"))): 3.0,
        ("events_total", ()): 2.0,
    }
    with Store.open(path) as store:
        store.commit(events, [position(100), big_inode], totals, {"model": '{"game": "Game"}'})
    with Store.open(path) as store:
        assert store.query_events() == events[::-1]
        assert store.load_positions() == {"tdm.log": position(100), "other.log": big_inode}
        assert store.load_totals() == {  # labels come back canonical: sorted
            ("drops_claimed_total", (("channel", "x"), ("game", "Game"))): 3.0,
            ("events_total", ()): 2.0,
        }
        assert store.load_state() == {"model": '{"game": "Game"}'}


def test_a_later_commit_replaces_positions_totals_and_state(store: Store) -> None:
    store.commit([event(1.0)], [position(10)], {("events_total", ()): 1}, {"model": "a"})
    store.commit([event(2.0)], [position(20)], {("events_total", ()): 2}, {"model": "b"})
    assert store.load_positions() == {"tdm.log": position(20)}
    assert store.load_totals() == {("events_total", ()): 2.0}
    assert store.load_state() == {"model": "b"}
    assert store.count_events() == 2


def test_a_failing_commit_leaves_nothing_of_its_batch(store: Store) -> None:
    store.commit([event(1.0)], [position(10)], {("events_total", ()): 1}, {"model": "a"})
    bad_batch = [event(2.0), event(3.0, unserialisable=object()), event(4.0)]
    with pytest.raises(TypeError, match="not JSON serializable"):
        totals = {("events_total", ()): 4, ("new_total", ()): 1}
        store.commit(bad_batch, [position(40)], totals, {"model": "b"})
    assert store.count_events() == 1
    assert store.load_positions() == {"tdm.log": position(10)}
    assert store.load_totals() == {("events_total", ()): 1.0}
    assert store.load_state() == {"model": "a"}
    store.commit([event(2.0)], [position(20)], {("events_total", ()): 2}, {})  # still usable
    assert store.count_events() == 2


def test_a_write_lock_held_too_long_raises_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with Store.open(path, busy_timeout=0.05) as store:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match=r"store\.db: commit failed: database is locked"):
            store.commit([event(1.0)], [position(10)], {}, {})
        other.execute("ROLLBACK")
        other.close()
        assert store.load_positions() == {}
        store.commit([event(1.0)], [position(10)], {}, {})
        assert store.count_events() == 1


# kill -9

CHILD = r"""
import sys
from pathlib import Path
from exporter.events import Event, EventKind
from exporter.positions import Position
from exporter.store import Store

store = Store.open(Path(sys.argv[1]))
total = int(store.load_totals().get(("events_total", ()), 0))
batch = int(store.load_state().get("batches", "0"))
while True:
    batch += 1
    size = batch % 50 + 1
    events = [
        Event(EventKind.DROP_PROGRESS, float(total + i), "INFO", "tdm.log", "x" * 200, {"batch": batch})
        for i in range(size)
    ]
    total += size
    position = Position("tdm.log", 1, 2, 10 * total, "h", 0)
    store.commit(events, [position], {("events_total", ()): total}, {"batches": str(batch)})
    print(batch, flush=True)  # after commit() returned: this batch must survive
"""


def _acknowledged(output: bytes) -> int:
    lines = output.split(b"\n")[:-1]  # a line cut by the kill has no newline
    return int(lines[-1]) if lines else 0


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs kill -9")
def test_kill_9_mid_commit_resumes_exactly(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    rng = random.Random()
    acknowledged = 0
    for _ in range(4):
        target = acknowledged + rng.randint(1, 200)
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], cwd=ROOT, stdout=subprocess.PIPE)
        output = b""
        try:
            deadline = time.monotonic() + 30
            while _acknowledged(output) < target:  # the child keeps committing while we read
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"child acknowledged only {_acknowledged(output)} batches"
                if select.select([child.stdout], [], [], remaining)[0]:
                    chunk = os.read(child.stdout.fileno(), 65536)
                    assert chunk, f"child exited with {child.wait()}"
                    output += chunk
            # The child woke us by printing, so it is now just past a commit. A random pause of up to a
            # few commits moves the kill to a random point of the loop, most often inside commit().
            # It picks the moment of the kill; it synchronises nothing.
            time.sleep(rng.uniform(0, 0.003))
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
            output += child.stdout.read()  # lines printed before the kill landed
        finally:
            child.kill()
            child.wait(timeout=10)
            child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        acknowledged = _acknowledged(output)

        with Store.open(path) as store:
            total = store.load_totals()[("events_total", ())]
            batches = int(store.load_state()["batches"])
            # Every acknowledged batch is there; at most one more committed before its print.
            assert acknowledged <= batches <= acknowledged + 1
            assert store.count_events() == total
            assert store.load_positions()["tdm.log"].offset == 10 * total
            newest = store.query_events(limit=50)
            assert newest[0].time == total - 1
            assert [e.fields["batch"] for e in newest].count(batches) == batches % 50 + 1
        assert sql(path, "PRAGMA integrity_check") == [("ok",)]
        acknowledged = batches


# queries


def test_query_filters_and_orders_newest_first(store: Store) -> None:
    kinds = [EventKind.DROP_PROGRESS, EventKind.WATCHING, EventKind.WS_ERROR]
    events = [event(100.0 + i, kinds[i % 3], "ERROR" if i % 3 == 2 else "INFO", i=i) for i in range(30)]
    events.append(event(129.0, i=30))  # same time as i=29: the later insert is newer
    store.commit(events, [], {}, {})

    assert [e.fields["i"] for e in store.query_events()] == [30, *range(29, -1, -1)]
    watching = store.query_events(kind="watching")
    assert len(watching) == 10 and all(e.kind is EventKind.WATCHING for e in watching)
    assert store.query_events(kind=EventKind.WATCHING) == watching
    assert {e.kind for e in store.query_events(level="ERROR")} == {EventKind.WS_ERROR}
    assert [e.time for e in store.query_events(since=110, until=113)] == [113.0, 112.0, 111.0, 110.0]
    assert [e.fields["i"] for e in store.query_events(kind="ws_error", since=120)] == [29, 26, 23, 20]
    assert [e.fields["i"] for e in store.query_events(limit=3)] == [30, 29, 28]
    assert len(store.query_events(limit=0)) == len(store.query_events(limit=-5)) == 1
    assert store.query_events(kind="watching' OR 1=1 --") == []
    assert store.count_events() == 31
    assert store.count_events(kind="watching", until=110) == 4


def test_query_limit_is_clamped_to_the_maximum(store: Store) -> None:
    store.commit([event(float(i)) for i in range(MAX_QUERY_LIMIT + 200)], [], {}, {})
    events = store.query_events(limit=10**6)
    assert len(events) == MAX_QUERY_LIMIT
    assert events[0].time == MAX_QUERY_LIMIT + 199


def test_query_skips_kinds_this_version_does_not_know(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with Store.open(path) as store:
        store.commit([event(1.0), event(3.0)], [], {}, {})
        sql(
            path,
            "INSERT INTO events (time, source, level, kind, fields, message)"
            " VALUES (2.0, 'tdm.log', 'INFO', 'from_the_future', '{}', 'x')",
        )
        assert [e.time for e in store.query_events()] == [3.0, 1.0]


# retention


def test_prune_by_age_deletes_only_older_events(store: Store) -> None:
    count = 2 * PRUNE_BATCH + 100  # several delete batches
    events = [event(float(i)) for i in range(count)]
    store.commit(events, [position(10)], {("events_total", ()): count}, {"m": "s"})
    assert store.prune(now=count, max_age_seconds=100, max_bytes=None) == count - 100
    assert store.count_events() == 100
    assert store.query_events(limit=1000)[-1].time == count - 100
    assert store.load_positions() == {"tdm.log": position(10)}
    assert store.load_totals() == {("events_total", ()): count}
    assert store.load_state() == {"m": "s"}
    assert store.prune(now=count, max_age_seconds=100, max_bytes=None) == 0


def test_prune_by_size_shrinks_the_files_and_keeps_the_newest(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    wal = tmp_path / "store.db-wal"
    count = 20_000
    with Store.open(path) as store:
        for start in range(0, count, 1000):
            events = [event(float(i), pad="p" * 300) for i in range(start, start + 1000)]
            store.commit(events, [position(start)], {}, {})
        before = path.stat().st_size + wal.stat().st_size
        budget = 1_000_000
        assert before > 5 * budget

        deleted = store.prune(now=count, max_age_seconds=None, max_bytes=budget)

        kept = store.count_events()
        assert deleted == count - kept and 0 < kept < count
        assert path.stat().st_size <= budget
        assert wal.stat().st_size == 0
        assert store.query_events(limit=1)[0].time == count - 1
        assert store.count_events(since=count - kept) == kept  # exactly the newest survive
        assert store.load_positions() == {"tdm.log": position(count - 1000)}


# threads


def test_readers_see_whole_batches_while_the_writer_commits(store: Store) -> None:
    batches, size = 300, 10
    done = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for b in range(batches):
                events = [event(float(b * size + i), i=i) for i in range(size)]
                store.commit(events, [position(b)], {("events_total", ()): (b + 1) * size}, {"b": str(b)})
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    def read() -> None:
        try:
            seen = 0
            deadline = time.monotonic() + 30
            while not done.is_set() and time.monotonic() < deadline:
                count = store.count_events()
                assert count % size == 0 and count >= seen
                seen = count
                store.query_events(limit=5)
                store.load_totals()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write), threading.Thread(target=read), threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    for thread in reversed(threads):
        thread.join(timeout=60)
        assert not thread.is_alive()
    assert errors == []
    assert store.count_events() == batches * size
