"""Start-up problems and command-line mistakes: one line each, exit 2, and nothing started or written.

The miner folder below holds a main.py that leaves a marker when it runs, so "nothing started" is
checked, not assumed; settings.json must not have been written either.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import pytest

from exporter.cli import _parser
from exporter.events import EventKind
from exporter.patterns import LEVELS

from conftest import DaemonProcess, free_port, http_post, sample, status_json, twitchminert, wait_until

MARKER_MAIN = "import pathlib, sys\npathlib.Path(__file__).with_name('started').touch()\n"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def tdm(tmp_path: Path) -> Path:
    folder = tmp_path / "tdm"
    folder.mkdir()
    (folder / "main.py").write_text(MARKER_MAIN)
    return folder


def config_file(tmp_path: Path, tdm: Path | None, extra: str = "", name: str = "twitchminert.yaml") -> Path:
    path = tmp_path / name
    text = f"storage:\n  path: {json.dumps(str(tmp_path / 'data'))}\n"
    if tdm is not None:
        text = f"miner:\n  dir: {json.dumps(str(tdm))}\n  display: none\n" + text
    path.write_text(text + extra)
    return path


def refused(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stderr.splitlines()


def nothing_started(tmp_path: Path, tdm: Path) -> None:
    assert not (tdm / "started").exists(), "the miner was started"
    assert not (tdm / "settings.json").exists(), "settings.json was written"
    assert not (tmp_path / "data").exists(), "the store was created"


# -- start-up problems ---------------------------------------------------------------------------


def test_a_port_out_of_range_fails_validate_and_run(tmp_path: Path, tdm: Path, home: Path) -> None:
    config = config_file(tmp_path, tdm, "web:\n  listen_address: 127.0.0.1:99999\n")
    expected = ["twitchminert: twitchminert.yaml:7: web.listen_address: port 99999 is out of range (0-65535)"]
    assert refused(twitchminert("config", "validate", str(config), home=home)) == expected
    assert refused(twitchminert("run", "--config.file", str(config), home=home)) == expected
    nothing_started(tmp_path, tdm)


@pytest.mark.parametrize("problem", ["missing", "file", "no-main"])
def test_a_miner_folder_that_cannot_be_run(tmp_path: Path, home: Path, problem: str) -> None:
    folder = tmp_path / "tdm"
    message = {
        "missing": f"{folder} does not exist (TDM's folder, with its main.py)",
        "file": f"{folder} is not a folder (TDM's folder, with its main.py)",
        "no-main": f"{folder} has no main.py: point it at TDM's folder, or set miner.command",
    }[problem]
    if problem == "file":
        folder.write_text("")
    elif problem == "no-main":
        folder.mkdir()
    config = config_file(tmp_path, folder)
    expected = [f"twitchminert: twitchminert.yaml:2: miner.dir: {message}"]
    assert refused(twitchminert("config", "validate", str(config), home=home)) == expected
    assert refused(twitchminert("run", "--config.file", str(config), home=home)) == expected
    assert not (tmp_path / "data").exists()
    if problem == "no-main":  # a command of its own needs no main.py, but a program that exists
        config.write_text(config.read_text().replace("  display: none\n", "  display: none\n  command: [/bin/true]\n"))
        assert twitchminert("config", "validate", str(config), home=home).returncode == 0
        config.write_text(config.read_text().replace("[/bin/true]", "[./TwitchDropsMiner.AppImage]"))
        assert refused(twitchminert("config", "validate", str(config), home=home)) == [
            "twitchminert: twitchminert.yaml:4: miner.command[0]: './TwitchDropsMiner.AppImage' is neither on PATH nor an executable file"
        ]
        config.write_text(config.read_text().replace("  command: [./TwitchDropsMiner.AppImage]\n", "  python: /nonexistent/python3\n"))
        (folder / "main.py").touch()
        assert refused(twitchminert("config", "validate", str(config), home=home)) == [
            "twitchminert: twitchminert.yaml:4: miner.python: /nonexistent/python3 is not an executable interpreter"
        ]


def test_a_missing_web_config_file(tmp_path: Path, tdm: Path, home: Path) -> None:
    web = tmp_path / "web.yml"
    config = config_file(tmp_path, tdm, f"web:\n  config_file: {json.dumps(str(web))}\n")
    expected = [f"twitchminert: twitchminert.yaml:7: web.config_file: web.yml: file not found: {web}"]
    assert refused(twitchminert("config", "validate", str(config), home=home)) == expected
    assert refused(twitchminert("run", "--config.file", str(config), home=home)) == expected
    nothing_started(tmp_path, tdm)
    # the exporter-toolkit flag, as prometheus.yml, the Dockerfile and the docs name it
    config = config_file(tmp_path, tdm)
    result = twitchminert("run", "--config.file", str(config), "--web.config.file", str(web), home=home)
    assert refused(result) == [f"twitchminert: --web.config.file: web.yml: file not found: {web}"]
    nothing_started(tmp_path, tdm)


def test_the_web_config_file_flag_is_used(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text("http_server_config:\n  headers:\n    X-Frame-Options: deny\n")
    config = config_file(tmp_path, None)
    daemon = DaemonProcess(["run", "--config.file", str(config), "--web.config.file", str(web), "--web.listen-address", "127.0.0.1:0"])
    try:
        daemon.wait_listening()
        import urllib.request

        with urllib.request.urlopen(daemon.url + "/-/healthy", timeout=5) as answer:
            assert answer.headers["X-Frame-Options"] == "deny"
        # A reload reads the file again; the flag still wins (else the reload would drop TLS or basic auth).
        assert http_post(daemon.url + "/-/reload") == (200, "no change\n")
        with urllib.request.urlopen(daemon.url + "/-/healthy", timeout=5) as answer:
            assert answer.headers["X-Frame-Options"] == "deny"
    finally:
        assert daemon.stop() == 0


def test_a_storage_path_that_cannot_be_created(tmp_path: Path, tdm: Path, home: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    config = tmp_path / "twitchminert.yaml"
    config.write_text(f"miner:\n  dir: {json.dumps(str(tdm))}\nstorage:\n  path: {json.dumps(str(blocker / 'data'))}\n")
    expected = [f"twitchminert: twitchminert.yaml:4: storage.path: cannot create {blocker / 'data'}: {blocker} is not a folder"]
    assert refused(twitchminert("config", "validate", str(config), home=home)) == expected
    assert refused(twitchminert("run", "--config.file", str(config), home=home)) == expected
    nothing_started(tmp_path, tdm)


def test_a_bad_pattern_file_names_the_config_line_too(tmp_path: Path, tdm: Path, home: Path) -> None:
    patterns = tmp_path / "patterns.yaml"
    config = config_file(tmp_path, tdm, f"logs:\n  patterns:\n    - {json.dumps(str(patterns))}\n")
    expected = [f"twitchminert: twitchminert.yaml:8: logs.patterns[0]: {patterns}: file not found"]
    assert refused(twitchminert("config", "validate", str(config), home=home)) == expected
    patterns.write_text("patterns:\n  - name: x\n    regex: '('\n")
    (line,) = refused(twitchminert("run", "--config.file", str(config), home=home))
    assert line.startswith(f"twitchminert: twitchminert.yaml:8: logs.patterns[0]: {patterns}:")
    nothing_started(tmp_path, tdm)


@pytest.mark.parametrize("action", ["diff", "apply"])
@pytest.mark.parametrize("problem", ["missing-folder", "binary", "directory"])
def test_config_diff_and_apply_onto_what_is_not_a_settings_file(tmp_path: Path, home: Path, action: str, problem: str) -> None:
    folder = tmp_path / "tdm"
    settings = folder / "settings.json"
    if problem != "missing-folder":
        folder.mkdir()
    if problem == "binary":
        settings.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    elif problem == "directory":
        settings.mkdir()
    config = config_file(tmp_path, folder, "settings:\n  priority: [A]\n")
    config.write_text(config.read_text().replace("  display: none\n", f"  display: none\nweb:\n  listen_address: 127.0.0.1:{free_port()}\n"))
    (line,) = refused(twitchminert("config", action, str(config), home=home))
    assert line == {
        "missing-folder": f"twitchminert: TDM's folder {folder} does not exist (miner.dir or --tdm-dir)",
        "binary": f"twitchminert: {settings}: not UTF-8 (byte 0)",
        "directory": f"twitchminert: {settings}: cannot be read: a directory, not a regular file",
    }[problem]
    assert not folder.exists() or sorted(p.name for p in folder.iterdir()) == ["settings.json"]
    if problem == "binary":
        assert settings.read_bytes() == b"\x89PNG\r\n\x1a\n\xff\xfe"  # not replaced, not set aside


# -- command-line mistakes -----------------------------------------------------------------------


def test_log_flags_work_after_the_command(tmp_path: Path, home: Path) -> None:
    config = config_file(tmp_path, None)
    own_log = tmp_path / "own.log"
    result = twitchminert("config", "validate", str(config), "--log.level", "LOUD", home=home)
    assert refused(result) == [
        "twitchminert: --log.level: expected one of TRACE, DEBUG, INFO, SUCCESS, WARNING, ERROR, CRITICAL, got 'LOUD'"
    ]
    log = tmp_path / "tdm.log"
    log.write_text("2026-11-23 22:23:54.000:\t   INFO:\thello\n")
    result = twitchminert("replay", str(log), "--log.level", "DEBUG", "--log.file", str(own_log), home=home)
    assert result.returncode == 0, result.stderr
    assert own_log.exists()
    # before the command, as before; the command's own flag wins when both are given
    result = twitchminert("--log.level", "LOUD", "replay", str(log), "--log.level", "INFO", home=home)
    assert result.returncode == 0, result.stderr


def test_events_flags_are_checked(tmp_path: Path, home: Path) -> None:
    config = config_file(tmp_path, None)
    for limit in ("0", "-1", "x"):
        (line,) = refused(twitchminert("events", "--config.file", str(config), "--limit", limit, home=home))
        assert line == f"twitchminert events: argument --limit: expected a number above 0, got '{limit}'"
    (line,) = refused(twitchminert("events", "--config.file", str(config), "--kind", "drops", home=home))
    assert line == f"twitchminert: events: --kind: unknown kind 'drops' (expected one of {', '.join(k.value for k in EventKind)})"
    (line,) = refused(twitchminert("events", "--config.file", str(config), "--level", "LOUD", home=home))
    assert line == f"twitchminert: events: --level: unknown level 'LOUD' (expected one of {', '.join(LEVELS)})"


@pytest.mark.parametrize("speed", ["0", "-5", "nan", "inf"])
def test_demo_speed_must_be_positive(home: Path, speed: str) -> None:
    (line,) = refused(twitchminert("demo", "--speed", speed, "--web.listen-address", "127.0.0.1:0", home=home))
    assert line == f"twitchminert demo: argument --speed: expected a number above 0, got '{speed}'"


def test_demo_with_a_bogus_listen_address(home: Path) -> None:
    (line,) = refused(twitchminert("demo", "--web.listen-address", "bogus", home=home))
    assert line == "twitchminert: demo: --web.listen-address: expected host:port, got 'bogus'"


def test_an_unknown_key_is_reported_on_its_own_line(tmp_path: Path, home: Path) -> None:
    config = tmp_path / "twitchminert.yaml"
    config.write_text("setings:\n  priority: [A]\nminer:\n  mode: run\n  colour:\n    blue\n")
    lines = refused(twitchminert("config", "validate", str(config), home=home))
    assert [line.split(": ")[1] for line in lines] == ["twitchminert.yaml:1", "twitchminert.yaml:5"]


def test_help_names_every_command_and_option(home: Path) -> None:
    top = twitchminert("--help", home=home).stdout
    for name in ("run", "demo", "config", "replay", "events"):
        assert name in top.split("positional arguments")[0], name  # in the description, not only the list
    parser = _parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, command in commands.items():
        undocumented = [a.dest for a in command._actions if not a.help and not isinstance(a, argparse._SubParsersAction)]
        assert not undocumented, f"{name}: {undocumented} have no help text"
        assert "--log.level" in command.format_help(), name
    assert "oldest first" in twitchminert("events", "--help", home=home).stdout


# -- the demo's times run at the simulator's speed -------------------------------------------------


def test_demo_eta_and_stall_run_at_the_simulators_speed(daemon_factory) -> None:
    """At --speed 60 a drop minute takes a real second: the ETA says so, and the stall scenario's
    30-minute stall limit is 30 real seconds, so a stall restart shows within a minute."""
    happy = daemon_factory("demo", "--scenario", "happy", "--web.listen-address", "127.0.0.1:0", "--speed", "60")
    stall = daemon_factory("demo", "--scenario", "stall", "--web.listen-address", "127.0.0.1:0", "--speed", "60")
    happy.wait_listening()
    stall.wait_listening()
    started = time.monotonic()

    def mining() -> dict | None:
        current = status_json(happy)["current_mining"]
        return current if current["eta"] is not None and current["progress_minutes"] < current["required_minutes"] else None

    current = wait_until(mining, 20, what="a drop in progress")
    remaining = current["required_minutes"] - current["progress_minutes"]
    assert current["eta"] - current["last_progress"] == pytest.approx(remaining * 1.0)  # a real second a minute

    wait_until(lambda: sample(stall.metrics(), "tdm_miner_restarts_total", reason="stall"), 60, what="a stall restart")
    assert time.monotonic() - started < 60
