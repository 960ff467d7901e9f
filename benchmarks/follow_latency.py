"""Follow latency and idle cost of the daemon.

Starts `twitchminert run` on a temporary log file, appends one TDM record at a time and measures
append -> visible on /metrics (p50/p99), then measures the daemon's CPU while idle.

    .venv/bin/python benchmarks/follow_latency.py [--appends 300] [--idle-seconds 60]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil

from daemon_run import listening_url, spawn

COUNT = re.compile(rb'^tdm_log_records_total\{level="CALL"\} (\S+)$', re.M)


def scrape_count(url: str) -> float:
    with urllib.request.urlopen(url, timeout=5) as response:
        match = COUNT.search(response.read())
    return float(match.group(1)) if match else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=300)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tm-follow-"))
    log = work / "log.txt"
    log.write_bytes(b"")
    config = work / "config.yaml"
    config.write_text(f"logs:\n  files: [{json.dumps(str(log))}]\nstorage:\n  path: {json.dumps(str(work / 'data'))}\n")
    daemon = spawn(config)
    try:
        url = listening_url(daemon) + "/metrics"

        latencies = []
        with open(log, "ab") as out:
            for i in range(1, args.appends + 1):
                line = f"2026-11-23 22:23:54.{i % 1000:03d}:\t   CALL:\tDrop update from websocket: D (G, {i}/1000)\n"
                started = time.perf_counter()
                out.write(line.encode())
                out.flush()
                give_up = started + 5
                while scrape_count(url) < i:
                    if time.perf_counter() > give_up:
                        raise SystemExit(f"append {i} not visible after 5 s")
                latencies.append((time.perf_counter() - started) * 1000)
        latencies.sort()
        p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
        print(f"append -> /metrics over {len(latencies)} appends: p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms")

        process = psutil.Process(daemon.pid)
        before = process.cpu_times()
        idle = threading.Event()
        idle.wait(args.idle_seconds)  # the measurement window itself
        after = process.cpu_times()
        cpu = (after.user - before.user) + (after.system - before.system)
        print(
            f"idle over {args.idle_seconds:.0f} s: {cpu:.3f} s CPU = {100 * cpu / args.idle_seconds:.3f}% of one core, "
            f"RSS {process.memory_info().rss / 2**20:.1f} MiB"
        )
        return 0
    finally:
        daemon.terminate()
        daemon.wait(15)


if __name__ == "__main__":
    sys.exit(main())
