"""TDM's GUI without a window.

`ConsoleOutput.print(self, message: str)` is the one place where GUI texts leave the program, exactly as
in TDM's `gui.py`: GUI-only texts ("Watching: X", "Claimed drop: ...", "Fatal error encountered:", ...)
and every logger record, mirrored as `LEVEL: message` by `OutputHandler` (TDM's `_TKOutputHandler`).
A supervisor that wants these texts wraps `gui.ConsoleOutput.print` before running `main.py`, the same
hook it uses on a real TDM. Here `print` only keeps the text, stamped like TDM's Output box.

The window's buttons are signals (installed by main.py): SIGUSR1 closes the window, SIGUSR2 presses
the "Login" button.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from datetime import datetime

# TDM's constants.OUTPUT_FORMATTER
OUTPUT_FORMATTER = logging.Formatter("{levelname}: {message}", style="{", datefmt="%H:%M:%S")


class ConsoleOutput:
    """TDM's "Output" box."""

    def __init__(self, max_lines: int = 1000) -> None:
        self.lines: deque[str] = deque(maxlen=max_lines)

    def print(self, message: str) -> None:
        stamp = datetime.now().strftime("%X")
        if "\n" in message:
            message = message.replace("\n", f"\n{stamp}: ")
        self.lines.extend(f"{stamp}: {message}".split("\n"))


class OutputHandler(logging.Handler):
    """Mirrors logger records into the Output box, like TDM's `_TKOutputHandler`."""

    def __init__(self, gui: GUIManager) -> None:
        super().__init__()
        self._gui = gui

    def emit(self, record: logging.LogRecord) -> None:
        self._gui.print(self.format(record))


class GUIManager:
    def __init__(self, logger: logging.Logger) -> None:
        self.output = ConsoleOutput()
        self._logger = logger
        self._handler = OutputHandler(self)
        self._handler.setFormatter(OUTPUT_FORMATTER)
        logger.addHandler(self._handler)
        self._close_requested = asyncio.Event()
        self._login_pressed = asyncio.Event()
        self.on_close: Callable[[], None] | None = None  # the client's close(), set by main
        level = logger.getEffectiveLevel()
        if level < logging.ERROR:
            self.print(f"Logging level: {logging.getLevelName(level)}")

    @property
    def close_requested(self) -> bool:
        return self._close_requested.is_set()

    def print(self, message: str) -> None:
        self.output.print(message)

    def close(self) -> None:
        """The window's X (or a SIGINT/SIGTERM while running): request the application to close."""
        self._close_requested.set()
        if self.on_close is not None:
            self.on_close()

    def prevent_close(self) -> None:
        self._close_requested.clear()

    async def wait_until_closed(self) -> None:
        await self._close_requested.wait()

    def press_login(self) -> None:
        self._login_pressed.set()

    async def wait_for_login(self) -> None:
        await self._login_pressed.wait()

    def stop(self) -> None:
        self._logger.removeHandler(self._handler)
