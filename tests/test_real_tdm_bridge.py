"""The bridge inside the real TDM (../shared/tdm-src), supervised by `twitchminert run` against the mock.

Issue 12's "done when": a fresh TDM is logged in from the API (the code in the status within 10 s, no
browser), a restored one shows the mock's campaigns, channels and games, Reload makes TDM fetch its
inventory again (seen at the mock), and a TDM whose gui.py lacks a hook mines on with that capability
reported unsupported. Once the restored TDM dies, what it showed is last known, never live.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time

from conftest import http_get, sample, wait_until
from helpers import request
from realtdm import MOCK_GAME, real_tdm, tdm_runtime  # noqa: F401  (fixtures)

# What ../shared/tdm/offline/mock_twitch.py serves.
MOCK_USER_ID = 123456789
MOCK_CODE = "MOCKCODE"
MOCK_CAMPAIGN = "Mock Campaign"
MOCK_CHANNEL = "MockStreamer"


def post(tdm, path: str) -> tuple[int, dict]:
    port = int(tdm.url.rsplit(":", 1)[1])
    status, _, raw = request(port, path, {"Content-Type": "application/json"}, "POST", body=b"{}")
    return status, json.loads(raw)


def inventory_fetches(tdm) -> int:
    """Inventory GQL requests the mock has answered (it logs every request)."""
    return len(re.findall(r'"operationName": ?"Inventory"', tdm.mock.text()))


def test_a_fresh_tdm_is_logged_in_from_the_api_without_a_browser(real_tdm):
    tdm = real_tdm(session="fresh", start=False)
    browser_ran = tdm.workdir / "browser-ran"
    fake_browser = tdm.workdir / "browser.sh"
    fake_browser.write_text(f"#!/bin/sh\ntouch {browser_ran}\n")
    fake_browser.chmod(0o755)
    # TDM opens the activation page with Python's webbrowser, which honours BROWSER.
    ca = json.dumps(str(tdm.runtime.ca_file))
    config = tdm.config_file.read_text()
    assert f"env: {{SSL_CERT_FILE: {ca}}}" in config
    tdm.config_file.write_text(config.replace(f"env: {{SSL_CERT_FILE: {ca}}}", f"env: {{SSL_CERT_FILE: {ca}, BROWSER: {json.dumps(str(fake_browser))}}}"))
    tdm.start()
    waiting = tdm.wait_status(lambda s: s["login"]["can_press_login"], what="TDM waiting for the Login button")
    assert waiting["login"]["state"] == "login_required" and waiting["bridge"]["connected"]
    pressed = time.monotonic()
    status, answer = post(tdm, "/api/miner/login")
    assert status == 202, answer
    shown = tdm.wait_status(lambda s: s["login"]["user_code"], 10, what="the code in the status")
    assert time.monotonic() - pressed < 10
    assert shown["login"]["user_code"] == MOCK_CODE
    assert shown["login"]["activation_url"] == f"https://www.twitch.tv/activate?device-code={MOCK_CODE}"
    assert shown["login"]["code_expires_at"] > time.time() + 1700  # the mock's expires_in: 1800
    logged = tdm.wait_status(lambda s: s["session"] == "authenticated", what="the mock to grant the token")
    assert logged["login"]["state"] == "logged_in" and logged["login"]["user_id"] == MOCK_USER_ID
    tdm.wait_status(lambda s: s["status"] == "mining", what="mining after the login")
    assert not browser_ran.exists(), "TDM started a browser after a Login pressed through the bridge"
    assert post(tdm, "/api/miner/login")[0] == 409


def test_a_restored_tdm_shows_the_mocks_campaigns_channels_and_games_and_reloads(real_tdm):
    tdm = real_tdm(miner="backoff: {initial: 1h, max: 1h}")  # killed at the end, it stays down
    mining = tdm.wait_status(
        lambda s: s["current_mining"]["confirmed_minutes"] is not None and s["channels_monitored"], what="mining through the bridge"
    )
    assert mining["login"] == {"state": "logged_in", "user_id": MOCK_USER_ID, "user_code": None, "activation_url": None,
                               "code_expires_at": None, "can_press_login": False}
    assert all(state == "supported" for state in mining["bridge"]["capabilities"].values()), mining["bridge"]
    assert mining["current_mining"]["campaign"] == MOCK_CAMPAIGN
    (campaign,) = tdm.get_json("/api/campaigns")
    assert (campaign["name"], campaign["game"], campaign["status"], campaign["linked"]) == (MOCK_CAMPAIGN, MOCK_GAME, "active", True)
    assert campaign["link_url"] == "https://example.invalid/link"
    assert campaign["starts_at"] < time.time() < campaign["ends_at"]
    (drop,) = campaign["drops"]
    assert (drop["name"], drop["required_minutes"], drop["rewards"]) == ("Mock Drop", 10, ["Mock Reward"])
    assert drop["confirmed_minutes"] >= 2 and drop["current_minutes"] >= drop["confirmed_minutes"]
    channels = tdm.get_json("/api/channels")
    assert [c["name"] for c in channels] == [MOCK_CHANNEL]
    assert channels[0]["online"] and channels[0]["acl_based"] and channels[0]["game"] == MOCK_GAME
    assert tdm.get_json("/api/games") == [MOCK_GAME]
    before = inventory_fetches(tdm)
    assert before >= 1
    status, answer = post(tdm, "/api/miner/reload")
    assert status == 202, answer
    wait_until(lambda: inventory_fetches(tdm) > before, 20, what="TDM to fetch its inventory again at the mock")
    assert mining["bridge"]["live"] and all(c["live"] for c in channels + [campaign])  # the hello's pid is TDM's

    os.kill(mining["pid"], signal.SIGKILL)  # TDM dies: its bridge says nothing more
    down = tdm.wait_status(lambda s: s["running"] is False, 20, what="TDM down")
    assert down["bridge"]["live"] is False and down["bridge"]["as_of"] is not None
    assert down["current_mining"]["channel"] is None and down["channels_monitored"] is None
    (gone,) = tdm.get_json("/api/channels")
    assert (gone["name"], gone["online"], gone["watching"], gone["live"]) == (MOCK_CHANNEL, None, False, False)
    assert [(c["name"], c["live"]) for c in tdm.get_json("/api/campaigns")] == [(MOCK_CAMPAIGN, False)]
    metrics = tdm.metrics()
    assert sample(metrics, "tdm_channels", status="online") is None and sample(metrics, "tdm_campaigns", status="active") is None
    assert "\ntdm_drop_confirmed_minutes{" not in metrics


def test_a_missing_hook_is_unsupported_while_tdm_mines_on(real_tdm):
    tdm = real_tdm(start=False)
    gui_py = tdm.tdm_dir / "gui.py"
    source = gui_py.read_text()
    assert source.count("class LoginForm:") == 1 and source.count("LoginForm(self, main_frame)") == 1
    gui_py.write_text(source.replace("class LoginForm:", "class LoginPanel:").replace("LoginForm(self, main_frame)", "LoginPanel(self, main_frame)"))
    tdm.start()
    mining = tdm.wait_status(
        lambda s: s["status"] == "mining" and (s["current_mining"]["progress_minutes"] or 0) >= 3, what="TDM mining without the hook"
    )
    capabilities = mining["bridge"]["capabilities"]
    assert capabilities["login"] == "unsupported" and capabilities["login_status"] == "unsupported"
    assert capabilities["campaigns"] == "supported" and capabilities["channels"] == "supported"
    status, answer = post(tdm, "/api/miner/login")
    assert status == 501 and answer["error"] == "unsupported"
    assert mining["login"]["state"] == "logged_in"  # from TDM's log, as without the bridge
    assert [c["name"] for c in tdm.get_json("/api/campaigns")] == [MOCK_CAMPAIGN]
    assert http_get(tdm.url + "/api/games") == (200, json.dumps([MOCK_GAME]))
