"""Memory over time: the daemon following a busy log for a long while.

Starts `twitchminert run` on a temporary log and, for `--minutes`, appends `--rate` TDM records per
second (drop progress, websocket, login, DEBUG noise), rotates the log every `--rotate-every`
seconds (rename, new file), reloads the config every `--reload-every` seconds (SIGHUP, the user
patterns toggled so the pipeline takes new patterns), and scrapes /metrics `--scrapes` times a
second. Prints the daemon's RSS at the start, after one minute, every minute, and at the end, and
the growth after the first minute (the target is under 2 MiB).

    .venv/bin/python benchmarks/soak.py [--minutes 30] [--rate 100] [--scrapes 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil

from daemon_run import listening_url, spawn

RECORDS = (
    ("CALL", "Drop update from websocket: Soak Drop {n} (Soak Game, {m}/120)"),
    ("INFO", "Websocket[{s}] connected."),
    ("WARNING", "Websocket[{s}] reconnecting..."),
    ("INFO", "SoakStreamer{n} goes OFFLINE"),
    ("DEBUG", "Request: (method='POST', url='https://gql.twitch.tv/gql', kwargs={{'json': {{'operationName': 'Inventory {n}'}}}})"),
    ("DEBUG", "Response: 200: {{'data': {{'currentUser': {{'id': '{n}'}}}}}}"),
    ("CALL", "Maintenance task waiting until: 23:21:{m:02d} (Reload)"),
)
PATTERNS = "patterns:\n  - name: reconnects\n    regex: 'Websocket\\[(?P<shard>\\d+)\\] reconnecting'\n    counter: {metric: tdm_user_soak_reconnects_total, labels: [shard]}\n"


def config_text(log: Path, data: Path, patterns: Path | None) -> str:
    text = f"logs:\n  files: [{json.dumps(str(log))}]\n"
    if patterns is not None:
        text += f"  patterns: [{json.dumps(str(patterns))}]\n"
    return text + f"storage:\n  path: {json.dumps(str(data))}\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=100.0, help="records appended per second")
    parser.add_argument("--scrapes", type=float, default=10.0, help="/metrics scrapes per second")
    parser.add_argument("--rotate-every", type=float, default=60.0)
    parser.add_argument("--reload-every", type=float, default=30.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tm-soak-"))
    log, data, patterns = work / "log.txt", work / "data", work / "patterns.yaml"
    log.write_bytes(b"")
    patterns.write_text(PATTERNS)
    config = work / "config.yaml"
    config.write_text(config_text(log, data, None))
    daemon = spawn(config)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    counts = {"records": 0, "rotations": 0, "reloads": 0, "scrapes": 0}
    try:
        url = listening_url(daemon) + "/metrics"

        def write() -> None:
            out = open(log, "ab")
            n = 0
            step = 0.1
            per_step = args.rate * step
            next_at = time.monotonic()
            rotate_at = next_at + args.rotate_every
            owed = 0.0
            while not stop.is_set():
                owed += per_step
                chunk = []
                while owed >= 1:
                    level, template = RECORDS[n % len(RECORDS)]
                    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
                    message = template.format(n=n % 50, m=n % 120, s=n % 4)
                    chunk.append(f"{stamp}.{n % 1000:03d}:\t{level:>7}:\t{message}\n")
                    n += 1
                    owed -= 1
                out.write("".join(chunk).encode())
                out.flush()
                counts["records"] = n
                if time.monotonic() >= rotate_at:  # TDM-style rotation: rename, then a new file
                    out.close()
                    os.replace(log, log.with_name("log.txt.1"))
                    out = open(log, "ab")
                    counts["rotations"] += 1
                    rotate_at += args.rotate_every
                next_at += step
                stop.wait(max(0.0, next_at - time.monotonic()))
            out.close()

        def reload() -> None:
            with_patterns = False
            while not stop.wait(args.reload_every):
                with_patterns = not with_patterns
                config.write_text(config_text(log, data, patterns if with_patterns else None))
                daemon.send_signal(signal.SIGHUP)
                counts["reloads"] += 1

        def scrape() -> None:
            period = 1.0 / args.scrapes
            while not stop.wait(period):
                try:
                    with urllib.request.urlopen(url, timeout=5) as response:
                        response.read()
                    counts["scrapes"] += 1
                except OSError:
                    pass

        threads += [threading.Thread(target=f, daemon=True) for f in (write, reload, scrape)]
        for thread in threads:
            thread.start()

        process = psutil.Process(daemon.pid)
        started = time.monotonic()
        end = started + args.minutes * 60

        def rss() -> float:
            return process.memory_info().rss / 2**20

        at_start = rss()
        print(f"soak: {args.rate:g} records/s, {args.scrapes:g} scrapes/s, rotation every {args.rotate_every:g} s, "
              f"reload every {args.reload_every:g} s, for {args.minutes:g} min; Python {sys.version.split()[0]}", flush=True)
        print(f"  0.0 min  RSS {at_start:6.1f} MiB", flush=True)
        after_one = None
        minute = 1
        while (now := time.monotonic()) < end:
            stop.wait(min(end, started + 60 * minute) - now)
            if time.monotonic() >= started + 60 * minute:
                value = rss()
                after_one = after_one if after_one is not None else value
                print(f"{minute:5.1f} min  RSS {value:6.1f} MiB  ({counts['records']:,} records, {counts['scrapes']:,} scrapes, "
                      f"{counts['rotations']} rotations, {counts['reloads']} reloads)", flush=True)
                minute += 1
        at_end = rss()
        elapsed = (time.monotonic() - started) / 60
        print(f"{elapsed:5.1f} min  RSS {at_end:6.1f} MiB (end)")
        if after_one is not None:
            print(f"growth after the first minute: {at_end - after_one:+.1f} MiB (start {at_start:.1f}, 1 min {after_one:.1f}, end {at_end:.1f})")
        return 0
    finally:
        stop.set()
        daemon.terminate()
        try:
            daemon.wait(15)
        except subprocess.TimeoutExpired:
            daemon.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
