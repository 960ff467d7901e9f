"""Notification latency, and what a hanging notification service costs everything else.

Starts `twitchminert run` on a temporary log file with two channels: a local receiver that answers at
once and one that never answers (Apprise gives up after its read timeout, `rto=`). Appends one
"Claimed drop" record at a time and measures append -> message at the good receiver (p50/p99), and
/metrics scrape times while the other channel hangs.

    .venv/bin/python benchmarks/notify_latency.py [--claims 50] [--scrapes 200]
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from daemon_run import listening_url, spawn


def receiver(hang: threading.Event | None, arrived: list[float]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if hang is not None:
                hang.wait(60)
            arrived.append(time.monotonic())
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def record(text: str) -> bytes:
    now = datetime.datetime.now()
    return f"{now:%Y-%m-%d %H:%M:%S}.{now.microsecond // 1000:03d}:\t    GUI:\t{text}\n".encode()


def percentiles(values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return f"p50 {statistics.median(values) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {values[-1] * 1000:.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=50)
    parser.add_argument("--scrapes", type=int, default=200)
    args = parser.parse_args()

    good_arrivals: list[float] = []
    release = threading.Event()
    good = receiver(None, good_arrivals)
    stuck = receiver(release, [])
    work = Path(tempfile.mkdtemp(prefix="tm-notify-"))
    log = work / "miner_output.log"
    log.write_bytes(b"")
    urls = [f"json://127.0.0.1:{good.server_address[1]}/good", f"json://127.0.0.1:{stuck.server_address[1]}/stuck?rto=30"]
    config = work / "config.yaml"
    config.write_text(
        f"logs:\n  files: [{json.dumps(str(log))}]\nstorage:\n  path: {json.dumps(str(work / 'data'))}\n"
        f"notify:\n  - urls: {json.dumps(urls)}\n    events: [drop_claimed]\n"
    )
    daemon = spawn(config)
    try:
        url = listening_url(daemon)

        latencies = []
        for n in range(args.claims):
            seen = len(good_arrivals)
            began = time.monotonic()
            with log.open("ab") as out:
                out.write(record(f"Claimed drop: Benchmark Game Reward {n} ({n + 1}/{args.claims})"))
            deadline = began + 10
            while len(good_arrivals) == seen and time.monotonic() < deadline:
                threading.Event().wait(0.001)
            if len(good_arrivals) == seen:
                raise SystemExit(f"claim {n}: no message within 10 s")
            latencies.append(good_arrivals[seen] - began)
        print(f"claim appended -> message received ({args.claims} claims): {percentiles(latencies)}")

        scrapes = []
        for _ in range(args.scrapes):
            began = time.monotonic()
            with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
                body = response.read()
            scrapes.append(time.monotonic() - began)
        queued = re.search(rb"^tdm_notification_queue_length (\S+)$", body, re.M)
        print(f"/metrics while one channel hangs ({args.scrapes} scrapes): {percentiles(scrapes)}")
        print(f"notifications waiting for the hanging channel: {float(queued.group(1)) if queued else 'n/a':g}")
    finally:
        release.set()
        daemon.terminate()
        daemon.wait(30)
        good.shutdown()
        stuck.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
