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
        self.routes: dict[str, tuple[int, object]] = {}  # other GET routes: path -> (status, JSON)
        self.post_answers: dict[str, tuple[int, object]] = {}  # POST routes: path -> (status, JSON)
        self.posts: list[tuple[str, dict[str, str], bytes]] = []  # (path, headers, body) of each POST

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
                    elif url.path in canned.routes:
                        code, answer = canned.routes[url.path]
                        self._send(code, json.dumps(answer).encode(), "application/json")
                    else:
                        self._send(404, b"not found\n", "text/plain")

            def do_POST(self) -> None:
                url = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with canned.lock:
                    canned.posts.append((url.path, dict(self.headers.items()), body))
                    code, answer = canned.post_answers.get(url.path, (404, {"error": "not found"}))
                    on_post = getattr(canned, "on_post", None)
                    if on_post is not None:
                        on_post(url.path)
                self._send(code, json.dumps(answer).encode(), "application/json")

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


# --- the bridge's views, on canned answers in the API shapes of issue 12 --------------------------

HOUR = 3600.0
CAMPAIGNS = [
    {"id": "c2", "name": "Other Event", "game": "Other Game", "status": "active", "linked": False,
     "link_url": "https://www.twitch.tv/drops/link-other", "starts_at": NOW - 24 * HOUR, "ends_at": NOW + 72 * HOUR,
     "drops": [{"id": "d3", "name": "Sword", "required_minutes": 60, "current_minutes": 0, "confirmed_minutes": 0,
                "claimed": False, "can_claim": False, "rewards": ["Sword"]}], "live": True},
    {"id": "c1", "name": "Season 1", "game": "Sim Game", "status": "active", "linked": True,
     "link_url": "https://www.twitch.tv/drops/link-sim", "starts_at": NOW - 48 * HOUR, "ends_at": NOW + 5 * HOUR,
     "drops": [{"id": "d1", "name": "First Hat", "required_minutes": 10, "current_minutes": 10, "confirmed_minutes": 10,
                "claimed": True, "can_claim": False, "rewards": ["Hat"]},
               {"id": "d2", "name": "Sim Drop", "required_minutes": 10, "current_minutes": 4, "confirmed_minutes": 3,
                "claimed": False, "can_claim": False, "rewards": ["Cape", "Badge"]}], "live": True},
    {"id": "c3", "name": "Next Season", "game": "Sim Game", "status": "upcoming", "linked": True, "link_url": None,
     "starts_at": NOW + 30 * HOUR, "ends_at": NOW + 300 * HOUR, "drops": [], "live": True},
    {"id": "c4", "name": "Old Event", "game": "Other Game", "status": "expired", "linked": True, "link_url": None,
     "starts_at": NOW - 300 * HOUR, "ends_at": NOW - 30 * HOUR, "drops": [], "live": True},
]
CHANNELS = [
    {"name": "QuietOne", "online": False, "game": None, "drops_enabled": False, "viewers": None, "watching": False, "acl_based": False, "live": True},
    {"name": "BigStreamer", "online": True, "game": "Sim Game", "drops_enabled": True, "viewers": 5400, "watching": False, "acl_based": False, "live": True},
    {"name": "SimStreamer1", "online": True, "game": "Sim Game", "drops_enabled": True, "viewers": 120, "watching": True, "acl_based": True, "live": True},
]
SETTINGS = {"editable": True, "reason": None, "file": "/etc/twitchminert.yaml",
            "settings": {"priority": ["Sim Game"], "exclude": [], "priority_mode": "priority_only", "proxy": "",
                         "connection_quality": 1, "language": "English", "dark_mode": False, "tray_notifications": True,
                         "autostart_tray": False, "enable_badges_emotes": False, "available_drops_check": False},
            "configured": ["priority"], "games": ["Other Game", "Sim Game"]}


def bridged(sample: str = "happy", **login) -> dict:
    """A status sample with the bridge's fields."""
    data = load_sample(sample)
    data["current_mining"].update(campaign_id="c1", campaign="Season 1", confirmed_minutes=3, estimated_minutes=1)
    data.update(
        login={"state": "logged_in", "user_id": "12345678", "user_code": None, "activation_url": None,
               "code_expires_at": None, "can_press_login": False, **login},
        bridge={"connected": True, "capabilities": {"login": "supported", "reload": "supported"}, "live": True, "as_of": NOW - 5},
        display=":99", channels_monitored=len(CHANNELS), pending_drops=2, claimed_drops=1,
    )
    return data


@pytest.fixture
def bridge(canned):
    canned.set(status=bridged(), routes={"/api/campaigns": (200, CAMPAIGNS), "/api/channels": (200, CHANNELS),
                                         "/api/games": (200, ["Sim Game", "Other Game"]), "/api/settings": (200, SETTINGS)})
    return canned


def test_campaign_cards_show_progress_apart_claims_rewards_and_filter(page, site, bridge):
    page.goto(site.url + "/#campaigns")
    cards = page.locator("[data-testid=campaign-card]")
    expect(cards).to_have_count(2)  # active ones by default
    current = cards.nth(0)  # the campaign being mined comes first, highlighted
    assert current.get_attribute("data-id") == "c1" and current.get_attribute("data-current") == "true"
    assert cards.nth(1).get_attribute("data-current") == "false"
    drop = current.locator('.drop[data-current="true"]')
    expect(drop).to_have_count(1)
    assert drop.locator(".drop-name").text_content() == "Sim Drop"
    assert drop.locator(".bar-text").text_content() == "4 / 10 min (3 confirmed + 1 estimated)"
    widths = drop.locator(".bar > div").evaluate_all("bars => bars.map(b => b.className + ' ' + b.style.width)")
    assert widths == ["confirmed 30%", "estimated 10%"]
    assert drop.locator(".rewards").text_content() == "Rewards: Cape, Badge"
    claimed = current.locator('.drop[data-claimed="true"]')
    assert claimed.locator(".drop-name").text_content() == "First Hat"
    assert claimed.locator("[data-testid=claimed-badge]").text_content() == "claimed"
    assert "ends in 5 h 0 min" in current.locator(".meta").text_content()
    other = cards.nth(1)
    assert "not linked" in other.locator(".meta").text_content()
    assert other.locator(".meta a").get_attribute("href") == "https://www.twitch.tv/drops/link-other"

    page.locator("#campaign-status").select_option("upcoming")
    expect(cards).to_have_count(1)
    assert "starts in 1 d 6 h" in cards.nth(0).locator(".meta").text_content()
    page.locator("#campaign-status").select_option("")
    expect(cards).to_have_count(4)
    page.locator("#campaign-linked").check()
    expect(cards).to_have_count(3)
    page.locator("#campaign-priority").check()  # Sim Game is the priority list
    expect(cards).to_have_count(2)
    assert cards.evaluate_all("cards => cards.map(c => c.dataset.id)") == ["c1", "c3"]


def not_live() -> dict:
    """TDM stopped: the status and the bridge's routes as the daemon answers them then."""
    status = bridged("down", state="unknown", user_id=None)
    status["current_mining"].update(campaign_id=None, campaign=None, confirmed_minutes=None, estimated_minutes=None)
    status.update(bridge={"connected": False, "capabilities": {"login": "supported", "reload": "supported"},
                          "live": False, "as_of": NOW - 600}, channels_monitored=None)
    return status


def test_campaigns_and_channels_of_a_stopped_tdm_are_greyed_and_said_to_be_its_last(page, site, bridge):
    campaigns = [{**c, "live": False} for c in CAMPAIGNS]
    channels = [{**c, "online": None, "viewers": None, "watching": False, "live": False} for c in CHANNELS]
    bridge.set(status=not_live(), routes={**bridge.routes, "/api/campaigns": (200, campaigns), "/api/channels": (200, channels)})
    page.goto(site.url + "/#campaigns")
    notice = page.locator("[data-testid=campaigns-not-live]")
    expect(notice).to_be_visible()
    assert text(page, "[data-testid=campaigns-not-live]") == (
        f"TDM is not running: these are the campaigns it showed last (as of {local_clock(NOW - 600)}). "
        "They are not updated until TDM runs again.")
    assert page.locator("#view-campaigns").get_attribute("data-live") == "false"
    cards = page.locator("[data-testid=campaign-card]")
    expect(cards).to_have_count(2)  # still shown, as last known
    assert float(cards.first.evaluate("c => getComputedStyle(c).opacity")) < 1  # greyed
    assert cards.evaluate_all("cards => cards.map(c => c.dataset.current)") == ["false", "false"]  # nothing "mining now"
    expect(page.locator("[data-testid=reload-campaigns]")).to_be_disabled()  # no TDM to ask

    page.goto(site.url + "/#channels")
    rows = page.locator("[data-testid=channel-row]")
    expect(rows).to_have_count(3)
    expect(page.locator("[data-testid=channels-not-live]")).to_contain_text("TDM is not running: these are the channels it showed last")
    assert [rows.nth(i).locator("td").nth(1).text_content() for i in range(3)] == ["unknown"] * 3
    assert page.locator("[data-testid=channel-row][data-watching=true]").count() == 0
    assert text(page, "#channels-summary") == "3 channels monitored last · online unknown"

    bridge.set(status=bridged(), routes={**bridge.routes, "/api/channels": (200, CHANNELS)})  # TDM runs again
    expect(page.locator("[data-testid=channels-not-live]")).to_be_hidden(timeout=WITHIN_REFRESH_MS)
    assert page.locator("#view-channels").get_attribute("data-live") == "true"
    assert text(page, "#channels-summary") == "3 channels monitored · 2 online"


def test_reload_campaigns_posts_json_and_says_so(page, site, bridge):
    bridge.set(post_answers={"/api/miner/reload": (202, {"status": "reloading"})})
    page.goto(site.url + "/#campaigns")
    expect(page.locator("[data-testid=campaign-card]").first).to_be_visible()
    page.locator("[data-testid=reload-campaigns]").click()
    expect(page.locator("#campaigns-result")).to_contain_text("fetching its campaigns again")
    path, headers, body = bridge.posts[0]
    assert path == "/api/miner/reload" and headers["Content-Type"] == "application/json" and json.loads(body) == {}


def test_channels_count_and_the_watched_one_first(page, site, bridge):
    page.goto(site.url + "/#channels")
    rows = page.locator("[data-testid=channel-row]")
    expect(rows).to_have_count(3)
    assert rows.evaluate_all("rows => rows.map(r => r.cells[0].textContent)") == ["SimStreamer1 watching", "BigStreamer", "QuietOne"]
    assert rows.nth(0).get_attribute("data-watching") == "true"
    assert [rows.nth(i).locator("td").nth(1).text_content() for i in range(3)] == ["online", "online", "offline"]
    assert rows.nth(1).locator("td").nth(3).text_content() == "5,400"
    assert rows.nth(0).locator("td").nth(4).text_content() == "yes (ACL)"
    assert text(page, "#channels-summary") == "3 channels monitored · 2 online"


def test_login_button_then_code_with_link_and_countdown_then_logged_in(page, site, bridge):
    waiting = bridged("login_required", state="login_required", user_id=None, can_press_login=True)
    code = bridged("login_required", state="code_shown", user_id=None, user_code="WXYZ-2345",
                   activation_url="https://www.twitch.tv/activate", code_expires_at=NOW + 1800, can_press_login=False)

    def on_post(path: str) -> None:  # runs under canned.lock: assign, do not call set()
        if path == "/api/miner/login":
            bridge.status = code

    bridge.set(status=waiting, post_answers={"/api/miner/login": (202, {"status": "pressed"})}, on_post=on_post)
    open_page(page, site, "login_required")
    button = page.locator("[data-testid=login-button]")
    expect(button).to_be_visible()
    assert "TDM's window" not in text(page, "#status-detail") and "Log in below" in text(page, "#status-detail")
    assert page.locator("#login-help").is_hidden()
    button.click()
    expect(page.locator("[data-testid=login-code]")).to_have_text("WXYZ-2345")
    link = page.locator("[data-testid=login-activate-link]")
    assert link.get_attribute("href") == "https://www.twitch.tv/activate"
    assert link.get_attribute("rel") == "noopener noreferrer"
    expect(page.locator("[data-testid=login-countdown]")).to_have_text("The code expires in 30 min.")
    path, headers, body = bridge.posts[0]
    assert path == "/api/miner/login" and headers["Content-Type"] == "application/json"

    bridge.set(status=bridged(user_id="12345678"))
    expect(page.locator("[data-testid=login-user]")).to_have_text("Logged in as 12345678", timeout=WITHIN_REFRESH_MS)
    expect(page.locator("[data-testid=login-code]")).to_have_count(0)


def test_login_not_waiting_says_so(page, site, bridge):
    bridge.set(status=bridged("login_required", state="login_required", user_id=None, can_press_login=True),
               post_answers={"/api/miner/login": (409, {"error": "no login is waiting"})})
    open_page(page, site, "login_required")
    page.locator("[data-testid=login-button]").click()
    expect(page.locator("#login-result")).to_have_text("TDM is not waiting for a login right now.")


def test_supervision_restart_posts_json_and_backoff_shows_the_next_start(page, site, canned):
    down = load_sample("down")
    down["supervisor"].update(state="backoff", next_start_time=NOW + 42, failure=None, mode="run")
    canned.set(status=down, post_answers={"/-/restart": (200, "restarting")})
    open_page(page, site, "down")
    assert text(page, "#next-start") == f"{local_clock(NOW + 42)} (in 42 s)"
    assert "Next start in 42 s" in text(page, "#status-detail")
    page.locator("[data-testid=restart-button]").click()
    expect(page.locator("#supervise-result")).to_have_text("Restart: restarting")
    path, headers, body = canned.posts[0]
    assert path == "/-/restart" and headers["Content-Type"] == "application/json"


def test_notifications_panel_hidden_without_the_route_and_masked_with_it(browser, site, canned):
    context, page, problems = _new_page(browser)
    try:
        open_page(page, site, "mining")
        assert page.locator("[data-testid=notifications]").is_hidden()  # 404: this daemon has none
    finally:
        context.close()
    canned.set(routes={"/api/notifications": (200, {
        "channels": [{"urls": ["discord://****", "ntfy://****"], "events": ["drop_claimed", "miner_down"], "min_interval": 300}],
        "recent": [{"time": NOW - 60, "event": "drop_claimed", "result": "sent", "channel": "discord://****", "message": "Claimed Sim Drop"},
                   {"time": NOW - 30, "event": "miner_down", "result": "failed", "channel": "ntfy://****", "message": "TDM is down"}],
    })})
    context, page, problems = _new_page(browser)
    try:
        open_page(page, site, "mining")
        panel = page.locator("[data-testid=notifications]")
        expect(panel).to_be_visible()
        assert "discord://****, ntfy://****" in panel.text_content()
        assert "at most once per 5 min per event" in panel.text_content()
        rows = page.locator("#notify-recent tr")
        expect(rows).to_have_count(2)
        assert rows.nth(0).locator(".badge").text_content() == "failed"  # newest first
    finally:
        context.close()
    assert not [p for p in problems if "404" not in p], problems


def test_settings_without_a_config_file_say_why_and_cannot_save(page, site, bridge):
    bridge.set(routes={**bridge.routes, "/api/settings": (200, {**SETTINGS, "editable": False, "file": None,
                                                                "reason": "the daemon was started without a config file"})})
    page.goto(site.url + "/#settings")
    expect(page.locator("[data-testid=settings-readonly]")).to_contain_text("started without a config file")
    expect(page.locator("[data-testid=priority-list] li")).to_have_count(1)
    expect(page.locator("[data-testid=settings-save]")).to_be_disabled()
    expect(page.locator("[data-testid=priority-add-button]")).to_be_disabled()


def test_login_before_the_bridge_connects_and_without_its_login_hook(page, site, bridge):
    starting = bridged("login_required", state="login_required", user_id=None, can_press_login=False)
    starting["bridge"] = {"connected": False, "capabilities": {}}  # TDM starting: nothing reported yet
    bridge.set(status=starting)
    open_page(page, site, "login_required")
    expect(page.locator("[data-testid=login-button]")).to_be_disabled()  # enabled once TDM can take the press
    assert "TDM's window" not in text(page, "#status-detail")

    no_hook = bridged("login_required", state="login_required", user_id=None, can_press_login=False)
    no_hook["bridge"]["capabilities"]["login"] = "unsupported"
    bridge.set(status=no_hook)
    expect(page.locator("#login-body")).to_contain_text("does not let twitchminert press Login", timeout=WITHIN_REFRESH_MS)
    expect(page.locator("[data-testid=login-button]")).to_have_count(0)
    assert "TDM's window" in text(page, "#status-detail")
