"""`twitchminert config validate|render|diff|apply`: the YAML file checked and previewed before use."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from . import preflight, settings_file
from .config import Config, ConfigError, load_config
from .events import Event, EventKind, audit_event
from .lockfile import lock_holder
from .settings_sync import SettingsSync

EXIT_USAGE = 2


def run(args: argparse.Namespace) -> int:
    config = load_config(args.file)  # ConfigError: reported by the caller, exit 2
    return {"validate": _validate, "render": _render, "diff": _diff, "apply": _apply}[args.action](args, config)


def _tdm_dir(args: argparse.Namespace, config: Config) -> Path | None:
    return getattr(args, "tdm_dir", None) or config.miner.dir


def _current(directory: Path | None) -> tuple[settings_file.TdmSettings, str | None]:
    """TDM's settings in `directory` and the text of its settings.json; SettingsUnreadable names a file TDM
    could not load (binary, a folder, a FIFO), ConfigError a folder that is not there."""
    if directory is None:
        return settings_file.TdmSettings(), None
    _check_folder(directory)
    settings = settings_file.load(directory)
    return settings, settings_file.existing_text(directory)


def _check_folder(directory: Path) -> None:
    if not directory.is_dir():
        what = "does not exist" if not directory.exists() else "is not a folder"
        raise ConfigError(f"TDM's folder {directory} {what} (miner.dir or --tdm-dir)")


def _wanted(config: Config, current: settings_file.TdmSettings) -> settings_file.TdmSettings:
    changes = {k: list(v) if k in ("priority", "exclude") else v for k, v in config.settings.items()}
    return settings_file.merge(current, changes)


def _validate(args: argparse.Namespace, config: Config) -> int:
    if not args.syntax_only:
        preflight.check(config)  # what `run` checks before it starts anything: a file that validates starts
    print(f"{args.file}: OK")
    return 0


def _render(args: argparse.Namespace, config: Config) -> int:
    current, existing = _current(_tdm_dir(args, config))
    sys.stdout.write(settings_file.encode(_wanted(config, current), existing))  # byte for byte what is written
    return 0


def _diff(args: argparse.Namespace, config: Config) -> int:
    current, _ = _current(_tdm_dir(args, config))
    changes = settings_file.diff(current, _wanted(config, current))
    for key, (old, new) in changes.items():
        print(f"{key}: {json.dumps(old, ensure_ascii=False)} -> {json.dumps(new, ensure_ascii=False)}")
    if not changes:
        print("no change")
    return 0


def _apply(args: argparse.Namespace, config: Config) -> int:
    query = urllib.parse.urlencode({"source": "cli", "file": str(args.file.resolve())})
    url = f"http://{config.web.listen_address}/-/reload?{query}"
    try:
        request = urllib.request.Request(url, method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=30) as answer:
            print(f"daemon at {config.web.listen_address}: {answer.read().decode().strip()}")
            return 0
    except urllib.error.HTTPError as error:
        print(f"twitchminert: daemon at {config.web.listen_address}: {error.read().decode().strip()}", file=sys.stderr)
        return EXIT_USAGE
    except (urllib.error.URLError, OSError):
        pass  # no daemon: apply directly
    directory = config.miner.dir
    if directory is None:
        print("twitchminert: config apply: no daemon is running and miner.dir is not set", file=sys.stderr)
        return EXIT_USAGE
    if config.miner.mode == "attach":
        print("twitchminert: config apply: miner.mode is attach: stop TDM and edit its settings yourself", file=sys.stderr)
        return EXIT_USAGE
    _check_folder(directory)
    settings_file.load(directory)  # SettingsUnreadable: a settings.json TDM cannot load is reported, not replaced
    holder = lock_holder(directory / "lock.file")
    if holder is not None:
        print(
            f"twitchminert: config apply: TDM is running (pid {holder}) and no daemon answers at "
            f"{config.web.listen_address}: TDM would overwrite settings.json at exit; stop it first",
            file=sys.stderr,
        )
        return EXIT_USAGE
    events: list[Event] = []

    def record(action: str, fields: dict) -> None:
        events.append(audit_event(action, {"source": "cli", **fields}, EventKind.CONFIG_CHANGE, time.time()))

    sync = SettingsSync(directory, config.settings, record)
    sync.prepare()
    if events:  # the audit trail, even before the daemon's first run (Store.open creates the folder)
        from .store import Store

        with Store.open(config.store_file) as store:
            store.commit(events, [], {}, {})
    print(f"{directory / settings_file.SETTINGS_NAME}: {'written' if sync.writes else 'already up to date'}")
    return 0
