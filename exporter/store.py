"""The embedded SQLite store: event history, file positions, lifetime totals, state snapshot.

A thin adapter around stdlib sqlite3 with one job. The pipeline commits each batch in a
single transaction: the events, the file positions that produced them and the counters
they changed. After a restart, even one caused by kill -9, the daemon resumes exactly at
the last commit. Nothing is lost and nothing is counted twice. HTTP threads read the
history back.

Threads: the pipeline thread writes and HTTP threads read. The store holds two
connections, each used under its own lock, so `check_same_thread=False` is safe. In WAL
mode the read connection never waits for the write connection, so a long commit or prune
does not stall a request. Reads are short and LIMITed, so serialising them costs little.
Connections per thread would leak: the HTTP server starts a thread for each request, and
two connections are easy to close.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
import threading
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

from .errors import UserError
from .events import Event, EventKind
from .positions import Position

Labels = tuple[tuple[str, str], ...]

MAX_QUERY_LIMIT = 1000
# SQLite's memory: each connection's page cache is capped (its default, 2 MB, was filled over hours
# and never given back), and the WAL is truncated after each checkpoint (every ~1000 pages).
CACHE_KIB = 1024
WAL_SIZE_LIMIT = 4 << 20
NOTIFICATIONS_KEPT = 10_000
PRUNE_BATCH = 5000  # rows per delete transaction, so a prune never holds the write lock for long
_KINDS = {kind.value: kind for kind in EventKind}

# _MIGRATIONS[i] takes the schema from version i to i + 1; PRAGMA user_version counts those applied.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            time REAL NOT NULL,
            source TEXT NOT NULL,
            level TEXT NOT NULL,
            kind TEXT NOT NULL,
            fields TEXT NOT NULL,  -- JSON object
            message TEXT NOT NULL
        )""",
        "CREATE INDEX events_time ON events (time)",
        "CREATE INDEX events_kind_time ON events (kind, time)",
        # dev and ino are decimal text: overlayfs (xino) and Windows (ReFS) produce
        # inode numbers that do not fit in SQLite's signed 64-bit INTEGER.
        """CREATE TABLE positions (
            key TEXT PRIMARY KEY,
            dev TEXT NOT NULL,
            ino TEXT NOT NULL,
            offset INTEGER NOT NULL,
            head_hash TEXT NOT NULL,
            head_len INTEGER NOT NULL
        )""",
        """CREATE TABLE totals (
            name TEXT NOT NULL,
            labels TEXT NOT NULL,  -- canonical JSON: sorted [[name, value], ...]
            value REAL NOT NULL,
            PRIMARY KEY (name, labels)
        ) WITHOUT ROWID""",
        "CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    ),
    (
        # What notify.py sent (or failed or held back), one row per channel URL: the page's list, and
        # the keys that are never sent twice, also after a restart. `channel` is the masked URL.
        """CREATE TABLE notifications (
            id INTEGER PRIMARY KEY,
            time REAL NOT NULL,
            event TEXT NOT NULL,
            key TEXT NOT NULL,
            channel TEXT NOT NULL,
            result TEXT NOT NULL,
            message TEXT NOT NULL,
            error TEXT
        )""",
        "CREATE INDEX notifications_key ON notifications (key)",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)


class StoreError(UserError):
    """The database could not be opened, read or written. The message names the file and the step."""


class Store:
    def __init__(self, path: Path, writer: sqlite3.Connection, reader: sqlite3.Connection) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, *, busy_timeout: float = 5.0) -> Store:
        """Open or create the store at path, creating its directory and schema as needed.

        busy_timeout is how long to wait for another connection's write lock before failing.
        """
        path = Path(path)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.touch(mode=0o600)  # the event history is private; SQLite gives -wal and -shm the same mode
        for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if file.exists():
                file.chmod(0o600)
        with _failing(path, "open"):
            writer = _connect(path, busy_timeout)
            try:
                # Set before the first table exists. It lets prune return freed pages to the filesystem.
                writer.execute("PRAGMA auto_vacuum = INCREMENTAL")
                mode = writer.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode != "wal":
                    raise StoreError(f"{path}: cannot use WAL journal mode (got {mode!r})")
                # NORMAL syncs the WAL to disk at checkpoints, not at every commit. Once commit()
                # returns, the transaction is in the WAL file. The OS writes that file out even if
                # this process is killed with kill -9, so process death loses nothing. Only power
                # loss or an OS crash can lose the last few transactions, and whole transactions
                # go: the database stays consistent.
                writer.execute("PRAGMA synchronous = NORMAL")
                writer.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
                _migrate(writer, path)
                reader = _connect(path, busy_timeout)
                reader.execute("PRAGMA query_only = ON")
            except BaseException:
                writer.close()
                raise
        return cls(path, writer, reader)

    def close(self) -> None:
        """Close both connections; later calls do nothing. The last close also checkpoints the WAL."""
        with self._write_lock, self._read_lock:
            self._reader.close()
            self._writer.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # writing

    def commit(
        self,
        events: Sequence[Event],
        positions: Iterable[Position],
        totals: Mapping[tuple[str, Labels], float],
        state: Mapping[str, str],
    ) -> None:
        """Write one batch in one transaction. Either all of it is stored or, if anything fails, none of it.

        positions, totals and state replace the rows with the same key. Totals hold the counters'
        absolute values, not increments. Messages are stored as given; the caller redacts them.
        """
        with _failing(self.path, "commit"), self._transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO positions VALUES (?, ?, ?, ?, ?, ?)",
                ((p.key, str(p.dev), str(p.ino), p.offset, p.head_hash, p.head_len) for p in positions),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO totals VALUES (?, ?, ?)",
                ((name, _labels_json(labels), float(value)) for (name, labels), value in totals.items()),
            )
            conn.executemany("INSERT OR REPLACE INTO state VALUES (?, ?)", state.items())
            # The generator serialises inside the transaction. A bad event (e.g. its fields are not
            # JSON-serialisable) raises after the rows above were written, and the rollback undoes them.
            conn.executemany(
                "INSERT INTO events (time, source, level, kind, fields, message) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    (e.time, e.source, e.level, EventKind(e.kind).value, json.dumps(dict(e.fields)), e.message)
                    for e in events
                ),
            )

    def prune(self, now: float, max_age_seconds: float | None, max_bytes: int | None) -> int:
        """Delete the oldest events and return how many rows went.

        First delete the events older than max_age_seconds before now. Then keep deleting the
        oldest until the pages in use fit in max_bytes. Positions, totals and state are never
        touched. Each batch of at most PRUNE_BATCH rows is its own transaction, so the pipeline
        can commit between batches.
        """
        deleted = 0
        if max_age_seconds is not None:
            while (n := self._delete_oldest(now - max_age_seconds, PRUNE_BATCH)) > 0:
                deleted += n
        if max_bytes is not None:
            while True:
                used, rows = self._usage()
                if used <= max_bytes or rows == 0:
                    break
                # Deleting a share of the rows frees about that share of the pages. At least
                # 100 rows per batch, so that near the budget the loop cannot crawl one row at a time.
                want = math.ceil(rows * (used - max_bytes) / used)
                n = self._delete_oldest(math.inf, min(max(want, 100), PRUNE_BATCH))
                if n == 0:  # only events stamped +inf are left; stop rather than spin
                    break
                deleted += n
        if deleted:
            with _failing(self.path, "prune"), self._write_lock:
                # Give the freed pages back to the filesystem: the database file shrinks. Then copy the
                # WAL into the database and truncate the WAL. incremental_vacuum frees one page per
                # step and execute() steps only once, so executescript() runs it to the end. If a
                # reader holds an old snapshot, the checkpoint gives up after busy_timeout and
                # returns "busy"; it does not raise.
                self._writer.executescript("PRAGMA incremental_vacuum")
                self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return deleted

    def _delete_oldest(self, before: float, limit: int) -> int:
        with _failing(self.path, "prune"), self._transaction() as conn:
            return conn.execute(
                "DELETE FROM events WHERE id IN"
                " (SELECT id FROM events WHERE time < ? ORDER BY time, id LIMIT ?)",
                (before, limit),
            ).rowcount

    def _usage(self) -> tuple[int, int]:
        """(bytes in used pages, event rows).

        Free pages are not counted: a delete frees pages, but the file keeps its size.
        """
        with _failing(self.path, "prune"), self._write_lock:
            (pages,) = self._writer.execute("PRAGMA page_count").fetchone()
            (free,) = self._writer.execute("PRAGMA freelist_count").fetchone()
            (page_size,) = self._writer.execute("PRAGMA page_size").fetchone()
            (rows,) = self._writer.execute("SELECT count(*) FROM events").fetchone()
        return (pages - free) * page_size, rows

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            with _transaction(self._writer):
                yield self._writer

    def add_notification(
        self, time: float, event: str, key: str, channel: str, result: str, message: str, error: str | None
    ) -> None:
        """One delivery outcome; the table keeps the newest NOTIFICATIONS_KEPT rows."""
        with _failing(self.path, "add notification"), self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO notifications (time, event, key, channel, result, message, error)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (time, event, key, channel, result, message, error),
            )
            conn.execute("DELETE FROM notifications WHERE id <= ?", (cursor.lastrowid - NOTIFICATIONS_KEPT,))

    def notifications(self, limit: int = 50) -> list[dict[str, object]]:
        """The newest delivery outcomes first."""
        limit = min(max(int(limit), 1), MAX_QUERY_LIMIT)
        rows = self._read(
            "query notifications",
            "SELECT time, event, key, channel, result, message, error FROM notifications ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        names = ("time", "event", "key", "channel", "result", "message", "error")
        return [dict(zip(names, row)) for row in rows]

    def notification_keys(self) -> set[str]:
        """Keys of every notification remembered, whatever its result."""
        return {key for (key,) in self._read("load notification keys", "SELECT DISTINCT key FROM notifications")}

    # reading

    def load_positions(self) -> dict[str, Position]:
        rows = self._read("load positions", "SELECT key, dev, ino, offset, head_hash, head_len FROM positions")
        return {
            key: Position(key, int(dev), int(ino), offset, head_hash, head_len)
            for key, dev, ino, offset, head_hash, head_len in rows
        }

    def load_totals(self) -> dict[tuple[str, Labels], float]:
        rows = self._read("load totals", "SELECT name, labels, value FROM totals")
        return {(name, tuple((k, v) for k, v in json.loads(labels))): value for name, labels, value in rows}

    def load_state(self) -> dict[str, str]:
        return dict(self._read("load state", "SELECT key, value FROM state"))

    def query_events(
        self,
        kind: str | None = None,
        level: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[Event]:
        """Events matching every filter given, newest first. since and until are inclusive.

        limit is clamped to [1, MAX_QUERY_LIMIT]. Rows whose kind this version does not know
        (a newer version wrote them) are skipped, so fewer than limit events may come back.
        """
        where, params = _where(kind, level, since, until)
        limit = min(max(int(limit), 1), MAX_QUERY_LIMIT)
        rows = self._read(
            "query events",
            f"SELECT time, source, level, kind, fields, message FROM events{where}"
            " ORDER BY time DESC, id DESC LIMIT ?",
            (*params, limit),
        )
        return [_event(*row) for row in rows if row[3] in _KINDS]

    def count_events(
        self,
        kind: str | None = None,
        level: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> int:
        """How many event rows match the filters, without a limit. Rows of unknown kinds count too."""
        where, params = _where(kind, level, since, until)
        return self._read("count events", f"SELECT count(*) FROM events{where}", params)[0][0]

    def _read(self, action: str, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        with _failing(self.path, action), self._read_lock:
            return self._reader.execute(sql, params).fetchall()


def _connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    # isolation_level=None turns off sqlite3's implicit transactions; we BEGIN and COMMIT ourselves.
    # timeout= is SQLite's busy_timeout.
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")  # negative: KiB, not pages
    conn.execute("PRAGMA temp_store = FILE")  # sorts for big queries spill to disk, not to memory
    return conn


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock now, so waiting for another writer happens here, bounded by busy_timeout.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # some errors (e.g. disk full) already rolled back
            conn.execute("ROLLBACK")
        raise


@contextlib.contextmanager
def _failing(path: Path, action: str) -> Iterator[None]:
    """Turn sqlite3 errors into StoreError, naming the file and the step. Other errors pass through."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: {action} failed: {exc}") from exc


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    # The version is read inside the write transaction, in case another process is migrating the same file.
    with _transaction(conn):
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{path}: schema version {version} was written by a newer twitchminert;"
                f" this one reads up to version {SCHEMA_VERSION}"
            )
        for statements in _MIGRATIONS[version:]:
            for statement in statements:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")  # a constant: PRAGMA takes no parameters


def _event(time: float, source: str, level: str, kind: str, fields: str, message: str) -> Event:
    return Event(
        kind=_KINDS[kind], time=time, level=level, source=source, message=message, fields=json.loads(fields)
    )


def _labels_json(labels: Labels) -> str:
    return json.dumps(sorted(labels), separators=(",", ":"))


def _where(
    kind: str | None, level: str | None, since: float | None, until: float | None
) -> tuple[str, list[object]]:
    """A WHERE clause built only from constant fragments; every value is a bound parameter."""
    terms, params = [], []
    for term, value in (("kind = ?", kind), ("level = ?", level), ("time >= ?", since), ("time <= ?", until)):
        if value is not None:
            terms.append(term)
            params.append(value)
    return (" WHERE " + " AND ".join(terms) if terms else ""), params
