"""Prints numbered lines on stdout and stderr (count: first argument), then waits for SIGTERM."""

import signal
import sys

from _common import live_for, report

signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
count = int(sys.argv[1])
for i in range(count):
    print(f"out line {i}", flush=True)
    print(f"err line {i}", file=sys.stderr, flush=True)
print("no newline at the end", end="", flush=True)
report()
live_for()
