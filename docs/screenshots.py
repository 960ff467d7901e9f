"""Screenshots of each view of the web console, for README: `python docs/screenshots.py [--out DIR]`.

Starts `twitchminert demo` (the simulated miner, happy scenario) on a free port, lets it mine for a
while, saves a few settings through the page's own API so the history has something to show, then
photographs every view in light and dark mode with headless Chromium (Debian's, through Playwright).
A second demo in the login-required scenario is photographed after pressing Log in, when the bridge
is there. Writes DIR/<view>-<light|dark>.png (default docs/screenshots).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
VIEWS = ("overview", "campaigns", "channels", "settings", "history")
WAIT_S = 60.0


def start_demo(scenario: str, home: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "exporter", "demo", "--scenario", scenario, "--speed", "60",
         "--web.listen-address", "127.0.0.1:0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "TWITCHMINERT_HOME": str(home)},
    )
    deadline = time.monotonic() + WAIT_S
    for line in process.stdout:  # the daemon logs "listening on http://host:port/"
        match = re.search(r"listening on (http://[\d.]+:\d+)/", line)
        if match:
            return process, match.group(1)
        if time.monotonic() > deadline:
            break
    process.kill()
    raise SystemExit(f"the {scenario} demo did not start")


def status(url: str) -> dict:
    with urllib.request.urlopen(url + "/api/miner/status", timeout=5) as response:
        return json.load(response)


def wait_for(condition, what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {what}")


def shoot(browser, url: str, out: Path, prefix: str = "", views=VIEWS, before=None) -> None:
    for scheme in ("light", "dark"):
        context = browser.new_context(color_scheme=scheme, viewport={"width": 1280, "height": 900}, locale="en-GB")
        page = context.new_page()
        page.goto(url + "/")
        page.wait_for_function("document.querySelector('#status').dataset.state !== 'loading'", timeout=60_000)
        if before is not None:
            before(page)
        for view in views:
            page.click(f"#tab-{view}")
            page.wait_for_timeout(1500)  # the view's first fetch and render (a script, not a test)
            (out / f"{prefix}{view}-{scheme}.png").write_bytes(page.screenshot())  # the first screenful
        context.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="tm-shots-"))
    demos = []
    try:
        happy, url = start_demo("happy", home / "happy")
        demos.append(happy)
        wait_for(lambda: status(url)["status"] == "mining", "mining")
        wait_for(lambda: status(url)["drops"]["claimed_total"] >= 2, "two claims", 180)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
            shoot(browser, url, args.out)
            login, login_url = start_demo("login-required", home / "login")
            demos.append(login)
            wait_for(lambda: status(login_url)["status"] == "login_required", "the login prompt")

            def press_login(page) -> None:
                button = page.locator("[data-testid=login-button]")
                if button.count():
                    button.click()
                    page.locator("[data-testid=login-code]").wait_for(timeout=20_000)

            shoot(browser, login_url, args.out, "login-", ("overview",), press_login)
            browser.close()
    finally:
        for demo in demos:
            demo.send_signal(signal.SIGTERM)
            try:
                demo.wait(20)
            except subprocess.TimeoutExpired:
                demo.kill()
        shutil.rmtree(home, ignore_errors=True)
    for shot in sorted(args.out.glob("*.png")):
        print(shot.relative_to(REPO) if shot.is_relative_to(REPO) else shot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
