"""A simulated TwitchDropsMiner, laid out like a TDM source install so it is launched like TDM's main.py.

    python exporter/simulator/main.py [--log] [-v...] [--scenario NAME] [--speed N] [--seed N] [--dir DIR]
    python -m exporter.simulator ...          (the same program)

It has no window and no network; everything else follows TDM (see shared/TDM.md):

- Working dir: the folder of sys.argv[0] (main.py's folder), unless `--dir DIR` or `$TDM_SIM_DIR` says
  otherwise. It holds settings.json, lock.file and log.txt.
- settings.json is read once at start with TDM's rules (settings.py) and rewritten at every normal exit.
  Its priority list decides which games are mined.
- log.txt: only with `--log`; appended; created empty at start; TDM's format; -v levels
  none=ERROR, -v=WARNING, -vv=INFO, -vvv=CALL, -vvvv=DEBUG (Request:/Response: records with a fake token).
  `--debug-ws` / `--debug-gql` add those loggers' DEBUG lines at any level.
- GUI-only texts go only through `gui.ConsoleOutput.print(self, message: str)`, which also receives every
  logger record as `LEVEL: message`. Nothing is written to stdout or stderr in normal operation.
- Time is accelerated: `--speed N` simulated seconds per real second (default 60: a minute per second).

Signals and exit codes:
- SIGINT/SIGTERM while running: graceful ("Exiting...", `Websocket[0] stopped.`, settings.json saved),
  exit 0 about 0.5 s later. SIGHUP: default action, killed (129).
- SIGUSR1 stands for closing the window: like SIGTERM while running; after a fatal error or a critical
  task crash ("Application Terminated", the process stays alive) it is the only way to a clean exit:
  settings saved, exit 1 after a fatal error, 0 after a task crash. SIGTERM in that state kills (143),
  nothing saved. SIGUSR2 presses the "Login" button (scenario login-required).
- 3: another process holds lock.file (immediate, silent, log.txt untouched).
- 4: settings.json cannot be loaded. TDM shows a blocking dialog and exits 4 once OK is pressed. The
  simulator prints the dialog's text to stderr and blocks the same way: SIGUSR1 presses OK (exit 4),
  SIGTERM kills it (143), SIGINT is ignored. `--no-dialog` exits 4 at once.
- 2: bad arguments (argparse on stderr; TDM would show a dialog first).
- `--exit-after SECONDS` closes the window after that many real seconds (a safety net for tests).
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import logging
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import IO

if __package__:
    from .gui import GUIManager
    from .scenarios import SCENARIOS, Scenario
    from .settings import SETTINGS_NAME, Settings
    from .twitch import CALL, Twitch
else:  # run as a script, like TDM's main.py: the siblings are top-level modules
    from gui import GUIManager
    from scenarios import SCENARIOS, Scenario
    from settings import SETTINGS_NAME, Settings
    from twitch import CALL, Twitch

LOCK_NAME = "lock.file"
LOG_NAME = "log.txt"
DIR_ENV = "TDM_SIM_DIR"
LOGGING_LEVELS = {0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO, 3: CALL, 4: logging.DEBUG}
FILE_FORMATTER = logging.Formatter(
    "{asctime}.{msecs:03.0f}:\t{levelname:>7}:\t{message}", style="{", datefmt="%Y-%m-%d %H:%M:%S"
)
TERMINATED_TEXT = "\nApplication Terminated.\nClose the window to exit the application."


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="main.py", description="Simulated Twitch Drops Miner (no window, no network)."
    )
    parser.add_argument("-v", dest="verbose", action="count", default=0, help="more verbose log.txt")
    parser.add_argument("--log", action="store_true", help="write log.txt in the working dir")
    parser.add_argument("--tray", action="store_true", help="accepted like TDM's, no effect")
    parser.add_argument("--debug-ws", action="store_true", help="websocket DEBUG lines at any level")
    parser.add_argument("--debug-gql", action="store_true", help="GQL DEBUG lines at any level")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="happy")
    parser.add_argument("--speed", type=_positive, default=60.0, help="simulated seconds per real second")
    parser.add_argument("--seed", type=int, default=None, help="make the run reproducible")
    parser.add_argument(
        "--dir", type=Path, default=None, help=f"working dir (default: ${DIR_ENV}, else main.py's folder)"
    )
    parser.add_argument(
        "--exit-after", type=_positive, default=None, metavar="SECONDS", help="close the window after SECONDS"
    )
    parser.add_argument("--no-dialog", action="store_true", help="exit 4 at once on a bad settings.json")
    return parser.parse_args(argv)


def working_dir(args: argparse.Namespace) -> Path:
    if args.dir is not None:
        return args.dir.resolve()
    if os.environ.get(DIR_ENV):
        return Path(os.environ[DIR_ENV]).resolve()
    return Path(sys.argv[0]).resolve().parent


def lock_file(path: Path) -> tuple[bool, IO[str]]:
    """TDM's lock: truncate, write 'ツ', then a non-blocking exclusive lockf held for the process lifetime."""
    file = path.open("w", encoding="utf8")
    file.write("ツ")
    file.flush()
    try:
        fcntl.lockf(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False, file
    return True, file


def settings_error(details: str, args: argparse.Namespace) -> int:
    """TDM's modal "Settings error" dialog, without a window: it blocks until OK (SIGUSR1) is pressed."""
    text = f"Settings error\n\nThere was an error while loading the settings file:\n\n{details}"
    print(text, file=sys.stderr, flush=True)
    if not args.no_dialog:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Tk blocks in the dialog: SIGINT has no effect
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})  # SIGTERM keeps its default: 143
        if args.exit_after is None:
            signal.sigwait({signal.SIGUSR1})
        else:
            signal.sigtimedwait({signal.SIGUSR1}, args.exit_after)
    return 4


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = working_dir(args)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        settings = Settings(workdir / SETTINGS_NAME)
    except Exception:
        return settings_error(traceback.format_exc(), args)
    success, lock = lock_file(workdir / LOCK_NAME)
    try:
        if not success:
            return 3  # already running
        return asyncio.run(run(args, settings, workdir, SCENARIOS[args.scenario]))
    finally:
        lock.close()


async def run(args: argparse.Namespace, settings: Settings, workdir: Path, scenario: Scenario) -> int:
    level = LOGGING_LEVELS[min(args.verbose, 4)]
    logger = logging.getLogger("TwitchDrops")
    logger.setLevel(level)
    file_handler = None
    if args.log:
        file_handler = logging.FileHandler(workdir / LOG_NAME, encoding="utf-8")
        file_handler.setFormatter(FILE_FORMATTER)
        logger.addHandler(file_handler)
    # As in TDM: the child loggers get INFO at -vvvv (hiding their DEBUG lines), DEBUG with the flags.
    quiet = logging.INFO if level == logging.DEBUG else logging.NOTSET
    logging.getLogger("TwitchDrops.gql").setLevel(logging.DEBUG if args.debug_gql else quiet)
    logging.getLogger("TwitchDrops.websocket").setLevel(logging.DEBUG if args.debug_ws else quiet)

    gui = GUIManager(logger)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    client = Twitch(settings, gui, scenario, speed=args.speed, seed=seed)
    gui.on_close = client.close
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, gui.close)
    loop.add_signal_handler(signal.SIGTERM, gui.close)
    loop.add_signal_handler(signal.SIGUSR1, gui.close)  # the window's X
    loop.add_signal_handler(signal.SIGUSR2, gui.press_login)  # the Login button
    if args.exit_after is not None:
        loop.call_later(args.exit_after, gui.close)
    exit_status = 0
    try:
        try:
            await client.run()
        except Exception:
            exit_status = 1
            gui.prevent_close()
            gui.print("Fatal error encountered:\n")
            gui.print(traceback.format_exc())
        finally:
            # From here on SIGINT/SIGTERM have their default actions again, as in TDM.
            loop.remove_signal_handler(signal.SIGINT)
            loop.remove_signal_handler(signal.SIGTERM)
            gui.print("Exiting...")
            await client.shutdown()
        if not gui.close_requested:
            gui.print(TERMINATED_TEXT)
            if scenario.close_after_fatal:
                gui.close()
        await gui.wait_until_closed()
        settings.save(force=True)
        return exit_status
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)
        loop.remove_signal_handler(signal.SIGUSR2)
        gui.stop()
        if file_handler is not None:
            logger.removeHandler(file_handler)
            file_handler.close()


if __name__ == "__main__":
    sys.exit(main())
