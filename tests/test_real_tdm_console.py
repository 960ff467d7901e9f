"""The web console against the real TDM (../shared/tdm-src) and the offline Twitch mock, in headless Chromium:
a fresh TDM logged in from the page alone (Log in, the code, logged in), and a restored TDM's campaign cards
and channels as the mock serves them.

Needs what the real-TDM tests need (tests/realtdm.py) and Chromium; without them these skip, except with
CI=true, where they fail.
"""

from __future__ import annotations

import re

import pytest

from helpers import console_page, expect, headless_chromium
from realtdm import MOCK_GAME, real_tdm, tdm_runtime  # noqa: F401  (fixtures)
from test_real_tdm_bridge import MOCK_CAMPAIGN, MOCK_CHANNEL, MOCK_CODE, MOCK_USER_ID

WAIT_MS = 60_000


@pytest.fixture(scope="module")
def browser():
    yield from headless_chromium("the real-TDM console tests cannot run in CI")


@pytest.fixture
def page(browser):
    yield from console_page(browser)


def test_a_fresh_real_tdm_is_logged_in_from_the_page(page, real_tdm):
    tdm = real_tdm(session="fresh")
    tdm.wait_status(lambda s: s["login"]["can_press_login"], what="TDM waiting for the Login button")
    page.goto(tdm.url + "/")
    button = page.locator("[data-testid=login-button]")
    expect(button).to_be_enabled(timeout=WAIT_MS)
    assert "TDM's window" not in page.locator("#status-detail").text_content()
    button.click()
    expect(page.locator("[data-testid=login-code]")).to_have_text(MOCK_CODE, timeout=WAIT_MS)
    link = page.locator("[data-testid=login-activate-link]")
    assert link.get_attribute("href") == f"https://www.twitch.tv/activate?device-code={MOCK_CODE}"
    expect(page.locator("[data-testid=login-countdown]")).to_contain_text("expires in")
    expect(page.locator("[data-testid=login-user]")).to_have_text(f"Logged in as {MOCK_USER_ID}", timeout=WAIT_MS)


def test_a_restored_real_tdm_shows_its_campaign_cards_and_channels(page, real_tdm):
    tdm = real_tdm()
    tdm.wait_status(lambda s: s["current_mining"]["confirmed_minutes"] and s["channels_monitored"],
                    what="mining through the bridge")
    page.goto(tdm.url + "/#campaigns")
    card = page.locator("[data-testid=campaign-card]")
    expect(card).to_have_count(1, timeout=WAIT_MS)
    expect(card).to_have_attribute("data-current", "true", timeout=WAIT_MS)
    assert card.locator("h3").text_content() == MOCK_CAMPAIGN
    assert card.locator(".game").text_content() == MOCK_GAME
    assert "linked" in card.locator(".meta").text_content()
    drop = card.locator(".drop")
    expect(drop).to_have_count(1)
    assert drop.locator(".drop-name").text_content() == "Mock Drop"
    assert drop.locator(".rewards").text_content() == "Rewards: Mock Reward"
    expect(drop.locator(".bar-text")).to_have_text(re.compile(r"^\d+ / 10 min"))
    assert drop.get_attribute("data-current") == "true"

    page.locator("#tab-channels").click()
    rows = page.locator("[data-testid=channel-row]")
    expect(rows).to_have_count(1, timeout=WAIT_MS)
    assert rows.nth(0).get_attribute("data-watching") == "true"
    assert rows.nth(0).locator("td").nth(0).text_content().startswith(MOCK_CHANNEL)
    assert rows.nth(0).locator("td").nth(2).text_content() == MOCK_GAME
