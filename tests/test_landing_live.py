"""The landing page served by the real daemon (`twitchminert demo`, the simulator's happy scenario),
rendered in headless Chromium through Playwright: it must show Mining, the drop and its progress.

Needs Debian's `chromium` and the PyPI package `playwright` (the system browser, no `playwright
install`). Without them this skips, except with CI=true, where it fails.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from helpers import expect, headless_chromium

SPEED = 60  # simulated seconds per real second: a drop minute every second, so progress moves
WAIT_MS = 30_000  # start-up, the first drop update, and a few of the page's 5 s refreshes
SCREENSHOT_COPY = Path("/tmp/landing-live.png")


@pytest.fixture(scope="module")
def browser():
    yield from headless_chromium("the live landing page test cannot run in CI")


def test_the_live_page_shows_mining_with_the_drop_and_its_progress(browser, daemon_factory, tmp_path: Path) -> None:
    daemon = daemon_factory("demo", "--scenario", "happy", "--web.listen-address", "127.0.0.1:0", "--speed", str(SPEED))
    url = daemon.wait_listening()

    context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        # Optional routes answer 404 when their part is absent (notifications): Chromium logs that as an error.
        page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}")
                if message.type in ("error", "warning") and "status of 404" not in message.text else None)
        page.goto(url + "/")

        expect(page.locator("#status-text")).to_have_text("Mining", timeout=WAIT_MS)
        expect(page.locator("#status")).to_have_attribute("data-state", "mining")
        # a drop name: something other than the page's placeholder dash
        expect(page.locator("#drop-name")).to_have_text(re.compile(r"^(?!\s*—\s*$)\s*\S"), timeout=WAIT_MS)
        # all three at one moment, and the bar with some progress on it
        page.wait_for_function(
            """() => {
                const text = document.querySelector('#status-text').textContent.trim();
                const drop = document.querySelector('#drop-name').textContent.trim();
                const bar = document.querySelector('#drop-progress');
                return text === 'Mining' && drop !== '' && drop !== '—' && bar.value > 0 && bar.max > 0;
            }""",
            timeout=WAIT_MS,
        )
        drop = page.locator("#drop-name").text_content().strip()
        value, maximum = page.locator("#drop-progress").evaluate("bar => [bar.value, bar.max]")
        assert drop and drop != "—"
        assert 0 < value <= maximum == 100
        assert re.fullmatch(r"\d+ / \d+ min · [\d.]+ %", page.locator("#drop-progress-text").text_content().strip())
        assert page.locator("#channel").text_content().strip().startswith("SimStreamer")
        assert page.locator("#game").text_content().strip() in ("Starfall Arena", "Pixel Kingdoms")
        assert page.locator("#session").text_content().strip() == "Authenticated"
        assert page.locator("#data").get_attribute("data-stale") == "false"
        expect(page.locator("#events tr").first).to_be_visible(timeout=WAIT_MS)

        shot = tmp_path / "landing-live.png"
        shot.write_bytes(page.screenshot(full_page=True))  # bytes, not path=: no executor thread
    finally:
        context.close()
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    shutil.copyfile(shot, SCREENSHOT_COPY)
    assert not problems, problems
    assert daemon.stop() == 0
