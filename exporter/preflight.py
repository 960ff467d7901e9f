"""What can be checked before anything starts: run by `config validate`, `run` and `demo`, so a file that
validates starts, and a start-up problem is one line and exit 2 before TDM is started or settings.json written.

`config.py` checks each value's shape; this checks what the values point at: pattern files (read and
compiled), the web config file (parsed, certificates loaded), the miner folder and its main.py, whether
the storage folder can be created, and the listen address given on the command line.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .config import Config, ConfigError, parse_listen_address
from .patterns import PatternError, PatternSet, build_patterns, load_user_patterns
from .webconfig import WebConfigError, load_web_config


def check(config: Config, listen_address: str | None = None, web_config_file: Path | None = None) -> None:
    """Raise ConfigError with every problem, one per line (`file:line: key: message`). `listen_address` and
    `web_config_file` are the command line's, which win over the file's."""
    problems: list[str] = []
    if listen_address is not None:
        try:
            parse_listen_address(listen_address)
        except ValueError as error:
            problems.append(f"--web.listen-address: {error}")
    problems += _miner(config)
    problems += _storage(config)
    for index, file in enumerate(config.logs.patterns):  # each file, so each problem names its line here
        try:
            PatternSet.builtin().extended(load_user_patterns(file))
        except PatternError as error:
            problems += [f"{config.where(('logs', 'patterns', index))}: {line}" for line in str(error).splitlines()]
    try:
        build_patterns(config.logs.patterns)  # names clashing across files
    except PatternError as error:
        if not problems:
            problems.append(str(error))
    web_file = web_config_file if web_config_file is not None else config.web.config_file
    try:
        if web_file is not None:
            load_web_config(web_file)
    except WebConfigError as error:
        where = "--web.config.file" if web_config_file is not None else config.where(("web", "config_file"))
        problems += [f"{where}: {line}" for line in str(error).splitlines()]
    if problems:
        raise ConfigError("\n".join(problems))


def _miner(config: Config) -> list[str]:
    miner = config.miner
    if miner.dir is None:
        return []
    if not miner.dir.is_dir():
        what = "does not exist" if not miner.dir.exists() else "is not a folder"
        return [f"{config.where(('miner', 'dir'))}: {miner.dir} {what} (TDM's folder, with its main.py)"]
    if miner.mode != "run":
        return []
    if not miner.command and not (miner.dir / "main.py").is_file():
        return [f"{config.where(('miner', 'dir'))}: {miner.dir} has no main.py: point it at TDM's folder, or set miner.command"]
    if miner.python is not None and not os.access(miner.python, os.X_OK):
        return [f"{config.where(('miner', 'python'))}: {miner.python} is not an executable interpreter"]
    if miner.command and _program(miner.command[0], miner.dir) is None:
        return [f"{config.where(('miner', 'command', 0))}: {miner.command[0]!r} is neither on PATH nor an executable file"]
    return []


def _program(name: str, folder: Path) -> str | None:
    """What the supervisor would run for `name` (it starts the miner in its folder)."""
    if "/" not in name:
        return shutil.which(name)
    path = Path(name).expanduser()
    path = path if path.is_absolute() else folder / path
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def _storage(config: Config) -> list[str]:
    """The store is created at start (with its folders): the first folder that exists must let us."""
    path = config.storage.path
    where = config.where(("storage", "path"))
    if path.exists() and not path.is_dir():
        return [f"{where}: {path} is not a folder"]
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return [f"{where}: cannot create {path}: {existing} is not a folder"]
    if not os.access(existing, os.W_OK | os.X_OK):
        return [f"{where}: cannot create {path}: {existing} is not writable"]
    return []
