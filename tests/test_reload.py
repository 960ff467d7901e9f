"""Config reload while `twitchminert run` supervises the simulated TDM: real processes, real files, real HTTP.

The daemon supervises exporter/simulator/main.py, which reads settings.json once at start, mines the games
of its priority list and rewrites settings.json from memory when it exits, like TDM. Every wait polls a
condition against a deadline.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import REPO, DaemonProcess, free_port, http_get, sample, twitchminert, wait_until

from exporter import settings_file

SIMULATOR = REPO / "exporter" / "simulator" / "main.py"
DEADLINE = 30.0  # seconds; generous for a loaded machine, never reached when things work
FIRST = ("Game A", "Game B")
SWAPPED = ("Game B", "Game A")  # the same length: an edit that keeps the file's size (see edit_unseen)
REASONS = ("crash", "terminated", "stall", "config", "manual")


# -- the config file -----------------------------------------------------------------------------------


def flow(items: Sequence[Any]) -> str:
    """A YAML flow list; JSON strings are valid YAML."""
    return "[" + ", ".join(json.dumps(item) for item in items) + "]"


def config_yaml(
    root: Path,
    priority: Sequence[Any] = FIRST,
    *,
    timezone: str = "UTC",
    max_age_days: int = 30,
    listen: str | None = None,
) -> str:
    tdm = root / "tdm"
    # --exit-after: a safety net should a simulator ever outlive its test.
    command = [sys.executable, str(SIMULATOR), "--dir", str(tdm), "--scenario", "happy", "--speed", "60", "--exit-after", "600"]
    lines = [
        "miner:",
        f"  dir: {json.dumps(str(tdm))}",
        f"  command: {flow(command)}",
        "  display: none",
        "  stop_timeout: 5s",
        "settings:",
        f"  priority: {flow(priority)}",
        "logs:",
        f"  timezone: {timezone}",
        "storage:",
        f"  path: {json.dumps(str(root / 'data'))}",
        f"  max_age_days: {max_age_days}",
    ]
    if listen is not None:
        lines += ["web:", f"  listen_address: {listen}"]
    return "\n".join(lines) + "\n"


def line_of(text: str, prefix: str) -> int:
    """1-based number of the first line of `text` starting with `prefix`."""
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.startswith(prefix))


def save(path: Path, text: str) -> None:
    """Save as most editors do: a new file renamed over the old one, so it is never seen half-written."""
    temp = path.with_name("." + path.name + ".swp")
    temp.write_text(text)
    os.replace(temp, path)


def configmap_update(folder: Path, text: str) -> None:
    """Update `folder` as Kubernetes updates a mounted ConfigMap: twitchminert.yaml -> ..data/twitchminert.yaml,
    ..data -> a new timestamped folder, switched with one rename; the old folder is then removed."""
    folder.mkdir(exist_ok=True)
    data = folder / "..data"
    old = data.resolve() if data.is_symlink() else None
    new = folder / f"..{time.monotonic_ns()}"
    new.mkdir()
    (new / "twitchminert.yaml").write_text(text)
    os.symlink(new.name, folder / "..data_tmp")
    os.replace(folder / "..data_tmp", data)
    if old is not None:
        (old / "twitchminert.yaml").unlink()
        old.rmdir()


# -- the daemon and its miner --------------------------------------------------------------------------


def save_settings(url: str, changes: dict[str, Any]) -> dict[str, Any]:
    """PUT /api/settings as the console page sends it (JSON, same origin); the answer's JSON."""
    body = json.dumps(changes).encode()
    request = urllib.request.Request(url + "/api/settings", data=body, method="PUT",
                                     headers={"Content-Type": "application/json", "Origin": url})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200
        return json.loads(answer.read())


def http_post(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=b"", method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class Miner:
    """A daemon supervising the simulator; `root` holds tdm/ (TDM's folder), data/ and the config file."""

    def __init__(self, daemon: DaemonProcess, root: Path, config: Path) -> None:
        self.daemon = daemon
        self.root = root
        self.tdm = root / "tdm"
        self.config = config

    @property
    def url(self) -> str:
        return self.daemon.url

    def value(self, name: str, **labels: str) -> float | None:
        return sample(self.daemon.metrics(), name, **labels)

    def status(self) -> dict[str, Any]:
        code, body = http_get(self.url + "/api/miner/status")
        assert code == 200, body
        return json.loads(body)

    def pid(self) -> int | None:
        return self.status()["pid"]

    def restarts(self) -> dict[str, float]:
        metrics = self.daemon.metrics()
        return {reason: sample(metrics, "tdm_miner_restarts_total", reason=reason) for reason in REASONS}

    def reloads(self, result: str) -> float | None:
        return self.value("tdm_config_reloads_total", result=result)

    def mining(self) -> str | None:
        """The game TDM mines now, from the status API (fed by its log)."""
        status = self.status()
        return status["current_mining"]["game"] if status["status"] == "mining" else None

    def drop_games(self) -> set[str]:
        """The game labels of tdm_drop_current_minutes."""
        return set(re.findall(r'^tdm_drop_current_minutes\{.*game="([^"]*)".*\} ', self.daemon.metrics(), re.MULTILINE))

    def config_changes(self) -> list[dict[str, Any]]:
        """The fields of the stored config_change events that record a reload, oldest first."""
        code, body = http_get(self.url + "/api/events?kind=config_change&limit=1000")
        assert code == 200, body
        events = sorted(json.loads(body), key=lambda event: event["time"])
        return [event["fields"] for event in events if event["fields"].get("action") == "config_change"]

    def settings(self) -> settings_file.TdmSettings:
        """What TDM starts with from its folder, decoded with TDM's rules."""
        return settings_file.load(self.tdm)

    def settings_bytes(self) -> bytes:
        return (self.tdm / settings_file.SETTINGS_NAME).read_bytes()

    def wait_mining(self, game: str) -> int:
        """Wait until the running TDM mines `game`; return its pid."""
        wait_until(lambda: self.mining() == game, DEADLINE, what=f"TDM to mine {game}")
        pid = self.pid()
        assert pid is not None
        return pid

    def wait_restarted(self, count: int, old_pid: int) -> int:
        """Wait for the `count`th config restart and a new TDM process; return its pid."""
        wait_until(
            lambda: self.restarts()["config"] == count and self.pid() not in (None, old_pid),
            DEADLINE,
            what=f"config restart #{count}",
        )
        return self.pid()

    def edit_unseen(self, text: str) -> None:
        """Change the config file so that the daemon's file watcher cannot notice it.

        The watcher reloads when the file's (inode, size, mtime) changes. Here the daemon is frozen
        (SIGSTOP), the file rewritten in place with as many bytes, its mtime put back, and the daemon
        thawed: only SIGHUP, POST /-/reload or `config apply` can pick the change up, so the audit trail
        must name that source, not "file"."""
        data = text.encode()
        before = self.config.stat()
        assert len(data) == before.st_size, "edit_unseen needs an edit that keeps the size"
        os.kill(self.daemon.proc.pid, signal.SIGSTOP)
        try:
            with open(self.config, "r+b") as file:
                file.write(data)
            os.utime(self.config, ns=(before.st_atime_ns, before.st_mtime_ns))
        finally:
            os.kill(self.daemon.proc.pid, signal.SIGCONT)
        after = self.config.stat()
        assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)

    def shutdown(self) -> None:
        """Stop the daemon gracefully (it stops TDM); kill what a SIGKILLed daemon left running."""
        self.daemon.stop()
        kill_leftovers(self.root)


def kill_leftovers(root: Path) -> None:
    """Kill the processes still running with a path under this test's `root` in their command line: a
    daemon killed with SIGKILL leaves its TDM running (as it would a real one), maybe one it had just
    forked. `root` is the test's own tmp_path, so nothing else matches."""
    prefix = str(root) + os.sep
    for process in psutil.process_iter(["pid", "cmdline"]):
        if process.pid == os.getpid() or not any(prefix in arg for arg in process.info["cmdline"] or ()):
            continue
        try:
            if os.getpgid(process.pid) == process.pid:  # the simulator: a process group of its own
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
            process.wait(10)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass


@pytest.fixture
def start_miner(tmp_path: Path, daemon_factory):
    """start(priority=..., listen=..., **config) -> Miner, mining its first game. All stopped at the end."""
    started: list[Miner] = []

    def start(priority: Sequence[Any] = FIRST, listen: str = "127.0.0.1:0", configmap: bool = False,
              args: Sequence[str] = (), **config: Any) -> Miner:
        (tmp_path / "tdm").mkdir(exist_ok=True)
        in_file = None if listen.endswith(":0") else listen
        text = config_yaml(tmp_path, priority, listen=in_file, **config)
        if configmap:
            path = tmp_path / "configmap" / "twitchminert.yaml"
            configmap_update(path.parent, text)
            os.symlink(Path("..data") / path.name, path)
        else:
            path = tmp_path / "twitchminert.yaml"
            save(path, text)
        daemon = daemon_factory("run", "--config.file", str(path), "--web.listen-address", listen, *args)
        miner = Miner(daemon, tmp_path, path)
        started.append(miner)
        daemon.wait_listening()
        return miner

    yield start
    for miner in reversed(started):
        miner.daemon.stop()  # gracefully: each daemon stops its TDM
    kill_leftovers(tmp_path)


# -- the tests -----------------------------------------------------------------------------------------


def test_a_good_edit_restarts_tdm_once_with_the_new_priority(start_miner) -> None:
    miner = start_miner(FIRST)
    old_pid = miner.wait_mining("Game A")
    assert miner.settings().priority == FIRST
    assert miner.value("tdm_settings_writes_total") == 1  # before the first start

    save(miner.config, config_yaml(miner.root, SWAPPED))
    new_pid = miner.wait_restarted(1, old_pid)

    # TDM started again with the new list: settings.json holds it (TDM rewrites it only at exit) ...
    assert miner.settings().priority == SWAPPED
    assert miner.value("tdm_settings_writes_total") == 2
    # ... and mines the new first game.
    wait_until(lambda: miner.drop_games() == {"Game B"}, DEADLINE, what="drop progress for Game B")
    assert miner.mining() == "Game B"
    log = (miner.tdm / "log.txt").read_text()
    progress = re.findall(r"Drop update from websocket: .+ \((Game [AB]), \d+/\d+\)", log)
    assert progress[-1] == "Game B" and "Game A" in progress  # mined A before, B since the restart

    assert miner.pid() == new_pid
    assert miner.restarts() == {"crash": 0, "terminated": 0, "stall": 0, "config": 1, "manual": 0}  # exactly once
    assert (miner.reloads("success"), miner.reloads("failure")) == (1, 0)
    assert miner.value("tdm_config_last_reload_successful") == 1
    assert miner.config_changes() == [
        {"action": "config_change", "source": "file", "changes": {"settings.priority": [list(FIRST), list(SWAPPED)]}}
    ]


def test_a_bad_edit_changes_nothing_until_it_is_fixed(start_miner) -> None:
    miner = start_miner(FIRST)
    pid = miner.wait_mining("Game A")
    settings_before = miner.settings_bytes()
    good = miner.config.read_text()
    started = miner.value("tdm_config_last_reload_success_timestamp_seconds")

    bad = config_yaml(miner.root, ["Game B", 12])
    save(miner.config, bad)
    wait_until(lambda: miner.reloads("failure") == 1, DEADLINE, what="a failed reload")
    message = f"twitchminert.yaml:{line_of(bad, '  priority:')}: settings.priority[1]: expected a game name (string), got 12"
    assert miner.status()["config"] == {"last_reload_successful": False, "error": message}
    assert miner.value("tdm_config_last_reload_successful") == 0
    assert miner.value("tdm_config_last_reload_success_timestamp_seconds") == started

    broken = good.replace("  priority: [", "  priority: [[")  # not even YAML
    save(miner.config, broken)
    wait_until(lambda: miner.reloads("failure") == 2, DEADLINE, what="a second failed reload")
    error = miner.status()["config"]["error"]
    assert re.fullmatch(rf"twitchminert\.yaml:{line_of(broken, 'logs:')}: invalid YAML: .+", error), error
    assert "invalid YAML" in miner.daemon.output()  # logged too

    # The old config stayed in force: TDM untouched, settings.json byte for byte the same.
    assert miner.settings_bytes() == settings_before
    assert miner.pid() == pid and miner.status()["running"] is True
    assert set(miner.restarts().values()) == {0}
    assert miner.reloads("success") == 0
    assert miner.config_changes() == []

    save(miner.config, good)  # fixed: the same config as before, so nothing to apply
    wait_until(lambda: miner.value("tdm_config_last_reload_successful") == 1, DEADLINE, what="a successful reload")
    assert miner.status()["config"] == {"last_reload_successful": True, "error": None}
    assert miner.value("tdm_config_last_reload_success_timestamp_seconds") > started
    assert (miner.reloads("success"), miner.reloads("failure")) == (1, 2)
    assert miner.pid() == pid and set(miner.restarts().values()) == {0}
    assert miner.settings_bytes() == settings_before
    assert miner.config_changes() == []


def test_sighup_reloads(start_miner) -> None:
    miner = start_miner(FIRST)
    pid = miner.wait_mining("Game A")

    os.kill(miner.daemon.proc.pid, signal.SIGHUP)  # nothing changed: a reload, nothing applied
    wait_until(lambda: miner.reloads("success") == 1, DEADLINE, what="the SIGHUP reload")
    assert miner.pid() == pid and miner.restarts()["config"] == 0

    miner.edit_unseen(config_yaml(miner.root, SWAPPED))
    os.kill(miner.daemon.proc.pid, signal.SIGHUP)
    miner.wait_restarted(1, pid)
    assert miner.reloads("success") == 2
    assert miner.settings().priority == SWAPPED
    wait_until(lambda: miner.mining() == "Game B", DEADLINE, what="TDM to mine Game B")
    assert miner.config_changes() == [
        {"action": "config_change", "source": "sighup", "changes": {"settings.priority": [list(FIRST), list(SWAPPED)]}}
    ]


def test_post_reload_answers_with_what_it_did(start_miner) -> None:
    miner = start_miner(FIRST)
    pid = miner.wait_mining("Game A")
    reload_url = miner.url + "/-/reload"

    assert http_post(reload_url) == (200, "no change\n")

    miner.edit_unseen(config_yaml(miner.root, SWAPPED))
    assert http_post(reload_url) == (200, "applied: settings.priority\n")
    pid = miner.wait_restarted(1, pid)
    assert miner.settings().priority == SWAPPED

    # A browser page on another site cannot make the daemon reload (nor restart TDM).
    miner.edit_unseen(config_yaml(miner.root, FIRST))
    assert http_post(reload_url, {"Origin": "http://evil.example"}) == (403, "cross-site request refused\n")
    assert http_post(miner.url + "/-/restart", {"Origin": "http://evil.example"})[0] == 403
    assert miner.reloads("success") == 2 and miner.restarts()["config"] == 1 and miner.pid() == pid
    # The daemon's own page may.
    assert http_post(reload_url, {"Origin": miner.url}) == (200, "applied: settings.priority\n")
    pid = miner.wait_restarted(2, pid)

    bad = config_yaml(miner.root, ["Game A", ""])
    save(miner.config, bad)
    message = f"twitchminert.yaml:{line_of(bad, '  priority:')}: settings.priority[1]: a game name cannot be empty"
    assert http_post(reload_url) == (400, message + "\n")
    assert miner.status()["config"]["error"] == message
    assert miner.pid() == pid and miner.restarts()["config"] == 2
    assert [change["source"] for change in miner.config_changes()] == ["http", "http"]


def test_an_exporter_only_change_does_not_touch_tdm(start_miner) -> None:
    miner = start_miner(FIRST, timezone="UTC", max_age_days=30)
    pid = miner.wait_mining("Game A")
    settings_before = miner.settings_bytes()

    save(miner.config, config_yaml(miner.root, FIRST, timezone="Europe/Berlin", max_age_days=30))
    wait_until(lambda: miner.reloads("success") == 1, DEADLINE, what="the timezone reload")
    save(miner.config, config_yaml(miner.root, FIRST, timezone="Europe/Berlin", max_age_days=7))
    wait_until(lambda: miner.reloads("success") == 2, DEADLINE, what="the retention reload")

    assert miner.config_changes() == [
        {"action": "config_change", "source": "file", "changes": {"logs.timezone": ["UTC", "Europe/Berlin"]}},
        {"action": "config_change", "source": "file", "changes": {"storage.max_age_days": [30, 7]}},
    ]
    assert miner.pid() == pid and set(miner.restarts().values()) == {0}
    assert miner.value("tdm_settings_writes_total") == 1
    assert miner.settings_bytes() == settings_before
    # The log pipeline was rebuilt for the new zone and still follows the same TDM, which mines on.
    def progress_lines() -> float:
        return miner.value("tdm_events_total", kind="drop_progress") or 0

    seen = progress_lines()
    wait_until(lambda: progress_lines() > seen, DEADLINE, what="drop progress after the reload")
    assert miner.drop_games() == {"Game A"} and miner.pid() == pid


def test_the_audit_trail_names_every_source(start_miner, tmp_path: Path) -> None:
    listen = f"127.0.0.1:{free_port()}"  # in the config file too, so `config apply` finds the daemon
    miner = start_miner(FIRST, listen=listen)
    pid = miner.wait_mining("Game A")
    lists = [FIRST, SWAPPED, FIRST, SWAPPED, FIRST]

    save(miner.config, config_yaml(miner.root, lists[1], listen=listen))  # file
    pid = miner.wait_restarted(1, pid)
    miner.edit_unseen(config_yaml(miner.root, lists[2], listen=listen))
    os.kill(miner.daemon.proc.pid, signal.SIGHUP)  # sighup
    pid = miner.wait_restarted(2, pid)
    miner.edit_unseen(config_yaml(miner.root, lists[3], listen=listen))
    assert http_post(miner.url + "/-/reload")[0] == 200  # http
    pid = miner.wait_restarted(3, pid)
    miner.edit_unseen(config_yaml(miner.root, lists[4], listen=listen))
    applied = twitchminert("config", "apply", str(miner.config), home=tmp_path / "home")  # cli
    assert (applied.returncode, applied.stdout) == (0, f"daemon at {listen}: applied: settings.priority\n")
    pid = miner.wait_restarted(4, pid)
    assert miner.settings().priority == lists[4]

    listed = twitchminert("events", "--config.file", str(miner.config), "--kind", "config_change", home=tmp_path / "home")
    assert listed.returncode == 0, listed.stderr
    events = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {event["kind"] for event in events} == {"config_change"}
    reloads = [event["fields"] for event in events if event["fields"]["action"] == "config_change"]
    assert reloads == [
        {"action": "config_change", "source": source, "changes": {"settings.priority": [list(old), list(new)]}}
        for source, (old, new) in zip(("file", "sighup", "http", "cli"), pairwise(lists))
    ]
    # Each write of settings.json is on record too, with what it changed in TDM's own terms.
    writes = [event["fields"]["changes"] for event in events if event["fields"]["action"] == "settings_written"]
    assert writes == [{"priority": [[], list(FIRST)]}] + [
        {"priority": [list(old), list(new)]} for old, new in pairwise(lists)
    ]


def reload_lines(miner: Miner) -> list[str]:
    """The daemon's log lines about config reloads, at INFO level or above (what a user's log shows)."""
    return [line for line in list(miner.daemon.lines) if "config reload (" in line and " DEBUG " not in line]


def watcher_has_seen(miner: Miner, seen_before: int) -> bool:
    """Whether the file watcher has reported a write since `seen_before` reload lines of any level: the
    daemon says so at DEBUG level when there was nothing to reload; a daemon that reloaded anyway
    counts a reload more (and logs it)."""
    lines = [line for line in list(miner.daemon.lines) if "config reload (file)" in line]
    return len(lines) > seen_before


def test_a_settings_save_from_the_web_console_is_one_reload(start_miner) -> None:
    """The save writes the config file and reloads it; the file watcher then sees that write. It must not
    reload again: one reload counted, one config_change event, one log line, one TDM restart."""
    miner = start_miner(FIRST, args=("--log.level", "debug"))
    pid = miner.wait_mining("Game A")
    answer = save_settings(miner.url, {"priority": list(SWAPPED)})
    assert (answer["applied"], answer["message"]) == (True, "applied: settings.priority")
    applied_at = miner.value("tdm_config_last_reload_success_timestamp_seconds")

    # The watcher reports a write once the file has stayed the same for a second: wait until it has.
    wait_until(lambda: watcher_has_seen(miner, 0) or miner.reloads("success") > 1, DEADLINE,
               what="the file watcher to see the saved file")
    assert (miner.reloads("success"), miner.reloads("failure")) == (1, 0)
    assert miner.value("tdm_config_last_reload_success_timestamp_seconds") == applied_at
    assert miner.config_changes() == [
        {"action": "config_change", "source": "web", "changes": {"settings.priority": [list(FIRST), list(SWAPPED)]}}
    ]
    assert [line.split(" INFO    ", 1)[-1] for line in reload_lines(miner)] == ["config reload (web): applied: settings.priority"]
    miner.wait_restarted(1, pid)
    assert miner.settings().priority == SWAPPED
    assert miner.value("tdm_settings_writes_total") == 2  # at start, and once for the save
    assert miner.restarts() == {"crash": 0, "terminated": 0, "stall": 0, "config": 1, "manual": 0}


def test_an_edit_of_the_file_right_after_a_web_save_is_applied(start_miner) -> None:
    miner = start_miner(FIRST, args=("--log.level", "debug"))
    pid = miner.wait_mining("Game A")
    save_settings(miner.url, {"priority": list(SWAPPED)})
    # At once, before the watcher has reported the save's write: an editor saves its own change.
    save(miner.config, miner.config.read_text().replace("timezone: UTC", "timezone: Europe/Berlin"))
    wait_until(lambda: miner.reloads("success") == 2, DEADLINE, what="the edit's reload")
    assert miner.config_changes() == [
        {"action": "config_change", "source": "web", "changes": {"settings.priority": [list(FIRST), list(SWAPPED)]}},
        {"action": "config_change", "source": "file", "changes": {"logs.timezone": ["UTC", "Europe/Berlin"]}},
    ]
    miner.wait_restarted(1, pid)  # the save's restart; the timezone is ours alone

    # A revert, right after another save, to the text the file had before that save: a text the daemon
    # has read before, but not the one its last reload read. Applied too.
    before_save = miner.config.read_text()
    save_settings(miner.url, {"priority": list(FIRST)})
    save(miner.config, before_save)
    wait_until(lambda: miner.reloads("success") == 4, DEADLINE, what="the revert's reload")
    assert [change["source"] for change in miner.config_changes()] == ["web", "file", "web", "file"]
    assert miner.config_changes()[-1]["changes"] == {"settings.priority": [list(FIRST), list(SWAPPED)]}
    assert miner.reloads("failure") == 0


def test_a_symlinked_config_switched_to_a_new_target_is_reloaded(start_miner) -> None:
    """A ConfigMap mounted in a Kubernetes pod: the file is a symlink whose target folder is replaced."""
    miner = start_miner(FIRST, configmap=True)
    assert miner.config.is_symlink()
    pid = miner.wait_mining("Game A")
    configmap_update(miner.config.parent, config_yaml(miner.root, SWAPPED))
    miner.wait_restarted(1, pid)
    assert miner.settings().priority == SWAPPED
    assert [change["source"] for change in miner.config_changes()] == ["file"]


def test_kill_9_right_after_a_reload_leaves_a_loadable_settings_json(start_miner) -> None:
    miner = start_miner(FIRST)
    pid = miner.wait_mining("Game A")

    save(miner.config, config_yaml(miner.root, SWAPPED))
    # TDM has exited: the daemon is writing settings.json now. Kill it there.
    exited = f"the miner (pid {pid}) exited"
    wait_until(lambda: any(exited in line for line in list(miner.daemon.lines)), DEADLINE, what="TDM to stop")
    miner.daemon.stop(signal.SIGKILL)
    kill_leftovers(miner.root)  # a TDM it may have started again: killed, it saves nothing

    settings = settings_file.load(miner.tdm)  # raises SettingsUnreadable if TDM could not start on it
    assert settings.priority in (FIRST, SWAPPED)  # the old file or the new one, never a part of one
    assert not (miner.tdm / settings_file.NEW_NAME).exists()

    # The next daemon finishes the job: TDM starts with the new list.
    again = start_miner(SWAPPED)
    again.wait_mining("Game B")
    assert again.settings().priority == SWAPPED
