"""TDM's GUI without a window: the same classes and methods as TDM's `gui.py`, with state instead of widgets.

`ConsoleOutput.print(self, message: str)` is the one place where GUI texts leave the program, exactly as
in TDM's `gui.py`: GUI-only texts ("Watching: X", "Claimed drop: ...", "Fatal error encountered:", ...)
and every logger record, mirrored as `LEVEL: message` by `OutputHandler` (TDM's `_TKOutputHandler`).

The other panes are TDM's too, by name and signature (`shared/tdm/gui_hooks.md`): `StatusBar`,
`WebsocketStatus`, `LoginForm` (`update`, `ask_enter_code`, `wait_for_login_press`, the Login button's
`_confirm` event), `InventoryOverview` (`clear`, `add_campaign`, `update_drop`), `ChannelList` (`clear`,
`display`, `remove`, `set_watching`, `clear_watching`) and `GUIManager` (`set_games`, `display_drop`,
`clear_drop`, `_twitch`). A supervisor hooks them exactly as it hooks a real TDM: the launcher's bridge
works on both unchanged.

The window's buttons are signals (installed by main.py): SIGUSR1 closes the window, SIGUSR2 presses
the "Login" button.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

if __package__:
    from .constants import OUTPUT_FORMATTER
else:  # run as a script, like TDM: the siblings are top-level modules
    from constants import OUTPUT_FORMATTER
# TDM opens the activation page 4 s after showing the code. Real seconds here too (a person reads
# the code meanwhile), but fewer: the simulated login takes a few seconds, not half a minute.
LOGIN_DELAY = 1.0


def webopen(url: object) -> None:
    """TDM's utils.webopen (a browser tab). No browser here: the page is only remembered."""
    opened.append(str(url))


opened: list[str] = []


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


class StatusBar:
    def __init__(self) -> None:
        self.text = ""

    def update(self, text: str) -> None:
        self.text = text

    def clear(self) -> None:
        self.text = ""


class WebsocketStatus:
    def __init__(self) -> None:
        self.items: dict[int, dict[str, Any]] = {}

    def update(self, idx: int, status: str | None = None, topics: int | None = None) -> None:
        if status is None and topics is None:
            raise TypeError("You need to provide at least one of: status, topics")
        entry = self.items.setdefault(idx, {"status": "Disconnected", "topics": 0})
        if status is not None:
            entry["status"] = status
        if topics is not None:
            entry["topics"] = topics

    def remove(self, idx: int) -> None:
        self.items.pop(idx, None)


class LoginForm:
    def __init__(self, manager: GUIManager) -> None:
        self._manager = manager
        self._confirm = asyncio.Event()  # the Login button's command is self._confirm.set
        self.text = ""
        self.update("Logged out", None)

    async def wait_for_login_press(self) -> None:
        self._confirm.clear()
        await self._confirm.wait()

    async def ask_enter_code(self, page_url: str, user_code: str) -> None:
        self.update("Login required", None)
        self._manager.print("Please log in to continue.")
        await self.wait_for_login_press()
        self._manager.print(f"Enter this code on the Twitch's device activation page: {user_code}")
        await asyncio.sleep(LOGIN_DELAY)
        webopen(page_url)

    def update(self, status: str, user_id: int | None) -> None:
        self.text = f"{status}\n{user_id if user_id is not None else '-'}"


class InventoryOverview:
    def __init__(self) -> None:
        self.campaigns: list[Any] = []

    async def add_campaign(self, campaign: Any) -> None:
        self.campaigns.append(campaign)
        await asyncio.sleep(0)  # TDM fetches the box art here

    def clear(self) -> None:
        self.campaigns.clear()

    def update_drop(self, drop: Any) -> None:
        pass  # TDM redraws the drop's progress label


class ChannelList:
    def __init__(self) -> None:
        self.channels: dict[str, Any] = {}
        self.watching: str | None = None

    def clear_watching(self) -> None:
        self.watching = None

    def set_watching(self, channel: Any) -> None:
        self.watching = channel.iid

    def clear(self) -> None:
        self.channels.clear()

    def display(self, channel: Any, *, add: bool = False) -> None:
        if add or channel.iid in self.channels:
            self.channels[channel.iid] = channel

    def remove(self, channel: Any) -> None:
        del self.channels[channel.iid]


class GUIManager:
    def __init__(self, logger: logging.Logger) -> None:
        self._twitch: Any = None  # the client: TDM builds its GUIManager with it (Twitch.__init__ sets it)
        self.status = StatusBar()
        self.websockets = WebsocketStatus()
        self.output = ConsoleOutput()
        self.login = LoginForm(self)
        self.channels = ChannelList()
        self.inv = InventoryOverview()
        self.games: set[Any] = set()
        self.drop: Any = None
        self._logger = logger
        self._handler = OutputHandler(self)
        self._handler.setFormatter(OUTPUT_FORMATTER)
        logger.addHandler(self._handler)
        self._close_requested = asyncio.Event()
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
        """The Login button."""
        self.login._confirm.set()

    def set_games(self, games: set[Any]) -> None:
        self.games = set(games)

    def display_drop(self, drop: Any, *, countdown: bool = True, subone: bool = False) -> None:
        self.drop = drop

    def clear_drop(self) -> None:
        self.drop = None

    def stop(self) -> None:
        self._logger.removeHandler(self._handler)
