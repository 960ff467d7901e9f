"""The web console against real daemons, in headless Chromium (Playwright on Debian's chromium).

- the settings editor on a supervised simulator: add a game to the priority list, move it, save; the
  YAML changes with its comments kept, an audit event names the source, and TDM restarts once and
  starts with the new settings.json;
- a validation error shown next to its field, and a stale page (file edited meanwhile) told so;
- through the bridge (issue 12): the login flow in the demo's login-required scenario, and the campaign
  cards and channels of the happy scenario;
- a supervised miner that dies: the status, /metrics and the page stop saying TDM is doing anything,
  and show its campaigns and channels as the last known ones.

Without Playwright or Chromium these skip, except with CI=true, where they fail.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import signal
from pathlib import Path

import pytest

from conftest import http_get, run_args, sample, simulator_config, status_json, wait_until
from exporter.settings_file import load as load_tdm_settings
from helpers import console_page, expect, headless_chromium

WAIT_MS = 30_000


@pytest.fixture(scope="module")
def browser():
    yield from headless_chromium("the web console tests cannot run in CI")


@pytest.fixture
def page(browser):
    yield from console_page(browser)


def audit_events(url: str) -> list[dict]:
    status, body = http_get(url + "/api/history/events?kind=config_change&limit=50")
    assert status == 200, body
    return [e for e in json.loads(body)["events"] if e["fields"].get("action") == "settings_edited"]


def settings_json(tdm_dir: Path) -> dict:
    path = tdm_dir / "settings.json"
    return json.loads(path.read_text()) if path.exists() else {}


def test_adding_a_game_to_the_priority_list_and_saving_restarts_tdm_with_it(page, daemon_factory, tmp_path):
    config = simulator_config(tmp_path, "happy")
    config.write_text("# hand-written: keep this comment\n" + config.read_text().replace(
        "  priority_mode: ending_soonest", "  priority_mode: ending_soonest  # the mode I want"))
    daemon = daemon_factory("run", "--config.file", str(config), "--web.listen-address", "127.0.0.1:0")
    url = daemon.wait_listening()
    first = wait_until(lambda: (s := status_json(daemon))["running"] and s["pid"] and s, 30, what="TDM running")
    tdm_dir = tmp_path / "tdm"
    wait_until(lambda: settings_json(tdm_dir).get("priority") == ["Starfall Arena", "Pixel Kingdoms"], 10,
               what="settings.json at the first start")

    page.goto(url + "/#settings")
    games = page.locator("[data-testid=priority-list] li")
    expect(games).to_have_count(2, timeout=WAIT_MS)
    expect(page.locator("[data-testid=settings-save]")).to_be_disabled()  # nothing changed yet
    page.locator("[data-testid=priority-add-input]").fill("Neon Drift")
    page.locator("[data-testid=priority-add-button]").click()
    expect(games).to_have_count(3)
    page.locator('[data-testid=priority-list] li[data-game="Neon Drift"] [data-action=up]').click()
    expect(games).to_have_text([re.compile("Starfall Arena"), re.compile("Neon Drift"), re.compile("Pixel Kingdoms")])
    page.locator("#set-connection_quality").fill("2")
    page.locator("#set-priority_mode").select_option("low_availability_first")
    page.locator("[data-testid=settings-save]").click()
    expect(page.locator("[data-testid=settings-result]")).to_have_text(re.compile("^Saved"), timeout=WAIT_MS)
    expect(page.locator("[data-testid=settings-error]:visible")).to_have_count(0)

    text = config.read_text()
    assert text.startswith("# hand-written: keep this comment\n")
    assert re.search(r"priority_mode: low_availability_first +# the mode I want\n", text)
    assert '["Starfall Arena", "Neon Drift", "Pixel Kingdoms"]' in text  # the flow list stays a flow list
    assert "connection_quality: 2" in text
    audit = wait_until(lambda: audit_events(url), 10, what="the audit event")
    assert audit[0]["fields"]["source"] == "web"
    assert audit[0]["fields"]["changes"]["priority"][1] == ["Starfall Arena", "Neon Drift", "Pixel Kingdoms"]
    assert audit[0]["fields"]["changes"]["priority_mode"] == ["ending_soonest", "low_availability_first"]

    # the usual reload path: TDM is stopped, settings.json written, TDM started again, once
    written = wait_until(lambda: settings_json(tdm_dir).get("priority") == ["Starfall Arena", "Neon Drift", "Pixel Kingdoms"]
                         and settings_json(tdm_dir), 30, what="settings.json with the new list")
    assert written["connection_quality"] == 2
    assert load_tdm_settings(tdm_dir).priority_mode.yaml_name == "low_availability_first"
    after = wait_until(lambda: (s := status_json(daemon))["running"] and s["pid"] not in (None, first["pid"]) and s, 30,
                       what="TDM running again")
    assert after["supervisor"]["restarts"] == 1
    # the file watcher also sees the write: its reload finds nothing new (no second restart)
    wait_until(lambda: "no change" in daemon.output() or daemon.output().count("restarting the miner") >= 1, 10,
               what="the reloads to settle")
    assert daemon.output().count("restarting the miner (config)") == 1
    # the page shows what is saved now, and nothing left to save
    expect(games).to_have_count(3)
    expect(page.locator("[data-testid=settings-save]")).to_be_disabled()


def editor_daemon(daemon_factory, tmp_path: Path):
    log = tmp_path / "log.txt"
    log.touch()
    config = tmp_path / "twitchminert.yaml"
    config.write_text(
        f"logs:\n  files: [{json.dumps(str(log))}]\n"
        f"settings:\n  priority: [\"Starfall Arena\"]  # one game\n"
        f"storage:\n  path: {json.dumps(str(tmp_path / 'data'))}\n"
    )
    daemon = daemon_factory("run", "--config.file", str(config), "--web.listen-address", "127.0.0.1:0")
    daemon.wait_listening()
    return daemon, config


def test_a_validation_error_is_shown_next_to_its_field(page, daemon_factory, tmp_path):
    daemon, config = editor_daemon(daemon_factory, tmp_path)
    before = config.read_bytes()
    page.goto(daemon.url + "/#settings")
    expect(page.locator("[data-testid=priority-list] li")).to_have_count(1, timeout=WAIT_MS)
    page.locator("#set-connection_quality").fill("9")
    page.locator("[data-testid=settings-save]").click()
    error = page.locator('[data-testid=settings-error][data-field="connection_quality"]')
    expect(error).to_be_visible(timeout=WAIT_MS)
    expect(error).to_have_text("expected a whole number from 1 to 6, got 9")
    assert page.locator("#set-connection_quality").get_attribute("aria-invalid") == "true"
    # next to its field: inside the same .field block as the input
    assert error.evaluate("node => node.closest('.field').querySelector('#set-connection_quality') !== null")
    expect(page.locator("[data-testid=settings-error]:visible")).to_have_count(1)
    assert config.read_bytes() == before

    # a game already on the list is refused in the page, next to the list
    page.locator("[data-testid=priority-add-input]").fill("Starfall Arena")
    page.locator("[data-testid=priority-add-button]").click()
    expect(page.locator('[data-testid=settings-error][data-field="priority"]')).to_have_text("Starfall Arena is already on the list")


def test_a_save_over_a_file_changed_meanwhile_is_refused_and_said(page, daemon_factory, tmp_path):
    daemon, config = editor_daemon(daemon_factory, tmp_path)
    page.goto(daemon.url + "/#settings")
    expect(page.locator("[data-testid=priority-list] li")).to_have_count(1, timeout=WAIT_MS)
    config.write_text(config.read_text().replace("# one game", "# edited by hand meanwhile"))
    page.locator("[data-testid=priority-add-input]").fill("Pixel Kingdoms")
    page.locator("[data-testid=priority-add-button]").click()
    page.locator("[data-testid=settings-save]").click()
    conflict = page.locator('[data-testid=settings-error][data-field="_file"]')
    expect(conflict).to_be_visible(timeout=WAIT_MS)
    expect(conflict).to_contain_text("changed on disk")
    assert "Pixel Kingdoms" not in config.read_text()
    page.locator("#settings-revert").click()  # loads the file again
    expect(page.locator("[data-testid=priority-list] li")).to_have_count(1)
    expect(conflict).to_be_hidden()


# -- with the bridge (issue 12) ---------------------------------------------------------------------


def test_login_flow_in_the_login_required_demo(page, daemon_factory):
    daemon = daemon_factory("demo", "--scenario", "login-required", "--web.listen-address", "127.0.0.1:0", "--speed", "60")
    url = daemon.wait_listening()
    page.goto(url + "/")
    button = page.locator("[data-testid=login-button]")
    expect(button).to_be_visible(timeout=WAIT_MS)
    assert "TDM's window" not in page.locator("#status-detail").text_content()
    button.click()
    code = page.locator("[data-testid=login-code]")
    expect(code).to_be_visible(timeout=WAIT_MS)
    assert re.fullmatch(r"[A-Z0-9-]{4,}", code.text_content().strip())
    assert page.locator("[data-testid=login-activate-link]").get_attribute("href").startswith("https://")
    expect(page.locator("[data-testid=login-countdown]")).to_contain_text("expires in")
    expect(page.locator("[data-testid=login-user]")).to_contain_text("Logged in as", timeout=WAIT_MS)


def test_campaign_cards_in_the_happy_demo(page, daemon_factory):
    daemon = daemon_factory("demo", "--scenario", "happy", "--web.listen-address", "127.0.0.1:0", "--speed", "60")
    url = daemon.wait_listening()
    page.goto(url + "/#campaigns")
    page.locator("#campaign-status").select_option("")
    cards = page.locator("[data-testid=campaign-card]")
    expect(cards.first).to_be_visible(timeout=WAIT_MS)
    campaigns = json.loads(http_get(url + "/api/campaigns")[1])
    campaigns = campaigns["campaigns"] if isinstance(campaigns, dict) else campaigns
    expect(cards).to_have_count(len(campaigns))
    expect(page.locator('[data-testid=campaign-card][data-current="true"]')).to_have_count(1, timeout=WAIT_MS)
    assert page.locator("[data-testid=campaign-card] .drop").count() == sum(len(c["drops"]) for c in campaigns)
    page.locator("#tab-channels").click()
    expect(page.locator("[data-testid=channel-row]").first).to_have_attribute("data-watching", "true", timeout=WAIT_MS)


def test_a_dead_miners_picture_is_last_known_in_the_status_metrics_and_page(page, daemon_factory, tmp_path):
    # A long backoff: once killed, the miner stays down for the rest of the test.
    config = simulator_config(tmp_path, "happy", miner="backoff:\n  initial: 1h\n  max: 1h")
    daemon = daemon_factory(*run_args(config))
    url = daemon.wait_listening()
    mining = wait_until(lambda: (s := status_json(daemon))["current_mining"]["campaign_id"] and s["channels_monitored"] and s,
                        30, what="mining through the bridge")
    assert mining["bridge"]["live"] is True
    watched = [c for c in json.loads(http_get(url + "/api/channels")[1]) if c["watching"]]
    assert len(watched) == 1 and watched[0]["online"] is True and watched[0]["live"] is True
    wait_until(lambda: sample(daemon.metrics(), "tdm_channels", status="online"), 10, what="tdm_channels online")

    os.kill(mining["pid"], signal.SIGKILL)  # a crash: TDM says nothing more
    down = wait_until(lambda: (s := status_json(daemon))["running"] is False and s, 15, what="the miner down")
    assert down["supervisor"]["state"] == "backoff"
    assert down["bridge"]["live"] is False and down["bridge"]["connected"] is False
    assert mining["bridge"]["as_of"] <= down["bridge"]["as_of"] <= down["last_activity"] + 1
    assert down["current_mining"]["channel"] is None and down["current_mining"]["campaign_id"] is None
    assert down["channels_monitored"] is None and down["login"]["state"] == "unknown"

    channels = json.loads(http_get(url + "/api/channels")[1])
    assert watched[0]["name"] in [c["name"] for c in channels]  # kept, as last known...
    assert all(c["online"] is None and c["viewers"] is None and c["watching"] is False and c["live"] is False for c in channels)
    campaigns = json.loads(http_get(url + "/api/campaigns")[1])
    assert mining["current_mining"]["campaign_id"] in [c["id"] for c in campaigns]
    assert all(c["live"] is False for c in campaigns)

    metrics = daemon.metrics()
    assert sample(metrics, "tdm_miner_up") == 0 and sample(metrics, "tdm_bridge_up") == 0
    for status in ("online", "offline", "pending"):
        assert sample(metrics, "tdm_channels", status=status) is None, status  # ...but no series vouches for it
    assert sample(metrics, "tdm_campaigns", status="active") is None
    assert "\ntdm_drop_confirmed_minutes{" not in metrics and "\ntdm_inventory_drops{" not in metrics
    assert sample(metrics, "tdm_login_code_pending") == 0

    page.goto(url + "/#channels")
    rows = page.locator("[data-testid=channel-row]")
    expect(rows).to_have_count(len(channels), timeout=WAIT_MS)
    expect(page.locator("[data-testid=channels-not-live]")).to_contain_text("TDM is not running")
    assert page.locator("[data-testid=channel-row][data-watching=true]").count() == 0
    assert set(rows.evaluate_all("rows => rows.map(r => r.cells[1].textContent)")) == {"unknown"}
    page.locator("#tab-campaigns").click()
    expect(page.locator("[data-testid=campaigns-not-live]")).to_contain_text("TDM is not running")
    expect(page.locator('[data-testid=campaign-card][data-current="true"]')).to_have_count(0)
    expect(page.locator("[data-testid=reload-campaigns]")).to_be_disabled()


# -- history ----------------------------------------------------------------------------------------


def test_the_history_shows_what_happened_overnight(page, daemon_factory, tmp_path):
    """A night in TDM's log: the events paged, filtered and searched, the claims, and both charts."""
    daemon, config = editor_daemon(daemon_factory, tmp_path)
    start = datetime.datetime.now().replace(microsecond=0) - datetime.timedelta(hours=8)
    lines = []
    for minute in range(1, 61):
        lines.append(record(start + datetime.timedelta(minutes=minute), "CALL",
                            f"Drop update from websocket: Gem Pack (Pixel Kingdoms, {minute}/60)"))
    lines.append(record(start + datetime.timedelta(minutes=61), "GUI", "Claimed drop: Pixel Kingdoms Gem Pack (1/2)"))
    lines.append(record(start + datetime.timedelta(minutes=62), "WARNING", "Websocket[0] reconnecting..."))
    for minute in range(1, 6):
        source = "Drop progress from active search" if minute == 5 else "Drop update from websocket"
        lines.append(record(start + datetime.timedelta(minutes=62 + minute), "CALL", f"{source}: Crown (Pixel Kingdoms, {minute}/30)"))
    lines.append(record(start + datetime.timedelta(minutes=70), "INFO", "Checking login"))  # ends the record before
    (tmp_path / "log.txt").write_text("".join(lines))
    wait_until(lambda: json.loads(http_get(daemon.url + "/api/history/events?q=Checking")[1])["total"] == 1, 15,
               what="the log read")

    page.goto(daemon.url + "/#history")
    rows = page.locator("[data-testid=event-row]")
    expect(rows).to_have_count(50, timeout=WAIT_MS)  # a page
    assert rows.nth(0).get_attribute("data-kind") == "login_checking"  # newest first
    expect(page.locator("[data-testid=history-page]")).to_have_text("1–50 of 68")
    page.locator("[data-testid=history-older]").click()
    expect(page.locator("[data-testid=history-page]")).to_have_text("51–68 of 68")
    expect(rows).to_have_count(18)
    expect(page.locator("[data-testid=history-older]")).to_be_disabled()
    page.locator("[data-testid=history-newer]").click()
    expect(rows).to_have_count(50)

    page.locator("[data-testid=history-level]").select_option("WARNING")
    expect(rows).to_have_count(1)
    assert rows.nth(0).get_attribute("data-kind") == "ws_reconnecting"
    page.locator("[data-testid=history-level]").select_option("")
    page.locator("[data-testid=history-kind]").select_option("drop_claimed")
    expect(rows).to_have_count(1)
    page.locator("[data-testid=history-kind]").select_option("")
    page.locator("[data-testid=history-search]").fill("crown")
    expect(rows).to_have_count(5)
    expect(page.locator("[data-testid=history-page]")).to_have_text("1–5 of 5")

    claims = page.locator("[data-testid=claim-row] td")
    expect(claims).to_have_count(5)
    assert claims.all_text_contents()[1:] == ["Pixel Kingdoms", "Gem Pack", "Gem Pack", "1 of 2"]
    bars = page.locator("[data-testid=chart-per-day] rect")
    expect(bars).to_have_count(14)
    claim_day = (start + datetime.timedelta(minutes=61)).date().isoformat()  # local: the browser's zone is ours
    assert f"{claim_day}: 1" in page.locator("[data-testid=chart-per-day] rect title").all_text_contents()
    # the current drop over time: Crown, four confirmed points and one estimate
    expect(page.locator("[data-testid=chart-progress] circle.pt-confirmed")).to_have_count(4)
    expect(page.locator("[data-testid=chart-progress] circle.pt-estimated")).to_have_count(1)


def record(when: datetime.datetime, level: str, text: str) -> str:
    return f"{when:%Y-%m-%d %H:%M:%S}.000:\t{level:>7}:\t{text}\n"
