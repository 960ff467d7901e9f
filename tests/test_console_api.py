"""The web console's API on a real daemon process: the settings editor (GET/PUT /api/settings) and the
history routes, plus the pure parts (YAML round trip, error mapping, claims, days) in-process.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import json
from pathlib import Path
from urllib.parse import urlsplit

import bcrypt
import pytest

from conftest import http_get, wait_until
from exporter import history, settings_editor
from exporter.config import parse_config

CONFIG = """\
# my twitchminert config: hand-written, with comments
logs:
  files: [{log}]   # the log we follow
  timezone: UTC

settings:
  # games, most wanted first
  priority:
  - Starfall Arena   # the first one
  - Pixel Kingdoms
  priority_mode: ending_soonest  # not priority_only
  proxy: "http://user:hunter2@proxy.example:8080"

storage:
  path: {data}  # our store
"""


def write_config(folder: Path, extra: str = "") -> Path:
    log = folder / "log.txt"
    log.touch()
    config = folder / "twitchminert.yaml"
    config.write_text(CONFIG.format(log=json.dumps(str(log)), data=json.dumps(str(folder / "data"))) + extra)
    return config


def call(url: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """(status, headers, JSON or text) of one request."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        raw = response.read().decode()
        kind = response.getheader("Content-Type") or ""
        return response.status, dict(response.getheaders()), json.loads(raw) if "json" in kind else raw
    finally:
        connection.close()


def put(url: str, changes: dict, etag: str | None = None, headers: dict | None = None):
    sent = {"Content-Type": "application/json", **({"If-Match": etag} if etag else {}), **(headers or {})}
    return call(url, "PUT", "/api/settings", json.dumps(changes).encode(), sent)


def events(url: str, **params) -> list[dict]:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    status, body = http_get(f"{url}/api/history/events?{query}")
    assert status == 200, body
    return json.loads(body)["events"]


@pytest.fixture
def daemon(tmp_path, daemon_factory):
    config = write_config(tmp_path)
    process = daemon_factory("run", "--config.file", str(config), "--web.listen-address", "127.0.0.1:0")
    process.wait_listening()
    process.config = config
    return process


# -- GET /api/settings -------------------------------------------------------------------------------


def test_get_settings_shows_the_file_values_with_an_etag_and_no_proxy_password(daemon):
    status, headers, body = call(daemon.url, "GET", "/api/settings")
    assert status == 200
    assert body["editable"] is True and body["reason"] is None
    assert headers["ETag"] == settings_editor.etag_of(daemon.config.read_bytes())
    assert body["settings"]["priority"] == ["Starfall Arena", "Pixel Kingdoms"]
    assert body["settings"]["priority_mode"] == "ending_soonest"
    assert body["settings"]["connection_quality"] == 1  # not in the file: TDM's default
    assert body["configured"] == ["proxy", "priority", "priority_mode"]
    assert body["settings"]["proxy"] == "http://<redacted>@proxy.example:8080"
    assert "hunter2" not in json.dumps(body)
    assert {"Starfall Arena", "Pixel Kingdoms"} <= set(body["games"])


def test_without_a_config_file_the_editor_says_why_and_refuses(tmp_path, daemon_factory):
    process = daemon_factory("run", "--web.listen-address", "127.0.0.1:0")  # TWITCHMINERT_HOME has no config
    process.wait_listening()
    status, headers, body = call(process.url, "GET", "/api/settings")
    assert status == 200 and body["editable"] is False
    assert "config.file" in body["reason"] and "ETag" not in headers
    status, _, body = put(process.url, {"priority": ["X"]})
    assert status == 409 and "config.file" in body["error"]


# -- PUT /api/settings -------------------------------------------------------------------------------


def test_put_writes_the_yaml_keeping_comments_order_and_other_keys_and_audits(daemon):
    _, headers, _ = call(daemon.url, "GET", "/api/settings")
    status, answer_headers, body = put(
        daemon.url, {"priority": ["Starfall Arena", "Pixel Kingdoms", "Neon Drift"], "connection_quality": 3}, headers["ETag"]
    )
    assert status == 200, body
    assert body["changed"] == {
        "priority": [["Starfall Arena", "Pixel Kingdoms"], ["Starfall Arena", "Pixel Kingdoms", "Neon Drift"]],
        "connection_quality": [None, 3],
    }
    assert body["applied"] is True
    text = daemon.config.read_text()
    assert answer_headers["ETag"] == settings_editor.etag_of(text.encode())
    for kept in ("# my twitchminert config: hand-written, with comments", "# the log we follow",
                 "- Starfall Arena   # the first one", "priority_mode: ending_soonest  # not priority_only",
                 '"http://user:hunter2@proxy.example:8080"', "path: "):
        assert kept in text, kept
    assert text.index("logs:") < text.index("settings:") < text.index("storage:")  # order kept
    assert "  - Neon Drift\n  priority_mode" in text and "  connection_quality: 3\n\nstorage:" in text
    config = parse_config(text)
    assert config.settings["priority"] == ("Starfall Arena", "Pixel Kingdoms", "Neon Drift")

    audit = wait_until(lambda: [e for e in events(daemon.url, kind="config_change") if e["fields"]["action"] == "settings_edited"],
                       10, what="the audit event")
    fields = audit[0]["fields"]
    assert fields["source"] == "web" and fields["user"] is None and fields["file"] == str(daemon.config)
    assert fields["changes"]["connection_quality"] == [None, 3]
    applied = [e for e in events(daemon.url, kind="config_change") if e["fields"]["action"] == "config_change"]
    assert applied and applied[0]["fields"]["source"] in ("web", "file")  # the reload that applied it


def test_put_rejects_invalid_values_per_field_and_leaves_the_file_alone(daemon):
    before = daemon.config.read_bytes()
    status, _, body = put(daemon.url, {"priority": ["A", "A"], "connection_quality": 9, "priority_mode": "fastest",
                                       "exclude": ["Pixel Kingdoms"]})
    assert status == 422
    errors = body["errors"]
    assert errors["priority"] == "priority[1]: 'A' is listed twice"
    assert errors["connection_quality"] == "expected a whole number from 1 to 6, got 9"
    assert errors["priority_mode"].startswith("expected one of priority_only, ending_soonest")
    assert set(errors) == {"priority", "connection_quality", "priority_mode"}  # exclude is fine against ["A", "A"]
    status, _, body = put(daemon.url, {"no_such_setting": 1})
    assert status == 422 and "unknown setting" in body["errors"]["no_such_setting"]
    assert daemon.config.read_bytes() == before


def test_put_with_a_stale_etag_gets_409(daemon):
    _, headers, _ = call(daemon.url, "GET", "/api/settings")
    daemon.config.write_text(daemon.config.read_text().replace("ending_soonest", "priority_only"))  # edited meanwhile
    status, _, body = put(daemon.url, {"priority": ["Pixel Kingdoms"]}, headers["ETag"])
    assert status == 409 and "changed since it was read" in body["error"]
    assert "Pixel Kingdoms\n  priority_mode: priority_only" in daemon.config.read_text()  # the other edit stays


def test_the_blanked_proxy_sent_back_keeps_the_real_one(daemon):
    _, headers, body = call(daemon.url, "GET", "/api/settings")
    status, _, answer = put(daemon.url, {"proxy": body["settings"]["proxy"], "language": "no"}, headers["ETag"])
    assert status == 200, answer
    text = daemon.config.read_text()
    assert "hunter2" in text and 'language: "no"' in text  # quoted: PyYAML would read a bare no as false
    assert parse_config(text).settings["language"] == "no"
    assert "hunter2" not in json.dumps(answer)


def test_put_takes_json_only(daemon):
    status, _, body = call(daemon.url, "PUT", "/api/settings", b"priority=X", {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415
    status, _, body = call(daemon.url, "PUT", "/api/settings", b"{not json", {"Content-Type": "application/json"})
    assert status == 400


def test_cross_site_put_is_refused(daemon):
    before = daemon.config.read_bytes()
    status, _, _ = put(daemon.url, {"priority": ["X"]}, headers={"Origin": "http://evil.example"})
    assert status == 403
    status, _, _ = put(daemon.url, {"priority": ["X"]}, headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    assert daemon.config.read_bytes() == before


def test_with_basic_auth_put_needs_it_and_the_audit_names_the_user(tmp_path, daemon_factory):
    hashed = bcrypt.hashpw(b"s3cret-pass", bcrypt.gensalt(4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  alice: {hashed}\n")
    config = write_config(tmp_path, f"web:\n  config_file: {json.dumps(str(web))}\n")
    process = daemon_factory("run", "--config.file", str(config), "--web.listen-address", "127.0.0.1:0")
    process.wait_listening()
    status, _, _ = put(process.url, {"priority": ["X"]})
    assert status == 401
    auth = {"Authorization": "Basic " + base64.b64encode(b"alice:s3cret-pass").decode()}
    status, _, body = put(process.url, {"priority": ["X"]}, headers=auth)
    assert status == 200, body

    def audit():
        status, _, answer = call(process.url, "GET", "/api/history/events?kind=config_change", headers=auth)
        return [e for e in answer["events"] if e["fields"]["action"] == "settings_edited"]

    found = wait_until(audit, 10, what="the audit event")
    assert found[0]["fields"]["user"] == "alice" and found[0]["fields"]["source"] == "web"
    assert "s3cret" not in json.dumps(found)


# -- history -------------------------------------------------------------------------------------


def record(when: datetime.datetime, level: str, text: str) -> str:
    return f"{when:%Y-%m-%d %H:%M:%S}.000:\t{level:>7}:\t{text}\n"


def test_history_events_search_filters_and_pages_claims_days_and_progress(daemon):
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None, microsecond=0)
    start = now - datetime.timedelta(minutes=30)
    lines = [record(start, "INFO", "Checking login")]  # the last record is read when the next one starts
    for minute in range(1, 11):
        source = "Drop progress from active search" if minute == 5 else "Drop update from websocket"
        lines.append(record(start + datetime.timedelta(minutes=minute), "CALL", f"{source}: Gem Pack (Pixel Kingdoms, {minute}/10)"))
    lines.append(record(start + datetime.timedelta(minutes=11), "GUI", "Claimed drop: Pixel Kingdoms Gem Pack, Gold Frame (1/2)"))
    lines.append(record(start + datetime.timedelta(minutes=12), "WARNING", "Websocket[0] received unknown payload: 100% odd_name"))
    for minute in range(1, 4):
        lines.append(record(start + datetime.timedelta(minutes=12 + minute), "CALL", f"Drop update from websocket: Crystal (Pixel Kingdoms, {minute}/20)"))
    lines.append(record(start + datetime.timedelta(minutes=16), "INFO", "Checking login"))  # ends the record before
    (daemon.config.parent / "log.txt").write_text("".join(lines))
    wait_until(lambda: len(events(daemon.url, kind="drop_progress", limit=200)) >= 12, 15, what="the log read")

    status, body = http_get(f"{daemon.url}/api/history/events?level=CALL&limit=5&offset=5")
    page = json.loads(body)
    assert page["total"] == 13 and page["offset"] == 5 and len(page["events"]) == 5
    assert {e["level"] for e in page["events"]} == {"CALL"}
    assert "drop_progress" in page["kinds"] and "drop_claimed" in page["kinds"]
    assert [e["message"] for e in events(daemon.url, q="gold%20frame")] == ["Claimed drop: Pixel Kingdoms Gem Pack, Gold Frame (1/2)"]
    assert [e["message"] for e in events(daemon.url, q="100%25%20odd_")] != []  # % and _ are literal
    assert events(daemon.url, q="100%25%20oddXname") == []
    assert len(events(daemon.url, level="CALL,GUI", limit=200)) == 14

    status, body = http_get(f"{daemon.url}/api/history/claims")
    claims = json.loads(body)["claims"]
    assert claims == [{"time": claims[0]["time"], "game": "Pixel Kingdoms", "drop": "Gem Pack",
                       "rewards": "Gem Pack, Gold Frame", "claimed": 1, "total": 2}]

    status, body = http_get(f"{daemon.url}/api/history/stats?tz=UTC&days=3")
    stats = json.loads(body)
    assert [day["claimed"] for day in stats["per_day"]][-1] >= 1 and len(stats["per_day"]) == 3
    progress = stats["progress"]
    assert (progress["drop"], progress["game"]) == ("Crystal", "Pixel Kingdoms")
    assert [(p["minutes"], p["required"], p["confirmed"]) for p in progress["points"]] == [(1, 20, True), (2, 20, True), (3, 20, True)]
    assert http_get(f"{daemon.url}/api/history/stats?tz=Mars/Olympus")[0] == 400
    assert http_get(f"{daemon.url}/api/history/events?limit=0")[0] == 400


# -- pure parts ----------------------------------------------------------------------------------


def test_the_demo_config_file_reads_back_as_the_demo_config(tmp_path):
    """The demo runs from the file it writes (so the editor can edit it): nothing of its config may be lost."""
    from dataclasses import replace

    from exporter.config import NotifyChannel
    from exporter.demo import demo_config, write_config_file

    for scenario in ("happy", "crash"):
        config = replace(demo_config(tmp_path, scenario, 60, "127.0.0.1:0"),
                         notify=(NotifyChannel(urls=("json://127.0.0.1:9/hook",), min_interval=60.0),))
        path = tmp_path / f"{scenario}.yaml"
        loaded = write_config_file(path, config)
        # the speed-scaled times are not the user's to edit: run_demo sets them over the file at every load
        loaded = replace(loaded, miner=replace(loaded.miner, restart_on_stall=config.miner.restart_on_stall),
                         drop_minute_seconds=config.drop_minute_seconds)
        assert loaded == config
        assert path.stat().st_mode & 0o077 == 0  # Apprise URLs carry tokens


def test_edited_text_quotes_what_pyyaml_would_misread_and_removes_keys():
    text = settings_editor.edited_text("settings:\n  language: English\n", {"priority": ["yes", "1.5", "null", " pad"], "language": None})
    config = parse_config(text)
    assert config.settings == {"priority": ("yes", "1.5", "null", " pad")}


def test_edited_text_keeps_the_files_indentation_and_adds_a_missing_section_at_the_end():
    text = settings_editor.edited_text("miner:\n    mode: run\nsettings:\n    priority:\n        - a  # keep\n", {"priority": ["b", "a"]})
    assert text == "miner:\n    mode: run\nsettings:\n    priority:\n        - b\n        - a  # keep\n"
    text = settings_editor.edited_text("# only a comment\nlogs:\n  timezone: UTC\n", {"dark_mode": True})
    assert text == "# only a comment\nlogs:\n  timezone: UTC\nsettings:\n  dark_mode: true\n"


def test_parse_claim_takes_the_longest_known_game():
    games = ["Pixel", "Pixel Kingdoms", "Other"]
    assert history.parse_claim("Pixel Kingdoms Gem Pack (x)", games) == ("Pixel Kingdoms", "Gem Pack (x)")
    assert history.parse_claim("Unknown Game Hat", games) == (None, "Unknown Game Hat")


def test_per_day_counts_local_days_with_zeros():
    now = datetime.datetime(2026, 11, 30, 12, tzinfo=datetime.timezone.utc).timestamp()
    times = [now, now - 3600 * 11.5, now - 86400 * 2]  # 00:30 UTC on the 30th is the 29th in New York
    assert history.per_day(times, "America/New_York", 3, now) == [
        {"day": "2026-11-28", "claimed": 1}, {"day": "2026-11-29", "claimed": 1}, {"day": "2026-11-30", "claimed": 1}
    ]


def test_thin_and_latest_run():
    points = [{"minutes": i % 7} for i in range(20)]
    assert history.latest_run(points) == points[14:]
    many = [{"minutes": i} for i in range(1000)]
    thinned = history.thin(many, 10)
    assert len(thinned) == 10 and thinned[0] is many[0] and thinned[-1] is many[-1]
