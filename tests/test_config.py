from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import Config, ConfigError, load_config, parse_config

FULL = """\
miner:
  dir: /opt/tdm
  command: [python3, main.py]
  env: {LANG: C.UTF-8}
  mode: run
  display: auto
  mirror_gui_output: on
  stop_timeout: 15s
  restart_on_terminated: true
  restart_on_stall: 45m
  backoff: {initial: 5s, max: 10m, healthy_after: 5m, max_restarts: 3, window: 30m}
settings:
  priority: [Game A, "Game B", yes]
  exclude: [Game C]
  priority_mode: ending_soonest
  proxy: http://user:pw@127.0.0.1:8080
  connection_quality: 3
  language: English
  dark_mode: true
logs:
  files: [/tmp/log.txt]
  timezone: Europe/Berlin
  start_at: end
storage:
  path: /tmp/data
  max_age_days: 7
web:
  listen_address: 127.0.0.1:9797
session:
  login_timeout: 2m
  validate: false
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return str(caught.value).splitlines()


def test_a_full_config_loads() -> None:
    config = parse_config(FULL)
    assert config.miner.dir == Path("/opt/tdm")
    assert config.miner.mirror_gui_output == "on"  # YAML 1.1 read `on` as True
    assert config.miner.stop_timeout == 15.0
    assert config.miner.restart_on_stall == 2700.0
    assert config.miner.backoff.max_restarts == 3 and config.miner.backoff.window == 1800.0
    assert config.settings["priority"] == ("Game A", "Game B", "yes")  # a game called "yes" stays a name
    assert config.settings["priority_mode"] == "ending_soonest"
    assert "tray_notifications" not in config.settings  # left out: TDM keeps its value
    assert config.logs.timezone == "Europe/Berlin"
    assert config.session.login_timeout == 120.0


def test_empty_file_means_defaults() -> None:
    assert parse_config("") == Config()


def test_every_problem_is_reported_at_once_with_line_and_path() -> None:
    text = """\
settings:
  priority:
    - Game A
    - ""
    - 12
    - "bad\\tname"
  exclude: [Game A]
  proxy: http://127.0.0.1
  connection_quality: 7
  bogus: 1
logs:
  timezone: Mars/Olympus
miner:
  restart_on_stall: 10m
  mirror_gui_output: sometimes
nonsense: {}
"""
    assert errors_of(text) == [
        "twitchminert.yaml:4: settings.priority[1]: a game name cannot be empty",
        "twitchminert.yaml:5: settings.priority[2]: expected a game name (string), got 12",
        "twitchminert.yaml:6: settings.priority[3]: a game name cannot contain control characters: 'bad\\tname'",
        "twitchminert.yaml:7: settings.exclude[0]: 'Game A' is also in settings.priority",
        "twitchminert.yaml:8: settings.proxy: expected a proxy URL with scheme, host and port (http://host:8080), got 'http://127.0.0.1'",
        "twitchminert.yaml:9: settings.connection_quality: expected a whole number from 1 to 6, got 7",
        "twitchminert.yaml:10: settings.bogus: unknown key (expected one of priority, exclude, priority_mode, proxy, connection_quality, language, dark_mode, tray_notifications, autostart_tray, enable_badges_emotes, available_drops_check)",
        "twitchminert.yaml:12: logs.timezone: unknown time zone 'Mars/Olympus'",
        "twitchminert.yaml:14: miner.restart_on_stall: must be at least 30m (restarting more often would hammer Twitch), got '10m'",
        "twitchminert.yaml:15: miner.mirror_gui_output: expected one of auto, on, off, got 'sometimes'",
        "twitchminert.yaml:16: nonsense: unknown section (expected one of miner, settings, logs, storage, web, session, notify)",
    ]


def test_a_game_in_both_priority_and_exclude() -> None:
    assert errors_of("settings:\n  priority: [A, B]\n  exclude: [C, B]\n") == [
        "twitchminert.yaml:3: settings.exclude[1]: 'B' is also in settings.priority"
    ]


def test_a_game_listed_twice() -> None:
    assert errors_of("settings:\n  priority: [A, B, A]\n") == [
        "twitchminert.yaml:2: settings.priority[2]: 'A' is listed twice"
    ]


def test_duplicate_keys_are_refused() -> None:
    assert errors_of("settings:\n  dark_mode: true\n  dark_mode: false\n") == [
        "twitchminert.yaml:3: settings.dark_mode: duplicate key"
    ]


def test_yaml_syntax_error_names_the_line() -> None:
    (error,) = errors_of("settings:\n  priority: [A, B\nlogs: {}\n")
    assert error.startswith("twitchminert.yaml:3: invalid YAML:")


def test_booleans_and_wrong_types() -> None:
    assert errors_of("settings:\n  dark_mode: 'yes'\n  priority_mode: 1\n  priority: Game A\n") == [
        "twitchminert.yaml:2: settings.dark_mode: expected true or false, got 'yes'",
        "twitchminert.yaml:3: settings.priority_mode: expected one of priority_only, ending_soonest, low_availability_first, got 1",
        "twitchminert.yaml:4: settings.priority: expected a list, got 'Game A'",
    ]


def test_unsafe_tags_are_refused() -> None:
    (error,) = errors_of("settings:\n  language: !!python/object/apply:os.system ['true']\n")
    assert error.startswith("twitchminert.yaml:2: invalid YAML:")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^nope.yaml: file not found: "):
        load_config(tmp_path / "nope.yaml")


def test_log_sources_default_to_tdm_log_and_captured_output() -> None:
    config = parse_config("miner:\n  dir: /opt/tdm\nstorage:\n  path: /var/tm\n")
    assert config.log_sources() == ("/opt/tdm/log.txt", "/var/tm/logs/miner_output.log")


def test_the_token_is_only_sent_over_https_or_to_this_machine() -> None:
    assert parse_config("session:\n  validate_url: http://127.0.0.1:8080/\n").session.validate_url == "http://127.0.0.1:8080"
    assert errors_of("session:\n  validate_url: http://id.example.com\n") == [
        "twitchminert.yaml:2: session.validate_url: expected an https:// URL (the token is sent there), got 'http://id.example.com'"
    ]
