"""Idle cost of the daemon while it supervises the simulated miner.

Runs `twitchminert demo` (happy scenario, default speed) and, after a short warm-up, samples with
psutil for N seconds: the daemon process alone (its own CPU time, not its children's; RSS), and the
simulated miner it started, separately. Prints the averages over the window. No HTTP load unless
--scrape-interval is given (Prometheus' default would be 15).

With --attach, the simulator is started on its own (default scenario login-required: it waits for
a login, writing nothing) and `twitchminert run` attaches to it (miner.mode: attach): the cost of
watching a miner that is idle.

With --threads, the daemon runs under thread_cpu.py and the daemon's CPU and wake-ups over the
window are also printed per thread (from /proc schedstat), to tell where the time goes.

    .venv/bin/python benchmarks/supervise_idle.py [--seconds 60] [--scenario happy] [--speed 60]
                                                  [--warmup 5] [--scrape-interval 0] [--attach] [--threads]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Usage:
    """CPU seconds between the first and last sample, and RSS at every sample, of one process."""

    process: psutil.Process
    cpu_start: float | None = None
    cpu_end: float | None = None
    rss: list[int] = field(default_factory=list)

    def sample(self) -> None:
        try:
            with self.process.oneshot():
                times = self.process.cpu_times()
                cpu = times.user + times.system  # its own: children_* are not added
                rss = self.process.memory_info().rss
        except psutil.Error:
            return
        if self.cpu_start is None:
            self.cpu_start = cpu
        self.cpu_end = cpu
        self.rss.append(rss)

    def report(self, name: str, window: float) -> str:
        if self.cpu_start is None or self.cpu_end is None or not self.rss:
            return f"{name}: no samples (pid {self.process.pid} gone?)"
        cpu = self.cpu_end - self.cpu_start
        return (
            f"{name:<10} pid {self.process.pid:<7} CPU {100 * cpu / window:6.2f} %  ({cpu:.2f} s in {window:.0f} s)"
            f"   RSS avg {statistics.mean(self.rss) / 2**20:6.1f} MiB  max {max(self.rss) / 2**20:6.1f} MiB"
        )


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def print_threads(path: Path, window: float) -> None:
    """The daemon's threads by CPU over the window: thread_cpu.py's first and last samples."""
    deadline = time.monotonic() + 10
    while len(samples := path.read_text().splitlines() if path.exists() else []) < 2:
        if time.monotonic() > deadline:
            print("threads: no samples from thread_cpu.py")
            return
        time.sleep(0.05)
    first, last = json.loads(samples[0]), json.loads(samples[-1])
    rows = []
    for name, (cpu_ns, slices) in last.items():
        before = first.get(name, [0, 0])
        rows.append((cpu_ns - before[0], slices - before[1], name))
    for cpu_ns, slices, name in sorted(rows, reverse=True):
        print(f"  thread {name:<40} CPU {100 * cpu_ns / 1e9 / window:6.3f} %  ({cpu_ns / 1e6:7.1f} ms)"
              f"  scheduled {slices / window:6.2f}/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measurement window (default 60)")
    parser.add_argument("--scenario", help="simulator scenario (default happy; login-required with --attach)")
    parser.add_argument("--attach", action="store_true", help="attach to a simulator started on its own")
    parser.add_argument("--speed", type=float, default=60.0, help="the simulator's speed (demo default 60)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds ignored after the miner started")
    parser.add_argument("--interval", type=float, default=1.0, help="sampling step")
    parser.add_argument("--scrape-interval", type=float, default=0.0, help="also scrape /metrics this often (0: never)")
    parser.add_argument("--threads", action="store_true", help="also print the daemon's CPU and wake-ups per thread")
    args = parser.parse_args()

    args.scenario = args.scenario or ("login-required" if args.attach else "happy")
    tmp = Path(tempfile.mkdtemp(prefix="tm-supervise-idle-"))
    simulator = None
    if args.attach:
        tdm = tmp / "tdm"
        tdm.mkdir()
        simulator = subprocess.Popen(
            [sys.executable, str(REPO / "exporter" / "simulator" / "main.py"), "--dir", str(tdm),
             "--scenario", args.scenario, "--speed", f"{args.speed:g}"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        config = tmp / "config.yaml"
        config.write_text(f"miner:\n  dir: {json.dumps(str(tdm))}\n  mode: attach\n"
                          f"storage:\n  path: {json.dumps(str(tmp / 'data'))}\n")
        command = ["run", "--config.file", str(config)]
    else:
        command = ["demo", "--scenario", args.scenario, "--speed", f"{args.speed:g}"]
    threads_file = tmp / "threads.jsonl"
    wrapper = [str(REPO / "benchmarks" / "thread_cpu.py"), str(threads_file)] if args.threads else []
    daemon = subprocess.Popen(
        [sys.executable, *wrapper, "-m", "exporter", *command, "--web.listen-address", "127.0.0.1:0"],
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(tmp)},  # the demo's own temporary dir goes in here
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    assert daemon.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(daemon.stdout), daemon=True)  # keeps the pipe drained
    reader.start()
    try:
        base = None
        deadline = time.monotonic() + 30
        while base is None and time.monotonic() < deadline and daemon.poll() is None:
            found = next((re.search(r"listening on (http://[\d.]+:\d+)/", line) for line in list(lines)
                          if "listening on" in line), None)
            base = found.group(1) if found else None
            time.sleep(0.05)
        if base is None:
            raise SystemExit("the daemon did not start:\n" + "".join(lines))
        miner_pid = None
        while miner_pid is None and time.monotonic() < deadline:
            miner_pid = get_json(base + "/api/miner/status")["pid"]
            time.sleep(0.1)
        if miner_pid is None:
            raise SystemExit("the miner did not start:\n" + "".join(lines))
        time.sleep(args.warmup)

        own = Usage(psutil.Process(daemon.pid))
        miner = Usage(psutil.Process(miner_pid))
        scrapes, next_scrape = 0, time.monotonic()
        start = time.monotonic()
        end = start + args.seconds
        own.sample(), miner.sample()
        if args.threads:
            daemon.send_signal(signal.SIGUSR2)
        while (now := time.monotonic()) < end:
            if args.scrape_interval > 0 and now >= next_scrape:
                with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
                    response.read()
                scrapes, next_scrape = scrapes + 1, now + args.scrape_interval
            time.sleep(min(args.interval, max(0.0, end - time.monotonic())))
            own.sample(), miner.sample()
        window = time.monotonic() - start
        if args.threads:
            daemon.send_signal(signal.SIGUSR2)
        status = get_json(base + "/api/miner/status")

        what = "run, attached to the simulator" if args.attach else "demo"
        print(f"twitchminert {what} --scenario {args.scenario} --speed {args.speed:g}: {window:.0f} s window "
              f"after {args.warmup:g} s warm-up, {scrapes} scrapes, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
        print(own.report("daemon", window))
        print(miner.report("simulator", window))
        print(f"miner status at the end: {status['status']}, supervisor {status['supervisor']['state']}, "
              f"restarts {status['supervisor']['restarts']}, drops claimed {status.get('drops', {}).get('claimed_total')}")
        if args.threads:
            print_threads(threads_file, window)
        return 0
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
        try:
            code = daemon.wait(20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            code = daemon.wait()
        reader.join(5)
        if simulator is not None:
            simulator.terminate()
            try:
                simulator.wait(20)
            except subprocess.TimeoutExpired:
                simulator.kill()
                simulator.wait()
            shutil.rmtree(tmp / "tdm", ignore_errors=True)
            shutil.rmtree(tmp / "data", ignore_errors=True)
            (tmp / "config.yaml").unlink(missing_ok=True)
        left = [p.pid for p in psutil.process_iter(["cmdline"]) if str(tmp) in " ".join(p.info["cmdline"] or ())]
        print(f"daemon exit code {code}; processes left: {left or 'none'}")
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        threads_file.unlink(missing_ok=True)
        try:
            tmp.rmdir()  # the demo removed its own dir inside
        except OSError:
            print(f"note: {tmp} not empty after the demo stopped")


if __name__ == "__main__":
    sys.exit(main())
