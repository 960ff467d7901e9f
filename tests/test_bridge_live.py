"""The bridge end to end: the daemon supervising the simulator through the launcher, asked over HTTP.

The simulator has TDM's GUI classes; the launcher's bridge hooks them exactly as it hooks TDM's.
Login (the device-code flow), campaigns, channels, games, reload, the metrics, `twitchminert login`,
auth and cross-site refusal on the POST routes, and `replay` of the same records.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest

from conftest import REPO, demo_args, run_args, sample, simulator_config, status_json, wait_until
from helpers import basic_auth, request

USER, PASSWORD = "admin", "a long enough test password"
JSON = {"Content-Type": "application/json"}


def post(port: int, path: str, body: object = None, headers: dict | None = None) -> tuple[int, dict | str]:
    data = b"" if body is None else json.dumps(body).encode()
    status, _, raw = request(port, path, {**JSON, **(headers or {})}, "POST", body=data)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def port_of(daemon) -> int:
    return int(daemon.url.rsplit(":", 1)[1])


def get_json(daemon, path: str, headers: dict | None = None):
    status, _, raw = request(port_of(daemon), path, headers)
    assert status == 200, raw
    return json.loads(raw)


def test_the_login_required_demo_is_logged_in_from_the_api(daemon_factory):
    daemon = daemon_factory(*demo_args("login-required"))
    daemon.wait_listening()
    waiting = wait_until(lambda: (s := status_json(daemon))["login"]["can_press_login"] and s, 20, what="a login to wait")
    assert waiting["login"]["state"] == "login_required"
    assert waiting["bridge"]["connected"] and waiting["bridge"]["capabilities"]["login"] == "supported"
    metrics = daemon.metrics()
    assert sample(metrics, "tdm_bridge_up") == 1 and sample(metrics, "tdm_login_code_pending") == 0
    status, answer = post(port_of(daemon), "/api/miner/login", {})
    assert status == 202, answer
    code = answer["login"]["user_code"]
    assert answer["login"]["activation_url"] == f"https://www.twitch.tv/activate?device-code={code}"
    shown = wait_until(lambda: (s := status_json(daemon))["login"]["state"] in ("code_shown", "logged_in") and s, what="the code")
    if shown["login"]["state"] == "code_shown":  # the simulated Twitch grants the token a few seconds later
        assert shown["login"]["user_code"] == code and shown["login"]["code_expires_at"] > shown["last_activity"]
        metrics = daemon.metrics()
        assert sample(metrics, "tdm_login_code_pending") == 1
        assert sample(metrics, "tdm_login_code_expiry_timestamp_seconds") == shown["login"]["code_expires_at"]
    logged = wait_until(lambda: (s := status_json(daemon))["login"]["state"] == "logged_in" and s, 20, what="logged in")
    assert logged["session"] == "authenticated" and logged["login"]["user_id"] and logged["login"]["user_code"] is None
    assert post(port_of(daemon), "/api/miner/login", {})[0] == 409  # nothing waits for a login any more
    assert sample(daemon.metrics(), "tdm_login_code_pending") == 0


def test_twitchminert_login_logs_the_demo_in(daemon_factory):
    daemon = daemon_factory(*demo_args("login-required"))
    daemon.wait_listening()
    # The demo's banner tells a new user the command run here.
    wait_until(lambda: f"twitchminert login --web.url {daemon.url}\n" in daemon.output() + "\n", 10, what="the banner's login line")
    wait_until(lambda: status_json(daemon)["login"]["can_press_login"], 20, what="a login to wait")
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "login", "--web.url", daemon.url, "--timeout", "60"],
        capture_output=True, text=True, timeout=90, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    code = next(line.split(": ", 1)[1].split()[0] for line in lines if line.startswith("Enter this code"))
    assert f"Activation page: https://www.twitch.tv/activate?device-code={code}" in lines
    assert lines[-1].startswith("Logged in (user id ")
    assert status_json(daemon)["session"] == "authenticated"
    again = subprocess.run([sys.executable, "-m", "exporter", "login", "--web.url", daemon.url], capture_output=True, text=True, timeout=30, cwd=REPO)
    assert again.returncode == 0 and again.stdout.startswith("TDM is logged in")


def test_campaigns_channels_games_reload_and_metrics(daemon_factory, tmp_path):
    daemon = daemon_factory(*run_args(simulator_config(tmp_path, "happy")))
    daemon.wait_listening()
    mining = wait_until(lambda: (s := status_json(daemon))["current_mining"]["confirmed_minutes"] and s, 30, what="mining")
    current = mining["current_mining"]
    campaigns = get_json(daemon, "/api/campaigns")
    assert campaigns and {c["status"] for c in campaigns} == {"active"}
    by_id = {c["id"]: c for c in campaigns}
    mined = by_id[current["campaign_id"]]
    assert current["campaign"] == mined["name"] and mined["game"] == current["game"]
    assert set(mined) == {"id", "name", "game", "status", "linked", "link_url", "starts_at", "ends_at", "drops", "live"}
    assert all(c["live"] for c in campaigns) and mining["bridge"]["live"]  # the running TDM's own picture
    drop = next(d for d in mined["drops"] if d["name"] == current["drop"])
    assert set(drop) == {"id", "name", "required_minutes", "current_minutes", "confirmed_minutes", "claimed", "can_claim", "rewards"}
    assert drop["rewards"] and drop["required_minutes"] == current["required_minutes"]
    assert current["estimated_minutes"] == 0  # the simulated Twitch confirms every minute
    channels = get_json(daemon, "/api/channels")
    assert channels[0]["watching"] and channels[0]["name"] == current["channel"]
    assert sum(c["watching"] for c in channels) == 1
    assert set(channels[0]) == {"name", "online", "game", "drops_enabled", "viewers", "watching", "acl_based", "live"}
    assert mining["channels_monitored"] == len(channels)
    games = get_json(daemon, "/api/games")
    assert games == sorted({c["game"] for c in campaigns}, key=str.casefold)
    metrics = daemon.metrics()
    assert sample(metrics, "tdm_campaigns", status="active") == len(campaigns)
    assert sample(metrics, "tdm_channels", status="online") == sum(c["online"] for c in channels)
    drops = sum(len(c["drops"]) for c in campaigns)
    assert sum(sample(metrics, "tdm_inventory_drops", state=s) for s in ("pending", "in_progress", "claimable", "claimed")) == drops
    assert sample(metrics, "tdm_drop_estimated_minutes", drop=current["drop"], game=current["game"]) == 0

    output = tmp_path / "data" / "logs" / "miner_output.log"

    def fetches() -> int:
        return output.read_text().count('"type":"inventory_clear"')

    before = fetches()
    assert post(port_of(daemon), "/api/miner/reload", {})[0] == 202
    wait_until(lambda: fetches() > before, what="TDM to fetch its inventory again")


def test_replay_rebuilds_the_same_picture(daemon_factory, tmp_path):
    daemon = daemon_factory(*run_args(simulator_config(tmp_path, "happy")))
    daemon.wait_listening()
    wait_until(lambda: status_json(daemon)["current_mining"]["confirmed_minutes"], 30, what="mining")
    daemon.stop()  # TDM stops with it: the file is complete
    output = tmp_path / "data" / "logs" / "miner_output.log"
    result = subprocess.run([sys.executable, "-m", "exporter", "replay", str(output)], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    replayed = result.stdout
    assert sample(replayed, "tdm_campaigns", status="active") >= 1
    assert sample(replayed, "tdm_channels", status="online") >= 1
    assert sample(replayed, "tdm_log_records_total", level="STATE") > 10


@pytest.fixture
def secured_simulator(daemon_factory, tmp_path):
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  {USER}: {hashed}\n")
    config = simulator_config(tmp_path, "login-required")
    config.write_text(config.read_text() + f"web:\n  config_file: {json.dumps(str(web))}\n")
    daemon = daemon_factory(*run_args(config))
    daemon.wait_listening()
    return daemon


def test_post_routes_need_auth_json_and_the_same_site(secured_simulator):
    daemon, port = secured_simulator, port_of(secured_simulator)
    auth = basic_auth(USER, PASSWORD)

    def waiting() -> bool:
        status, _, raw = request(port, "/api/miner/status", auth)
        return status == 200 and json.loads(raw)["login"]["can_press_login"]

    wait_until(waiting, 20, what="a login to wait")
    for path in ("/api/miner/login", "/api/miner/reload"):
        assert post(port, path, {})[0] == 401
        assert post(port, path, {}, {**auth, "Origin": "http://evil.example"})[0] == 403
        assert post(port, path, {}, {**auth, "Sec-Fetch-Site": "cross-site"})[0] == 403
        assert post(port, path, "{}", {**auth, "Content-Type": "text/plain"})[0] == 415
        assert post(port, path, [1], auth)[0] == 400
    for path in ("/api/campaigns", "/api/channels", "/api/games", "/api/miner/status"):
        assert request(port, path)[0] == 401
    status, answer = post(port, "/api/miner/login", {}, {**auth, "Origin": f"http://127.0.0.1:{port}"})
    assert status == 202 and answer["login"]["user_code"]
    assert post(port, "/api/miner/reload", None, auth)[0] == 202  # an empty body is an empty object
    code = answer["login"]["user_code"]
    status, _, raw = request(port, "/api/miner/status")
    assert status == 401 and code.encode() not in raw


def test_without_the_launcher_the_bridge_routes_say_unsupported(daemon_factory, tmp_path):
    log = tmp_path / "log.txt"
    log.write_text("2026-11-23 22:00:00.000:\t   INFO:\tLogin successful, user ID: 12345\n")
    config = tmp_path / "twitchminert.yaml"
    config.write_text(f"logs:\n  files: [{json.dumps(str(log))}]\nstorage:\n  path: {json.dumps(str(tmp_path / 'data'))}\n")
    daemon = daemon_factory(*run_args(config))
    daemon.wait_listening()
    port = port_of(daemon)
    for path in ("/api/campaigns", "/api/channels", "/api/games"):
        status, _, raw = request(port, path)
        assert status == 501 and "launcher" in json.loads(raw)["message"]
    for path in ("/api/miner/login", "/api/miner/reload"):
        assert post(port, path, {})[0] == 501
    answer = wait_until(lambda: (s := status_json(daemon))["session"] == "authenticated" and s, what="the log read")
    assert answer["bridge"]["connected"] is False and set(answer["bridge"]["capabilities"].values()) == {"unsupported"}
    assert "launcher" in answer["bridge"]["reason"]
    assert answer["login"]["state"] == "logged_in"  # from the log
    assert sample(daemon.metrics(), "tdm_bridge_up") is None  # nothing to be up
