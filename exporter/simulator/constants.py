"""TDM's constants.py, the part the simulator shares between its modules: the client's states and the
Output box's format. As in TDM, `gui` imports it, so whoever hooks `gui` finds `State` loaded."""

from __future__ import annotations

import logging
from enum import Enum

OUTPUT_FORMATTER = logging.Formatter("{levelname}: {message}", style="{", datefmt="%H:%M:%S")


class State(Enum):
    INVENTORY_FETCH = "inventory fetch"
    CHANNEL_SWITCH = "channel switch"
