"""A miner with a window, run by Debian's python3 (Tk): it connects to $DISPLAY, reports and draws
until SIGTERM. Then, as TDM closes, its window stays up for a while (about 1 s here: TDM waits for
its tasks, then saves settings.json) before it writes closed-<pid> in the CWD and exits 0.
Tk exits at once if the display goes during the close: then there is no closed-<pid>."""

import os
import signal
import sys
import time
import tkinter
from pathlib import Path

from _common import LIFETIME, report

CLOSING = 1.0
FRAME = 0.05


def draw_until(stop) -> None:
    deadline = time.monotonic() + LIFETIME
    while not stop():
        if time.monotonic() > deadline:
            sys.exit(99)
        root.update()  # the X round trip that fails once the display is gone
        time.sleep(FRAME)


root = tkinter.Tk()
root.update()
terminated = []
signal.signal(signal.SIGTERM, lambda signum, frame: terminated.append(time.monotonic()))
report(connected=True)
draw_until(lambda: terminated)
closed_by = time.monotonic() + CLOSING
draw_until(lambda: time.monotonic() > closed_by)
Path.cwd().joinpath(f"closed-{os.getpid()}").write_text("saved\n")
root.destroy()
