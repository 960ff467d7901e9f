"""Start-up problems: one line, exit 2, and nothing started (no miner, no settings.json written).

`twitchminert run` and `demo` as real processes, against a port something else listens on.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from conftest import processes_mentioning, simulator_config, twitchminert


@pytest.fixture
def busy_port():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield busy.getsockname()[1]


def test_run_on_a_busy_port_starts_nothing(tmp_path: Path, busy_port: int) -> None:
    config = simulator_config(tmp_path, "happy")
    address = f"127.0.0.1:{busy_port}"
    done = twitchminert("run", "--config.file", str(config), "--web.listen-address", address, home=tmp_path / "home")
    assert done.returncode == 2
    assert done.stderr == f"twitchminert: web.listen_address {address}: Address already in use\n"
    assert not (tmp_path / "tdm" / "settings.json").exists()
    assert not (tmp_path / "data").exists()
    assert not processes_mentioning(str(tmp_path / "tdm"))


def test_demo_on_a_busy_port_is_one_line(tmp_path: Path, busy_port: int) -> None:
    address = f"127.0.0.1:{busy_port}"
    done = twitchminert("demo", "--web.listen-address", address, home=tmp_path / "home")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"twitchminert: web.listen_address {address}: Address already in use\n"


@pytest.mark.parametrize(
    "address, reason",
    [("bogus", "expected host:port, got 'bogus'"), ("127.0.0.1:99999", "port 99999 is out of range (0-65535)")],
)
def test_a_bad_listen_address_flag_is_one_line(tmp_path: Path, address: str, reason: str) -> None:
    config = simulator_config(tmp_path, "happy")
    done = twitchminert("run", "--config.file", str(config), "--web.listen-address", address, home=tmp_path / "home")
    assert done.returncode == 2
    assert done.stderr == f"twitchminert: --web.listen-address: {reason}\n"  # the flag, as the user typed it
    assert not (tmp_path / "tdm" / "settings.json").exists()
