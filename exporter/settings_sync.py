"""Before every start of TDM: make settings.json loadable and hold what the YAML asks for.

TDM reads settings.json once at start and rewrites it from memory at every exit, so the only
safe moment to write it is while TDM is stopped: the supervisor calls `prepare()` right then.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from loguru import logger

from . import settings_file
from .settings_file import SettingsUnreadable

BROKEN_SUFFIX = ".broken"  # an unreadable settings.json we had to set aside


@dataclass
class SettingsSync:
    miner_dir: Path
    desired: Mapping[str, Any]  # the YAML `settings` section: only the keys the user set
    record: Callable[[str, dict[str, Any]], None] = lambda action, fields: None  # audit trail
    writes: int = 0  # tdm_settings_writes_total
    last_error: str | None = field(default=None)

    def prepare(self) -> None:
        self._make_loadable()
        current = settings_file.load(self.miner_dir)
        wanted = settings_file.merge(current, self._changes())
        changes = settings_file.diff(current, wanted)
        if settings_file.write(self.miner_dir, wanted):
            self.writes += 1
        if changes:
            logger.info("settings.json: {}", ", ".join(f"{key} changed" for key in changes))
            self.record("settings_written", {"changes": {key: list(pair) for key, pair in changes.items()}})

    def _changes(self) -> dict[str, Any]:
        changes = dict(self.desired)
        for key in ("priority", "exclude"):
            if key in changes:
                changes[key] = list(changes[key])
        return changes

    def _make_loadable(self) -> None:
        try:
            settings_file.check_loadable(self.miner_dir)
            return
        except SettingsUnreadable as error:
            self.last_error = str(error)
            logger.warning("settings.json cannot be loaded by TDM ({}); it would block on a dialog", error)
        if settings_file.restore_last_good(self.miner_dir):
            logger.warning("settings.json restored from the last good copy")
            self.record("settings_restored", {"error": self.last_error})
            return
        # No good copy: set the broken file aside so TDM starts from its defaults (plus our YAML).
        broken = self.miner_dir / settings_file.SETTINGS_NAME
        if broken.exists():
            shutil.move(broken, broken.with_name(broken.name + BROKEN_SUFFIX))
        (self.miner_dir / settings_file.NEW_NAME).unlink(missing_ok=True)
        logger.warning("settings.json set aside as {}; TDM starts from its defaults", broken.name + BROKEN_SUFFIX)
        self.record("settings_set_aside", {"error": self.last_error})
