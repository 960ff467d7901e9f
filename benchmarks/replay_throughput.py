"""Replay throughput: `twitchminert replay` on a generated 2M-line TDM log, against mtail.

Generates a TDM-style log (70% DEBUG noise, 15% CALL, 10% INFO, 4% WARNING, 1% ERROR with
tracebacks), times `twitchminert replay` and prints lines/s, CPU seconds and peak RSS. Where
`mtail` is installed it runs an equivalent mtail program (records by level plus the same
drop/websocket/login events) on the same file in the same run and prints the ratio.

The two are run in turn `--runs` times and the best run of each is compared: on a shared machine
the best run is the one least disturbed by others. Every run is printed.

    .venv/bin/python benchmarks/replay_throughput.py [--lines 2000000] [--runs 3] [--keep FILE | --log FILE]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/opt/TwitchDropsMiner/utils.py", line 136, in wrapper\n'
    "    await afunc(*args, **kwargs)\n"
    '  File "/opt/TwitchDropsMiner/twitch.py", line 1063, in process_stream_state\n'
    '    viewers = message["viewers"]\n'
    "KeyError: 'viewers'"
)
DEBUG = (
    "Request: (method='POST', url='https://gql.twitch.tv/gql', kwargs={'json': {'operationName': 'Inventory', "
    "'extensions': {'persistedQuery': {'version': 1, 'sha256Hash': '8337eb8541b314040b0edde0c09c5c7a2783ba1960aa9edfbf3bac16d0fec404'}}}, "
    "'headers': {'Accept': '*/*', 'Client-Id': 'kd1unb4b3q4t58fwlpcbzcbnm76a8fp', 'Authorization': 'OAuth benchtoken000000000000000000'}})"
)
CALL = [
    "Drop update from websocket: Bench Drop {n} (Bench Game, {cur}/60)",
    "Drop progress from GQL: Bench Drop {n} (Bench Game, {cur}/60)",
    "Maintenance task waiting until: 23:21:31 (Reload)",
    "Channel update from websocket: BenchStreamer, game changed: Bench Game -> Other Game",
]
INFO = [
    "Websocket[0] connected.",
    "Websocket[0] connecting...",
    "Checking login",
    "Login successful, user ID: 123456789",
    "BenchStreamer{n} goes OFFLINE",
]
WARNING = ["Websocket[0] reconnecting...", "Websocket[0] requested reconnect.", "Unknown stream state: foo"]
ERROR = ["Exception in process_stream_state task\n" + TRACEBACK, "Retrying a service error for Inventory"]

MTAIL_PROGRAM = r"""
counter tdm_log_records_total by level
counter tdm_drop_progress_total by game
counter tdm_websocket_reconnects_total
counter tdm_login_successful_total
counter tdm_task_crashes_total by task
gauge tdm_drop_current_minutes by drop, game

/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3,4}:\t *(?P<level>[A-Z]+):\t/ {
  tdm_log_records_total[$level]++
}
/:\t   CALL:\tDrop (update from websocket|progress from GQL): (?P<drop>.*) \((?P<game>.*), (?P<cur>\d+)\/(?P<req>\d+)\)$/ {
  tdm_drop_progress_total[$game]++
  tdm_drop_current_minutes[$drop][$game] = $cur
}
/:\tWARNING:\tWebsocket\[\d+\] reconnecting\.\.\.$/ {
  tdm_websocket_reconnects_total++
}
/:\t   INFO:\tLogin successful, user ID: \d+$/ {
  tdm_login_successful_total++
}
/:\t  ERROR:\tException in (?P<task>\w+) task$/ {
  tdm_task_crashes_total[$task]++
}
"""


def generate(path: Path, lines: int, seed: int = 1) -> int:
    """Writes about `lines` physical lines; returns the number of records."""
    rng = random.Random(seed)
    levels = ["DEBUG"] * 70 + ["CALL"] * 15 + ["INFO"] * 10 + ["WARNING"] * 4 + ["ERROR"]
    written = records = 0
    start = 1_764_000_000
    with open(path, "w", encoding="utf-8") as out:
        while written < lines:
            level = rng.choice(levels)
            n = records
            if level == "DEBUG":
                message = DEBUG
            else:
                table = {"CALL": CALL, "INFO": INFO, "WARNING": WARNING, "ERROR": ERROR}[level]
                message = rng.choice(table).format(n=n % 7, cur=n % 60)
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start + records // 50))
            out.write(f"{stamp}.{records % 1000:03d}:\t{level:>7}:\t{message}\n")
            written += message.count("\n") + 1
            records += 1
    return records


def measure(argv: list[str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and peak RSS (KiB) of one child run (wait4 gives its own rusage)."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{argv[0]} exited {child.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=3, help="runs of each; the best is compared (default 3)")
    parser.add_argument("--keep", type=Path, help="write the generated log here and keep it")
    parser.add_argument("--log", type=Path, help="use this log (written by --keep earlier) instead of generating one")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="tm-bench-"))
    try:
        if args.log is not None:
            log = args.log
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda f=log.open("rb"): f.read(1 << 20), b""))
            print(f"log: {log}, {lines} lines, {log.stat().st_size / 1e6:.0f} MB")
        else:
            log = args.keep or workdir / "log.txt"
            records = generate(log, args.lines)
            lines = args.lines
            print(f"log: {lines} lines, {records} records, {log.stat().st_size / 1e6:.0f} MB")

        ours = [sys.executable, "-m", "exporter", "replay", str(log)]
        mtail = shutil.which("mtail")
        mtail_argv = None
        if mtail is None:
            print("mtail: not installed, no comparison")
        else:
            prog = workdir / "tdm.mtail"
            prog.write_text(MTAIL_PROGRAM)
            mtail_argv = [mtail, "--one_shot", "--one_shot_format", "prometheus", "--progs", str(prog), "--logs", str(log), "--logtostderr=false"]
        best: dict[str, tuple[float, float, int]] = {}
        for run in range(1, args.runs + 1):
            for name, argv in (("twitchminert replay", ours), ("mtail --one_shot", mtail_argv)):
                if argv is None:
                    continue
                wall, cpu, rss = measure(argv)
                print(f"run {run}: {name:<20} {wall:6.2f} s wall, {cpu:6.2f} s CPU, {lines / wall:>10,.0f} lines/s, peak RSS {rss / 1024:.0f} MiB")
                if name not in best or wall < best[name][0]:
                    best[name] = (wall, cpu, rss)
        wall, cpu, rss = best["twitchminert replay"]
        print(f"best twitchminert replay: {wall:.2f} s wall, {cpu:.2f} s CPU, {lines / wall:,.0f} lines/s, peak RSS {rss / 1024:.0f} MiB")
        if mtail_argv is not None:
            wall_m, cpu_m, rss_m = best["mtail --one_shot"]
            print(f"best mtail --one_shot:    {wall_m:.2f} s wall, {cpu_m:.2f} s CPU, {lines / wall_m:,.0f} lines/s, peak RSS {rss_m / 1024:.0f} MiB")
            print(f"ratio (twitchminert / mtail, lines/s): {wall_m / wall:.2f}x   (CPU seconds: {cpu_m / cpu:.2f}x)")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
