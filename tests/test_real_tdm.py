"""The real TDM (../shared/tdm-src) supervised by `twitchminert run`, against the offline Twitch mock.

Each test starts as few TDMs as it needs (see realtdm.py); every wait is bounded. Assertions go
through what a user sees: /metrics, /api/miner/status and /api/events (and, where the point is what
happens to processes and files, those).
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from conftest import FIXTURES, http_post, sample, wait_until
from helpers import expect, headless_chromium
from realtdm import MOCK_GAME, REPO, real_tdm, tdm_runtime  # noqa: F401  (fixtures)

from exporter.lockfile import lock_holder
from exporter.xvfb import Xvfb

pytestmark = pytest.mark.slow  # each starts a real TDM

# One exit is all these tests need: the restart after it waits longer than they run.
ONE_EXIT = "backoff: {initial: 60s, max: 60s}"
SETTINGS_FIXTURE = FIXTURES / "settings.json"  # written by TDM
DEVICE_PAGE = "https://www.twitch.tv/activate?device-code=MOCKCODE"  # what TDM opens after Login


def kinds(events: list[dict]) -> list[str]:
    return [event["kind"] for event in events]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def xvfb_of(miner_pid: int) -> psutil.Process:
    """The Xvfb serving the miner: the one started with the miner's XAUTHORITY as its -auth file."""
    auth = psutil.Process(miner_pid).environ()["XAUTHORITY"]
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "Xvfb" and auth in (process.info["cmdline"] or ()):
            return process
    raise AssertionError(f"no Xvfb with -auth {auth}")


def mining_with_progress(status: dict) -> bool:
    current = status["current_mining"] or {}
    return status["status"] == "mining" and (current.get("progress_minutes") or 0) >= 3


# -- a whole session, then the daemon's SIGTERM ------------------------------------------------------


def test_restored_session_mines_claims_goes_idle_and_closes_with_the_daemon(real_tdm):
    tdm = real_tdm()
    mining = tdm.wait_status(mining_with_progress, what="mining with progress")
    assert mining["session"] == "authenticated"
    assert mining["current_mining"]["game"] == MOCK_GAME and mining["current_mining"]["channel"]
    assert mining["supervisor"]["state"] == "running" and not mining["supervisor"]["attached"]

    # Our own Xvfb, reachable with a cookie only we can read; TDM cannot start a browser on it.
    environment = psutil.Process(mining["pid"]).environ()
    assert mining["display"] == environment["DISPLAY"] and mining["display"].startswith(":")
    auth = Path(environment["XAUTHORITY"])
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600 and stat.S_IMODE(auth.parent.stat().st_mode) == 0o700
    xvfb = xvfb_of(mining["pid"])
    assert environment["BROWSER"] == "true"

    # Issue 11.1: after the claim TDM stops watching; no channel, no drop, no ETA stays behind.
    idle = tdm.wait_status(
        lambda s: s["drops"]["claimed_total"] >= 1 and s["status"] == "no_campaigns", what="claim, then idle"
    )
    stale = ("channel", "drop", "progress_minutes", "required_minutes", "percent", "eta", "last_progress",
             "campaign_id", "campaign", "confirmed_minutes", "estimated_minutes")  # the last four: the bridge's
    assert {key: idle["current_mining"][key] for key in stale} == dict.fromkeys(stale)
    metrics = tdm.metrics()
    assert sample(metrics, "tdm_drops_claimed_total", game=MOCK_GAME) == 1
    assert "\ntdm_watching_info{" not in metrics and "\ntdm_drop_current_minutes{" not in metrics
    assert sample(metrics, "tdm_miner_status", status="no_campaigns") == 1
    seen = kinds(tdm.events(limit="1000"))
    for kind in ("login_successful", "watching", "drop_progress", "drop_claimed", "channel_updated", "no_campaigns"):
        assert kind in seen, (kind, seen)
    tdm.wait_log("Websocket[0] requested reconnect")
    assert [e["pid"] for e in tdm.supervisor_events("started")] == [mining["pid"]]

    # SIGTERM of the daemon: TDM closes as from its window (saves settings.json), then Xvfb ends.
    settings = tdm.tdm_dir / "settings.json"
    written = settings.stat().st_mtime_ns
    assert tdm.stop() == 0
    assert not alive(mining["pid"]) and not alive(xvfb.pid)
    assert "exited with code 0 (closed)" in tdm.output()
    assert settings.stat().st_mtime_ns > written  # TDM's own save at its normal exit
    # The exit is in the store too, written while the daemon stopped: `twitchminert events` reads it.
    listed = subprocess.run(
        [sys.executable, "-m", "exporter", "events", "--config.file", str(tdm.config_file), "--kind", "supervisor"],
        capture_output=True, text=True, timeout=60, cwd=REPO, env={**os.environ, "TWITCHMINERT_HOME": str(tdm.workdir)},
    )
    assert listed.returncode == 0, listed.stderr
    last = json.loads(listed.stdout.splitlines()[-1])["fields"]  # oldest first
    assert (last["action"], last["pid"], last["code"], last["expected"]) == ("miner_exited", mining["pid"], 0, True)


# -- logins, errors, terminated TDMs ---------------------------------------------------------------


def test_fresh_start_waits_for_a_login_tdm_cannot_open_a_browser_and_logs_in_from_the_page(real_tdm, tdm_runtime):
    tdm = real_tdm(session="fresh")
    status = tdm.wait_status(
        lambda s: s["status"] == "login_required" and s["session"] == "login_required", what="login required"
    )
    assert status["current_mining"]["channel"] is None and status["current_mining"]["drop"] is None
    metrics = tdm.metrics()
    assert sample(metrics, "tdm_session_state", state="login_required") == 1
    assert sample(metrics, "tdm_miner_status", status="login_required") == 1
    assert "login_required" in kinds(tdm.events())
    # Issue 11.8: 4 s after Login, TDM calls webbrowser.open(page) in its own environment. With a
    # browser installed (here: fake ones first on PATH), that would start it on our Xvfb.
    environment = psutil.Process(status["pid"]).environ()
    fakes = tdm.workdir / "browsers"
    fakes.mkdir()
    for name in ("xdg-open", "gio", "x-www-browser", "firefox", "chromium", "google-chrome", "sensible-browser"):
        (fakes / name).write_text(f"#!/bin/sh\ntouch {fakes}/{name}.ran\n")
        (fakes / name).chmod(0o755)
    environment["PATH"] = f"{fakes}:{environment['PATH']}"
    opened = subprocess.run(
        [str(tdm_runtime.python), "-c", f"import webbrowser; b = webbrowser.get(); print(getattr(b, 'name', b)); webbrowser.open({DEVICE_PAGE!r})"],
        env=environment, capture_output=True, text=True, timeout=30,
    )
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout.strip() == "true"  # the harmless BROWSER, not one of the browsers on PATH
    # Then the user presses Login from the page (the bridge), TDM gets its token and mines.
    code, answer = wait_until(
        lambda: (reply := tdm.post_json("/api/miner/login"))[0] != 409 and reply, 30, what="a login to press"
    )
    assert code == 202, answer
    mining = tdm.wait_status(lambda s: s["session"] == "authenticated" and s["status"] == "mining", what="logged in, mining")
    assert mining["pid"] == status["pid"]  # the same TDM: no restart was needed
    assert (tdm.tdm_dir / "cookies.jar").stat().st_size > 0  # TDM saved its new session (fresh: none before)


@pytest.fixture(scope="module")
def browser():
    yield from headless_chromium("the status page of a real TDM")


def test_fatal_error_stops_tdm_without_sigkill_and_tells_why(real_tdm, browser):
    tdm = real_tdm(proxy="407", miner=ONE_EXIT)
    (exited,) = wait_until(lambda: tdm.supervisor_events("exited"), 60, what="TDM's exit after its fatal error")
    # Issue 11.2: terminated after the fatal error, TDM dies of SIGTERM (143), not of SIGKILL (137).
    assert (exited["code"], exited["meaning"], exited["expected"]) == (143, "killed by SIGTERM", True)
    fatal = next(e for e in tdm.events(limit="1000") if e["kind"] == "fatal_error")
    stopped = next(e for e in tdm.events(kind="supervisor", limit="1000") if e["fields"]["action"] == "miner_exited")
    assert stopped["time"] - fatal["time"] < 4.0  # about a second, not stop_timeout (10 s)
    # Issue 11.3: the traceback's last line, in the exit event, the status and last_error.
    assert "ClientHttpProxyError" in exited["cause"] and "407" in exited["cause"]
    status = tdm.status()
    assert status["supervisor"]["last_exit_cause"] == exited["cause"]
    assert "ClientHttpProxyError" in status["last_error"]["message"]
    (restart,) = tdm.supervisor_events("restart")
    assert restart["reason"] == "terminated" and 50 <= restart["delay"] <= 70
    metrics = tdm.metrics()
    assert sample(metrics, "tdm_miner_exits_total", code="143", meaning="killed by SIGTERM") == 1
    assert sample(metrics, "tdm_miner_restarts_total", reason="terminated") == 1
    assert "did not stop within" not in tdm.output()
    # ... and on the page: "Last exit: 143 (killed by SIGTERM): aiohttp...ClientHttpProxyError: 407, ..."
    page = browser.new_page()
    try:
        page.goto(tdm.url + "/")
        expect(page.locator("#last-exit")).to_contain_text("ClientHttpProxyError", timeout=15_000)
        assert page.locator("#last-exit").text_content().startswith("143 (killed by SIGTERM): ")
    finally:
        page.close()


def test_critical_task_crash_is_restarted_without_sigkill(real_tdm):
    tdm = real_tdm(scenario="critical", miner=ONE_EXIT)
    (exited,) = wait_until(lambda: tdm.supervisor_events("exited"), 60, what="TDM's exit after the crash")
    assert exited["code"] in (0, 143) and exited["expected"]  # closed, or SIGTERM in "Application Terminated"
    status = tdm.status()
    assert status["supervisor"]["state"] == "backoff"
    assert status["last_error"]["message"].startswith("Exception in _watch_loop task: ")
    assert "Exception" in status["last_error"]["message"].split("task: ", 1)[1]
    assert sample(tdm.metrics(), "tdm_task_crashes_total", task="_watch_loop") == 1
    assert tdm.supervisor_events("restart")[0]["reason"] == "terminated"


def test_errors_scenario_counts_each_error_then_restarts_after_the_fatal_one(real_tdm):
    tdm = real_tdm(scenario="errors", miner=ONE_EXIT)
    (exited,) = wait_until(lambda: tdm.supervisor_events("exited"), 90, what="TDM's exit after its fatal error")
    assert exited["code"] == 143 and "GQLException" in exited["cause"] and "mock fatal inventory error" in exited["cause"]
    seen = kinds(tdm.events(limit="1000"))
    for kind in ("gql_retry", "ws_unknown_payload", "claim_unknown_drop", "task_crash", "claim_failed", "fatal_error"):
        assert kind in seen, (kind, seen)
    metrics = tdm.metrics()
    assert sample(metrics, "tdm_drop_claim_failures_total") == 1
    assert sample(metrics, "tdm_task_crashes_total", task="process_stream_state") == 1
    assert sample(metrics, "tdm_miner_restarts_total", reason="terminated") == 1


# -- source installs -------------------------------------------------------------------------------


def test_a_venv_inside_tdms_folder_is_found(real_tdm, tdm_runtime):
    # Issue 11.7: `dir` alone is enough for a source install that made its venv (TDM's setup_env.sh: env/).
    tdm = real_tdm(python=None, start=False)
    (tdm.tdm_dir / "env").symlink_to(tdm_runtime.venv, target_is_directory=True)
    tdm.start()
    status = tdm.wait_status(lambda s: s["session"] == "authenticated", what="TDM logged in")
    assert psutil.Process(status["pid"]).cmdline()[0] == str(tdm.tdm_dir / "env" / "bin" / "python")


def test_an_interpreter_without_tdms_requirements_says_what_is_missing(real_tdm):
    tdm = real_tdm(python=sys.executable, miner=ONE_EXIT)  # ours: no aiohttp, no truststore
    (exited,) = wait_until(lambda: tdm.supervisor_events("exited"), 30, what="TDM's exit")
    assert exited["code"] == 1 and exited["cause"].startswith("ModuleNotFoundError: No module named")
    assert "miner.python" in exited["cause"] and sys.executable in exited["cause"]
    assert tdm.status()["last_error"]["message"] == exited["cause"]


# -- other TDMs, config changes, a killed daemon -----------------------------------------------------


def test_a_tdm_started_by_hand_is_followed_and_its_settings_left_alone(real_tdm, tdm_runtime):
    tdm = real_tdm(start=False)
    settings = tdm.tdm_dir / "settings.json"
    own = write_own_settings(tdm)
    xvfb = Xvfb()
    xvfb.start()
    by_hand = start_by_hand(tdm, tdm_runtime, xvfb)
    try:
        wait_until(lambda: lock_holder(tdm.tdm_dir / "lock.file") == by_hand.pid, 30, what="the hand-started TDM's lock")
        tdm.wait_log("Checking login")  # past its first second: its SIGTERM handler is installed
        tdm.start()
        status = tdm.wait_status(lambda s: s["pid"] == by_hand.pid, what="attached to the hand-started TDM")
        assert status["supervisor"]["attached"] and not status["supervisor"]["adopted"]
        assert "settings.json" in status["supervisor"]["notice"]
        # Issue 11.4: nothing written under a running TDM (it would overwrite it at its exit).
        assert json.loads(settings.read_text()) == own
        assert tdm.events(kind="config_change") == []
        by_hand.send_signal(signal.SIGTERM)  # the user closes it
        assert by_hand.wait(15) == 0
        own = tdm.wait_status(lambda s: s["pid"] not in (None, by_hand.pid) and s["running"], what="our own TDM")
        assert not own["supervisor"]["attached"] and own["supervisor"]["restarts"] == 0  # not a crash
        assert own["supervisor"]["notice"] is None
        written = json.loads(settings.read_text())
        assert written["priority"] == [MOCK_GAME] and written["proxy"]["data"] == tdm.proxy_url
        tdm.wait_status(lambda s: s["status"] == "mining", what="our TDM mining with our settings")
    finally:
        if by_hand.poll() is None:
            by_hand.kill()
            by_hand.wait(5)
        xvfb.stop()


def write_own_settings(tdm) -> dict:
    """A user's own settings.json in TDM's folder: TDM's format, their own priority, the mock as proxy."""
    own = json.loads(SETTINGS_FIXTURE.read_text())
    own["proxy"] = {"__type": "URL", "data": tdm.proxy_url}
    (tdm.tdm_dir / "settings.json").write_text(json.dumps(own, indent=4))
    return own


def start_by_hand(tdm, runtime, xvfb: Xvfb, **env: str) -> subprocess.Popen:
    """TDM started outside the daemon, in its own session, on `xvfb`, with `env` added."""
    return subprocess.Popen(
        [str(runtime.python), "main.py", "--log", "-vvv"],
        cwd=tdm.tdm_dir,
        env={**os.environ, **xvfb.environment(), "SSL_CERT_FILE": str(runtime.ca_file), "BROWSER": "true", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_a_tdm_left_by_an_earlier_daemon_is_adopted_restartable_and_stopped(real_tdm, tdm_runtime):
    # Issue 11.5: what a daemon killed without the parent-death signal left behind (same folder, same
    # data dir): before, the next daemon attached to it, refused to restart it (409) and left it running.
    tdm = real_tdm(start=False)
    write_own_settings(tdm)
    xvfb = Xvfb()
    xvfb.start()
    orphan = start_by_hand(tdm, tdm_runtime, xvfb, TWITCHMINERT_DATA_DIR=str(tdm.data_dir.resolve()))
    try:
        wait_until(lambda: lock_holder(tdm.tdm_dir / "lock.file") == orphan.pid, 30, what="the orphan's lock")
        tdm.wait_log("Checking login")
        tdm.start()
        status = tdm.wait_status(lambda s: s["pid"] == orphan.pid, what="the orphan adopted")
        assert status["supervisor"]["adopted"] and not status["supervisor"]["attached"]
        assert status["supervisor"]["notice"] is None
        code, answer = http_post(tdm.url + "/-/restart")
        assert (code, answer.strip()) == (200, "restarting")
        assert orphan.wait(15) == 0  # closed normally by our SIGTERM
        own = tdm.wait_status(lambda s: s["running"] and s["pid"] not in (None, orphan.pid), what="our own TDM")
        assert own["supervisor"]["restarts"] == 1 and not own["supervisor"]["adopted"]
        assert tdm.stop() == 0
        assert not alive(own["pid"])
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait(5)
        xvfb.stop()


def test_a_priority_change_while_mining_restarts_tdm_with_the_new_list(real_tdm):
    tdm = real_tdm()
    first = tdm.wait_status(lambda s: s["status"] == "mining", what="mining")
    tdm.write_config(priority=(MOCK_GAME, "Other Game"))
    second = tdm.wait_status(
        lambda s: s["running"] and s["pid"] not in (None, first["pid"]), what="TDM started again with the new priority"
    )
    assert second["supervisor"]["restarts"] == 1
    (exited,) = tdm.supervisor_events("exited")
    assert (exited["pid"], exited["code"], exited["expected"]) == (first["pid"], 0, True)  # closed normally
    (restart,) = tdm.supervisor_events("restart")
    assert restart == {"action": "miner_restart", "reason": "config", "delay": 0.0}
    assert json.loads((tdm.tdm_dir / "settings.json").read_text())["priority"] == [MOCK_GAME, "Other Game"]
    assert sample(tdm.metrics(), "tdm_miner_restarts_total", reason="config") == 1
    tdm.wait_status(lambda s: s["status"] == "mining", what="mining again")


def test_no_tdm_or_xvfb_outlives_a_killed_daemon(real_tdm):
    tdm = real_tdm()
    status = tdm.wait_status(lambda s: s["status"] == "mining", what="mining")
    xvfb = xvfb_of(status["pid"])
    cookie_folder = Path(psutil.Process(status["pid"]).environ()["XAUTHORITY"]).parent
    settings = tdm.tdm_dir / "settings.json"
    written = settings.stat().st_mtime_ns
    tdm.stop(signal.SIGKILL)
    # Issue 11.5: TDM gets its parent-death SIGTERM and closes normally (its window still up: Xvfb is
    # held by its keeper until TDM has gone); its Xvfb ends with it, and the keeper removes the cookie.
    wait_until(lambda: not alive(status["pid"]) and not alive(xvfb.pid), 10, what="TDM and Xvfb to end")
    assert settings.stat().st_mtime_ns > written  # a normal close: TDM saved its settings
    wait_until(lambda: not cookie_folder.exists(), 5, what="the keeper to remove the cookie folder")
