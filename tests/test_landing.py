"""The landing page (exporter/landing.html) in a real headless Chromium, driven by Playwright.

A tiny http.server on 127.0.0.1 serves the page as-is plus canned answers for /api/miner/status and
/api/events (tests/data/status/*.json); the daemon's own integration test lives elsewhere.
Needs Debian's `chromium` and the PyPI package `playwright` (no `playwright install`: we use the system
browser). Without them these tests skip, except with CI=true, where they fail.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest

from conftest import wait_until
from helpers import expect, headless_chromium

REPO = Path(__file__).resolve().parents[1]
LANDING = REPO / "exporter" / "landing.html"
SAMPLES = Path(__file__).resolve().parent / "data" / "status"
TIMEZONE = "Asia/Kolkata"  # UTC+05:30 all year: a zone no CI machine is in by accident
NOW = 1795472800.0  # the browser's fixed wall clock, just after the samples' last activity
REFRESH_S = 5  # the page's refresh period
WITHIN_REFRESH_MS = (REFRESH_S + 2) * 1000  # one refresh period plus slack for a loaded machine
SCREENSHOT_COPY = Path("/tmp/landing-happy.png")


def load_sample(name: str):
    return json.loads((SAMPLES / f"{name}.json").read_text())


def local_clock(posix: float) -> str:
    return datetime.fromtimestamp(posix, ZoneInfo(TIMEZONE)).strftime("%H:%M:%S")


# --- a canned exporter ---------------------------------------------------------------------------


class Canned:
    """What the fake exporter answers; tests change it while the page runs."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.status_code = 200
        self.status = load_sample("happy")
        self.events = load_sample("events")
        self.event_queries: list[dict[str, list[str]]] = []

    def set(self, **changes) -> None:
        with self.lock:
            for name, value in changes.items():
                setattr(self, name, value)


class FakeExporter:
    def __init__(self, canned: Canned) -> None:
        page = LANDING.read_bytes()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                with canned.lock:
                    if url.path == "/":
                        self._send(200, page, "text/html; charset=utf-8")
                    elif url.path == "/api/miner/status":
                        body = json.dumps(canned.status).encode() if canned.status_code == 200 else b"internal error\n"
                        self._send(canned.status_code, body, "application/json")
                    elif url.path == "/api/events":
                        canned.event_queries.append(parse_qs(url.query))
                        self._send(200, json.dumps(canned.events).encode(), "application/json")
                    else:
                        self._send(404, b"not found\n", "text/plain")

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # HTTP/1.0: one request per connection
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="landing-test-http")
        self._thread.start()
        self._stopped = False

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._httpd.shutdown()
        self._thread.join(5)
        self._httpd.server_close()


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    yield from headless_chromium("landing page tests cannot run in CI")


@pytest.fixture
def canned():
    return Canned()


@pytest.fixture
def site(canned):
    server = FakeExporter(canned)
    yield server
    server.stop()


def _new_page(browser, color_scheme: str = "light"):
    context = browser.new_context(
        timezone_id=TIMEZONE, locale="en-GB", color_scheme=color_scheme, viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}")
            if "Content Security Policy" in message.text or "Refused to" in message.text
            else None
        ),
    )
    page.clock.set_fixed_time(datetime.fromtimestamp(NOW, timezone.utc))
    return context, page, problems


@pytest.fixture
def page(browser):
    context, page, problems = _new_page(browser)
    yield page
    context.close()
    assert not problems, problems


def open_page(page, site, expected_state: str | None = None) -> None:
    page.goto(site.url + "/")
    status = page.locator("#status")
    if expected_state:
        expect(status).to_have_attribute("data-state", expected_state)
    else:
        expect(status).not_to_have_attribute("data-state", "loading")


def text(page, selector: str) -> str:
    return page.locator(selector).text_content().strip()


# --- the page as a person sees it ----------------------------------------------------------------

CASES = {
    # sample: (status text, #status data-state, session text)
    "happy": ("Mining", "mining", "Authenticated"),
    "terminated": ("Terminated", "terminated", "Authenticated"),
    "login_required": ("Login required", "login_required", "Login required"),
    "down": ("Down", "down", "Unknown"),
}


@pytest.mark.parametrize("sample", list(CASES))
def test_each_sample_shows_its_status_and_session(page, site, canned, sample):
    status_text, state, session_text = CASES[sample]
    data = load_sample(sample)
    canned.set(status=data)
    open_page(page, site, state)

    assert text(page, "#status-text") == status_text
    assert page.locator("#status").get_attribute("data-tone") in {"ok", "info", "warn", "bad", "idle"}
    assert text(page, "#session") == session_text
    assert page.title().startswith(status_text)
    mining = data["current_mining"]
    assert text(page, "#channel") == (mining["channel"] or "—")
    assert text(page, "#game") == (mining["game"] or "—")
    assert text(page, "#drop-name") == (mining["drop"] or "—")
    assert page.locator("#drop-progress").evaluate("bar => bar.value") == (mining["percent"] or 0)
    assert page.locator("#data").get_attribute("data-stale") == "false"


def test_happy_state_details_and_screenshot(page, site, tmp_path):
    open_page(page, site, "mining")

    assert text(page, "#status-text") == "Mining"
    assert text(page, "#drop-name") == "Sim Drop"
    assert text(page, "#channel") == "SimStreamer1"
    assert text(page, "#game") == "Sim Game"
    bar = page.locator("#drop-progress")
    assert bar.evaluate("bar => [bar.tagName, bar.value, bar.max]") == ["PROGRESS", 40, 100]
    assert bar.get_attribute("aria-valuetext") == "4 / 10 min · 40 %"
    assert text(page, "#drop-progress-text") == "4 / 10 min · 40 %"
    # ETA in the browser's zone, relative to its (fixed) clock: 1795473147 - 1795472800 = 347 s
    assert text(page, "#drop-eta") == f"ETA {local_clock(1795473147.0)} (in 5 min 47 s)"
    assert text(page, "#session") == "Authenticated"
    assert text(page, "#uptime") == "1 h 0 min"
    assert text(page, "#restarts") == "0"
    assert text(page, "#supervisor-state") == "running"
    assert text(page, "#last-exit") == "none"
    assert text(page, "#cpu") == "1.5 % CPU"
    assert text(page, "#memory") == "85.2 MB"
    assert text(page, "#drops-per-hour") == "0.5"
    assert text(page, "#drops-today") == "2"
    assert text(page, "#config") == "ok"
    assert page.locator("#config-error").is_hidden()
    assert page.locator("#login-help").is_hidden()
    assert text(page, "#version") == "v0.1.0"
    assert text(page, "#last-activity") == f"{local_clock(1795472787.8)} (12 s ago)"
    links = {page.locator(f"#link-{name}").get_attribute("href") for name in ("metrics", "status", "events")}
    assert {site.url + "/" + href for href in links} == {
        site.url + "/metrics",
        site.url + "/api/miner/status",
        site.url + "/api/events",
    }
    help_text = text(page, "#help")
    for words in ("Priority list", "Priority mode", "Terminated", "Login required", "twitch.tv/activate"):
        assert words in help_text

    shot = tmp_path / "landing-happy.png"
    shot.write_bytes(page.screenshot(full_page=True))  # not path=: Playwright would write it from an executor thread
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    shutil.copyfile(shot, SCREENSHOT_COPY)


def test_dark_mode_renders(browser, site, tmp_path):
    context, page, problems = _new_page(browser, color_scheme="dark")
    try:
        open_page(page, site, "mining")
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(18, 20, 24)"
        shot = tmp_path / "landing-happy-dark.png"
        shot.write_bytes(page.screenshot(full_page=True))
        assert shot.read_bytes().startswith(b"\x89PNG")
        shutil.copyfile(shot, SCREENSHOT_COPY.with_name("landing-happy-dark.png"))
    finally:
        context.close()
    assert not problems, problems


def test_terminated_shows_last_exit_and_config_error(page, site, canned):
    canned.set(status=load_sample("terminated"))
    open_page(page, site, "terminated")
    assert "fatal error" in text(page, "#status-detail")
    assert "restart" in text(page, "#status-detail")
    assert text(page, "#last-exit") == "1 (fatal error)"
    assert text(page, "#restarts") == "1"
    assert text(page, "#config") == "failed"
    error = page.locator("#config-error")
    expect(error).to_be_visible()
    assert "config.yaml:12: miner.priority[3]: expected a string, got 12" in error.text_content()
    assert text(page, "#drop-eta") == "ETA unknown"
    assert page.locator("#drop-progress").evaluate("bar => bar.value") == 70


def test_login_required_explains_and_shows_the_device_code(page, site, canned):
    code_event = {
        "time": 1795472570.0,
        "kind": "login_device_code",
        "level": "GUI",
        "source": "gui",
        "message": "Enter this code on the Twitch's device activation page: ABCD-EFGH",
        "fields": {"user_code": "ABCD-EFGH"},
    }
    canned.set(status=load_sample("login_required"), events=[code_event])
    open_page(page, site, "login_required")
    help_box = page.locator("#login-help")
    expect(help_box).to_be_visible()
    assert "twitch.tv/activate" in help_box.text_content()
    assert text(page, "#device-code") == "ABCD-EFGH"
    assert "TDM's window" in text(page, "#status-detail")
    assert text(page, "#cookies").startswith("missing")
    assert text(page, "#drop-progress-text") == "No drop in progress"


def test_miner_not_running_is_down(page, site, canned):
    canned.set(status=load_sample("down"))
    open_page(page, site, "down")
    status = page.locator("#status")
    assert status.get_attribute("data-reason") == "not_running"
    detail = text(page, "#status-detail")
    assert "not running" in detail and "waiting before a restart" in detail and "1 (fatal error)" in detail
    assert text(page, "#restarts") == "3"
    assert text(page, "#uptime") == "—"
    assert text(page, "#cpu") == "—" and page.locator("#cpu-memory-sep").is_hidden()


# --- events --------------------------------------------------------------------------------------


def test_events_newest_first_in_local_time(page, site, canned):
    canned.set(events=list(reversed(load_sample("events"))))  # the page orders them itself
    open_page(page, site, "mining")
    rows = page.locator("#events tr")
    expect(rows).to_have_count(9)
    first = rows.nth(0)
    assert first.locator(".msg").text_content() == "Drop update from websocket: Sim Drop (Sim Game, 4/10)"
    assert first.locator("time").text_content() == local_clock(1795472787.8)
    assert first.locator("time").get_attribute("datetime") == "2026-11-23T22:26:27.800Z"
    assert rows.nth(8).locator(".msg").text_content() == "Checking login"
    assert canned.event_queries[0] == {"limit": ["50"]}
    # a multi-line record (a traceback) folds under its first line
    crash = page.locator('#events tr[data-kind="task_crash"]')
    assert crash.locator("summary").text_content() == "Exception in process_stream_state task"
    assert "KeyError: 'viewers'" in crash.locator("details").text_content()


def test_a_message_after_a_blank_line_folds_under_its_first_words(page, site, canned):
    """TDM prints "\nApplication Terminated.\n...": the row shows those words, not an empty fold."""
    terminated = {
        "time": NOW - 5,
        "kind": "application_terminated",
        "level": "INFO",
        "source": "log",
        "message": "\nApplication Terminated.\nClose the window to exit the application.",
        "fields": {},
    }
    canned.set(events=[terminated])
    open_page(page, site, "mining")
    row = page.locator('#events tr[data-kind="application_terminated"]')
    expect(row).to_have_count(1)
    assert row.locator("summary").text_content() == "Application Terminated."
    assert "Close the window to exit the application." in row.locator("details").text_content()


def test_level_filter_hides_non_matching_events(page, site, canned):
    open_page(page, site, "mining")
    rows = page.locator("#events tr")
    expect(rows).to_have_count(9)
    select = page.locator("#event-level")
    assert select.locator("option").all_text_contents()[:6] == ["all", "ERROR", "WARNING", "INFO", "CALL", "GUI"]

    for level, count in (("WARNING", 1), ("CALL", 2), ("GUI", 1), ("INFO", 4), ("ERROR", 1)):
        select.select_option(level)
        expect(rows).to_have_count(count)
        assert set(page.locator("#events tr").evaluate_all("rows => rows.map(r => r.dataset.level)")) == {level}
        # the page also asks the exporter for that level only, so older matches are not crowded out
        query = {"level": [level], "limit": ["50"]}
        wait_until(lambda query=query: query in canned.event_queries, 5, what=f"a request for {level} events")
    select.select_option("STDERR")
    expect(rows).to_have_count(0)
    expect(page.locator("#events-empty")).to_have_text("No STDERR events among the latest.")
    select.select_option("")
    expect(rows).to_have_count(9)


def test_event_messages_are_text_not_markup(page, site, canned):
    canned.set(
        events=[
            {
                "time": NOW - 5,
                "kind": "custom",
                "level": "ERROR",
                "source": "log",
                "message": '<img src=x onerror="window.__pwned = 1">boom',
                "fields": {"name": '<img src=x onerror="window.__pwned = 2">'},
            },
            {
                "time": NOW - 10,
                "kind": "<b>kind</b>",
                "level": "<i>ERROR</i>",
                "source": "<u>log</u>",
                "message": '<b>first line</b>\n<script>window.__pwned = 3</script><img src=x onerror="window.__pwned = 4">',
                "fields": {},
            },
        ],
        status={
            **load_sample("happy"),
            "current_mining": {
                **load_sample("happy")["current_mining"],
                "drop": '<img src=x onerror="window.__pwned = 5">',
            },
        },
    )
    open_page(page, site, "mining")
    rows = page.locator("#events tr")
    expect(rows).to_have_count(2)
    assert rows.nth(0).locator(".msg").text_content() == '<img src=x onerror="window.__pwned = 1">boom'
    assert rows.nth(1).locator("summary").text_content() == "<b>first line</b>"
    assert rows.nth(1).locator(".kind").text_content() == "<b>kind</b>"
    assert text(page, "#drop-name") == '<img src=x onerror="window.__pwned = 5">'
    for tag in ("img", "script", "b", "i", "u"):
        assert page.locator(f"#events {tag}, #data .value {tag}").count() == 0, tag
    assert page.evaluate("window.__pwned") is None


# --- down and back -------------------------------------------------------------------------------


def test_api_error_shows_down_keeps_last_data_greyed_and_recovers(page, site, canned):
    open_page(page, site, "mining")
    canned.set(status_code=500)
    status = page.locator("#status")
    expect(status).to_have_attribute("data-state", "down", timeout=WITHIN_REFRESH_MS)
    assert status.get_attribute("data-reason") == "unreachable"
    assert text(page, "#status-text") == "Down"
    assert "Exporter unreachable (HTTP 500)" in text(page, "#status-detail")
    data = page.locator("#data")
    assert data.get_attribute("data-stale") == "true"
    assert "stale" in data.get_attribute("class")
    assert data.locator(".card").first.evaluate("card => getComputedStyle(card).filter") == "grayscale(1)"
    assert text(page, "#drop-name") == "Sim Drop"  # the last data stays, greyed
    assert text(page, "#updated").startswith("Showing data from")

    canned.set(status_code=200)
    expect(status).to_have_attribute("data-state", "mining", timeout=WITHIN_REFRESH_MS)
    assert data.get_attribute("data-stale") == "false"
    assert text(page, "#updated").startswith("Updated")


def test_stopped_exporter_shows_unreachable(page, site, canned):
    open_page(page, site, "mining")
    site.stop()
    status = page.locator("#status")
    expect(status).to_have_attribute("data-state", "down", timeout=WITHIN_REFRESH_MS)
    assert status.get_attribute("data-reason") == "unreachable"
    assert text(page, "#status-text") == "Down"
    assert "Exporter unreachable (no connection)" in text(page, "#status-detail")
    assert page.locator("#data").get_attribute("data-stale") == "true"
    assert text(page, "#channel") == "SimStreamer1"


def test_status_that_is_not_json_object_counts_as_down(page, site, canned):
    canned.set(status=["not", "an", "object"])
    open_page(page, site, "down")
    assert "not a JSON object" in text(page, "#status-detail")
    assert text(page, "#updated") == "No data yet"


# --- the file itself (no browser needed) ---------------------------------------------------------


def test_page_is_self_contained_and_inserts_no_markup():
    html = LANDING.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "no external assets"
    assert "@import" not in html and "url(" not in html
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in html, sink


def test_csp_hash_matches_the_inline_script():
    html = LANDING.read_text()
    scripts = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html).group(1)
    assert f"'sha256-{digest}'" in csp, (
        f"the CSP's script hash is stale: after editing the script, put 'sha256-{digest}' in the meta tag"
    )
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp


# The samples' shape is checked against what the code answers in tests/test_golden.py.
