"""The daemon supervising the simulated miner, end to end: real daemon, real simulator, real signals.

Each test runs `twitchminert demo` (or `run` with a config like the demo's, when it needs other
settings) as a child process, with TMPDIR pointed at the test's tmp_path so that the demo's temporary
folder, and every process that mentions it, can be found and checked afterwards.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import psutil
import pytest
from conftest import (
    SIMULATOR_SPEED,
    demo_args,
    http_get,
    http_post,
    pause,
    processes_mentioning,
    run_args,
    sample,
    simulator_config,
    status_json,
    status_when,
    stop_all,
    wait_until,
)

from exporter.demo import DEMO_PRIORITY, SIMULATOR_MAIN
from exporter.lockfile import lock_holder
from exporter.settings_sync import SettingsSync
from exporter.supervisor import SAMPLE_EVERY

LOG_LINE = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}) +\w+ +(.*)$")


# -- helpers ----------------------------------------------------------------------------------------


def events_json(daemon, query: str = "") -> list[dict]:
    code, body = http_get(daemon.url + "/api/events" + query)
    assert code == 200, body
    return json.loads(body)


def log_times(output: str, pattern: str) -> list[tuple[float, re.Match]]:
    """(time, match) of each daemon log line whose message matches `pattern`."""
    found = []
    for line in output.splitlines():
        head = LOG_LINE.match(line)
        if head is None:
            continue
        match = re.search(pattern, head.group(2))
        if match is not None:
            found.append((datetime.strptime(head.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp(), match))
    return found


@pytest.fixture
def launch(daemon_factory, tmp_path: Path):
    """Start a daemon and wait until it listens; afterwards stop it gracefully and leave nothing behind."""
    started = []

    def start(*args: str):
        daemon = daemon_factory(*args, env={"TMPDIR": str(tmp_path)})
        started.append(daemon)
        daemon.wait_listening()
        return daemon

    yield start
    stop_all(started, tmp_path)


def demo(launch, scenario: str):
    return launch(*demo_args(scenario))


def run(launch, config: Path):
    return launch(*run_args(config))


def mining(daemon) -> bool:
    return sample(daemon.metrics(), "tdm_miner_status", status="mining") == 1


def state_is(daemon, state: str) -> bool:
    return sample(daemon.metrics(), "tdm_supervisor_state", state=state) == 1


# -- scenarios --------------------------------------------------------------------------------------


def test_happy_scenario_metrics(launch) -> None:
    daemon = demo(launch, "happy")
    wait_until(lambda: mining(daemon), 20, what="tdm_miner_status mining")
    cpu: list[float] = []
    # Resources are sampled every SAMPLE_EVERY seconds: span two samples after the first.
    for _ in range(int(4 * (2 * SAMPLE_EVERY + 1))):
        metrics = daemon.metrics()
        assert sample(metrics, "tdm_miner_up") == 1
        assert sample(metrics, "tdm_supervisor_state", state="running") == 1
        assert sample(metrics, "tdm_supervisor_state", state="failed") == 0
        cpu.append(sample(metrics, "tdm_miner_cpu_seconds_total"))
        assert sample(metrics, "tdm_miner_resident_memory_bytes") > 0
        assert sample(metrics, "tdm_miner_processes") >= 1
        assert sample(metrics, "tdm_miner_threads") >= 1
        assert sample(metrics, "tdm_miner_open_fds") >= 1
        assert sample(metrics, "tdm_miner_start_time_seconds") <= time.time()
        if len(cpu) >= 12 and cpu[-1] > 0:
            break
        pause(0.25)
    assert all(value is not None for value in cpu)
    assert cpu == sorted(cpu), f"tdm_miner_cpu_seconds_total went backwards: {cpu}"
    assert cpu[-1] > 0

    metrics = daemon.metrics()
    drop = re.search(r'^tdm_drop_current_minutes\{drop="([^"]+)",game="([^"]+)"\} (\S+)$', metrics, re.MULTILINE)
    assert drop is not None, "no current drop on /metrics"
    name, game = drop.group(1), drop.group(2)
    assert game in (*DEMO_PRIORITY, "Neon Drift")
    assert 0 <= float(drop.group(3)) <= sample(metrics, "tdm_drop_required_minutes", drop=name, game=game)
    assert sample(metrics, "tdm_drop_last_progress_timestamp_seconds") > 0
    assert sample(metrics, "tdm_session_state", state="authenticated") == 1
    assert sample(metrics, "tdm_miner_restarts_total", reason="crash") == 0
    # The GUI-only "Watching:" line came through the launcher's mirror.
    assert re.search(r'^tdm_watching_info\{channel="[^"]+",game="[^"]*"\} 1', metrics, re.MULTILINE)


def test_terminated_is_detected_and_restarted_through_the_backoff(launch) -> None:
    daemon = demo(launch, "terminated")
    first = wait_until(lambda: status_json(daemon)["pid"], 20, what="the first miner's pid")
    wait_until(
        lambda: (sample(daemon.metrics(), "tdm_miner_restarts_total", reason="terminated") or 0) >= 1,
        30,
        what="a restart for reason terminated",
    )
    second = wait_until(
        lambda: status_when(daemon, lambda s: s["running"] and s["pid"] not in (None, first)),
        30,
        what="a new miner pid",
    )["pid"]
    assert second != first
    crashes = events_json(daemon, "?kind=task_crash")
    assert any(event["fields"].get("task") == "_watch_loop" for event in crashes), crashes
    metrics = daemon.metrics()
    assert sample(metrics, "tdm_miner_restarts_total", reason="crash") == 0
    # TDM terminated-but-alive dies of SIGTERM (no clean exit after a task crash), reported as a shell would.
    assert sample(metrics, "tdm_miner_exits_total", code="143", meaning="killed by SIGTERM") >= 1
    # Through the backoff: the demo waits initial=2 s (jitter 10 %) after the exit before starting again.
    exited = log_times(daemon.output(), rf"the miner \(pid {first}\) exited")
    restarted = log_times(daemon.output(), rf"started the miner \(pid {second}\)")
    assert exited and restarted
    assert restarted[0][0] - exited[0][0] >= 1.8 - 0.01


def test_crash_loop_ends_in_failed_until_a_manual_restart(launch, tmp_path: Path) -> None:
    # "Fatal error encountered" (GUI) comes ~0.5 s before the crash scenario's exit 1; with
    # restart_on_terminated (the default) the daemon restarts TDM for it first (killed by SIGTERM).
    # Off here, so the process exits 1 by itself and the crash path (backoff, cap) is what runs.
    config = simulator_config(
        tmp_path,
        "crash",
        speed=240,
        miner="restart_on_terminated: false\nbackoff: {initial: 0.2s, max: 1s, max_restarts: 2, window: 1h}",
    )
    daemon = run(launch, config)
    wait_until(lambda: state_is(daemon, "failed"), 40, what="the supervisor in failed")
    metrics = daemon.metrics()
    assert sample(metrics, "tdm_miner_exits_total", code="1", meaning="fatal error") == 3
    assert sample(metrics, "tdm_miner_restarts_total", reason="crash") == 2
    assert sample(metrics, "tdm_miner_last_exit_code") == 1
    assert sample(metrics, "tdm_miner_up") == 0

    # The backoff doubles: 0.2 s, then 0.4 s (each -10 % jitter at worst) between an exit and the next start.
    exits = [t for t, _ in log_times(daemon.output(), r"the miner \(pid \d+\) exited with code 1")]
    starts = [t for t, _ in log_times(daemon.output(), r"started the miner \(pid \d+\)")]
    assert len(exits) == 3 and len(starts) == 3
    assert starts[1] - exits[0] >= 0.18 - 0.01
    assert starts[2] - exits[1] >= 0.36 - 0.01

    # Failed stays failed: nothing starts again by itself.
    for _ in range(8):
        pause(0.25)
        metrics = daemon.metrics()
        assert sample(metrics, "tdm_supervisor_state", state="failed") == 1
        assert sample(metrics, "tdm_miner_exits_total", code="1", meaning="fatal error") == 3
    assert len(log_times(daemon.output(), r"started the miner")) == 3
    assert status_json(daemon)["supervisor"]["state"] == "failed"
    # The log says what happened to "Fatal error": no restart, as the setting asks.
    assert "; restarting it" not in daemon.output()
    assert "not restarting it (miner.restart_on_terminated is off)" in daemon.output()

    assert http_post(daemon.url + "/-/restart")[0] == 200
    wait_until(lambda: state_is(daemon, "running"), 10, what="running again after /-/restart")
    metrics = daemon.metrics()
    assert sample(metrics, "tdm_miner_restarts_total", reason="manual") == 1
    assert sample(metrics, "tdm_miner_up") == 1


def test_login_required_through_the_gui_mirror(launch, tmp_path: Path) -> None:
    daemon = demo(launch, "login-required")
    wait_until(lambda: status_json(daemon)["status"] == "login_required", 20, what="status login_required")
    answer = status_json(daemon)
    assert answer["session"] == "login_required"
    assert answer["running"] is True
    metrics = daemon.metrics()
    assert sample(metrics, "tdm_miner_status", status="login_required") == 1
    assert sample(metrics, "tdm_session_state", state="login_required") == 1
    # "Please log in to continue." is GUI-only: it is in the launcher's captured output, not in log.txt.
    (workdir,) = tmp_path.glob("twitchminert-demo-*")
    captured = (workdir / "data" / "logs" / "miner_output.log").read_text()
    assert re.search(r"^\S+ \S+:\t +GUI:\tPlease log in to continue\.$", captured, re.MULTILINE), captured
    assert "Please log in" not in (workdir / "tdm" / "log.txt").read_text()


# -- stall --------------------------------------------------------------------------------------------


class _ShiftedTime:
    """The `time` module with a wall clock `offset` seconds ahead (monotonic untouched)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset

    def __getattr__(self, name: str):
        return getattr(time, name)


def test_stall_progress_stops_and_restart_on_stall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In process: a real Daemon, a real supervisor and the simulator's stall scenario. Thirty minutes
    without progress are not waited for: only housekeeping's wall clock is moved ahead."""
    import exporter.housekeeping as housekeeping_module
    from exporter.config import load_config
    from exporter.daemon import Daemon

    config = load_config(simulator_config(tmp_path, "stall", miner="restart_on_stall: 30m\nbackoff: {initial: 2s, max: 1m}"))
    clock = _ShiftedTime()
    monkeypatch.setattr(housekeeping_module, "time", clock)
    daemon = Daemon(config, "127.0.0.1:0")
    daemon.start()
    try:
        url = f"http://127.0.0.1:{daemon.server.port}"

        def current() -> dict:
            code, body = http_get(url + "/api/miner/status")
            assert code == 200
            return json.loads(body)

        # The stall scenario mines 3 minutes of its first drop, then the progress stops while it watches.
        wait_until(lambda: current()["current_mining"]["progress_minutes"] == 3, 20, what="3 minutes of progress")
        first = current()
        assert first["status"] == "mining"
        last_progress = first["current_mining"]["last_progress"]
        for _ in range(6):  # 3 s: three more simulated minutes that do not count
            pause(0.5)
            answer = current()
            assert answer["status"] == "mining"
            assert answer["current_mining"]["progress_minutes"] == 3
            assert answer["current_mining"]["last_progress"] == last_progress
        assert daemon.supervisor.status().restarts == {}

        # 29 minutes later: not yet.
        clock.offset = 1740.0
        for _ in range(3):
            pause(0.5)  # the housekeeping thread checks every second
            assert daemon.supervisor.status().restarts == {}
        # 31 minutes later: restarted for reason stall, through the backoff.
        clock.offset = 1860.0
        wait_until(lambda: daemon.supervisor.status().restarts.get("stall"), 10, what="a restart for reason stall")
        clock.offset = 0.0  # the new run starts a fresh 30 minutes
        wait_until(
            lambda: daemon.supervisor.status().up and daemon.supervisor.status().pid != first["pid"],
            20,
            what="the miner running again",
        )
        assert daemon.supervisor.status().restarts == {"stall": 1}
        assert daemon.supervisor.status().exits == {(0, "closed"): 1}  # SIGTERM while mining: graceful
    finally:
        daemon.stop()
    assert not processes_mentioning(str(tmp_path))


# -- stopping ---------------------------------------------------------------------------------------


def test_sigterm_stops_the_miner_and_removes_the_demo_dir(launch, tmp_path: Path) -> None:
    daemon = demo(launch, "happy")
    wait_until(lambda: mining(daemon), 20, what="mining")
    pid = status_json(daemon)["pid"]
    (workdir,) = tmp_path.glob("twitchminert-demo-*")
    assert processes_mentioning(str(workdir))
    started = time.monotonic()
    assert daemon.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 5 + 5  # the simulator takes ~0.5 s; stop_timeout is 5 s
    assert f"the miner (pid {pid}) exited with code 0 (closed)" in daemon.output()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not processes_mentioning(str(tmp_path)), "a process outlived the daemon"
    assert not workdir.exists(), "the demo's temporary dir was not removed"


def test_sigterm_lets_the_miner_save_its_settings(launch, tmp_path: Path) -> None:
    daemon = run(launch, simulator_config(tmp_path, "happy"))
    wait_until(lambda: mining(daemon), 20, what="mining")
    pid = status_json(daemon)["pid"]
    settings = tmp_path / "tdm" / "settings.json"
    before = settings.stat()
    assert daemon.stop(signal.SIGTERM) == 0
    assert f"the miner (pid {pid}) exited with code 0 (closed)" in daemon.output()
    after = settings.stat()
    # Rewritten from memory at the clean exit (settings.json.new, then os.replace).
    assert (after.st_ino, after.st_mtime_ns) != (before.st_ino, before.st_mtime_ns)
    assert json.loads(settings.read_text())["priority"] == list(DEMO_PRIORITY)
    assert not (tmp_path / "tdm" / "settings.json.new").exists()
    assert not processes_mentioning(str(tmp_path))


# -- attach mode ------------------------------------------------------------------------------------


def test_attach_mode_follows_a_miner_it_did_not_start(launch, tmp_path: Path) -> None:
    tdm_dir = tmp_path / "tdm"
    tdm_dir.mkdir()
    SettingsSync(tdm_dir, {"priority": DEMO_PRIORITY, "priority_mode": "ending_soonest"}).prepare()
    simulator = subprocess.Popen(
        [sys.executable, str(SIMULATOR_MAIN), "--dir", str(tdm_dir), "--scenario", "happy",
         "--speed", str(SIMULATOR_SPEED), "--log", "-vvv", "--exit-after", "60"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: lock_holder(tdm_dir / "lock.file") == simulator.pid, 10, what="the simulator's lock")
        daemon = run(launch, simulator_config(tmp_path, "happy", command=False, miner="mode: attach"))
        wait_until(lambda: sample(daemon.metrics(), "tdm_miner_up") == 1, 10, what="tdm_miner_up 1")
        answer = status_json(daemon)
        assert answer["pid"] == simulator.pid
        assert answer["supervisor"]["mode"] == "attach" and answer["supervisor"]["attached"] is True
        # Its log.txt is followed: drop progress arrives.
        wait_until(lambda: mining(daemon), 20, what="mining from the attached miner's log.txt")
        assert sample(daemon.metrics(), "tdm_miner_resident_memory_bytes") > 0

        code, body = http_post(daemon.url + "/-/restart")
        assert code == 409, body
        assert simulator.poll() is None, "the daemon signalled a miner it did not start"

        simulator.send_signal(signal.SIGTERM)
        assert simulator.wait(10) == 0
        wait_until(lambda: sample(daemon.metrics(), "tdm_miner_up") == 0, 10, what="tdm_miner_up 0")
        answer = status_json(daemon)
        assert answer["status"] == "stopped" and answer["running"] is False and answer["pid"] is None
        assert sample(daemon.metrics(), "tdm_miner_status", status="stopped") == 1
        assert daemon.stop() == 0
    finally:
        if simulator.poll() is None:
            simulator.kill()
        simulator.wait(5)
