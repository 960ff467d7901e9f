"""The web console's queries on a full store: history pages, text search, claims, per-day counts, drop
progress, and a settings save (validate + round-trip YAML + atomic write).

Fills a store with N events (default 300,000: about a month of a -vvv TDM, near the 200 MB default cap) in
the pipeline's own batches, then times each query as the API runs it and prints the median and worst of
several runs in milliseconds.

    .venv/bin/python benchmarks/console_queries.py [--events 300000] [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exporter.events import Event, EventKind  # noqa: E402
from exporter.history import EventQuery, History  # noqa: E402
from exporter.settings_editor import atomic_replace, edited_text  # noqa: E402
from exporter.config import parse_config  # noqa: E402
from exporter.store import Store  # noqa: E402

BATCH = 2000
CONFIG = Path(__file__).resolve().parents[1] / "examples" / "twitchminert.yaml"


def fill(store: Store, count: int, start: float) -> None:
    games = ["Starfall Arena", "Pixel Kingdoms", "Neon Drift"]
    batch: list[Event] = []
    for i in range(count):
        when = start + i * 9.0  # one every 9 s: 300k events span about a month
        game = games[(i // 5000) % 3]
        if i % 400 == 399:
            event = Event(EventKind.DROP_CLAIMED, when, "GUI", "gui", f"Claimed drop: {game} Reward {i} (1/3)",
                          {"text": f"{game} Reward {i}", "claimed": 1, "total": 3})
        elif i % 3 == 0:
            current = (i // 3) % 60
            event = Event(EventKind.DROP_PROGRESS, when, "CALL", "log", f"Drop update from websocket: Drop {i // 180} ({game}, {current}/60)",
                          {"drop": f"Drop {i // 180}", "game": game, "current": current, "required": 60, "source": "websocket"})
        elif i % 50 == 1:
            event = Event(EventKind.WS_RECONNECTING, when, "WARNING", "log", "Websocket[0] reconnecting...", {"shard": 0})
        else:
            event = Event(EventKind.WATCHING, when, "GUI", "gui", f"Watching: Streamer{i % 97}", {"channel": f"Streamer{i % 97}"})
        batch.append(event)
        if len(batch) == BATCH:
            store.commit(batch, [], {}, {})
            batch = []
    store.commit(batch, [], {}, {})


def timed(runs: int, call) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        call()
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples), max(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tm-console-bench-") as folder:
        path = Path(folder) / "store.sqlite"
        now = time.time()
        began = time.perf_counter()
        with Store.open(path) as store:
            fill(store, args.events, now - args.events * 9.0)
        size = path.stat().st_size / 1e6
        print(f"store: {args.events} events, {size:.0f} MB, filled in {time.perf_counter() - began:.1f} s")
        history = History(lambda: path)
        last_drop = f"Drop {(args.events - 1) // 180}"
        cases = {
            "events page 1 (50)": lambda: history.events(EventQuery(limit=50)),
            "events page 100 (offset 4950)": lambda: history.events(EventQuery(offset=4950, limit=50)),
            "events level=WARNING": lambda: history.events(EventQuery(levels=("WARNING",), limit=50)),
            "events kind=drop_claimed": lambda: history.events(EventQuery(kinds=("drop_claimed",), limit=50)),
            "events search 'Streamer42'": lambda: history.events(EventQuery(text="Streamer42", limit=50)),
            "events search (no match)": lambda: history.events(EventQuery(text="no such text", limit=50)),
            "claims (100)": lambda: history.claims(100, ()),
            "claim times, 15 days": lambda: history.claim_times(now - 15 * 86400),
            "current drop progress": lambda: history.progress(last_drop, None),
        }
        print(f"{'query':34} {'median ms':>10} {'max ms':>10}")
        for name, call in cases.items():
            median, worst = timed(args.runs, call)
            print(f"{name:34} {median:10.1f} {worst:10.1f}")

        config = Path(folder) / "twitchminert.yaml"
        config.write_text(CONFIG.read_text())

        def save() -> None:
            text = edited_text(config.read_text(), {"priority": ["Starfall Arena", "Pixel Kingdoms", f"Game {time.time()}"]})
            parse_config(text, config.name)
            atomic_replace(config, text.encode())

        median, worst = timed(args.runs, save)
        print(f"{'settings save (edit+validate+write)':34} {median:10.1f} {worst:10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
