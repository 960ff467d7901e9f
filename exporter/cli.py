"""Command line: `twitchminert run|demo|config|replay|events|notify|login`, with Prometheus-style flags.

Usage and config errors print one line per problem and exit 2, before anything is started.
Every command's flags are declared here; the module that does a command's work is imported when it
runs, so a short command (`replay` of a small file, `config validate`) does not start the daemon's imports.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from . import __version__, daemon_log
from .environment import DEFAULT_CONFIG_FILE, DEFAULT_LOG_FILE, WEB_PASSWORD_VARIABLE
from .errors import UserError
from .patterns import LEVELS
from .simulator.scenarios import SCENARIOS

if TYPE_CHECKING:
    from .config import Config

EXIT_USAGE = 2


class UsageError(UserError):
    """A flag or argument the parser could not refuse itself (a missing file, an unknown time zone)."""


def _positive(kind: type) -> Callable[[str], float]:
    """An argparse type: a finite number above 0 (`--speed 0` or `--limit -1` would be accepted and misbehave)."""

    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not 0 < value < float("inf"):  # also refuses nan
            raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
        return value

    return convert


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """One line, exit 2 (argparse adds its usage block; `--help` shows it)."""
        self.exit(EXIT_USAGE, f"{self.prog}: {message}\n")


def _log_flags(parser: argparse.ArgumentParser, level_default: str) -> None:
    file_default = None if level_default != argparse.SUPPRESS else argparse.SUPPRESS
    parser.add_argument("--log.level", dest="log_level", default=level_default, help="our own log level (default INFO)")
    parser.add_argument(
        "--log.file", dest="log_file", type=Path, default=file_default,
        help=f"also log to this file (run: default {DEFAULT_LOG_FILE})",
    )


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="twitchminert",
        description="Monitor and manage TwitchDropsMiner: run (the daemon), demo (with a simulated miner), "
        "config (validate, render, diff, apply the YAML file), replay (metrics from log files), events (stored history), "
        "notify (test notifications), login (log TDM in through a running daemon).",
    )
    parser.add_argument("--version", action="version", version=f"twitchminert {__version__}")
    # Every command takes the log flags, before or after its name; SUPPRESS keeps the top level's value
    # when they are not repeated after the command.
    logging = _Parser(add_help=False)
    _log_flags(parser, "INFO")
    _log_flags(logging, argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[logging], description=kwargs.get("help"), **kwargs)

    run = command("run", help="the daemon: follow TDM's logs and serve /metrics")
    run.add_argument("--config.file", dest="config_file", type=Path, help=f"default {DEFAULT_CONFIG_FILE}")
    run.add_argument("--web.listen-address", dest="listen_address", help="default 127.0.0.1:9797, or web.listen_address from the config")
    run.add_argument(
        "--web.config.file", dest="web_config_file", type=Path,
        help="exporter-toolkit web config (TLS, basic auth); default: web.config_file",
    )

    rep = command("replay", help="read log files once and print the final metrics")
    rep.add_argument("files", nargs="+", type=Path, metavar="FILE", help="TDM log files (log.txt), read in this order")
    rep.add_argument(
        "--patterns", action="append", type=Path, default=[], metavar="YAML", help="a user pattern file (repeatable)"
    )
    rep.add_argument(
        "--format", choices=("prom", "json"), default="prom",
        help="prom: the final metrics (default); json: every event, one JSON object a line",
    )
    rep.add_argument("--timezone", default="local", help="TDM's time zone (default: this machine's)")
    rep.add_argument("--progress", action="store_true", help="show a progress bar on stderr")

    demo = command("demo", help="the daemon supervising a built-in simulated miner (no Twitch account)")
    demo.add_argument("--scenario", default="happy", choices=tuple(SCENARIOS), help="what the simulated miner does (default happy)")
    demo.add_argument("--web.listen-address", dest="listen_address", default="127.0.0.1:9797", help="default 127.0.0.1:9797")
    demo.add_argument(
        "--speed", type=_positive(float), default=60.0, help="simulated seconds per real second (default 60)"
    )
    demo.add_argument("--config.file", dest="config_file", type=Path, help="takes its notify: section, to try notifications")

    notify = command("notify", help="notifications: `notify test` sends a test message to every URL")
    notify.add_argument("action", choices=("test",), help="test: send a test message to every URL of the notify: section")
    notify.add_argument("--config.file", dest="config_file", type=Path, help=f"default {DEFAULT_CONFIG_FILE}")

    config = command("config", help="validate, preview and apply the YAML config")
    actions = config.add_subparsers(dest="action", required=True, parser_class=_Parser)

    def action(name: str, help: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help, parents=[logging])
        parser.add_argument("file", type=Path, help="the YAML config file")
        return parser

    validate = action("validate", "every check `run` makes (values, files, folders, patterns): exit 0, or 2 with every error")
    validate.add_argument(
        "--syntax-only", action="store_true",
        help="check the file's own values only, not the files and folders it names (e.g. a file for another machine)",
    )
    render = action("render", "print the settings.json that would be written")
    render.add_argument("--tdm-dir", type=Path, help="TDM's folder (default: miner.dir); its settings.json is merged")
    diff = action("diff", "per-key changes the file would make to TDM's settings.json")
    diff.add_argument("--tdm-dir", type=Path, help="TDM's folder (default: miner.dir)")
    action("apply", "through a running daemon's /-/reload, or directly when none runs")

    login = command("login", help="log TDM in through a running daemon: shows the code to enter")
    login.add_argument("--config.file", dest="config_file", help="the daemon's config (for web.listen_address)")
    login.add_argument("--web.url", dest="web_url", help="the daemon's address, e.g. http://127.0.0.1:9797")
    login.add_argument("--web.user", dest="web_user", help=f"basic auth user (password: ${WEB_PASSWORD_VARIABLE})")
    login.add_argument("--timeout", type=float, default=None, help="give up after this many seconds (default: when the code expires)")

    events = command("events", help="print stored events as JSON lines: the newest --limit, oldest first")
    events.add_argument("--config.file", dest="config_file", type=Path, help=f"the daemon's config (default {DEFAULT_CONFIG_FILE})")
    events.add_argument("--kind", help="only events of this kind, e.g. drop_claimed, config_change")
    events.add_argument("--level", help=f"only records of this level: {', '.join(LEVELS)}")
    events.add_argument("--limit", type=_positive(int), default=50, help="at most this many events (default 50)")
    return parser


def _config(path: Path | None) -> Config:
    from .config import Config, load_config

    if path is None:
        return load_config(DEFAULT_CONFIG_FILE) if DEFAULT_CONFIG_FILE.exists() else Config()
    return load_config(path)


def cmd_run(args: argparse.Namespace) -> int:
    from . import preflight
    from .service import run

    config_file = args.config_file or (DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.exists() else None)
    config = _config(args.config_file)
    preflight.check(config, args.listen_address, args.web_config_file)  # every start-up problem, before anything starts
    return run(config, args.listen_address, config_file, web_config_file=args.web_config_file)


def cmd_replay(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import generate_latest

    from .metrics import StateCollector
    from .patterns import build_patterns
    from .pipeline import RecordHandler, replay
    from .state import MinerState
    from .timestamps import LocalClock, zone

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
    from .config import load_config, parse_listen_address
    from .demo import run_demo

    try:
        parse_listen_address(args.listen_address)
    except ValueError as error:
        raise UsageError(f"demo: --web.listen-address: {error}") from None
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


def cmd_config(args: argparse.Namespace) -> int:
    from . import config_cli

    return config_cli.run(args)


def cmd_events(args: argparse.Namespace) -> int:
    from .events import EventKind
    from .store import Store

    kinds = [kind.value for kind in EventKind]
    if args.kind is not None and args.kind not in kinds:
        raise UsageError(f"events: --kind: unknown kind {args.kind!r} (expected one of {', '.join(kinds)})")
    if args.level is not None and args.level.upper() not in LEVELS:
        raise UsageError(f"events: --level: unknown level {args.level!r} (expected one of {', '.join(LEVELS)})")
    config = _config(args.config_file)
    if not config.store_file.exists():
        raise UsageError(f"events: no store at {config.store_file} (has the daemon run?)")
    with Store.open(config.store_file) as store:
        level = args.level.upper() if args.level is not None else None
        for event in reversed(store.query_events(args.kind, level, limit=args.limit)):  # as a log reads
            sys.stdout.write(_event_json(event) + "\n")
    return 0


def cmd_login(args: argparse.Namespace) -> int:
    from . import login_cli

    config_file = Path(args.config_file) if args.config_file else None
    return login_cli.run(args, lambda: _config(config_file).web.listen_address)


def _event_json(event) -> str:
    return json.dumps(event.to_dict(), ensure_ascii=False)


COMMANDS = {
    "run": cmd_run,
    "replay": cmd_replay,
    "demo": cmd_demo,
    "events": cmd_events,
    "config": cmd_config,
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
    except UserError as error:  # UsageError, ConfigError, PatternError, SettingsUnreadable, WebConfigError, StoreError
        for line in str(error).splitlines() or [type(error).__name__]:
            print(f"twitchminert: {line}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
