"""Command line: `twitchminert run|replay|demo|events|config|login`, with Prometheus-style flags.

Usage and config errors print one line per problem and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from . import __version__, config_cli, daemon_log, login_cli
from .config import DEFAULT_CONFIG_FILE, DEFAULT_LOG_FILE, Config, ConfigError, load_config
from .metrics import StateCollector
from .patterns import PatternError
from .settings_file import SettingsUnreadable
from .pipeline import RecordHandler, replay
from .state import MinerState
from .timestamps import LocalClock, zone

EXIT_USAGE = 2


class UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="twitchminert", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"twitchminert {__version__}")
    parser.add_argument("--log.level", dest="log_level", default="INFO", help="our own log level (default INFO)")
    parser.add_argument(
        "--log.file", dest="log_file", type=Path, help=f"also log to this file (run: default {DEFAULT_LOG_FILE})"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="the daemon: follow TDM's logs and serve /metrics")
    run.add_argument("--config.file", dest="config_file", type=Path, help=f"default {DEFAULT_CONFIG_FILE}")
    run.add_argument("--web.listen-address", dest="listen_address", help="default 127.0.0.1:9797")

    rep = commands.add_parser("replay", help="read log files once and print the final metrics")
    rep.add_argument("files", nargs="+", type=Path, metavar="FILE")
    rep.add_argument("--patterns", action="append", type=Path, default=[], metavar="YAML")
    rep.add_argument("--format", choices=("prom", "json"), default="prom")
    rep.add_argument("--timezone", default="local", help="TDM's time zone (default: this machine's)")
    rep.add_argument("--progress", action="store_true", help="show a progress bar on stderr")

    demo = commands.add_parser("demo", help="the daemon supervising a built-in simulated miner (no Twitch account)")
    demo.add_argument("--scenario", default="happy", choices=("happy", "flaky", "crash", "terminated", "stall", "login-required"))
    demo.add_argument("--web.listen-address", dest="listen_address", default="127.0.0.1:9797")
    demo.add_argument("--speed", type=float, default=60.0, help="simulated seconds per real second (default 60)")
    demo.add_argument("--config.file", dest="config_file", type=Path, help="takes its notify: section, to try notifications")

    notify = commands.add_parser("notify", help="notifications: `notify test` sends a test message to every URL")
    notify.add_argument("action", choices=("test",))
    notify.add_argument("--config.file", dest="config_file", type=Path, help=f"default {DEFAULT_CONFIG_FILE}")

    config_cli.add_parser(commands)
    login_cli.add_parser(commands)

    events = commands.add_parser("events", help="list stored events, newest first")
    events.add_argument("--config.file", dest="config_file", type=Path)
    events.add_argument("--kind")
    events.add_argument("--level")
    events.add_argument("--limit", type=int, default=50)
    return parser


def _config(path: Path | None) -> Config:
    if path is None:
        return load_config(DEFAULT_CONFIG_FILE) if DEFAULT_CONFIG_FILE.exists() else Config()
    return load_config(path)


def cmd_run(args: argparse.Namespace) -> int:
    from .service import run

    config_file = args.config_file or (DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.exists() else None)
    return run(_config(args.config_file), args.listen_address, config_file)


def cmd_replay(args: argparse.Namespace) -> int:
    from .daemon import build_patterns

    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        raise UsageError(f"replay: no such file: {missing[0]}")
    try:
        clock = LocalClock(zone(args.timezone))
    except Exception:
        raise UsageError(f"replay: --timezone: unknown time zone {args.timezone!r}") from None
    handler = RecordHandler(build_patterns(tuple(args.patterns)), clock, MinerState(), keep_events=args.format == "json")
    out = sys.stdout
    if args.format == "json":
        for path in args.files:
            replay([path], handler, progress=args.progress)
            for event in handler.take_events():
                out.write(_event_json(event) + "\n")
        return 0
    replay(args.files, handler, progress=args.progress)
    registry = CollectorRegistry()
    end = handler.state.last_record_time or 0.0  # the log's own "now"
    registry.register(StateCollector(lambda: handler.state.snapshot(end), clock=lambda: end))
    out.write(generate_latest(registry).decode())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    notify = load_config(args.config_file).notify if args.config_file is not None else ()
    return run_demo(args.scenario, args.listen_address, args.speed, notify)


def cmd_notify(args: argparse.Namespace) -> int:
    """`notify test`: one line per URL (masked); exit 1 when any failed."""
    from .notify import Notifier
    from .notify_rules import NotifyRules

    config = _config(args.config_file)
    if not config.notify:
        raise UsageError("notify test: the config has no notify: section (a list of {urls, events, min_interval})")
    results = Notifier(config.notify, NotifyRules()).test()
    for result in results:
        print(f"{result['channel']}: {'ok' if result['ok'] else 'failed: ' + str(result['error'])}")
    return 0 if all(result["ok"] for result in results) else 1


def cmd_events(args: argparse.Namespace) -> int:
    from .store import Store

    config = _config(args.config_file)
    if not config.store_file.exists():
        raise UsageError(f"events: no store at {config.store_file} (has the daemon run?)")
    with Store.open(config.store_file) as store:
        for event in reversed(store.query_events(args.kind, args.level, limit=args.limit)):
            sys.stdout.write(_event_json(event) + "\n")
    return 0


def cmd_login(args: argparse.Namespace) -> int:
    config_file = Path(args.config_file) if args.config_file else None
    return login_cli.run(args, lambda: _config(config_file).web.listen_address)


def _event_json(event) -> str:
    return json.dumps(event.to_dict(), ensure_ascii=False)


COMMANDS = {
    "run": cmd_run,
    "replay": cmd_replay,
    "demo": cmd_demo,
    "events": cmd_events,
    "config": config_cli.run,
    "login": cmd_login,
    "notify": cmd_notify,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        try:
            log_file = args.log_file or (DEFAULT_LOG_FILE if args.command == "run" else None)
            daemon_log.setup(args.log_level, log_file)
        except ValueError as error:
            raise UsageError(str(error)) from None
        return COMMANDS[args.command](args)
    except (UsageError, ConfigError, PatternError, SettingsUnreadable) as error:
        for line in str(error).splitlines() or [type(error).__name__]:
            print(f"twitchminert: {line}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
