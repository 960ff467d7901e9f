"""HTTP load on the daemon: /metrics and /api/miner/status under a bounded, concurrent load.

Starts `twitchminert demo` (the simulated miner, port 0, 127.0.0.1 only), waits until it mines, then
runs THREADS clients x REQUESTS requests each, alternating GET /metrics and GET /api/miner/status
over one keep-alive connection per client (http.client). Prints req/s, errors, p50/p99 per route.
Targets (issue 5): >= 200 req/s with no error, /metrics median <= 5 ms. Exit status 1 if missed.

    .venv/bin/python benchmarks/http_load.py [--threads 8] [--requests 500] [--speed 60]
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROUTES = ("/metrics", "/api/miner/status")
TARGET_RPS = 200.0
TARGET_METRICS_MEDIAN_MS = 5.0


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))]


def start_demo(speed: float) -> tuple[subprocess.Popen, str, int]:
    demo = subprocess.Popen(
        [sys.executable, "-m", "exporter", "demo", "--web.listen-address", "127.0.0.1:0", "--speed", f"{speed:g}"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    assert demo.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = demo.stderr.readline()
        if not line and demo.poll() is not None:
            raise SystemExit(f"the demo exited with {demo.returncode}")
        found = re.search(r"listening on http://([\d.]+):(\d+)/", line)
        if found:
            threading.Thread(target=demo.stderr.read, daemon=True).start()  # keep the pipe drained
            return demo, found.group(1), int(found.group(2))
    demo.kill()
    raise SystemExit("the demo did not start within 30 s")


def wait_mining(host: str, port: int, timeout: float = 30.0) -> None:
    """Load a realistic state first: the miner running, a drop in progress, events stored."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection(host, port, timeout=5)
        try:
            connection.request("GET", "/api/miner/status")
            status = json.loads(connection.getresponse().read())
            if status["status"] == "mining" and status["current_mining"]["drop"]:
                return
        finally:
            connection.close()
        threading.Event().wait(0.2)
    raise SystemExit("the demo did not start mining within 30 s")


class Client(threading.Thread):
    def __init__(self, host: str, port: int, requests: int, offset: int, start: threading.Barrier) -> None:
        super().__init__(name=f"load-{offset}")
        self.host, self.port, self.requests, self.offset, self.start_barrier = host, port, requests, offset, start
        self.latencies: dict[str, list[float]] = {route: [] for route in ROUTES}
        self.errors: list[str] = []
        self.bytes = 0

    def run(self) -> None:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        self.start_barrier.wait()
        try:
            for i in range(self.requests):
                route = ROUTES[(i + self.offset) % len(ROUTES)]
                began = time.perf_counter()
                try:
                    connection.request("GET", route)
                    response = connection.getresponse()
                    body = response.read()
                    if response.status != 200 or not body:
                        self.errors.append(f"{route}: HTTP {response.status}")
                    if response.will_close:
                        self.errors.append(f"{route}: the server closed a keep-alive connection")
                        connection.close()
                except (OSError, http.client.HTTPException) as error:
                    self.errors.append(f"{route}: {type(error).__name__}: {error}")
                    connection.close()
                    continue
                self.latencies[route].append((time.perf_counter() - began) * 1000)
                self.bytes += len(body)
        finally:
            connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--requests", type=int, default=500, help="per thread")
    parser.add_argument("--speed", type=float, default=60.0, help="the simulated miner's speed")
    args = parser.parse_args()
    if not (1 <= args.threads <= 64 and 1 <= args.requests <= 100_000):
        parser.error("keep the load bounded: 1-64 threads, 1-100000 requests each")

    demo, host, port = start_demo(args.speed)
    try:
        wait_mining(host, port)
        barrier = threading.Barrier(args.threads + 1)
        clients = [Client(host, port, args.requests, offset, barrier) for offset in range(args.threads)]
        for client in clients:
            client.start()
        barrier.wait()
        began = time.perf_counter()
        for client in clients:
            client.join()
        elapsed = time.perf_counter() - began
    finally:
        demo.send_signal(signal.SIGTERM)  # the demo removes its temporary folder on the way out
        try:
            demo.wait(20)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()

    total = args.threads * args.requests
    errors = [error for client in clients for error in client.errors]
    rate = total / elapsed
    print(f"{args.threads} threads x {args.requests} requests = {total} in {elapsed:.2f} s: {rate:.0f} req/s, "
          f"{len(errors)} errors, {sum(c.bytes for c in clients) / 1e6:.1f} MB")
    for error in sorted(set(errors))[:10]:
        print(f"  error: {error} (x{errors.count(error)})")
    medians = {}
    for route in ROUTES:
        values = sorted(v for client in clients for v in client.latencies[route])
        medians[route] = statistics.median(values) if values else float("nan")
        print(f"{route:<20} n={len(values):<6} p50 {medians[route]:6.2f} ms  p99 {percentile(values, 0.99):6.2f} ms"
              f"  max {values[-1] if values else float('nan'):6.2f} ms")
    print(f"/metrics median: {medians['/metrics']:.2f} ms (target <= {TARGET_METRICS_MEDIAN_MS:g} ms)")
    met = rate >= TARGET_RPS and not errors and medians["/metrics"] <= TARGET_METRICS_MEDIAN_MS
    print(f"targets (>= {TARGET_RPS:g} req/s, no error, /metrics median <= {TARGET_METRICS_MEDIAN_MS:g} ms): "
          f"{'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
