"""examples/systemd/twitchminert.service: valid for systemd, and stopping the way TDM needs."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import unavailable

from exporter.config import MinerConfig

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "examples" / "systemd" / "twitchminert.service"
INSTALLED = "%h/twitchminert/.venv/bin/twitchminert"  # where the unit expects twitchminert


def service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    parser.read_string(UNIT.read_text())
    return parser["Service"]


def seconds(value: str) -> float:
    return float(value.removesuffix("s"))


def test_systemd_analyze_verifies_the_unit(tmp_path: Path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        unavailable("systemd-analyze not found (Debian: apt-get install systemd)")
    # verify checks that ExecStart's program exists: point it at this checkout's twitchminert.
    program = Path(sys.executable).with_name("twitchminert")
    assert program.exists(), program
    text = UNIT.read_text()
    assert INSTALLED in text
    unit = tmp_path / "twitchminert.service"
    unit.write_text(text.replace(INSTALLED, str(program)))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # A setting systemd does not understand is only a warning: no output at all is the pass.
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_only_twitchminert_gets_the_stop_signal_and_has_time_to_close_tdm():
    unit = service()
    # control-group (the default) would SIGTERM TDM and its Xvfb with us: TDM exits 1, saving nothing.
    assert unit["KillMode"] == "mixed"
    assert seconds(unit["TimeoutStopSec"]) > MinerConfig().stop_timeout + 5  # + Xvfb's stop
    assert unit["Restart"] == "on-failure"
    assert unit["ExecStart"].startswith("%h/") and "--config.file %h/" in unit["ExecStart"]
    assert unit["ExecReload"] == "/bin/kill -HUP $MAINPID"
