"""Hostile files where ours belong: YAML bombs, FIFOs, devices, sockets, huge or deeply nested files.

Each must be refused quickly with one line naming the file, never block a thread or stop the daemon.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exporter import safefile, settings_file, yamlfile
from exporter.config import ConfigError, load_config
from exporter.cookies import read_auth_token, read_jar
from exporter.patterns import PatternError, load_user_patterns

from conftest import FIXTURES, REPO, DaemonProcess, http_get, http_post, wait_until

BILLION_LAUGHS = "".join(
    [
        'lol: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n',
        *(f"l{n}: &{chr(98 + n)} [{', '.join(['*' + chr(97 + n)] * 9)}]\n" for n in range(8)),
    ]
)  # 9**9 strings once expanded: GBs; `lol:` is on line 1, the first alias on line 2


def cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m exporter ARGS`, printing its own peak memory (KiB) as the last line of stderr."""
    code = (
        "import resource, sys\n"
        "from exporter.cli import main\n"
        "try:\n"
        "    code = main(sys.argv[1:])\n"
        "finally:\n"
        "    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, cwd=REPO)


def peak_mb(result: subprocess.CompletedProcess) -> float:
    return int(result.stderr.strip().splitlines()[-1]) / 1024


def errors(result: subprocess.CompletedProcess) -> list[str]:
    return result.stderr.strip().splitlines()[:-1]


# -- YAML bombs -------------------------------------------------------------------------------------


def test_the_bomb_is_live() -> None:
    """Control: each list holds the previous one nine times (shared, so composing is cheap): 9**9 once expanded."""
    node = yamlfile.yaml.compose(BILLION_LAUGHS, Loader=yamlfile.yaml.SafeLoader)
    lists = [value for _, value in node.value]
    assert all(len(later.value) == 9 and later.value[0] is earlier for earlier, later in zip(lists, lists[1:]))


@pytest.mark.parametrize("kind", ["config", "patterns"])
def test_a_yaml_bomb_is_refused_fast_and_small(tmp_path: Path, kind: str) -> None:
    bomb = tmp_path / "bomb.yaml"
    if kind == "config":
        bomb.write_text(BILLION_LAUGHS)
        config = bomb
    else:
        bomb.write_text(BILLION_LAUGHS.replace("lol:", "patterns:", 1) + "x: *i\n")
        config = tmp_path / "twitchminert.yaml"
        config.write_text(f"logs:\n  patterns: [{json.dumps(str(bomb))}]\n")
    started = time.monotonic()
    result = cli("config", "validate", str(config))
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert errors(result) == [
        "twitchminert: bomb.yaml:2: invalid YAML: aliases expand to more than 10000 extra values (refused as a YAML bomb)"
        if kind == "config"
        else f"twitchminert: twitchminert.yaml:2: logs.patterns[0]: {bomb}:2: invalid YAML: aliases expand to more than "
        "10000 extra values (refused as a YAML bomb)"
    ]
    assert elapsed < 5  # the interpreter's start included; the check itself takes milliseconds
    assert peak_mb(result) < 100


def test_a_few_aliases_are_fine(tmp_path: Path) -> None:
    config = tmp_path / "twitchminert.yaml"
    config.write_text("settings:\n  priority: &games [A, B]\n  exclude: [C]\n")
    assert load_config(config).settings["priority"] == ("A", "B")
    document = yamlfile.parse("a: &x [1, 2]\nb: *x\nc: *x\n", "t.yaml")
    assert document.value == {"a": [1, 2], "b": [1, 2], "c": [1, 2]}


@pytest.mark.parametrize(
    "text, message",
    [
        ("a: &a [*a]\n", "t.yaml:1: invalid YAML: an alias refers to a value that contains it"),
        ("[" * 100_000 + "]" * 100_000, "t.yaml: invalid YAML: nested too deeply"),
        ("# " + "x" * (1 << 20) + "\n", f"t.yaml: invalid YAML: larger than {1 << 20} bytes"),
    ],
    ids=["self-alias", "deep", "huge"],
)
def test_other_yaml_that_would_blow_up(text: str, message: str) -> None:
    with pytest.raises(yamlfile.YamlError) as caught:
        yamlfile.parse(text, "t.yaml")
    assert str(caught.value) == message
    with pytest.raises(yamlfile.YamlError):
        yamlfile.safe_load(text, "t.yaml")


def test_a_bomb_is_a_config_error_so_a_reload_keeps_the_old_config(tmp_path: Path, daemon_factory) -> None:
    config = tmp_path / "twitchminert.yaml"
    log = tmp_path / "log.txt"
    log.touch()
    config.write_text(f"logs:\n  files: [{json.dumps(str(log))}]\nstorage:\n  path: {json.dumps(str(tmp_path / 'data'))}\n")
    daemon = daemon_factory("run", "--config.file", str(config), "--web.listen-address", "127.0.0.1:0")
    daemon.wait_listening()
    config.write_text(BILLION_LAUGHS)
    with pytest.raises(ConfigError, match="YAML bomb"):
        load_config(config)
    status, body = http_post(daemon.url + "/-/reload")
    assert (status, body.strip()) == (400, "twitchminert.yaml:2: invalid YAML: aliases expand to more than 10000 extra values (refused as a YAML bomb)")
    assert http_get(daemon.url + "/-/healthy")[0] == 200
    assert daemon.proc.poll() is None


# -- not a regular file -----------------------------------------------------------------------------


@pytest.fixture
def specials(tmp_path: Path):
    """A FIFO, a listening Unix socket, a character device and a directory, by the name each is refused with."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    server.listen()
    device = tmp_path / "device"
    device.symlink_to("/dev/zero")  # reading it never ends
    folder = tmp_path / "folder"
    folder.mkdir()
    yield {"a FIFO": fifo, "a socket": sock_path, "a character device": device, "a directory": folder}
    server.close()


def test_safefile_refuses_what_is_not_a_regular_file(specials: dict[str, Path], tmp_path: Path) -> None:
    for kind, path in specials.items():
        with pytest.raises(safefile.NotARegularFile) as caught:
            safefile.read_regular(path, 1000)
        assert safefile.describe(caught.value) == f"{kind}, not a regular file"
    big = tmp_path / "big"
    big.write_bytes(b"x" * 1001)
    with pytest.raises(safefile.NotARegularFile, match="larger than 1000 bytes"):
        safefile.read_regular(big, 1000)
    big.write_bytes(b"x" * 1000)
    assert safefile.read_regular(big, 1000) == b"x" * 1000
    with pytest.raises(FileNotFoundError):
        safefile.read_regular(tmp_path / "missing", 1000)


def test_every_reader_refuses_a_fifo_without_blocking(specials: dict[str, Path], tmp_path: Path) -> None:
    fifo = specials["a FIFO"]
    info = read_jar(fifo)  # blocked forever in open() before: no writer ever comes
    assert (info.present, info.format, info.error) == (True, "unreadable", "cannot read: a FIFO, not a regular file")
    assert read_auth_token(fifo) is None
    with pytest.raises(ConfigError, match=r"^fifo: cannot read: a FIFO, not a regular file$"):
        load_config(fifo)
    with pytest.raises(PatternError, match=r"fifo: cannot read: a FIFO, not a regular file$"):
        load_user_patterns(fifo)
    tdm = tmp_path / "tdm"
    tdm.mkdir()
    os.mkfifo(tdm / settings_file.SETTINGS_NAME)
    with pytest.raises(settings_file.SettingsUnreadable, match="a FIFO, not a regular file"):
        settings_file.load(tdm)
    (tdm / settings_file.SETTINGS_NAME).unlink()
    (tdm / settings_file.SETTINGS_NAME).symlink_to("/dev/zero")
    with pytest.raises(settings_file.SettingsUnreadable, match="a character device, not a regular file"):
        settings_file.load(tdm)


@pytest.mark.parametrize("kind", ["FIFO", "folder"])
def test_a_settings_json_that_is_not_a_file_is_set_aside_before_tdm_starts(tmp_path: Path, kind: str) -> None:
    """TDM would hang on a FIFO (open blocks) or stop on a folder; the start-up preflight sets it aside."""
    from exporter.settings_sync import BROKEN_SUFFIX, SettingsSync

    settings = tmp_path / settings_file.SETTINGS_NAME
    os.mkfifo(settings) if kind == "FIFO" else settings.mkdir()
    (tmp_path / settings_file.LAST_GOOD_NAME).write_text((FIXTURES / "settings.json").read_text())
    recorded = []
    SettingsSync(tmp_path, {"priority": ("A",)}, lambda action, fields: recorded.append(action)).prepare()
    assert settings_file.load(tmp_path).priority == ("A",)
    assert (tmp_path / (settings_file.SETTINGS_NAME + BROKEN_SUFFIX)).exists()  # kept, not deleted
    assert recorded[0] == "settings_set_aside"


def test_the_settings_editor_refuses_a_fifo_config_file(specials: dict[str, Path]) -> None:
    """The console's settings editor reads the config file on an HTTP request thread: it must not block."""
    from exporter.config import Config
    from exporter.settings_editor import SettingsEditor

    fifo = specials["a FIFO"]
    editor = SettingsEditor(fifo, Config, lambda: None, list, lambda *args: None, lambda source: (True, ""))
    answer = editor.read()  # blocked in open() before
    assert answer.body["editable"] is False and "a FIFO, not a regular file" in answer.body["reason"]


# -- cookies.jar values that are not JSON's -------------------------------------------------------


def jar_with_expiry(path: Path, expiry: str) -> Path:
    text = json.dumps({"www.twitch.tv|/": {"auth-token": {"value": "t0k3n", "expires_timestamp": 1}}})
    path.write_text(text.replace('"expires_timestamp": 1', f'"expires_timestamp": {expiry}'))
    return path


@pytest.mark.parametrize("expiry", ["1e999", "-1e999", "NaN", "Infinity"])
def test_a_jar_expiry_that_is_not_a_number_is_no_expiry(tmp_path: Path, expiry: str) -> None:
    info = read_jar(jar_with_expiry(tmp_path / "cookies.jar", expiry))
    assert info.has_auth_token and info.auth_token_expiry is None


def test_a_jar_nested_200k_deep_says_why(tmp_path: Path) -> None:
    path = tmp_path / "cookies.jar"
    path.write_text("[" * 200_000 + "]" * 200_000)
    info = read_jar(path)  # RecursionError before: the status said `cookies: null`
    assert (info.present, info.format, info.error) == (True, "unreadable", "invalid JSON: nested too deeply")


def attach_config(tmp_path: Path) -> tuple[Path, Path]:
    tdm = tmp_path / "tdm"
    tdm.mkdir()
    (tdm / "log.txt").touch()
    config = tmp_path / "twitchminert.yaml"
    config.write_text(
        f"miner:\n  dir: {json.dumps(str(tdm))}\n  mode: attach\n  display: none\n"
        f"storage:\n  path: {json.dumps(str(tmp_path / 'data'))}\n"
    )
    return tdm, config


def strict_json(text: str):
    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def status(daemon: DaemonProcess) -> dict:
    code, body = http_get(daemon.url + "/api/miner/status")
    assert code == 200, body
    return strict_json(body)


def test_status_is_strict_json_and_says_why_a_jar_is_unreadable(tmp_path: Path, daemon_factory) -> None:
    tdm, config = attach_config(tmp_path)
    jar = jar_with_expiry(tdm / "cookies.jar", "1e999")
    daemon = daemon_factory("run", "--config.file", str(config), "--web.listen-address", "127.0.0.1:0")
    daemon.wait_listening()
    cookies = wait_until(lambda: status(daemon)["cookies"], 10, what="the jar read")
    assert cookies["has_auth_token"] is True and cookies["token_expiry"] is None and cookies["error"] is None
    assert not math.isinf(cookies["modified"])


def test_sigterm_with_a_fifo_jar_ends_quickly(tmp_path: Path, daemon_factory) -> None:
    tdm, config = attach_config(tmp_path)
    os.mkfifo(tdm / "cookies.jar")
    daemon = daemon_factory("run", "--config.file", str(config), "--web.listen-address", "127.0.0.1:0")
    daemon.wait_listening()
    cookies = wait_until(lambda: status(daemon)["cookies"], 10, what="housekeeping to look at the jar")
    assert cookies["format"] == "unreadable" and cookies["error"] == "cannot read: a FIFO, not a regular file"
    started = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 5
