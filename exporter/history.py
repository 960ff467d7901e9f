"""History read back from the store for the web console: the event log searched and paged, the drops
claimed (time, game, drop, rewards), drops per day, and the current drop's progress over time.

Read-only: each query opens its own `query_only` connection to the store file (WAL lets it read while
the pipeline writes), so this module needs nothing from the Store class but its path. Pure helpers
(`parse_claim`, `per_day`, `thin`) are apart from the SQL so they can be tested alone.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence
from zoneinfo import ZoneInfo

MAX_PAGE = 200
MAX_POINTS = 400  # progress points sent to the page; a drop of 6 h at one update a minute is 360
CONFIRMED_SOURCES = frozenset({"websocket", "gql"})  # what Twitch said; "active_search" is TDM's own estimate
_LIKE_ESCAPE = str.maketrans({"\\": "\\\\", "%": "\\%", "_": "\\_"})


class HistoryError(ValueError):
    """A bad query parameter; the message says which."""


@dataclass(frozen=True)
class EventQuery:
    levels: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    text: str = ""
    offset: int = 0
    limit: int = 50
    until: float | None = None  # page against a fixed newest time, so new events do not shift the pages

    @classmethod
    def from_params(cls, params: dict[str, list[str]]) -> "EventQuery":
        def listed(name: str) -> tuple[str, ...]:
            return tuple(v for value in params.get(name, ()) for v in value.split(",") if v)

        def one(name: str) -> str | None:
            values = params.get(name)
            return values[0] if values else None

        try:
            offset = int(one("offset") or 0)
            limit = int(one("limit") or 50)
            until = float(one("until")) if one("until") else None
        except ValueError:
            raise HistoryError("offset and limit must be whole numbers, until a number") from None
        if offset < 0 or not 1 <= limit <= MAX_PAGE:
            raise HistoryError(f"offset must be 0 or more, limit from 1 to {MAX_PAGE}")
        return cls(listed("level"), listed("kind"), (one("q") or "").strip(), offset, limit, until)


def _where(query: EventQuery) -> tuple[str, list[Any]]:
    terms: list[str] = []
    params: list[Any] = []
    for column, values in (("level", query.levels), ("kind", query.kinds)):
        if values:
            terms.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
    if query.text:
        terms.append("message LIKE ? ESCAPE '\\'")  # case-insensitive for ASCII, as SQLite's LIKE is
        params.append(f"%{query.text.translate(_LIKE_ESCAPE)}%")
    if query.until is not None:
        terms.append("time <= ?")
        params.append(query.until)
    return (" WHERE " + " AND ".join(terms) if terms else ""), params


# -- pure helpers ---------------------------------------------------------------------------------


def parse_claim(text: str, games: Iterable[str]) -> tuple[str | None, str]:
    """TDM's "Claimed drop: <game> <rewards>" text as (game, rewards): the longest known game prefixing it."""
    candidates = [game for game in games if game and (text == game or text.startswith(game + " "))]
    if not candidates:
        return None, text
    game = max(candidates, key=len)
    return game, text[len(game) :].strip()


def per_day(times: Iterable[float], zone: str, days: int, now: float) -> list[dict[str, Any]]:
    """Claims per local calendar day, the last `days` days up to today, zero days included."""
    tz = ZoneInfo(zone)
    today = datetime.datetime.fromtimestamp(now, tz).date()
    counts = {today - datetime.timedelta(days=n): 0 for n in range(days - 1, -1, -1)}
    for time in times:
        day = datetime.datetime.fromtimestamp(time, tz).date()
        if day in counts:
            counts[day] += 1
    return [{"day": day.isoformat(), "claimed": count} for day, count in counts.items()]


def thin(points: Sequence[dict[str, Any]], limit: int = MAX_POINTS) -> list[dict[str, Any]]:
    """At most `limit` points, evenly spread, always keeping the first and the last."""
    if len(points) <= limit:
        return list(points)
    step = (len(points) - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]


def known_zone(name: str | None) -> str:
    if not name:
        return "UTC"
    try:
        ZoneInfo(name)
    except Exception:  # KeyError subclasses, ValueError, OSError for odd names
        raise HistoryError(f"unknown time zone {name!r}") from None
    return name


# -- queries --------------------------------------------------------------------------------------


class History:
    def __init__(self, store_file) -> None:
        self._store_file = store_file  # a callable: the store moves when storage.path is reloaded

    @contextlib.contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        path = Path(self._store_file())
        connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5.0)
        try:
            connection.execute("PRAGMA query_only = ON")
            yield connection
        finally:
            connection.close()

    def events(self, query: EventQuery) -> dict[str, Any]:
        where, params = _where(query)
        with self._reader() as db:
            total = db.execute(f"SELECT count(*) FROM events{where}", params).fetchone()[0]
            rows = db.execute(
                f"SELECT id, time, source, level, kind, fields, message FROM events{where}"
                " ORDER BY time DESC, id DESC LIMIT ? OFFSET ?",
                (*params, query.limit, query.offset),
            ).fetchall()
            kinds = [kind for (kind,) in db.execute("SELECT DISTINCT kind FROM events ORDER BY kind")]
        events = [
            {"id": id_, "time": time, "source": source, "level": level, "kind": kind,
             "fields": json.loads(fields), "message": message}
            for id_, time, source, level, kind, fields, message in rows
        ]
        return {"total": total, "offset": query.offset, "limit": query.limit, "events": events, "kinds": kinds}

    def claims(self, limit: int = 100, extra_games: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Claimed drops, newest first: time, game, drop (the last drop mined for that game before the
        claim), rewards and n/total."""
        with self._reader() as db:
            rows = db.execute(
                "SELECT time, fields FROM events WHERE kind = 'drop_claimed' ORDER BY time DESC, id DESC LIMIT ?",
                (min(max(limit, 1), 1000),),
            ).fetchall()
            progress = db.execute(
                "SELECT time, json_extract(fields, '$.game'), json_extract(fields, '$.drop') FROM events"
                " WHERE kind = 'drop_progress' AND time >= ? ORDER BY time",
                (rows[-1][0] - 86400.0 if rows else 0.0,),
            ).fetchall()
        games = {game for _, game, _ in progress if game} | set(extra_games)
        claims = []
        for time, fields in rows:
            data = json.loads(fields)
            game, rewards = parse_claim(str(data.get("text", "")), games)
            drop = None
            for when, progress_game, name in reversed(progress):
                if when <= time and progress_game == game:
                    drop = name
                    break
            claims.append({"time": time, "game": game, "drop": drop, "rewards": rewards,
                           "claimed": data.get("claimed"), "total": data.get("total")})
        return claims

    def claim_times(self, since: float) -> list[float]:
        with self._reader() as db:
            rows = db.execute("SELECT time FROM events WHERE kind = 'drop_claimed' AND time >= ?", (since,)).fetchall()
        return [time for (time,) in rows]

    def progress(self, drop: str | None, game: str | None, since: float | None = None) -> list[dict[str, Any]]:
        """The progress of one drop over time, oldest first, confirmed (Twitch) and estimated (TDM) apart."""
        if not drop:
            return []
        with self._reader() as db:
            rows = db.execute(
                "SELECT time, json_extract(fields, '$.current'), json_extract(fields, '$.required'),"
                " json_extract(fields, '$.source') FROM events"
                " WHERE kind = 'drop_progress' AND json_extract(fields, '$.drop') = ?"
                " AND (? IS NULL OR json_extract(fields, '$.game') = ?) AND time >= ? ORDER BY time, id",
                (drop, game, game, since or 0.0),
            ).fetchall()
        points = [
            {"time": time, "minutes": current, "required": required,
             "confirmed": source in CONFIRMED_SOURCES}
            for time, current, required, source in rows
        ]
        return thin(latest_run(points))


def latest_run(points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points since the drop's progress last went back down (the same drop name mined again later,
    or a new campaign): a chart of the current drop shows only its current run."""
    start = 0
    for index in range(1, len(points)):
        before, now = points[index - 1]["minutes"], points[index]["minutes"]
        if isinstance(before, (int, float)) and isinstance(now, (int, float)) and now < before:
            start = index
    return list(points[start:])
