"""Holds lock.file in the CWD as TDM does ('w', 'ツ', lockf LOCK_EX|LOCK_NB) until SIGTERM."""

import fcntl
import signal
import sys

from _common import live_for, report

signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
lock = open("lock.file", "w", encoding="utf8")
lock.write("ツ")
lock.flush()
fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
report(role="lock holder")
live_for()
