"""`twitchminert config validate|render|diff|apply` as a user runs them: subprocesses on real files.

settings.json must come out byte for byte as TDM's own `json_save` writes it (shared/fixtures/tdm/settings.json
was written by TDM's code), and `apply` must never write it while a TDM holds its lock.file.
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, REPO, wait_until
from conftest import twitchminert as run_twitchminert
from tdm_source import TDM
from test_reload import FIRST, SWAPPED, config_yaml, free_port, line_of

from exporter import settings_file
from exporter.config import Config, MinerConfig, StorageConfig, load_config
from exporter.lockfile import lock_holder

FIXTURE = FIXTURES / "settings.json"  # priority [Game A, Game B], exclude {Game C}, ending_soonest, else defaults
TDM_DEFAULTS = FIXTURES / "settings-defaults.json"  # what TDM writes with no settings.json
TDM_RUN = FIXTURES / "runs" / "A_fresh_login_vvvv" / "settings.json"  # the fixture's values plus a proxy
EXAMPLES = REPO / "examples"
FIXTURE_YAML = """\
settings:
  priority: [Game A, Game B]
  exclude: [Game C]
  priority_mode: ending_soonest
"""
HOLD_LOCK = """\
import fcntl, sys
lock = open(sys.argv[1], "w", encoding="utf-8")  # as TDM does
lock.write("\\u30c4")
lock.flush()
fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
sys.stdin.read()  # hold it until the test closes our stdin
"""


def twitchminert(*args: str, home: Path) -> subprocess.CompletedProcess[bytes]:
    """stdout as bytes, to compare files byte for byte."""
    return run_twitchminert(*args, home=home, text=False)


def errors(result: subprocess.CompletedProcess[bytes]) -> list[str]:
    return result.stderr.decode().splitlines()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def tdm_folder(tmp_path: Path, settings: Path | None = None) -> Path:
    folder = tmp_path / "tdm"
    folder.mkdir()
    if settings is not None:
        (folder / settings_file.SETTINGS_NAME).write_bytes(settings.read_bytes())
    return folder


# -- render ----------------------------------------------------------------------------------------------


def test_render_without_a_settings_file_is_what_tdm_writes(tmp_path: Path, home: Path) -> None:
    config = write(tmp_path / "twitchminert.yaml", FIXTURE_YAML)
    result = twitchminert("config", "render", str(config), "--tdm-dir", str(tdm_folder(tmp_path)), home=home)
    assert result.returncode == 0, result.stderr
    assert result.stdout == FIXTURE.read_bytes()  # TDM's defaults fill in the keys the YAML leaves out
    assert not (tmp_path / "tdm" / settings_file.SETTINGS_NAME).exists()  # render only prints


@pytest.mark.parametrize(
    ("existing", "extra_yaml", "expected"),
    [
        (TDM_DEFAULTS, "", FIXTURE),  # a file TDM wrote with its defaults
        (TDM_RUN, '  proxy: ""\n', FIXTURE),  # the YAML turns off the proxy TDM had
        (TDM_RUN, "", TDM_RUN),  # left out of the YAML: TDM's proxy is kept
    ],
    ids=["tdm-defaults", "proxy-turned-off", "proxy-kept"],
)
def test_render_merges_with_the_existing_settings(tmp_path: Path, home: Path, existing, extra_yaml, expected) -> None:
    tdm = tdm_folder(tmp_path, existing)
    config = write(tmp_path / "twitchminert.yaml", FIXTURE_YAML + extra_yaml + f"miner:\n  dir: {json.dumps(str(tdm))}\n")
    for args in (["--tdm-dir", str(tdm)], []):  # default: miner.dir
        result = twitchminert("config", "render", str(config), *args, home=home)
        assert result.returncode == 0, result.stderr
        assert result.stdout == expected.read_bytes()
    assert (tdm / settings_file.SETTINGS_NAME).read_bytes() == existing.read_bytes()


def test_render_keeps_every_value_tdm_has_that_the_yaml_does_not_set(tmp_path: Path, home: Path) -> None:
    tdm = tdm_folder(tmp_path)
    mine = settings_file.TdmSettings(
        proxy="http://127.0.0.1:3128", priority=("Old",), exclude={"Z", "Pok\u00e9mon GO"},
        priority_mode=settings_file.PriorityMode.LOW_AVBL_FIRST, dark_mode=True, autostart_tray=True,
        connection_quality=4, language="Deutsch", tray_notifications=False, enable_badges_emotes=True,
        available_drops_check=True,
    )
    (tdm / settings_file.SETTINGS_NAME).write_text(settings_file.encode(mine))
    config = write(tmp_path / "twitchminert.yaml", "settings:\n  priority: [New]\n")
    result = twitchminert("config", "render", str(config), "--tdm-dir", str(tdm), home=home)
    assert result.returncode == 0, result.stderr
    assert b"Pok\\u00e9mon GO" in result.stdout  # ASCII escapes, as TDM's json.dump
    # Loaded by TDM's own json_load (../shared/tdm-src): nothing was reset to a default.
    rendered = write(tmp_path / "rendered" / "settings.json", result.stdout.decode("ascii"))
    assert TDM.json_load(rendered, TDM.default_settings()) == {
        "proxy": TDM.URL("http://127.0.0.1:3128"),
        "priority": ["New"],
        "exclude": {"Z", "Pok\u00e9mon GO"},
        "priority_mode": TDM.PriorityMode.LOW_AVBL_FIRST,
        "dark_mode": True,
        "autostart_tray": True,
        "connection_quality": 4,
        "language": "Deutsch",
        "tray_notifications": False,
        "enable_badges_emotes": True,
        "available_drops_check": True,
    }


def test_yes_no_and_on_stay_game_names(tmp_path: Path, home: Path) -> None:
    config = write(tmp_path / "twitchminert.yaml", "settings:\n  priority: [yes, No, on]\n  exclude: [off]\n")
    assert twitchminert("config", "validate", str(config), home=home).returncode == 0
    result = twitchminert("config", "render", str(config), "--tdm-dir", str(tdm_folder(tmp_path)), home=home)
    rendered = json.loads(result.stdout)
    assert rendered["priority"] == ["yes", "No", "on"]
    assert rendered["exclude"] == {"__type": "set", "data": ["off"]}


# -- validate --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("example", ["twitchminert.yaml", "minimal.yaml", "docker/twitchminert.yaml"])
def test_the_examples_are_valid(example: str, home: Path, tmp_path: Path) -> None:
    result = twitchminert("config", "validate", "--syntax-only", str(EXAMPLES / example), home=home)
    assert (result.returncode, result.stdout.decode(), result.stderr) == (0, f"{EXAMPLES / example}: OK\n", b"")
    # On a machine with TDM where the example expects it, the full check (what `run` checks) passes too.
    tdm = tdm_folder(tmp_path)
    (tdm / "main.py").touch()
    text = (EXAMPLES / example).read_text().replace("~/TwitchDropsMiner", str(tdm)).replace("dir: /tdm", f"dir: {tdm}")
    placed = write(tmp_path / "placed.yaml", text.replace("path: /data", f"path: {tmp_path / 'data'}"))
    result = twitchminert("config", "validate", str(placed), home=home)
    assert (result.returncode, result.stderr) == (0, b"")
    (tdm / "main.py").unlink()
    result = twitchminert("config", "validate", str(placed), home=home)
    assert (result.returncode, errors(result)) == (2, [
        f"twitchminert: placed.yaml:{line_of(text, '  dir:')}: miner.dir: {tdm} has no main.py: point it at TDM's folder, or set miner.command"
    ])


def test_the_full_example_shows_the_defaults_and_every_key_left_out_is_valid(tmp_path: Path, home: Path) -> None:
    example = EXAMPLES / "twitchminert.yaml"
    config = load_config(example)
    assert config == Config(
        miner=MinerConfig(dir=Path("~/TwitchDropsMiner").expanduser()),
        storage=StorageConfig(path=Path("~/.twitchminert/data").expanduser()),
    )
    # `#key: value` lines are keys left out on purpose: with all of them in, the file is still valid.
    text = example.read_text()
    enabled = re.sub(r"(?m)^(\s*)#([a-z_]+:)", r"\1\2", text)
    assert len(enabled.splitlines()) == len(text.splitlines()) and enabled.count("#") < text.count("#")
    every_key = write(tmp_path / "every-key.yaml", enabled)
    result = twitchminert("config", "validate", "--syntax-only", str(every_key), home=home)
    assert result.returncode == 0, result.stderr
    assert set(load_config(every_key).settings) == set(settings_file.KEYS)  # each TDM setting is documented


BAD = """\
miner:
  dir: /opt/tdm
  mode: sometimes
  stop_timeout: soon
settings:
  priority:
    - Game A
    - yes
    - ""
    - "Bad\\tName"
    - 12
    - on
    - Game A
  exclude: [no, Game A, Off]
  proxy: http://127.0.0.1
  connection_quality: "3"
  dark_mode: true
  dark_mode: false
  colour: blue
storage:
  max_age_days: thirty
web:
  listen_address: 9797
extra: {}
"""


def test_validate_reports_every_problem_with_file_line_and_path(tmp_path: Path, home: Path) -> None:
    config = write(tmp_path / "bad.yaml", BAD)
    result = twitchminert("config", "validate", str(config), home=home)
    assert result.returncode == 2
    assert result.stdout == b""
    settings_keys = (
        "priority, exclude, priority_mode, proxy, connection_quality, language, dark_mode, tray_notifications, "
        "autostart_tray, enable_badges_emotes, available_drops_check"
    )
    # yes, on, no and Off are game names, not booleans: no error for lines 8, 12 and 14's first item.
    assert errors(result) == [
        "twitchminert: bad.yaml:3: miner.mode: expected one of run, attach, got 'sometimes'",
        "twitchminert: bad.yaml:4: miner.stop_timeout: expected a duration such as 90s, 30m or 1h, got 'soon'",
        "twitchminert: bad.yaml:9: settings.priority[2]: a game name cannot be empty",
        "twitchminert: bad.yaml:10: settings.priority[3]: a game name cannot contain control characters: 'Bad\\tName'",
        "twitchminert: bad.yaml:11: settings.priority[4]: expected a game name (string), got 12",
        "twitchminert: bad.yaml:13: settings.priority[6]: 'Game A' is listed twice",
        "twitchminert: bad.yaml:14: settings.exclude[1]: 'Game A' is also in settings.priority",
        "twitchminert: bad.yaml:15: settings.proxy: expected a proxy URL with scheme, host and port (http://host:8080), got 'http://127.0.0.1'",
        "twitchminert: bad.yaml:16: settings.connection_quality: expected a whole number, got '3'",
        "twitchminert: bad.yaml:18: settings.dark_mode: duplicate key",
        f"twitchminert: bad.yaml:19: settings.colour: unknown key (expected one of {settings_keys})",
        "twitchminert: bad.yaml:21: storage.max_age_days: expected a number, got 'thirty'",
        "twitchminert: bad.yaml:23: web.listen_address: expected a non-empty string, got 9797",
        "twitchminert: bad.yaml:24: extra: unknown section (expected one of miner, settings, logs, storage, web, session, notify)",
    ]


@pytest.mark.parametrize(
    ("proxy", "problem"),
    [
        ('""', None),  # no proxy
        ("http://user:secret@proxy.lan:3128", None),
        ("http://:8080", "no host"),
        ("http://proxy.lan", "no port"),
        ("proxy.lan:3128", "no scheme"),
        ("http://proxy.lan:port", "a port that is not a number"),
    ],
)
def test_a_proxy_needs_scheme_host_and_port(tmp_path: Path, home: Path, proxy: str, problem: str | None) -> None:
    config = write(tmp_path / "twitchminert.yaml", f"settings:\n  proxy: {proxy}\n")
    result = twitchminert("config", "validate", str(config), home=home)
    if problem is None:
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 2, problem
    (line,) = errors(result)
    assert line in (
        f"twitchminert: twitchminert.yaml:2: settings.proxy: expected a proxy URL with scheme, host and port (http://host:8080), got {proxy!r}",
        f"twitchminert: twitchminert.yaml:2: settings.proxy: not a valid URL: {proxy!r}",
    )


def test_validate_a_file_that_is_not_yaml_or_not_there(tmp_path: Path, home: Path) -> None:
    broken = write(tmp_path / "broken.yaml", "settings:\n  priority: [A, B\nlogs: {}\n")
    (line,) = errors(twitchminert("config", "validate", str(broken), home=home))
    assert line.startswith("twitchminert: broken.yaml:3: invalid YAML: ")
    missing = twitchminert("config", "validate", str(tmp_path / "nope.yaml"), home=home)
    assert missing.returncode == 2
    assert errors(missing) == [f"twitchminert: nope.yaml: file not found: {tmp_path / 'nope.yaml'}"]


# -- diff ------------------------------------------------------------------------------------------------


def test_diff_lists_each_changed_key_then_no_change(tmp_path: Path, home: Path) -> None:
    tdm = tdm_folder(tmp_path, TDM_DEFAULTS)
    config = write(tmp_path / "twitchminert.yaml", FIXTURE_YAML + "  dark_mode: false\n  language: English\n")
    result = twitchminert("config", "diff", str(config), "--tdm-dir", str(tdm), home=home)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == [  # in TDM's key order; unchanged keys are not listed
        'priority: [] -> ["Game A", "Game B"]',
        'exclude: [] -> ["Game C"]',
        'priority_mode: "priority_only" -> "ending_soonest"',
    ]
    assert (tdm / settings_file.SETTINGS_NAME).read_bytes() == TDM_DEFAULTS.read_bytes()  # diff only reads

    (tdm / settings_file.SETTINGS_NAME).write_bytes(FIXTURE.read_bytes())
    result = twitchminert("config", "diff", str(config), "--tdm-dir", str(tdm), home=home)
    assert (result.returncode, result.stdout) == (0, b"no change\n")


# -- apply -----------------------------------------------------------------------------------------------


def apply_config(tmp_path: Path, tdm: Path, more_settings: str = "") -> Path:
    """The fixture's settings for `tdm`; a free port, so that no daemon answers; a data folder not made yet."""
    return write(
        tmp_path / "twitchminert.yaml",
        FIXTURE_YAML
        + more_settings
        + f"miner:\n  dir: {json.dumps(str(tdm))}\n"
        + f"storage:\n  path: {json.dumps(str(tmp_path / 'data'))}\n"
        + f"web:\n  listen_address: 127.0.0.1:{free_port()}\n",
    )


def test_apply_without_a_daemon_writes_settings_json_and_records_it(tmp_path: Path, home: Path) -> None:
    tdm = tdm_folder(tmp_path, TDM_DEFAULTS)
    (tdm / settings_file.NEW_NAME).write_text("{}")  # stale: TDM would prefer it to settings.json
    config = apply_config(tmp_path, tdm)

    result = twitchminert("config", "apply", str(config), home=home)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == f"{tdm / settings_file.SETTINGS_NAME}: written\n"
    written = tdm / settings_file.SETTINGS_NAME
    assert written.read_bytes() == FIXTURE.read_bytes()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert not (tdm / settings_file.NEW_NAME).exists()
    assert (tdm / settings_file.LAST_GOOD_NAME).read_bytes() == TDM_DEFAULTS.read_bytes()

    listed = twitchminert("events", "--config.file", str(config), "--kind", "config_change", home=home)
    assert listed.returncode == 0, listed.stderr
    (event,) = [json.loads(line) for line in listed.stdout.decode().splitlines()]
    assert event["kind"] == "config_change"
    assert event["fields"] == {
        "action": "settings_written",
        "source": "cli",
        "changes": {
            "priority": [[], ["Game A", "Game B"]],
            "exclude": [[], ["Game C"]],
            "priority_mode": ["priority_only", "ending_soonest"],
        },
    }

    again = twitchminert("config", "apply", str(config), home=home)
    assert (again.returncode, again.stdout.decode()) == (0, f"{written}: already up to date\n")
    listed = twitchminert("events", "--config.file", str(config), "--kind", "config_change", home=home)
    assert len(listed.stdout.splitlines()) == 1  # nothing changed, nothing recorded


def test_apply_refuses_while_tdm_holds_its_lock(tmp_path: Path, home: Path) -> None:
    tdm = tdm_folder(tmp_path, TDM_DEFAULTS)
    config = apply_config(tmp_path, tdm)
    lock = tdm / "lock.file"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lock)], stdin=subprocess.PIPE)
    try:
        wait_until(lambda: lock_holder(lock) == holder.pid or holder.poll() is not None, 20, what="the lock")
        assert lock_holder(lock) == holder.pid

        result = twitchminert("config", "apply", str(config), home=home)
        assert result.returncode == 2
        (line,) = errors(result)
        assert line.startswith(f"twitchminert: config apply: TDM is running (pid {holder.pid}) and no daemon answers")
        assert line.endswith("TDM would overwrite settings.json at exit; stop it first")
        assert result.stdout == b""
        assert (tdm / settings_file.SETTINGS_NAME).read_bytes() == TDM_DEFAULTS.read_bytes()
        assert sorted(p.name for p in tdm.iterdir()) == ["lock.file", "settings.json"]  # no temp, no last-good
        assert not (tmp_path / "data").exists()  # nothing recorded: nothing was applied
    finally:
        holder.stdin.close()
        holder.wait(10)

    result = twitchminert("config", "apply", str(config), home=home)  # TDM has exited: now it may
    assert result.returncode == 0, result.stderr
    assert (tdm / settings_file.SETTINGS_NAME).read_bytes() == FIXTURE.read_bytes()


def test_a_proxy_password_reaches_settings_json_only(tmp_path: Path, home: Path) -> None:
    tdm = tdm_folder(tmp_path, TDM_DEFAULTS)
    bad = apply_config(tmp_path, tdm, "  proxy: http://user:secret@proxy.lan\n")
    result = twitchminert("config", "validate", str(bad), home=home)
    assert errors(result) == [
        (
            "twitchminert: twitchminert.yaml:5: settings.proxy: expected a proxy URL with scheme, host and port "
            "(http://host:8080), got 'http://<redacted>@proxy.lan'"
        )
    ]

    config = apply_config(tmp_path, tdm, "  proxy: http://user:secret@proxy.lan:3128\n")
    assert twitchminert("config", "apply", str(config), home=home).returncode == 0
    assert settings_file.load(tdm).proxy == "http://user:secret@proxy.lan:3128"  # TDM needs it
    listed = twitchminert("events", "--config.file", str(config), "--kind", "config_change", home=home)
    (event,) = [json.loads(line) for line in listed.stdout.decode().splitlines()]
    assert event["fields"]["changes"]["proxy"] == ["", "http://<redacted>@proxy.lan:3128"]
    assert b"secret" not in listed.stdout
    stored = b"".join(file.read_bytes() for file in (tmp_path / "data").iterdir() if file.is_file())
    assert b"secret" not in stored


def test_apply_refuses_in_attach_mode(tmp_path: Path, home: Path) -> None:
    tdm = tdm_folder(tmp_path, TDM_DEFAULTS)
    config = apply_config(tmp_path, tdm)
    write(config, config.read_text().replace("miner:\n", "miner:\n  mode: attach\n"))
    result = twitchminert("config", "apply", str(config), home=home)
    assert result.returncode == 2
    assert errors(result) == [
        "twitchminert: config apply: miner.mode is attach: stop TDM and edit its settings yourself"
    ]
    assert (tdm / settings_file.SETTINGS_NAME).read_bytes() == TDM_DEFAULTS.read_bytes()


def test_apply_goes_through_a_running_daemon(tmp_path: Path, home: Path, daemon_factory) -> None:
    from test_reload import Miner, save

    listen = f"127.0.0.1:{free_port()}"
    config = tmp_path / "twitchminert.yaml"
    (tmp_path / "tdm").mkdir()
    save(config, config_yaml(tmp_path, FIRST, listen=listen))
    miner = Miner(daemon_factory("run", "--config.file", str(config), "--web.listen-address", listen), tmp_path, config)
    try:
        miner.daemon.wait_listening()
        pid = miner.wait_mining("Game A")

        result = twitchminert("config", "apply", str(config), home=home)  # nothing changed
        assert (result.returncode, result.stdout.decode()) == (0, f"daemon at {listen}: no change\n")
        assert miner.reloads("success") == 1 and miner.pid() == pid

        miner.edit_unseen(config_yaml(tmp_path, SWAPPED, listen=listen))  # only `apply` can pick it up
        result = twitchminert("config", "apply", str(config), home=home)
        assert (result.returncode, result.stdout.decode()) == (0, f"daemon at {listen}: applied: settings.priority\n")
        miner.wait_restarted(1, pid)  # the daemon stopped TDM, wrote settings.json, started it
        assert settings_file.load(tmp_path / "tdm").priority == SWAPPED
        assert [change["source"] for change in miner.config_changes()] == ["cli"]

        bad = write(tmp_path / "bad.yaml", config.read_text().replace("Game B", ""))
        result = twitchminert("config", "apply", str(bad), home=home)  # checked before the daemon is asked
        assert result.returncode == 2
        assert [line.split(": ", 2)[2] for line in errors(result)] == ["settings.priority[0]: a game name cannot be empty"]
        assert miner.reloads("failure") == 0
    finally:
        miner.shutdown()
