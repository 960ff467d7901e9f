"""Run a module (`-m exporter ...`) and, on each SIGUSR2, append every thread's CPU time to a file.

For supervise_idle.py --threads: where the daemon's CPU goes at rest, by thread name. Each line of
OUT is one JSON sample {thread name: [CPU ns, times scheduled]} from /proc/self/task/<tid>/schedstat
(nanosecond run time, and the number of times the thread got a CPU: about its wake-ups).

    python benchmarks/thread_cpu.py OUT -m exporter demo ...
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import sys
import threading


def sample(out: str) -> None:
    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    found: dict[str, list[int]] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as file:
                run_ns, _wait_ns, slices = map(int, file.read().split())
        except OSError:
            continue  # ended meanwhile
        name = names.get(int(tid), f"tid {tid}")
        total = found.setdefault(name, [0, 0])
        total[0] += run_ns
        total[1] += slices
    with open(out, "a") as file:
        file.write(json.dumps(found) + "\n")


def main() -> None:
    out, flag, module, *args = sys.argv[1:]
    assert flag == "-m", "usage: thread_cpu.py OUT -m MODULE [ARGS...]"
    signal.signal(signal.SIGUSR2, lambda signum, frame: sample(out))
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
