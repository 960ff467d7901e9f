"""Reloading the config: the file and every file it names, checked before anything changes.

`load_candidate` parses the config's text, compiles its pattern files and parses its web config file; an
error in any of them is a failed reload. `refusal` names what makes a config that parses still a
bad reload (an empty or half-written file). `config_diff` says what changed, for the audit trail
and for the daemon to rebuild only those parts. `Reloader` runs one reload at a time through those
steps and keeps the count and outcome the exporter reports; the daemon says how to rebuild a part.
It also remembers what the file held when it last read it, so the file watcher's reload of a file
the daemon has already read (its own settings save, seen again) is no reload at all.
"""

from __future__ import annotations

import dataclasses
import hashlib
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


def read_config(path: Path) -> str:
    """The config file's text; ConfigError (one line) when it is missing, not a regular file or not UTF-8."""
    try:
        return yamlfile.read(path)
    except yamlfile.YamlError as error:
        raise ConfigError(str(error)) from None


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_candidate(text: str, path: Path, adjust: Callable[[Config], Config] | None = None) -> Candidate:
    """The config in `text` (read from `path`) with the files it names. Raises ConfigError, PatternError
    or WebConfigError (all ValueErrors) naming the file and line. `adjust` applies what the command line
    sets over the file (--web.config.file, the demo's speed)."""
    try:
        document = yamlfile.parse(text, path.name, keep_going=True)
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
        # The SHA-256 of the text the last reload read (None: none yet, or the file was unreadable). Not
        # taken at start-up: the config the daemon started with may have been read before an edit.
        self._read_digest: str | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> bool:
        """Refuse reloads from now on; one in progress finishes first. False when already closed."""
        with self._lock:
            was_open, self._closed = not self._closed, True
            return was_open

    def reload(self, source: str, *, unless_read: bool = False) -> tuple[bool, str]:
        """Load the config file again and apply what changed. A config that cannot be applied whole
        (invalid, empty, or naming a busy listen address) changes nothing.

        `unless_read` is for the file watcher: when the file holds the very text the last reload read
        and the outcome would be the same (nothing to apply, or the same error), it is no reload: not
        counted, recorded or logged. That is how the daemon's own write looks to the watcher (a
        settings save from the web console, applied by its own reload at once), or a `touch`. A
        reload asked for (SIGHUP, POST /-/reload, `config apply`, the web save) always counts."""
        if self.path is None:
            return False, "no config file to reload (started without --config.file)"
        with self._lock:
            if self._closed:
                return False, "stopping"
            target, prepared, digest = self._target, Prepared(), None
            try:
                text = read_config(self.path)
                digest = digest_of(text)
                candidate = load_candidate(text, self.path, self.adjust)
                why = refusal(target.config, candidate, self.path, target.miner_running)
                if why is not None:
                    raise ConfigError(why)
                changes = config_changes(target.config, target.patterns, target.web, candidate)
                if unless_read and not changes and self._already_read(digest, None):
                    return self._unchanged(source)
                target.prepare(candidate, changes, prepared)
            except (ValueError, OSError, SupervisorError, sqlite3.Error) as error:  # ValueError: ConfigError, PatternError...
                prepared.discard()
                if unless_read and self._already_read(digest, str(error)):
                    return self._unchanged(source, str(error))
                self._read_digest = digest
                return self._failed(source, str(error))
            self._read_digest = digest
            self.counts["success"] += 1
            self.state = ConfigState(True, time.time(), None)
            if not changes:
                logger.info("config reload ({}): no change", source)
                return True, "no change"
            target.record("config_change", {"source": source, "changes": changes}, EventKind.CONFIG_CHANGE)
            target.apply(candidate, changes, prepared)
            message = f"applied: {', '.join(sorted(changes))}"
            logger.info("config reload ({}): {}", source, message)
            return True, message

    def _already_read(self, digest: str | None, error: str | None) -> bool:
        """Whether the last reload read this very text and ended as this one would: successfully
        (`error` None), or failing with the same `error`."""
        return digest is not None and digest == self._read_digest and self.state.error == error

    def _unchanged(self, source: str, error: str | None = None) -> tuple[bool, str]:
        logger.debug("config reload ({}): {} holds what the last reload read; nothing to do", source, self.path)
        return (False, error) if error is not None else (True, "unchanged since the last reload")

    def _failed(self, source: str, message: str) -> tuple[bool, str]:
        self.counts["failure"] += 1
        self.state = ConfigState(False, self.state.last_success_time, message)
        logger.error("config reload ({}) failed, keeping the running config:\n{}", source, message)
        return False, message
