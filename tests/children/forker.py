"""Starts a grandchild that ignores SIGTERM, then handles SIGTERM gracefully itself.

Only a SIGKILL to the whole process group removes the grandchild.
"""

import signal
import subprocess
import sys

from _common import live_for, report

if sys.argv[1:2] == ["grandchild"]:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    report(role="grandchild")
    live_for()

signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
grandchild = subprocess.Popen([sys.executable, __file__, "grandchild"])
report(role="child", grandchild=grandchild.pid)
live_for()
