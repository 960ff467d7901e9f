"""The simulated TDM (exporter/simulator): real processes, real files, TDM's formats and exit codes.

The GUI texts are read back through the same hook a supervisor uses on a real TDM: a wrapper script
replaces `gui.ConsoleOutput.print` before running main.py, and appends every call to a JSON-lines file.
Nothing waits by sleeping: every wait polls a condition against a deadline.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from exporter.simulator import settings as sim_settings

ROOT = Path(__file__).resolve().parents[1]
SIM_MAIN = ROOT / "exporter" / "simulator" / "main.py"
from conftest import RUNS as FIXTURE_RUNS

SPEED = "600"  # a simulated minute every 0.1 s
DEADLINE = 20.0  # seconds; generous for a loaded machine, never reached when things work
POLL = 0.02
TOKEN = "simaccesstoken0000000000000000"

HEADER = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})\.(\d{3,4}):\t *([A-Z]+):\t(.*)$")
PROGRESS = re.compile(r"Drop (?:update from websocket|progress from GQL): (.+) \((.+), (\d+)/(\d+)\)")
CLAIMED = re.compile(r"Claimed drop: (.+) \((\d+)/(\d+)\)")

# Every message template the simulator may write, per level (shared/tdm/log_catalog.md, section 1).
CATALOG: dict[str, tuple[re.Pattern[str], ...]] = {
    level: tuple(re.compile(pattern, re.DOTALL) for pattern in patterns)
    for level, patterns in {
        "ERROR": (
            r"Retrying a (service error|PersistedQueryNotFound) for \w+",
            r"Drop claim has potentially failed! Drop ID: [\w-]+",
            r"Received a drop claim ID for a non-existing drop: [\w-]+\nDrop claim ID: \S+#\S+#\S+",
            r"Exception in \w+ task\nTraceback \(most recent call last\):\n.+",
        ),
        "WARNING": (
            r"Unknown stream state: [\w-]+",
            r"Websocket\[\d+\] requested reconnect\.",
            r"Websocket\[\d+\] reconnecting\.\.\.",
            r"Websocket\[\d+\] received unknown payload: \{.*\}",
        ),
        "INFO": (
            r"Checking login",
            r"Restoring session from cookie",
            r"Login successful, user ID: \d+",
            r"Websocket\[\d+\] connecting\.\.\.",
            r"Websocket\[\d+\] connected\.",
            r"Websocket\[\d+\] stopped\.",
            r"\w+ goes (ONLINE|OFFLINE)",
        ),
        "CALL": (
            r"Maintenance task waiting until: \d\d:\d\d:\d\d \((Reload|Cleanup)\)",
            r"Maintenance task requests a reload",
            PROGRESS.pattern,
            r"Channel update from websocket: \w+(, game changed: .+ -> .+)?",
        ),
        "DEBUG": (
            r"Request: \(method='(GET|POST)', url=(URL\()?'https://[^']+'\)?, kwargs=\{.*\}\)",
            r"Response: (\d{3}): <ClientResponse\(https://[^)]+\) \[\1 [A-Za-z ]+\]>\n<CIMultiDictProxy\(.*\)>\n",
        ),
    }.items()
}

# GUI-only texts (log_catalog.md, section 2): they must reach ConsoleOutput.print and never log.txt.
GUI_ONLY = (
    "Logging level:", "Watching:", "Claimed drop:", "goes OFFLINE, switching", "goes ONLINE, switching",
    "No active campaigns", "No available channels", "Please log in", "Enter this code",
    "Fatal error encountered", "Exiting...", "Application Terminated",
)
TERMINATED = "\nApplication Terminated.\nClose the window to exit the application."

TAP_WRAPPER = """\
import json, os, runpy, sys, time
tap_path, main_path, *args = sys.argv[1:]
sys.path.insert(0, os.path.dirname(main_path))
import gui
_original = gui.ConsoleOutput.print
def _tap(self, message):
    with open(tap_path, "a", encoding="utf-8") as tap:
        tap.write(json.dumps({"t": time.time(), "message": message}) + "\\n")
    _original(self, message)
gui.ConsoleOutput.print = _tap
sys.argv = [main_path, *args]
runpy.run_path(main_path, run_name="__main__")
"""


@dataclass(frozen=True)
class LogRecord:
    level: str
    message: str  # continuation lines joined with "\n"

    @property
    def lines(self) -> list[str]:
        return self.message.split("\n")


def parse_log(text: str) -> list[LogRecord]:
    """Frame log.txt like a supervisor must: a line that is not a header continues the previous record."""
    records: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        match = HEADER.match(line)
        if match:
            records.append((match.group(3), [match.group(4)]))
        else:
            assert records, f"continuation line before any record: {line!r}"
            records[-1][1].append(line)
    return [LogRecord(level, "\n".join(lines)) for level, lines in records]


def catalog_mismatches(records: list[LogRecord]) -> list[LogRecord]:
    return [r for r in records if not any(p.fullmatch(r.message) for p in CATALOG.get(r.level, ()))]


def tdm_settings(**overrides: Any) -> dict[str, Any]:
    """A settings.json body in TDM's encoding (the fixture's, with its priority list and set)."""
    body: dict[str, Any] = {
        "autostart_tray": False,
        "available_drops_check": False,
        "connection_quality": 1,
        "dark_mode": False,
        "enable_badges_emotes": False,
        "exclude": {"__type": "set", "data": ["Game C"]},
        "language": "English",
        "priority": ["Game A", "Game B"],
        "priority_mode": {"__type": "PriorityMode", "data": 0},
        "proxy": {"__type": "URL", "data": ""},
        "tray_notifications": True,
    }
    body.update(overrides)
    return body


class Sim:
    """One simulator process in its own working dir, with its GUI texts tapped."""

    def __init__(self, proc: subprocess.Popen[bytes], workdir: Path, tap: Path, out: Path, err: Path) -> None:
        self.proc = proc
        self.workdir = workdir
        self.tap = tap
        self.out = out
        self.err = err

    @property
    def log_path(self) -> Path:
        return self.workdir / "log.txt"

    def log(self) -> list[LogRecord]:
        return parse_log(self.log_path.read_text(encoding="utf-8")) if self.log_path.exists() else []

    def gui(self) -> list[str]:
        if not self.tap.exists():
            return []
        lines = self.tap.read_text(encoding="utf-8").splitlines()
        # the last line may be half written while the process runs
        return [json.loads(line)["message"] for line in lines if line.endswith("}")]

    def gui_has(self, text: str) -> bool:
        return any(text in message for message in self.gui())

    def progress(self) -> list[tuple[str, str, int, int]]:
        found = []
        for record in self.log():
            match = PROGRESS.fullmatch(record.message)
            if match:
                drop, game, current, required = match.groups()
                found.append((drop, game, int(current), int(required)))
        return found

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            try:
                self.proc.wait(timeout=POLL)
            except subprocess.TimeoutExpired:
                continue
            if condition():
                return
            pytest.fail(f"exited {self.proc.returncode} before: {what}\nstderr: {self.err.read_text()}")
        pytest.fail(f"timed out after {timeout}s waiting for: {what}")

    def wait_gui(self, text: str, timeout: float = DEADLINE) -> None:
        self.wait_for(lambda: self.gui_has(text), f"GUI text {text!r}", timeout)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait_exit(self, timeout: float = DEADLINE) -> int:
        return self.proc.wait(timeout=timeout)


def _hang_up_kills() -> None:
    """A child of a suite run under nohup starts with SIGHUP ignored; TDM's is the default (it dies)."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., Sim]]:
    wrapper = tmp_path / "tap_wrapper.py"
    wrapper.write_text(TAP_WRAPPER)
    started: list[Sim] = []

    def _launch(
        *args: str, scenario: str = "happy", settings: dict[str, Any] | str | None = None,
        workdir: Path | None = None, speed: str = SPEED, seed: int = 7,
    ) -> Sim:
        index = len(started)
        workdir = workdir or tmp_path / f"tdm{index}"
        workdir.mkdir(exist_ok=True)
        if settings is not None:
            text = settings if isinstance(settings, str) else json.dumps(settings, indent=4, sort_keys=True)
            (workdir / "settings.json").write_text(text, encoding="utf-8")
        tap, out, err = (tmp_path / f"{name}{index}.txt" for name in ("tap", "stdout", "stderr"))
        command = [
            sys.executable, str(wrapper), str(tap), str(SIM_MAIN), "--dir", str(workdir),
            "--scenario", scenario, "--speed", speed, "--seed", str(seed), "--exit-after", "60", *args,
        ]
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            proc = subprocess.Popen(command, stdout=stdout, stderr=stderr, cwd=tmp_path, preexec_fn=_hang_up_kills)
        sim = Sim(proc, workdir, tap, out, err)
        started.append(sim)
        return sim

    yield _launch
    for sim in started:
        if sim.proc.poll() is None:
            sim.proc.kill()
            sim.proc.wait(timeout=DEADLINE)


def stop(sim: Sim, signum: int = signal.SIGTERM) -> int:
    sim.signal(signum)
    return sim.wait_exit()


# ---- log.txt format and levels ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "run", ["A_fresh_login_vvvv", "C_restore_cookie_vv", "E_restore_cookie_vvv", "F_errors_and_fatal_vvv"]
)
def test_catalog_templates_accept_real_tdm_logs(run: str) -> None:
    # Anchors the templates below to what real TDM writes.
    records = parse_log((FIXTURE_RUNS / run / "log.txt").read_text(encoding="utf-8"))
    assert records
    assert catalog_mismatches(records) == []


def test_happy_vvv_log_matches_catalog_and_has_no_gui_texts(launch: Callable[..., Sim]) -> None:
    sim = launch("--log", "-vvv", settings=tdm_settings())
    sim.wait_for(lambda: sum("Claimed drop:" in m for m in sim.gui()) >= 2, "two claims")
    assert stop(sim) == 0
    text = sim.log_path.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines and all(HEADER.match(line) for line in lines), "no multi-line records in a happy -vvv run"
    records = parse_log(text)
    assert catalog_mismatches(records) == []
    messages = [r.message for r in records]
    assert messages[:5] == [
        "Checking login", "Restoring session from cookie", messages[2],
        "Websocket[0] connecting...", "Websocket[0] connected.",
    ]
    assert messages[-1] == "Websocket[0] stopped."
    assert {r.level for r in records} <= {"INFO", "CALL", "WARNING"}
    assert any(r.level == "CALL" and PROGRESS.fullmatch(r.message) for r in records)
    assert not [m for m in messages if any(gui_text in m for gui_text in GUI_ONLY)]
    assert sim.out.read_bytes() == b"" and sim.err.read_bytes() == b""


def test_progress_counts_minutes_and_claims_at_the_requirement(launch: Callable[..., Sim]) -> None:
    sim = launch("--log", "-vvv", settings=tdm_settings())
    sim.wait_for(lambda: sum("Claimed drop:" in m for m in sim.gui()) >= 2, "two claims")
    assert stop(sim) == 0
    progress = sim.progress()
    # one minute per update, all drops of a campaign progress together
    game_a = [p for p in progress if p[1] == "Game A"]
    assert [p[2] for p in game_a] == list(range(1, len(game_a) + 1))
    assert all(5 <= required <= 15 for *_, required in progress)
    claimed = [CLAIMED.fullmatch(m) for m in sim.gui() if m.startswith("Claimed drop:")]
    assert all(claimed)
    assert claimed[0].group(1).startswith("Game A ") and claimed[0].group(2) == "1"
    finished = [p for p in game_a if p[2] == p[3]]
    assert finished and finished[0][0] in claimed[0].group(1)


def test_vv_has_no_call_records(launch: Callable[..., Sim]) -> None:
    sim = launch("--log", "-vv", settings=tdm_settings())
    sim.wait_gui("Claimed drop:")
    assert sim.gui_has("CALL: Drop update from websocket") is False  # not even mirrored: below the level
    assert stop(sim) == 0
    records = sim.log()
    assert {r.level for r in records} <= {"INFO", "WARNING", "ERROR"}
    assert "Checking login" in [r.message for r in records]
    assert sim.gui()[0] == "Logging level: INFO"


def test_v_has_only_warnings_and_errors(launch: Callable[..., Sim]) -> None:
    sim = launch("--log", "-v", scenario="flaky", settings=tdm_settings())
    sim.wait_gui("ERROR: Drop claim has potentially failed!")
    sim.wait_gui("WARNING: Websocket[0] requested reconnect.")
    assert stop(sim) == 0
    records = sim.log()
    assert {r.level for r in records} == {"WARNING", "ERROR"}
    assert catalog_mismatches(records) == []


def test_without_v_log_is_created_empty_and_gets_errors_only(launch: Callable[..., Sim]) -> None:
    sim = launch("--log", scenario="flaky", settings=tdm_settings())
    sim.wait_gui("Watching:")
    assert sim.log_path.exists()  # created at startup, like TDM's FileHandler
    sim.wait_gui("ERROR: Drop claim has potentially failed!")
    assert stop(sim) == 0
    assert {r.level for r in sim.log()} == {"ERROR"}
    assert not sim.gui_has("Logging level:")  # TDM prints it only below ERROR


def test_without_log_flag_no_log_file(launch: Callable[..., Sim]) -> None:
    sim = launch("-vvv", settings=tdm_settings())
    sim.wait_gui("CALL: Drop update from websocket")  # records still reach the GUI
    assert stop(sim) == 0
    assert not sim.log_path.exists()


def test_vvvv_writes_request_response_records_with_the_token(launch: Callable[..., Sim]) -> None:
    proxy = "http://user:secret@127.0.0.1:18080"
    sim = launch("--log", "-vvvv", settings=tdm_settings(proxy={"__type": "URL", "data": proxy}))
    sim.wait_gui("CALL: Drop update from websocket")
    assert stop(sim) == 0
    records = sim.log()
    assert catalog_mismatches(records) == []
    assert records[0].message.startswith("Request: (method='GET', url=URL('https://www.twitch.tv'), kwargs=")
    responses = [r for r in records if r.message.startswith("Response: ")]
    assert responses and all(len(r.lines) == 3 and r.lines[2] == "" for r in responses)
    requests = [r.message for r in records if r.message.startswith("Request: ")]
    assert any(f"'Authorization': 'OAuth {TOKEN}'" in m for m in requests)
    assert any("oauth2/validate" in m and f"OAuth {TOKEN}" in m for m in requests)
    assert all(f"'proxy': URL('{proxy}')" in m for m in requests)
    assert any("'Set-Cookie': 'unique_id=" in r.message for r in responses)
    assert sim.gui()[0] == "Logging level: DEBUG"
    # the mirrored Response record keeps its trailing newline, as in TDM's Output box
    assert any(m.startswith("DEBUG: Response: ") and m.endswith(")>\n") for m in sim.gui())


def test_debug_ws_adds_listen_with_auth_token_at_any_level(launch: Callable[..., Sim]) -> None:
    sim = launch("--log", "--debug-ws", settings=tdm_settings())
    sim.wait_gui("Watching:")
    assert stop(sim) == 0
    messages = [r.message for r in sim.log()]
    assert "Websocket[0] connecting..." in messages  # the websocket logger's INFO lines come too
    listen = [m for m in messages if m.startswith("Websocket[0] sent: {'type': 'LISTEN'")]
    assert listen and all(f"'auth_token': '{TOKEN}'" in m for m in listen)
    assert "Checking login" not in messages  # the main logger stays at ERROR


# ---- signals, exit codes, files --------------------------------------------------------------------


def test_sigterm_exits_0_quickly_and_rewrites_settings_like_tdm(launch: Callable[..., Sim]) -> None:
    loaded = tdm_settings(
        priority=["Pokémon GO", "Game A"],
        exclude=["Game C"],  # a plain list: reset to an empty set
        dark_mode=1,  # not a bool: reset to the default
        foo="unknown keys are dropped",
    )
    sim = launch("--log", "-vv", settings=json.dumps(loaded))  # one line, unsorted: rewritten anyway
    sim.wait_gui("Watching:")
    sent = time.monotonic()
    assert stop(sim) == 0
    assert time.monotonic() - sent < 1.5
    expected = tdm_settings(priority=["Pokémon GO", "Game A"], exclude={"__type": "set", "data": []})
    text = (sim.workdir / "settings.json").read_text(encoding="ascii")
    assert text == json.dumps(expected, indent=4, sort_keys=True)  # no trailing newline, ASCII escapes
    assert '"Pok\\u00e9mon GO"' in text
    assert not (sim.workdir / "settings.json.new").exists()
    assert sim.gui()[-2:] == ["Exiting...", "INFO: Websocket[0] stopped."]
    assert sim.log()[-1].message == "Websocket[0] stopped."


def test_sigint_is_graceful_too(launch: Callable[..., Sim]) -> None:
    sim = launch("--log", "-vv", settings=tdm_settings())
    sim.wait_gui("Watching:")
    assert stop(sim, signal.SIGINT) == 0
    assert sim.err.read_bytes() == b""
    assert (sim.workdir / "settings.json").exists()


def test_settings_written_from_defaults_when_missing(launch: Callable[..., Sim]) -> None:
    sim = launch("--log", "-vv")
    sim.wait_gui("No active campaigns")
    assert stop(sim) == 0
    text = (sim.workdir / "settings.json").read_text(encoding="ascii")
    assert text == sim_settings.json_dumps(sim_settings.default_settings())


def test_sighup_kills_without_saving(launch: Callable[..., Sim]) -> None:
    sim = launch("--log", "-vv", settings=json.dumps(tdm_settings()))
    sim.wait_gui("Watching:")
    before = (sim.workdir / "settings.json").read_bytes()
    assert stop(sim, signal.SIGHUP) == -signal.SIGHUP  # exit status 129
    assert (sim.workdir / "settings.json").read_bytes() == before


def test_second_instance_exits_3_at_once_without_touching_the_log(launch: Callable[..., Sim]) -> None:
    first = launch("--log", "-vvv", settings=tdm_settings())
    first.wait_gui("Watching:")
    lock = first.workdir / "lock.file"
    assert lock.read_text(encoding="utf-8") == "ツ"
    with open(lock, "a") as probe, pytest.raises(OSError):
        fcntl.lockf(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held by the first one
    started = time.monotonic()
    second = launch("--log", "-vvv", workdir=first.workdir)
    assert second.wait_exit() == 3
    assert time.monotonic() - started < 5
    assert second.gui() == [] and second.out.read_bytes() == b"" and second.err.read_bytes() == b""
    assert stop(first) == 0
    assert [r.message for r in first.log()].count("Checking login") == 1
    with open(lock, "a") as probe:
        fcntl.lockf(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free once the holder is gone


def test_crash_exits_1_after_fatal_error(launch: Callable[..., Sim]) -> None:
    sim = launch("--log", "-vvv", scenario="crash", settings=tdm_settings())
    assert sim.wait_exit() == 1
    gui = sim.gui()
    fatal = gui.index("Fatal error encountered:\n")
    assert gui[fatal + 1].startswith("Traceback (most recent call last):\n")
    assert "GQLException" in gui[fatal + 1]
    assert gui[fatal + 2:] == ["Exiting...", "INFO: Websocket[0] stopped.", TERMINATED]
    records = sim.log()
    assert catalog_mismatches(records) == []
    assert "Retrying a service error for Inventory" in [r.message for r in records if r.level == "ERROR"]
    assert any(PROGRESS.fullmatch(r.message) for r in records)  # it mined a little first
    assert not any("Traceback" in r.message for r in records)  # the fatal traceback is GUI-only


def test_terminated_stays_alive_then_dies_143_on_sigterm(launch: Callable[..., Sim]) -> None:
    sim = launch("--log", "-vvv", scenario="terminated", settings=json.dumps(tdm_settings()))
    sim.wait_gui(TERMINATED)
    records = sim.log()
    crash = [r for r in records if r.message.startswith("Exception in _watch_loop task")]
    assert len(crash) == 1 and crash[0].level == "ERROR"
    assert crash[0].lines[1] == "Traceback (most recent call last):"
    assert re.fullmatch(r"\w+Error: .+", crash[0].lines[-1])
    assert records[-1].message == "Websocket[0] stopped."
    assert catalog_mismatches(records) == []
    size = sim.log_path.stat().st_size
    with pytest.raises(subprocess.TimeoutExpired):
        sim.proc.wait(timeout=1.0)  # terminated but alive (10 simulated minutes)
    assert sim.log_path.stat().st_size == size  # and doing nothing
    assert sim.gui()[-1] == TERMINATED
    before = (sim.workdir / "settings.json").read_bytes()
    assert stop(sim) == -signal.SIGTERM  # exit status 143
    assert (sim.workdir / "settings.json").read_bytes() == before  # not saved


def test_terminated_window_close_exits_0_and_saves(launch: Callable[..., Sim]) -> None:
    sim = launch("--log", "-vv", scenario="terminated", settings=json.dumps(tdm_settings()))
    sim.wait_gui(TERMINATED)
    assert stop(sim, signal.SIGUSR1) == 0  # a critical task crash ends in 0 once the window is closed
    assert (sim.workdir / "settings.json").read_text() == json.dumps(tdm_settings(), indent=4, sort_keys=True)


def test_login_required_logs_only_checking_login(launch: Callable[..., Sim]) -> None:
    sim = launch("--log", "-vvv", scenario="login-required", settings=tdm_settings())
    sim.wait_gui("Please log in to continue.")
    assert [(r.level, r.message) for r in sim.log()] == [("INFO", "Checking login")]
    assert stop(sim) == 0
    assert [r.message for r in sim.log()] == ["Checking login"]
    assert sim.gui()[-1] == "Exiting..."


def test_login_button_shows_the_code_then_logs_in(launch: Callable[..., Sim]) -> None:
    sim = launch("--log", "-vvv", scenario="login-required", settings=tdm_settings())
    sim.wait_gui("Please log in to continue.")
    sim.signal(signal.SIGUSR2)
    sim.wait_for(lambda: any(PROGRESS.fullmatch(r.message) for r in sim.log()), "mining after login")
    assert stop(sim) == 0
    code = [m for m in sim.gui() if m.startswith("Enter this code")]
    assert len(code) == 1 and re.fullmatch(r"Enter this code on the Twitch's device activation page: [A-Z]{8}", code[0])
    messages = [r.message for r in sim.log()]
    assert messages[:2] == ["Checking login", messages[1]] and messages[1].startswith("Login successful, user ID: ")


def test_bad_settings_block_like_the_dialog_then_143(launch: Callable[..., Sim]) -> None:
    sim = launch("--log", "-vvv", settings="{not json")
    sim.wait_for(lambda: b"error while loading the settings file" in sim.err.read_bytes(), "the dialog text")
    with pytest.raises(subprocess.TimeoutExpired):
        sim.proc.wait(timeout=0.5)  # blocked in the "dialog"
    assert stop(sim) == -signal.SIGTERM
    assert not (sim.workdir / "lock.file").exists() and not sim.log_path.exists()  # settings come first


def test_bad_settings_ok_pressed_exits_4(launch: Callable[..., Sim]) -> None:
    sim = launch(settings=tdm_settings(priority_mode={"__type": "PriorityMode", "data": 7}))
    sim.wait_for(lambda: b"ValueError" in sim.err.read_bytes(), "the dialog text")
    assert stop(sim, signal.SIGUSR1) == 4


def test_bad_settings_no_dialog_exits_4_at_once(launch: Callable[..., Sim]) -> None:
    sim = launch("--no-dialog", settings="[]")
    assert sim.wait_exit() == 4
    assert b"Settings error" in sim.err.read_bytes()


def test_valid_settings_new_wins_and_is_consumed(launch: Callable[..., Sim], tmp_path: Path) -> None:
    workdir = tmp_path / "tdm"
    workdir.mkdir()
    (workdir / "settings.json.new").write_text(json.dumps(tdm_settings(priority=["New Game"])))
    sim = launch("--log", "-vvv", settings=tdm_settings(priority=["Old Game"]), workdir=workdir)
    sim.wait_for(lambda: bool(sim.progress()), "progress")
    assert stop(sim) == 0
    assert {game for _, game, _, _ in sim.progress()} == {"New Game"}
    assert json.loads((workdir / "settings.json").read_text())["priority"] == ["New Game"]
    assert not (workdir / "settings.json.new").exists()


def test_broken_settings_new_is_deleted(launch: Callable[..., Sim], tmp_path: Path) -> None:
    workdir = tmp_path / "tdm"
    workdir.mkdir()
    (workdir / "settings.json.new").write_text('{"priority": ["Half')
    sim = launch("--log", "-vvv", settings=tdm_settings(priority=["Old Game"]), workdir=workdir)
    sim.wait_for(lambda: bool(sim.progress()), "progress")
    assert not (workdir / "settings.json.new").exists()
    assert stop(sim) == 0
    assert {game for _, game, _, _ in sim.progress()} == {"Old Game"}


# ---- what is mined ---------------------------------------------------------------------------------


def test_priority_list_decides_the_games_in_order(launch: Callable[..., Sim]) -> None:
    sim = launch("--log", "-vvv", settings=tdm_settings(priority=["Zeta Quest", "Alpha Rush"]))
    sim.wait_for(lambda: any(game == "Alpha Rush" for _, game, _, _ in sim.progress()), "the second game")
    assert stop(sim) == 0
    games = [game for _, game, _, _ in sim.progress()]
    assert set(games) == {"Zeta Quest", "Alpha Rush"}
    assert games.index("Alpha Rush") > max(i for i, g in enumerate(games) if g == "Zeta Quest")
    watching = [m for m in sim.gui() if m.startswith("Watching:")]
    assert watching[:2] == ["Watching: SimStreamer1", "Watching: SimStreamer3"]


def test_mode_1_mines_other_games_after_the_list_but_not_excluded(launch: Callable[..., Sim]) -> None:
    sim = launch(
        "--log", "-vvv",
        settings=tdm_settings(
            priority=["Game A", "Game C"], priority_mode={"__type": "PriorityMode", "data": 1}
        ),
    )
    sim.wait_for(lambda: any(game != "Game A" for _, game, _, _ in sim.progress()), "a second game")
    assert stop(sim) == 0
    games = list(dict.fromkeys(game for _, game, _, _ in sim.progress()))
    assert games[:2] == ["Game A", "Starfall Arena"]  # Game C is excluded


def test_empty_priority_in_mode_0_idles(launch: Callable[..., Sim]) -> None:
    sim = launch("--log", "-vvv", settings=tdm_settings(priority=[]))
    sim.wait_gui("No active campaigns to mine drops for. Waiting for an active campaign...")
    assert stop(sim) == 0
    assert sim.progress() == [] and not sim.gui_has("Watching:")


def test_gui_texts_flow_through_console_output_print(launch: Callable[..., Sim]) -> None:
    sim = launch("--log", "-vvv", settings=tdm_settings())
    sim.wait_gui("Claimed drop:")
    assert stop(sim) == 0
    gui = sim.gui()
    assert gui[0] == "Logging level: CALL"
    assert gui[1:3] == ["INFO: Checking login", "INFO: Restoring session from cookie"]
    assert "Watching: SimStreamer1" in gui
    assert any(CLAIMED.fullmatch(m) for m in gui)
    # every log record is mirrored as "LEVEL: message", in order
    mirrored = [m for m in gui if re.match(r"(ERROR|WARNING|INFO|CALL|DEBUG): ", m)]
    assert mirrored == [f"{r.level}: {r.message}" for r in sim.log()]


def test_flaky_keeps_mining_through_trouble(launch: Callable[..., Sim]) -> None:
    sim = launch("--log", "-vvv", scenario="flaky", settings=tdm_settings())
    wanted = (
        "WARNING: Websocket[0] requested reconnect.",
        "ERROR: Retrying a service error for Inventory",
        "ERROR: Drop claim has potentially failed! Drop ID: ",
        "ERROR: Received a drop claim ID for a non-existing drop: ",
        " goes OFFLINE, switching...",
        "CALL: Drop progress from GQL: ",
    )
    sim.wait_for(lambda: all(sim.gui_has(text) for text in wanted), "every kind of trouble")
    offline = next(i for i, m in enumerate(sim.gui()) if m.endswith(" goes OFFLINE, switching..."))
    sim.wait_for(lambda: any(PROGRESS.search(m) for m in sim.gui()[offline:]), "progress after switching")
    assert stop(sim) == 0
    gui = sim.gui()
    # the next GUI-only text (mirrored records of other messages may come in between)
    after = next(m for m in gui[offline + 1:] if not re.match(r"[A-Z]+: ", m))
    assert after.startswith(("Watching: ", "No available channels to watch."))
    failed = next(i for i, m in enumerate(gui) if "Drop claim has potentially failed" in m)
    assert any(m.startswith("Claimed drop:") for m in gui[failed:])  # claimed at the next fetch
    records = sim.log()
    assert catalog_mismatches(records) == []
    two_line = [r for r in records if r.message.startswith("Received a drop claim ID")]
    assert two_line and all(len(r.lines) == 2 for r in two_line)
    messages = [r.message for r in records]
    reconnect = messages.index("Websocket[0] requested reconnect.")
    assert messages[reconnect + 1] == "Websocket[0] reconnecting..."
    assert "Websocket[0] connected." in messages[reconnect + 2:]


def test_stall_stops_progress_while_watching(launch: Callable[..., Sim]) -> None:
    sim = launch("--log", "-vvv", scenario="stall", settings=tdm_settings(), speed="3000")
    # an hourly reload and its next wait line come well after the stall
    sim.wait_for(
        lambda: "Maintenance task requests a reload" in [r.message for r in sim.log()]
        and [r.message for r in sim.log()][-1].startswith("Maintenance task waiting until"),
        "a maintenance reload after the stall",
    )
    assert sim.proc.poll() is None
    assert stop(sim) == 0
    assert [current for _, _, current, _ in sim.progress()] == [1, 2, 3]
    assert [m for m in sim.gui() if m.startswith("Watching:")] == ["Watching: SimStreamer1"]
    assert not sim.gui_has("No active campaigns")


def test_same_seed_same_run(launch: Callable[..., Sim]) -> None:
    runs = [launch("--log", "-vvv", settings=tdm_settings(), seed=42) for _ in range(2)]
    for sim in runs:
        sim.wait_gui("Claimed drop:")
        assert stop(sim) == 0
    first, second = ([r.message for r in sim.log() if r.message.startswith("Login successful")] for sim in runs)
    assert first == second
    claimed = [[m for m in sim.gui() if m.startswith("Claimed drop:")][0] for sim in runs]
    assert claimed[0] == claimed[1]
    shortest = min(len(sim.progress()) for sim in runs)
    assert runs[0].progress()[:shortest] == runs[1].progress()[:shortest]


# ---- entry points ------------------------------------------------------------------------------------


def test_module_entry_point_with_env_dir(tmp_path: Path) -> None:
    env = {**os.environ, "TDM_SIM_DIR": str(tmp_path)}
    (tmp_path / "settings.json").write_text(json.dumps(tdm_settings()))
    done = subprocess.run(
        [sys.executable, "-m", "exporter.simulator", "--log", "-vv", "--speed", SPEED, "--exit-after", "1"],
        cwd=ROOT, env=env, capture_output=True, timeout=DEADLINE,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
    messages = [r.message for r in parse_log((tmp_path / "log.txt").read_text(encoding="utf-8"))]
    assert messages[0] == "Checking login" and messages[-1] == "Websocket[0] stopped."


def test_bad_arguments_exit_2() -> None:
    done = subprocess.run([sys.executable, str(SIM_MAIN), "--scenario", "nope"], capture_output=True, timeout=DEADLINE)
    assert done.returncode == 2 and b"invalid choice" in done.stderr


def test_in_process_run_through_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from exporter.simulator import gui, main

    seen: list[str] = []
    monkeypatch.setattr(gui.ConsoleOutput, "print", lambda self, message: seen.append(message))
    (tmp_path / "settings.json").write_text(json.dumps(tdm_settings()))
    status = main.main(["--dir", str(tmp_path), "-vvv", "--speed", "1200", "--seed", "1", "--exit-after", "1.5"])
    assert status == 0
    assert seen[0] == "Logging level: CALL" and "Watching: SimStreamer1" in seen
    assert seen[-2:] == ["Exiting...", "INFO: Websocket[0] stopped."]
    import logging

    assert logging.getLogger("TwitchDrops").handlers == []  # cleaned up


# ---- settings.json encoding (pure) -----------------------------------------------------------------

S = sim_settings


def _load(tmp_path: Path, text: str) -> dict[str, Any]:
    path = tmp_path / "settings.json"
    path.write_text(text, encoding="utf8")
    return S.json_load(path, S.default_settings())


def test_defaults_encode_exactly_like_tdm() -> None:
    assert S.json_dumps(S.default_settings()) == (
        '{\n    "autostart_tray": false,\n    "available_drops_check": false,\n    "connection_quality": 1,\n'
        '    "dark_mode": false,\n    "enable_badges_emotes": false,\n    "exclude": {\n        "__type": "set",\n'
        '        "data": []\n    },\n    "language": "English",\n    "priority": [],\n    "priority_mode": {\n'
        '        "__type": "PriorityMode",\n        "data": 0\n    },\n    "proxy": {\n        "__type": "URL",\n'
        '        "data": ""\n    },\n    "tray_notifications": true\n}'
    )


@pytest.mark.parametrize(
    ("key", "written", "loaded"),
    [
        ("foo", 1, None),  # unknown keys are dropped
        ("dark_mode", 1, False),  # strict type check: an int is not a bool
        ("connection_quality", True, 1),
        ("exclude", ["Game C"], set()),  # no __type wrapper
        ("priority_mode", 1, S.PriorityMode.PRIORITY_ONLY),
        ("proxy", "http://127.0.0.1:8080", S.URL("")),
        ("priority", "Game A", []),
        ("priority", ["Game A", 5, None], ["Game A", 5, None]),  # elements are not checked
        ("exclude", {"__type": "frozenset", "data": []}, set()),  # unknown __type: default
        ("priority_mode", {"__type": "PriorityMode", "data": 2}, S.PriorityMode.LOW_AVBL_FIRST),
        ("proxy", {"__type": "URL", "data": "http://h:1"}, S.URL("http://h:1")),
    ],
)
def test_merge_rules(tmp_path: Path, key: str, written: Any, loaded: Any) -> None:
    settings = _load(tmp_path, json.dumps({key: written}))
    assert set(settings) == set(S.default_settings())
    if loaded is not None:
        assert settings[key] == loaded


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{not json", json.JSONDecodeError),
        ("", json.JSONDecodeError),
        ("[]", AttributeError),
        ('{"priority_mode": {"__type": "PriorityMode", "data": 7}}', ValueError),
        ('{"exclude": {"__type": "set", "data": 5}}', TypeError),
    ],
)
def test_unloadable_settings_raise(tmp_path: Path, text: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        _load(tmp_path, text)


def test_save_goes_through_new_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    contents = S.default_settings()
    contents.update(exclude={"Game C"}, priority=["Pokémon GO"], priority_mode=S.PriorityMode.ENDING_SOONEST)
    S.json_save(path, contents)
    assert not (tmp_path / "settings.json.new").exists()
    text = path.read_text(encoding="ascii")
    assert not text.endswith("\n") and "Pok\\u00e9mon GO" in text
    assert json.loads(text)["priority_mode"] == {"__type": "PriorityMode", "data": 1}
    assert S.json_load(path, S.default_settings()) == contents
