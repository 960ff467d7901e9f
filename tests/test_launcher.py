"""The launcher as TDM's real parent would run it: a child process, a fake TDM folder or the simulator."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.framing import Framer, Record
from exporter.launcher import HOOK_MISSING, launcher_argv

from conftest import FIXTURES, REPO, wait_until

SIMULATOR = REPO / "exporter" / "simulator" / "main.py"

# TDM's shape: GUIManager.print -> ConsoleOutput.print; _TKOutputHandler.emit -> GUIManager.print.
GUI_PY = """
import logging, os
if os.environ.get("FAKE_TDM_SETUP") != "done":
    raise RuntimeError("gui was imported before main.py's own setup")

class ConsoleOutput:
    def __init__(self):
        self.lines = []

    def print(self, message):
        self.lines.append(message)

class GUIManager:
    def __init__(self):
        self.output = ConsoleOutput()

    def print(self, message):
        self.output.print(message)
"""
HANDLER_PY = """
class _TKOutputHandler(logging.Handler):
    def __init__(self, output):
        super().__init__()
        self._output = output

    def emit(self, record):
        self._output.print(self.format(record))
"""
MAIN_PY = """
import http, json, logging, os, sys
from pathlib import Path

os.environ["FAKE_TDM_SETUP"] = "done"  # TDM: freeze_support(), truststore.inject_into_ssl()
import gui

workdir = Path(sys.argv[0]).resolve().parent
manager = gui.GUIManager()
logger = logging.getLogger("TwitchDrops")
logger.setLevel(logging.INFO)
if hasattr(gui, "_TKOutputHandler"):
    handler = gui._TKOutputHandler(manager)
    handler.setFormatter(logging.Formatter("{levelname}: {message}", style="{"))
    logger.addHandler(handler)
else:
    logger.addHandler(logging.NullHandler())
    logging.info = lambda text: manager.print("INFO: " + text)  # what such a GUI would print

manager.print("Logging level: INFO")
if hasattr(gui, "_TKOutputHandler"):
    logger.info("Checking login")
    logger.error("Exception in _watch_loop task\\nTraceback (most recent call last):\\nKeyError: 'viewers'")
else:
    logging.info("Checking login")
manager.print("Watching: MockStreamer")
manager.print("Fatal error encountered:\\n")
manager.print("\\nApplication Terminated.\\nClose the window to exit the application.")
seen = {
    "argv": sys.argv, "path0": sys.path[0], "name": __name__, "http": http.__file__,
    "console": manager.output.lines,
}
(workdir / "seen.json").write_text(json.dumps(seen))
if "--block" in sys.argv:
    print("ready", flush=True)
    sys.stdin.read()
sys.exit(int(sys.argv[sys.argv.index("--exit") + 1]) if "--exit" in sys.argv else 0)
"""
GUI_LINES = [
    "Logging level: INFO",
    "Watching: MockStreamer",
    "Fatal error encountered:",
    "\nApplication Terminated.\nClose the window to exit the application.",
]


def fake_tdm(root: Path, gui: str | None = GUI_PY + HANDLER_PY, main: str = MAIN_PY) -> Path:
    folder = root / "TDM"
    folder.mkdir()
    (folder / "main.py").write_text(main)
    if gui is not None:
        (folder / "gui.py").write_text(gui)
    return folder / "main.py"


def records(path: Path) -> list[Record]:
    if not path.exists():
        return []
    framer = Framer("captured")
    return framer.feed(path.read_bytes(), now=0.0).records + framer.flush().records


def gui_messages(path: Path) -> list[str]:
    return [r.message for r in records(path) if r.level == "GUI"]


def launch(main_py: Path, args: list[str], output: Path, cwd: Path, **popen) -> subprocess.CompletedProcess:
    argv = launcher_argv(sys.executable, main_py, args, output)
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=30, **popen)


@pytest.mark.parametrize("cwd", ["tdm", "elsewhere"])
def test_gui_lines_are_mirrored_and_logger_lines_are_not(tmp_path, cwd):
    main_py = fake_tdm(tmp_path)
    output = tmp_path / "data" / "logs" / "miner_output.log"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = launch(main_py, ["-vv", "--log"], output, cwd=main_py.parent if cwd == "tdm" else elsewhere)
    assert (result.returncode, result.stderr) == (0, "")
    got = records(output)
    assert [r.message for r in got if r.level == "GUI"] == GUI_LINES
    assert {r.level for r in got} == {"GUI", "STATE"}  # STATE: the bridge's, see test_gui_bridge.py
    seen = json.loads((main_py.parent / "seen.json").read_text())
    assert seen["argv"] == [str(main_py), "-vv", "--log"]
    assert seen["path0"] == str(main_py.parent)
    assert seen["name"] == "__main__"
    assert not seen["http"].startswith(str(REPO / "exporter"))  # our http.py does not shadow the stdlib
    # TDM's own Output box still gets everything, logger records included.
    assert len(seen["console"]) == len(GUI_LINES) + 2
    assert seen["console"][1] == "INFO: Checking login"


@pytest.mark.parametrize("code", [0, 1, 3, 4])
def test_exit_codes_pass_through(tmp_path, code):
    main_py = fake_tdm(tmp_path)
    result = launch(main_py, ["--exit", str(code)], tmp_path / "out.log", cwd=tmp_path)
    assert result.returncode == code
    assert result.stderr == ""


def test_an_uncaught_exception_is_exit_1_with_its_traceback(tmp_path):
    main_py = fake_tdm(tmp_path, main="raise KeyError('viewers')\n")
    result = launch(main_py, [], tmp_path / "out.log", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.rstrip().endswith("KeyError: 'viewers'")


def test_sigterm_keeps_its_default_action(tmp_path):
    main_py = fake_tdm(tmp_path)
    argv = launcher_argv(sys.executable, main_py, ["--block"], tmp_path / "out.log")
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == -signal.SIGTERM  # as `python main.py` would end: killed, 143
    finally:
        proc.kill()
        proc.communicate()


def test_missing_hook_point_warns_once_and_runs(tmp_path):
    gui_without_console = "import os\nclass GUIManager:\n    def print(self, message):\n        pass\n"
    main = "import gui, sys\ngui.GUIManager().print('Watching: x')\nprint('ran')\nsys.exit(3)\n"
    main_py = fake_tdm(tmp_path, gui=gui_without_console, main=main)
    result = launch(main_py, [], tmp_path / "out.log", cwd=tmp_path)
    assert result.returncode == 3
    assert result.stdout == "ran\n"
    assert result.stderr == HOOK_MISSING + "\n"
    assert gui_messages(tmp_path / "out.log") == []


def test_no_gui_module_warns_once_and_runs(tmp_path):
    main_py = fake_tdm(tmp_path, gui=None, main="import sys\nprint('ran')\nsys.exit(3)\n")
    result = launch(main_py, [], tmp_path / "out.log", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (3, "ran\n", HOOK_MISSING + "\n")


def test_without_a_handler_class_level_prefixed_lines_count_as_logged(tmp_path):
    main_py = fake_tdm(tmp_path, gui=GUI_PY)
    result = launch(main_py, [], tmp_path / "out.log", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert gui_messages(tmp_path / "out.log") == GUI_LINES


def test_an_unwritable_capture_file_does_not_stop_tdm(tmp_path):
    main_py = fake_tdm(tmp_path)
    (tmp_path / "blocker").write_text("a file where a folder should be")
    result = launch(main_py, ["--exit", "3"], tmp_path / "blocker" / "out.log", cwd=tmp_path)
    assert result.returncode == 3
    assert len(result.stderr.splitlines()) == 1 and "GUI output will not be mirrored" in result.stderr


def test_module_form_and_usage_errors(tmp_path):
    main_py = fake_tdm(tmp_path)
    output = tmp_path / "out.log"
    run_module = [sys.executable, "-m", "exporter.launcher"]
    result = subprocess.run([*run_module, "--output", str(output), "--", str(main_py), "--exit", "4"], cwd=REPO)
    assert result.returncode == 4
    assert gui_messages(output) == GUI_LINES
    for bad in (["--output", str(output)], ["--output", str(output), "--"], ["--", str(main_py)]):
        assert subprocess.run([*run_module, *bad], cwd=REPO, capture_output=True).returncode == 2


def test_the_simulator_through_the_launcher(tmp_path):
    """The simulated TDM prints GUI-only lines through gui.ConsoleOutput.print, as TDM does."""
    output = tmp_path / "logs" / "miner_output.log"
    workdir = tmp_path / "tdm"
    workdir.mkdir()
    shutil.copy(FIXTURES / "settings.json", workdir / "settings.json")  # a priority list: games to mine
    args = ["--log", "-vvv", "--scenario", "happy", "--speed", "600", "--dir", str(workdir), "--exit-after", "60"]
    argv = launcher_argv(sys.executable, SIMULATOR, args, output)
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: any(m.startswith("Watching: ") for m in gui_messages(output)), what="Watching: in GUI records")
        proc.send_signal(signal.SIGTERM)  # the simulator's own handler: a clean exit 0
        stdout, stderr = proc.communicate(timeout=15)
        assert proc.returncode == 0, stderr
        assert stderr == b""
    finally:
        proc.kill()
        proc.communicate()
    got = records(output)
    messages = [r.message for r in got if r.level == "GUI"]
    assert {r.level for r in got} == {"GUI", "STATE"}
    assert messages[0] == "Logging level: CALL"
    assert "Exiting..." in messages
    logged = ("ERROR: ", "WARNING: ", "INFO: ", "CALL: ", "DEBUG: ")
    assert not [m for m in messages if m.startswith(logged)], "logger records were mirrored"
    assert "Checking login" in (workdir / "log.txt").read_text()  # they are in log.txt
