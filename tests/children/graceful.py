"""Handles SIGTERM like TDM's main loop: exits 0 about 0.3 s later."""

import signal
import sys
import time

from _common import live_for, report


def on_term(signum, frame):
    time.sleep(0.3)  # TDM saves cookies, cache and settings
    sys.exit(0)


signal.signal(signal.SIGTERM, on_term)
report()
live_for()
