"""Reloading the config: the file and every file it names, checked before anything changes.

`load_candidate` reads the config, compiles its pattern files and parses its web config file; an
error in any of them is a failed reload. `refusal` names what makes a config that parses still a
bad reload (an empty or half-written file). `config_diff` says what changed, for the audit trail
and for the daemon to rebuild only those parts. `Reloader` runs one reload at a time through those
steps and keeps the count and outcome the exporter reports; the daemon says how to rebuild a part.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from loguru import logger

from . import yamlfile
from .config import Config, ConfigError, config_from
from .events import EventKind
from .patterns import PatternSet, build_patterns
from .status import ConfigState
from .supervisor import SupervisorError
from .webconfig import WebConfigFile, load_web_config

if TYPE_CHECKING:
    from .http import Server
    from .settings_sync import SettingsSync
    from .store import Store
    from .supervisor import Supervisor

SECTIONS = ("miner", "settings", "logs", "storage", "web", "session")


def load_web(config: Config) -> WebConfigFile | None:
    return load_web_config(config.web.config_file) if config.web.config_file else None


@dataclass(frozen=True)
class Candidate:
    """A config read for a reload, with the files it names loaded."""

    config: Config
    patterns: PatternSet
    web: WebConfigFile | None
    empty: bool  # the file held nothing but comments or blanks


def load_candidate(path: Path, adjust: Callable[[Config], Config] | None = None) -> Candidate:
    """Raises ConfigError, PatternError or WebConfigError (all ValueErrors) naming the file and line.
    `adjust` applies what the command line sets over the file (--web.config.file, the demo's speed)."""
    try:
        document = yamlfile.load(path, keep_going=True)
    except yamlfile.YamlError as error:
        raise ConfigError(str(error)) from None
    config = config_from(document)
    if adjust is not None:
        config = adjust(config)
    patterns = build_patterns(config.logs.patterns)  # a bad pattern file is a bad config too
    return Candidate(config, patterns, load_web(config), empty=document.value is None)


@dataclass
class Prepared:
    """What a reload built before changing anything; discard() undoes it when the reload fails."""

    miner: tuple[SettingsSync | None, Supervisor | None] | None = None
    store: Store | None = None
    server: Server | None = None

    def discard(self) -> None:
        if self.store is not None:
            self.store.close()
        if self.server is not None:
            self.server.stop()


def refusal(running: Config, candidate: Candidate, path: Path, miner_running: bool) -> str | None:
    """Why a config that parses must still not replace the running one, or None.

    An editor that truncates the file and writes it again leaves it empty, or cut short, for a
    moment: applying that would stop TDM (no miner.dir) and reset everything to defaults.
    """
    if candidate.empty:
        return f"{path}: the file is empty (half-written?); keeping the running config"
    if miner_running and running.miner.dir is not None and candidate.config.miner.dir is None:
        return (
            f"{path}: miner.dir is missing while TDM runs (half-written file?); keeping the running config"
            " (to stop supervising TDM, stop twitchminert)"
        )
    return None


def config_changes(running: Config, patterns: PatternSet, web: WebConfigFile | None, candidate: Candidate) -> dict[str, list[Any]]:
    """config_diff, plus the files the config names, which can change while their paths do not."""
    changes = config_diff(running, candidate.config)
    if candidate.patterns.user_patterns != patterns.user_patterns:
        changes.setdefault("logs.patterns (contents)", [None, None])
    if candidate.web != web:
        changes.setdefault("web.config_file (contents)", [None, None])
    return changes


def config_diff(old: Config, new: Config) -> dict[str, list[Any]]:
    """Per-key changes as `{"section.key": [old, new]}`, plain JSON-able values."""
    changes: dict[str, list[Any]] = {}
    for section in SECTIONS:
        before, after = _plain(getattr(old, section)), _plain(getattr(new, section))
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                changes[f"{section}.{key}"] = [before.get(key), after.get(key)]
    # Channels are compared as configured but recorded masked: a changed token shows as a changed channel.
    for index in range(max(len(old.notify), len(new.notify))):
        was, now = old.notify[index : index + 1], new.notify[index : index + 1]
        if was != now:
            changes[f"notify.{index}"] = [channel[0].masked() if channel else None for channel in (was, now)]
    return changes


def _plain(value: Any) -> dict[str, Any]:
    raw = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else dict(value)
    return json.loads(json.dumps(raw, default=str))


class Reloadable(Protocol):
    """What a reload works on: the daemon's running config and how it rebuilds its parts."""

    config: Config
    web: WebConfigFile | None

    @property
    def patterns(self) -> PatternSet: ...

    @property
    def miner_running(self) -> bool: ...

    def prepare(self, candidate: Candidate, changes: dict[str, list[Any]], prepared: Prepared) -> None:
        """Build everything that can fail (bind, open, check) without changing what runs."""

    def apply(self, candidate: Candidate, changes: dict[str, list[Any]], prepared: Prepared) -> None:
        """Swap the prepared parts in; cannot fail."""

    def record(self, action: str, fields: dict[str, Any], kind: EventKind) -> None: ...


class Reloader:
    """One reload at a time, applied whole or not at all, and the outcome for /metrics and the status API."""

    def __init__(self, path: Path | None, target: Reloadable, adjust: Callable[[Config], Config] | None = None) -> None:
        self.path = path
        self.adjust = adjust  # what the command line sets over the file, at every reload too
        self.state = ConfigState(last_success_time=time.time())
        self.counts = {"success": 0, "failure": 0}
        self._target = target
        self._lock = threading.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> bool:
        """Refuse reloads from now on; one in progress finishes first. False when already closed."""
        with self._lock:
            was_open, self._closed = not self._closed, True
            return was_open

    def reload(self, source: str) -> tuple[bool, str]:
        """Load the config file again and apply what changed. A config that cannot be applied whole
        (invalid, empty, or naming a busy listen address) changes nothing."""
        if self.path is None:
            return False, "no config file to reload (started without --config.file)"
        with self._lock:
            if self._closed:
                return False, "stopping"
            target, prepared = self._target, Prepared()
            try:
                candidate = load_candidate(self.path, self.adjust)
                why = refusal(target.config, candidate, self.path, target.miner_running)
                if why is not None:
                    raise ConfigError(why)
                changes = config_changes(target.config, target.patterns, target.web, candidate)
                target.prepare(candidate, changes, prepared)
            except (ValueError, OSError, SupervisorError, sqlite3.Error) as error:  # ValueError: ConfigError, PatternError...
                prepared.discard()
                return self._failed(source, str(error))
            self.counts["success"] += 1
            self.state = ConfigState(True, time.time(), None)
            if not changes:
                return True, "no change"
            target.record("config_change", {"source": source, "changes": changes}, EventKind.CONFIG_CHANGE)
            target.apply(candidate, changes, prepared)
            return True, f"applied: {', '.join(sorted(changes))}"

    def _failed(self, source: str, message: str) -> tuple[bool, str]:
        self.counts["failure"] += 1
        self.state = ConfigState(False, self.state.last_success_time, message)
        logger.error("config reload ({}) failed, keeping the running config:\n{}", source, message)
        return False, message
