"""Ignores SIGTERM (like TDM hanging with --tray and no D-Bus): only SIGKILL ends it."""

import signal

from _common import live_for, report

signal.signal(signal.SIGTERM, signal.SIG_IGN)
report()
live_for()
