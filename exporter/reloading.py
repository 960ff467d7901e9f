"""Loading a config for a reload: the file and every file it names, checked before anything changes.

`load_candidate` reads the config, compiles its pattern files and parses its web config file; an
error in any of them is a failed reload. `refusal` names what makes a config that parses still a
bad reload (an empty or half-written file). `config_diff` says what changed, for the audit trail
and for the daemon to rebuild only those parts.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from . import yamlfile
from .config import Config, ConfigError, config_from
from .patterns import PatternSet, load_user_patterns
from .webconfig import WebConfigFile, load_web_config

if TYPE_CHECKING:
    from .http import Server
    from .settings_sync import SettingsSync
    from .store import Store
    from .supervisor import Supervisor

SECTIONS = ("miner", "settings", "logs", "storage", "web", "session")


def build_patterns(files: tuple[Path, ...]) -> PatternSet:
    """Compile every user pattern now: a bad one stops start-up (PatternError names it)."""
    user = [pattern for file in files for pattern in load_user_patterns(file)]
    return PatternSet.builtin().extended(user)


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
