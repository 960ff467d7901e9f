"""Launcher: run TDM's main.py unchanged and mirror its GUI-only Output lines into the captured output.

    python /abs/path/exporter/launcher.py --output FILE -- /path/to/main.py [ARGS...]
    python -m exporter.launcher --output FILE -- /path/to/main.py [ARGS...]

`launcher_argv` builds the first form. TDM runs in its own interpreter (its venv has aiohttp, Tk,
pystray), where our package is not installed, and its CWD can be anything: running this file by
absolute path works there, and it needs only the standard library. Run by path, Python puts
exporter/ first on sys.path, where our `http.py` would shadow the standard library's: the first
lines below replace that entry with the folder above, before anything else is imported.

Everything happens in this one process, so TDM's exit codes and signal handling are its own:
1. sys.argv = [main.py, *ARGS] and sys.path[0] = main.py's folder, as `python main.py` has them.
2. A one-shot import hook waits for TDM's own import of `gui`. We do not import it first: main.py
   sets things up before its first import (freeze_support, truststore.inject_into_ssl, which must
   come before aiohttp creates its SSL contexts), and that order stays TDM's.
3. Once `gui` is loaded, `gui.ConsoleOutput.print` is wrapped: each message is appended to FILE as
   a `GUI` record, then the original runs. Logger records that TDM mirrors into the same box as
   `LEVEL: message` are in log.txt already and are skipped: the `emit` of every logging.Handler
   class in `gui` (TDM's `_TKOutputHandler`) is wrapped to flag its thread while it runs. If `gui`
   has no handler class, a message that starts with a registered level name and ": " (TDM's
   OUTPUT_FORMATTER) is taken for a logger record instead.
4. The bridge (`gui_bridge`) wraps the GUI methods TDM calls when its state changes and writes each
   change as a `STATE` record into the same file; with `--control SOCKET` it also listens there for
   the daemon's calls (press Login, Reload, a snapshot). Its missing hooks are named in its `hello`
   record, not on stderr: that capability is unsupported, and TDM runs as it would without us.
5. runpy.run_path(main.py, run_name="__main__").

Without the hook point (no `gui` module, no `ConsoleOutput.print`) one warning line goes to stderr
and main.py runs unmirrored. The capture file can fail: then one warning, and TDM runs on.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and not __package__:  # run by path: sys.path[0] is exporter/ itself
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import functools
import importlib.abc
import importlib.util
import logging
import re
import runpy
import threading
from pathlib import Path
from types import ModuleType
from typing import Callable

from exporter.bridge import STATE_LEVEL
from exporter.capture import OutputCapture
from exporter.gui_bridge import GuiBridge

LAUNCHER_PATH = Path(__file__).resolve()
HOOK_MISSING = "twitchminert launcher: gui.ConsoleOutput.print not found; GUI output will not be mirrored"
GUI_LEVEL = "GUI"
_LOGGED_PREFIX = re.compile(r"([A-Z]+): ")
_STDLIB_LOGGING = ("logging", "logging.handlers")


def launcher_argv(python: str, main_py: Path, args: list[str], output: Path, control: Path | None = None) -> list[str]:
    """The child's argv: `python` runs this file by absolute path; the paths are made absolute.
    `control`: the bridge's control socket (none: TDM's state is written, but it takes no calls)."""
    control_args = ["--control", os.path.abspath(control)] if control is not None else []
    return [python, str(LAUNCHER_PATH), "--output", os.path.abspath(output), *control_args, "--", os.path.abspath(main_py), *args]


def runs_launcher(argv: list[str]) -> bool:
    """Whether a miner command line is one `launcher_argv` built."""
    return len(argv) > 1 and argv[1] == str(LAUNCHER_PATH)


class GuiMirror:
    """Wraps a loaded `gui` module so GUI-only messages reach `write(text)`."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self._in_handler = threading.local()
        self._failed = False

    def install(self, gui: ModuleType) -> bool:
        """Wrap gui.ConsoleOutput.print (and the handlers' emit). False if the hook point is missing."""
        console = getattr(gui, "ConsoleOutput", None)
        original = getattr(console, "print", None)
        if not isinstance(console, type) or not callable(original):
            return False
        handlers = [
            cls
            for cls in vars(gui).values()
            if isinstance(cls, type) and issubclass(cls, logging.Handler) and cls.__module__ not in _STDLIB_LOGGING
        ]
        for handler in handlers:
            handler.emit = self._flagging(handler.emit)
        by_text = not handlers
        mirror = self

        @functools.wraps(original)
        def print_mirrored(self, message, *args, **kwargs):
            if not getattr(mirror._in_handler, "active", False) and not (by_text and _looks_logged(message)):
                mirror._mirror(message)
            return original(self, message, *args, **kwargs)

        console.print = print_mirrored
        return True

    def _flagging(self, emit: Callable) -> Callable:
        flag = self._in_handler

        @functools.wraps(emit)
        def emit_flagged(handler, record):
            previous = getattr(flag, "active", False)
            flag.active = True
            try:
                return emit(handler, record)
            finally:
                flag.active = previous

        return emit_flagged

    def _mirror(self, message: object) -> None:
        try:
            self._write(str(message))
        except Exception as error:  # never break TDM's output box for our file
            if not self._failed:
                self._failed = True
                _warn(f"cannot write the captured output ({error}); GUI lines will be missing from it")


def _looks_logged(message: object) -> bool:
    match = _LOGGED_PREFIX.match(str(message))
    return match is not None and isinstance(logging.getLevelName(match.group(1)), int)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """One shot: when `name` is first imported, run `patch(module)` right after the module ran."""

    def __init__(self, name: str, patch: Callable[[ModuleType | None], None]) -> None:
        self.name = name
        self.patch = patch

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)  # the ordinary finders, as if we were not here
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            self.patch(None)
            return spec
        exec_module = loader.exec_module

        def exec_then_patch(module: ModuleType) -> None:
            exec_module(module)
            self.patch(module)

        loader.exec_module = exec_then_patch  # this spec's own loader instance only
        return spec


def run(main_py: Path, args: list[str], output: Path, control: Path | None = None) -> None:
    """Run main.py as `python main.py ARGS` would, mirroring GUI output and TDM's state to `output`
    and taking the bridge's calls on `control`.

    Replaces sys.argv and sys.path[0]: meant for this process's entry point, not for a host program.
    SystemExit from main.py propagates.
    """
    sys.argv = [str(main_py), *args]
    sys.path[0] = os.path.dirname(os.path.realpath(main_py))
    try:
        capture = OutputCapture(output)
    except OSError as error:
        _warn(f"cannot open {output} ({error}); GUI output will not be mirrored")
    else:
        # The file stays open for the life of the process (O_CLOEXEC, closed at exit).
        bridge = GuiBridge(functools.partial(capture.write, STATE_LEVEL), control, warn=_warn)
        install_hook(GuiMirror(functools.partial(capture.write, GUI_LEVEL)), bridge)
    runpy.run_path(str(main_py), run_name="__main__")


def install_hook(mirror: GuiMirror, bridge: GuiBridge | None = None) -> None:
    """Patch `gui` when TDM imports it; warn once now or then if the mirror's hook point is missing."""

    def patch(gui: ModuleType | None) -> None:
        try:
            installed = gui is not None and mirror.install(gui)
        except Exception:
            installed = False
        if not installed:
            print(HOOK_MISSING, file=sys.stderr, flush=True)
        if bridge is not None and gui is not None:
            try:
                bridge.install(gui)
            except Exception as error:  # a TDM we do not understand runs unbridged
                _warn(f"bridge: cannot install ({error!r}); TDM's state and controls are unavailable")

    if "gui" in sys.modules:
        patch(sys.modules["gui"])
    elif importlib.util.find_spec("gui") is None:
        patch(None)
    else:
        sys.meta_path.insert(0, _PatchOnImport("gui", patch))


def _warn(text: str) -> None:
    print(f"twitchminert launcher: {text}", file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> tuple[Path, Path | None, Path, list[str]]:
    parser = argparse.ArgumentParser(
        prog="launcher.py",
        usage="%(prog)s --output FILE [--control SOCKET] -- MAIN_PY [ARGS...]",
        description="Run TDM's main.py, mirroring its GUI Output box into FILE.",
    )
    parser.add_argument("--output", type=Path, required=True, help="the captured-output file")
    parser.add_argument("--control", type=Path, help="the bridge's control socket (daemon -> TDM)")
    if "--" not in argv:
        parser.error("expected -- MAIN_PY [ARGS...]")
    split = argv.index("--")
    options = parser.parse_args(argv[:split])
    if split + 1 == len(argv):
        parser.error("expected MAIN_PY after --")
    return options.output, options.control, Path(argv[split + 1]), argv[split + 2 :]


def main(argv: list[str] | None = None) -> None:
    output, control, main_py, args = parse_args(sys.argv[1:] if argv is None else argv)
    run(main_py, args, output, control)


if __name__ == "__main__":
    # The supervisor's parent-death signal becomes ONE SIGTERM: TDM closes normally (see pdeathsig).
    from exporter.pdeathsig import relay_parent_death

    relay_parent_death()
    main()
