"""/api/miner/status, /api/events and the small routes, against real daemons supervising the simulator.

The scenario daemons are started together once for the module (each simulator settles into the
state its test looks at: mining, terminated, waiting for a login, stalled, backing off), then each
test polls for what it needs.
"""

from __future__ import annotations

import json
import signal
import statistics
import time
from pathlib import Path

import psutil
import pytest
from conftest import (
    DaemonProcess,
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

STATUS_KEYS = {
    "running", "pid", "memory_mb", "cpu_percent", "uptime_seconds", "last_activity", "status", "session",
    "current_mining", "supervisor", "config",
}
CURRENT_MINING_KEYS = {"channel", "game", "drop", "progress_minutes", "required_minutes", "percent", "eta"}
SUPERVISOR_KEYS = {"state", "restarts", "last_exit_code", "last_exit_meaning"}
CONFIG_KEYS = {"last_reload_successful", "error"}
EVENT_KEYS = {"time", "kind", "level", "source", "message", "fields"}
EVENTS_IN_LOG = 1500  # more than the API's hard limit (1000)


# -- helpers ----------------------------------------------------------------------------------------


def events(daemon, query: str = "") -> tuple[int, object]:
    code, body = http_get(daemon.url + "/api/events" + query)
    return code, (json.loads(body) if code == 200 else body)


def progress_log(path: Path, count: int) -> None:
    """`count` CALL drop-progress records, one per second, plus an ERROR every 100th."""
    lines = []
    for i in range(count):
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(1_790_000_000 + i))
        if i % 100 == 99:
            lines.append(f"{stamp}.000:\t  ERROR:\tDrop claim has potentially failed! Drop ID: d{i}\n")
        lines.append(f"{stamp}.500:\t   CALL:\tDrop update from websocket: Drop {i} (Game, {i % 10}/10)\n")
    path.write_text("".join(lines))


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """One daemon per scenario, started together; `scenario[name]` once it listens."""
    workdir = tmp_path_factory.mktemp("scenarios")
    env = {"TMPDIR": str(workdir)}

    def demo(name: str) -> DaemonProcess:
        return DaemonProcess(demo_args(name), env)

    def run(name: str, scenario_name: str, miner: str) -> DaemonProcess:
        return DaemonProcess(run_args(simulator_config(workdir / name, scenario_name, miner=miner)), env)

    daemons = {
        "happy": demo("happy"),
        "login-required": demo("login-required"),
        "stall": demo("stall"),
        # Caught before any restart: TDM stays alive, terminated.
        "terminated": run("terminated", "terminated", "restart_on_terminated: false"),
        # Exit 1 by itself (no restart for the GUI "Fatal error"), then a backoff longer than the test.
        "crash": run("crash", "crash", "restart_on_terminated: false\nbackoff: {initial: 1h, max: 2h}"),
    }
    try:
        for daemon in daemons.values():
            daemon.wait_listening()
        yield daemons
    finally:
        stop_all(daemons.values(), workdir)


@pytest.fixture(scope="module")
def many_events(tmp_path_factory):
    """A daemon without a miner, following a log of more records than /api/events ever returns."""
    workdir = tmp_path_factory.mktemp("events")
    log = workdir / "log.txt"
    progress_log(log, EVENTS_IN_LOG)
    config = workdir / "twitchminert.yaml"
    config.write_text(
        f"logs:\n  files: [{json.dumps(str(log))}]\n  timezone: UTC\nstorage:\n  path: {json.dumps(str(workdir / 'data'))}\n"
    )
    daemon = DaemonProcess(run_args(config))
    try:
        daemon.wait_listening()
        expected = EVENTS_IN_LOG + EVENTS_IN_LOG // 100
        wait_until(lambda: sum(
            sample(daemon.metrics(), "tdm_log_records_total", level=level) or 0 for level in ("CALL", "ERROR")
        ) == expected, 20, what=f"{expected} records")
        yield daemon
    finally:
        stop_all([daemon], workdir)


# -- the status of each scenario --------------------------------------------------------------------


def test_happy_is_mining(scenario) -> None:
    daemon = scenario["happy"]
    # "Watching: <channel>" makes it mining; the drop comes with the first progress minute.
    answer = wait_until(
        lambda: status_when(daemon, lambda s: s["status"] == "mining" and s["current_mining"]["drop"]),
        20,
        what="mining a drop",
    )
    assert answer["running"] is True and answer["session"] == "authenticated"
    current = answer["current_mining"]
    assert current["channel"] and current["game"] and current["drop"]
    assert 0 <= current["progress_minutes"] <= current["required_minutes"]
    assert current["percent"] == pytest.approx(100 * current["progress_minutes"] / current["required_minutes"], abs=0.1)
    assert current["eta"] >= current["last_progress"]
    assert answer["supervisor"]["state"] == "running"


def test_status_shape(scenario) -> None:
    daemon = scenario["happy"]
    wait_until(lambda: status_json(daemon)["cpu_percent"] is not None, 10, what="a CPU percentage")
    answer = status_json(daemon)
    assert STATUS_KEYS <= answer.keys()
    assert CURRENT_MINING_KEYS <= answer["current_mining"].keys()
    assert SUPERVISOR_KEYS <= answer["supervisor"].keys()
    assert CONFIG_KEYS <= answer["config"].keys()
    assert isinstance(answer["running"], bool)
    assert isinstance(answer["pid"], int) and psutil.pid_exists(answer["pid"])
    assert answer["memory_mb"] > 0
    assert answer["cpu_percent"] >= 0
    assert 0 < answer["uptime_seconds"] < 600
    assert answer["last_activity"] == pytest.approx(time.time(), abs=120)
    assert isinstance(answer["status"], str) and isinstance(answer["session"], str)
    supervisor = answer["supervisor"]
    assert supervisor["state"] == "running" and supervisor["restarts"] == 0
    assert supervisor["last_exit_code"] is None and supervisor["last_exit_meaning"] is None
    assert answer["config"] == {"last_reload_successful": True, "error": None}


def test_terminated(scenario) -> None:
    daemon = scenario["terminated"]
    answer = wait_until(lambda: status_when(daemon, lambda s: s["status"] == "terminated"), 20, what="terminated")
    assert answer["running"] is True  # stopped mining, still alive
    assert answer["supervisor"]["state"] == "running" and answer["supervisor"]["restarts"] == 0
    code, crashes = events(daemon, "?kind=task_crash")
    assert code == 200 and crashes and crashes[0]["fields"]["task"] == "_watch_loop"
    assert sample(daemon.metrics(), "tdm_miner_status", status="terminated") == 1


def test_login_required(scenario) -> None:
    daemon = scenario["login-required"]
    answer = wait_until(
        lambda: status_when(daemon, lambda s: s["status"] == "login_required"), 20, what="login_required"
    )
    assert answer["session"] == "login_required"
    assert answer["running"] is True
    assert answer["current_mining"]["drop"] is None


def test_stall_is_mining_with_a_stale_last_progress(scenario) -> None:
    daemon = scenario["stall"]
    wait_until(lambda: status_json(daemon)["current_mining"]["progress_minutes"] == 3, 20, what="3 minutes of progress")
    first = status_json(daemon)["current_mining"]["last_progress"]
    for _ in range(5):  # 2.5 simulated minutes without progress
        pause(0.5)
        answer = status_json(daemon)
        assert answer["status"] == "mining"
        assert answer["current_mining"]["progress_minutes"] == 3
        assert answer["current_mining"]["last_progress"] == first
    assert time.time() - first >= 2.0  # stale: more than two simulated minutes ago


def test_crash_then_backoff(scenario) -> None:
    daemon = scenario["crash"]
    answer = wait_until(
        lambda: status_when(daemon, lambda s: s["supervisor"]["last_exit_code"] is not None), 20, what="the exit"
    )
    assert answer["running"] is False and answer["pid"] is None
    assert answer["supervisor"]["state"] == "backoff"
    assert answer["supervisor"]["last_exit_code"] == 1
    assert answer["supervisor"]["last_exit_meaning"] == "fatal error"
    assert answer["supervisor"]["restarts"] == 1  # counted when the backoff began
    assert answer["status"] == "stopped"
    assert answer["uptime_seconds"] is None and answer["memory_mb"] is None


# -- /api/events ------------------------------------------------------------------------------------


def test_events_newest_first_with_a_bounded_limit(many_events) -> None:
    code, default = events(many_events)
    assert code == 200 and len(default) == 100
    assert all(EVENT_KEYS <= event.keys() for event in default)
    times = [event["time"] for event in default]
    assert times == sorted(times, reverse=True)
    assert events(many_events, "?limit=3")[1] == default[:3]
    code, most = events(many_events, "?limit=100000")
    assert code == 200 and len(most) == 1000  # clamped
    assert most[:100] == default



@pytest.mark.parametrize("limit", ["0", "-5"])
def test_events_limit_below_one_is_refused(many_events, limit: str) -> None:
    code, body = http_get(many_events.url + "/api/events?limit=" + limit)
    assert (code, body) == (400, f"limit must be at least 1, got {limit}\n")


def test_events_filters(many_events) -> None:
    code, errors = events(many_events, "?level=ERROR&limit=1000")
    assert code == 200 and len(errors) == EVENTS_IN_LOG // 100
    assert {event["level"] for event in errors} == {"ERROR"}
    assert {event["kind"] for event in errors} == {"claim_failed"}
    code, progress = events(many_events, "?kind=drop_progress&limit=5")
    assert code == 200 and [event["kind"] for event in progress] == ["drop_progress"] * 5
    assert events(many_events, "?kind=drop_progress&level=ERROR")[1] == []
    assert events(many_events, "?kind=no_such_kind")[1] == []

    times = sorted(event["time"] for event in events(many_events, "?kind=drop_progress&limit=1000")[1])
    low, high = times[100], times[110]  # 11 progress events, one per second
    between = events(many_events, f"?kind=drop_progress&since={low}&until={high}")[1]
    assert [event["time"] for event in between] == sorted(times[100:111], reverse=True)  # both ends inclusive
    since = events(many_events, f"?since={times[-3]}")[1]
    assert since and all(event["time"] >= times[-3] for event in since)
    until = events(many_events, f"?kind=drop_progress&until={low}&limit=1000")[1]
    assert until[0]["time"] == low and all(event["time"] <= low for event in until)
    assert events(many_events, f"?since={high}&until={low}")[1] == []


@pytest.mark.parametrize("query", ["since=abc", "until=yesterday", "limit=ten", "limit=1.5", "since=1e400x"])
def test_events_bad_numbers(many_events, query: str) -> None:
    code, body = events(many_events, "?" + query)
    assert code == 400, body


# -- small routes -----------------------------------------------------------------------------------


def test_health_ready_and_methods(many_events) -> None:
    url = many_events.url
    assert http_get(url + "/-/healthy") == (200, "OK\n")
    assert http_get(url + "/-/ready")[0] == 200
    assert http_get(url + "/-/reload")[0] == 405
    assert http_get(url + "/-/restart")[0] == 405
    assert http_get(url + "/no/such/path")[0] == 404
    assert http_get(url + "/api/miner/status/extra")[0] == 404
    assert http_post(url + "/metrics")[0] == 405
    # Without a supervised miner there is nothing to restart.
    assert http_post(url + "/-/restart")[0] == 409
    answer = status_json(many_events)
    assert answer["running"] is None and answer["supervisor"] is None


# -- serving while TDM crash-loops ------------------------------------------------------------------


def test_metrics_stay_fast_while_the_miner_crash_loops(tmp_path: Path) -> None:
    config = simulator_config(
        tmp_path,
        "crash",
        speed=240,
        miner="restart_on_terminated: false\nbackoff: {initial: 0.2s, max: 1s, max_restarts: 2, window: 1h}",
    )
    daemon = DaemonProcess(run_args(config))
    try:
        daemon.wait_listening()
        durations: list[float] = []
        states: set[str] = set()

        def scrape() -> str:
            began = time.perf_counter()
            code, body = http_get(daemon.url + "/metrics")
            durations.append(time.perf_counter() - began)
            assert code == 200
            for state in ("running", "backoff", "failed"):
                if sample(body, "tdm_supervisor_state", state=state) == 1:
                    states.add(state)
            return body

        wait_until(lambda: sample(scrape(), "tdm_supervisor_state", state="failed") == 1, 40, what="failed")
        for _ in range(10):
            scrape()
            assert status_json(daemon)["supervisor"]["state"] == "failed"
            assert http_get(daemon.url + "/-/healthy")[0] == 200
        assert {"running", "failed"} <= states
        assert max(durations) < 0.5, f"slowest scrape {max(durations):.3f} s"
        assert statistics.median(durations) < 0.05
    finally:
        assert daemon.stop(signal.SIGTERM) == 0
    assert not processes_mentioning(str(tmp_path))
