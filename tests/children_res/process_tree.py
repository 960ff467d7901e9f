"""A root process whose children come and go on command (for tests/test_resources.py).

Reads one command per line on stdin and answers one line on stdout:
  spawn MS      fork a child that burns MS ms of CPU, then waits for `release`   -> "ok PID"
  burn MS       fork a child that burns MS ms of CPU and exits (a zombie until `reap`) -> "ok PID"
  release       let every waiting child exit                                     -> "ok"
  reap          wait for every child (those still waiting must be released first) -> "ok"
EOF on stdin: release, reap, exit 0.
"""

import os
import sys
import time

release_r, release_w = os.pipe()  # a waiting child blocks reading it until the root closes release_w
children: list[int] = []


def fork(burn_ms: int, wait: bool) -> int:
    pid = os.fork()
    if pid == 0:
        os.close(release_w)
        end = time.process_time() + burn_ms / 1000
        while time.process_time() < end:
            pass
        if wait:
            os.read(release_r, 1)  # b"" once no write end is open
        os._exit(0)
    children.append(pid)
    return pid


def release() -> None:
    global release_r, release_w
    os.close(release_w)
    os.close(release_r)
    release_r, release_w = os.pipe()  # for the children spawned from now on


def reap() -> None:
    while children:
        os.waitpid(children.pop(), 0)


for line in sys.stdin:
    command, *args = line.split()
    answer = "ok"
    if command in ("spawn", "burn"):
        answer = f"ok {fork(int(args[0]), wait=command == 'spawn')}"
    elif command == "release":
        release()
    elif command == "reap":
        reap()
    else:
        answer = f"error: unknown command {command!r}"
    print(answer, flush=True)

release()
reap()
