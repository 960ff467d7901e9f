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

from . import settings_file
from .config import Config, load_config
from .events import Event, EventKind, audit_event
from .lockfile import lock_holder
from .settings_sync import SettingsSync

EXIT_USAGE = 2


def add_parser(commands) -> None:
    config = commands.add_parser("config", help="validate, preview and apply the YAML config")
    actions = config.add_subparsers(dest="action", required=True)
    validate = actions.add_parser("validate", help="exit 0, or 2 with every error")
    validate.add_argument("file", type=Path)
    render = actions.add_parser("render", help="print the settings.json that would be written")
    render.add_argument("file", type=Path)
    render.add_argument("--tdm-dir", type=Path, help="TDM's folder (default: miner.dir); its settings.json is merged")
    diff = actions.add_parser("diff", help="per-key changes the file would make to TDM's settings.json")
    diff.add_argument("file", type=Path)
    diff.add_argument("--tdm-dir", type=Path)
    apply = actions.add_parser("apply", help="through a running daemon's /-/reload, or directly when none runs")
    apply.add_argument("file", type=Path)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.file)  # ConfigError: reported by the caller, exit 2
    return {"validate": _validate, "render": _render, "diff": _diff, "apply": _apply}[args.action](args, config)


def _tdm_dir(args: argparse.Namespace, config: Config) -> Path | None:
    return getattr(args, "tdm_dir", None) or config.miner.dir


def _current(directory: Path | None) -> tuple[settings_file.TdmSettings, str | None]:
    if directory is None:
        return settings_file.TdmSettings(), None
    path = directory / settings_file.SETTINGS_NAME
    existing = path.read_text(encoding="utf-8") if path.exists() else None
    return settings_file.load(directory), existing


def _wanted(config: Config, current: settings_file.TdmSettings) -> settings_file.TdmSettings:
    changes = {k: list(v) if k in ("priority", "exclude") else v for k, v in config.settings.items()}
    return settings_file.merge(current, changes)


def _validate(args: argparse.Namespace, config: Config) -> int:
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
