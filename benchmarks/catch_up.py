"""A first start on a year of logs: catching up on a ~1 GB log, with its progress and peak memory.

Builds a log of at least `--megabytes` (the generator of replay_throughput.py, repeated), then
1. `twitchminert replay --progress` on it: the progress bar's last line, wall time, peak RSS;
2. `twitchminert run` following it from the beginning (with a store): the catch-up lines the
   daemon logs (percent, records/s, ETA), tdm_log_backlog_bytes while it catches up, and the
   daemon's peak RSS (sampled every 0.2 s) until the backlog is 0.

    .venv/bin/python benchmarks/catch_up.py [--megabytes 1024] [--log FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path


sys.path.insert(0, str(Path(__file__).parent))
from replay_throughput import generate  # noqa: E402

BACKLOG = re.compile(rb'^tdm_log_backlog_bytes\{file="[^"]*"\} (\S+)$', re.M)


def build(log: Path, megabytes: int, work: Path) -> None:
    """One generated block, repeated until the file is big enough (generating 1 GB takes minutes)."""
    block = work / "block.txt"
    generate(block, 200_000)
    data = block.read_bytes()
    with open(log, "wb") as out:
        while out.tell() < megabytes * 2**20:
            out.write(data)
    block.unlink()


def peak_rss(pid: int) -> int:
    """The process's peak RSS since its exec (VmHWM), in bytes; 0 once it is gone.

    Not wait4's ru_maxrss: that counts the pages the child shared with this (larger) process
    between fork and exec."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def replay_with_progress(log: Path) -> None:
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "exporter", "replay", "--progress", str(log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    assert child.stderr is not None
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.append(child.stderr.read()), daemon=True)
    reader.start()
    peak = 0
    while child.poll() is None:  # VmHWM only grows: the last reading before exit is the peak
        peak = max(peak, peak_rss(child.pid))
        time.sleep(0.05)
    reader.join(10)
    wall = time.perf_counter() - started
    bar = b"".join(chunks).decode(errors="replace").replace("\r", "\n").strip().splitlines()
    print(f"replay --progress: exit {child.returncode}, {wall:.1f} s, peak RSS {peak / 2**20:.0f} MiB")
    print(f"  progress bar, first update: {bar[1] if len(bar) > 1 else bar[0]}")
    print(f"  progress bar, last:         {bar[-1]}")


def daemon_catch_up(log: Path, work: Path) -> None:
    config = work / "config.yaml"
    config.write_text(f"logs:\n  files: [{json.dumps(str(log))}]\nstorage:\n  path: {json.dumps(str(work / 'data'))}\n")
    started = time.monotonic()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "exporter", "run", "--config.file", str(config), "--web.listen-address", "127.0.0.1:0"],
        stderr=subprocess.PIPE, text=True,
    )
    lines: list[str] = []
    url: list[str] = []

    def read() -> None:
        assert daemon.stderr is not None
        for line in daemon.stderr:
            lines.append(line.rstrip())
            found = re.search(r"listening on (http://[\d.:]+)/", line)
            if found:
                url.append(found.group(1) + "/metrics")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    peak = 0
    backlog_seen = []

    def scrape_backlog() -> None:
        try:
            with urllib.request.urlopen(url[0], timeout=5) as response:
                found = BACKLOG.search(response.read())
            if found:
                backlog_seen.append(float(found.group(1)))
        except OSError:
            pass

    try:
        deadline = time.monotonic() + 1800
        next_scrape = 0.0
        while time.monotonic() < deadline:
            peak = max(peak, peak_rss(daemon.pid))
            if any("caught up" in line for line in lines):
                break
            if url and time.monotonic() >= next_scrape:
                next_scrape = time.monotonic() + 2
                scrape_backlog()
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        peak = max(peak, peak_rss(daemon.pid))
        if url:
            scrape_backlog()  # once more, caught up
        print(f"twitchminert run, following it from the beginning: caught up in {elapsed:.1f} s, peak RSS {peak / 2**20:.1f} MiB")
        for line in lines:
            if "catching up" in line or "caught up" in line:
                print(f"  {line}")
        if backlog_seen:
            shown = ", ".join(f"{b / 2**20:.0f}" for b in backlog_seen[:: max(1, len(backlog_seen) // 8)])
            print(f"  tdm_log_backlog_bytes scraped every 2 s (MiB): {shown}, ... caught up: {backlog_seen[-1] / 2**20:.0f}")
        store = work / "data"
        size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
        print(f"  store after the catch-up: {size / 2**20:.0f} MiB")
    finally:
        daemon.terminate()
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        reader.join(5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=1024)
    parser.add_argument("--log", type=Path, help="use this log instead of building one")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tm-catch-up-"))
    try:
        log = args.log
        if log is None:
            log = work / "log.txt"
            build(log, args.megabytes, work)
        lines = 0
        with open(log, "rb") as file:
            while chunk := file.read(1 << 24):
                lines += chunk.count(b"\n")
        print(f"log: {log.stat().st_size / 2**20:,.0f} MiB, {lines:,} lines; Python {sys.version.split()[0]}")
        replay_with_progress(log)
        daemon_catch_up(log, work)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
