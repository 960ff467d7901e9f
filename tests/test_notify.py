"""Delivery through the real Apprise to a local HTTP receiver: once per key (also after a restart),
retries, a bad channel delays nothing else, outcomes stored and counted, URLs never shown."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import twitchminert, wait_until
from prometheus_client import CollectorRegistry
from receiver import Receiver

from exporter.config import Config, ConfigError, NotifyChannel, parse_config
from exporter.http import Server
from exporter.notify import TICK_SECONDS, UNHEARD_TICK_SECONDS, Notifier, NotifyCollector, Observation
from exporter.web import WebContext, routes
from exporter.notify_rules import Notification, NotifyRules
from exporter.state import MinerState
from exporter.store import Store
from helpers import request

TOKEN = "s3cr3t-token"


def note(event: str = "drop_claimed", key: str = "k1", repeating: bool = False, t: float | None = None, group: str = "") -> Notification:
    return Notification(event, key, f"Twitchminert: {event}", f"body of {key}", t or time.time(), repeating, group)


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "store.sqlite") as opened:
        yield opened


def started(*channels: NotifyChannel, store=None, **kwargs) -> Notifier:
    notifier = Notifier(channels, NotifyRules(), store, **kwargs)
    notifier.start()
    return notifier


def web_routes(store, notifier):
    """The daemon's route table, with only what these routes read."""
    ctx = WebContext(CollectorRegistry(), lambda now: {}, lambda: store, Config, lambda: None, lambda source: (True, ""),
                     notifier=lambda: notifier)
    return routes(ctx)


def value(registry: CollectorRegistry, name: str, **labels) -> float | None:
    return registry.get_sample_value(name, labels)


def test_a_key_is_sent_once_also_after_a_restart(store) -> None:
    with Receiver() as receiver:
        channel = NotifyChannel((receiver.url(),))
        notifier = started(channel, store=store)
        try:
            notifier.dispatch([note(key="claim-1")])
            notifier.dispatch([note(key="claim-1")])
            wait_until(lambda: receiver.messages, what="the message")
            registry = CollectorRegistry()
            registry.register(NotifyCollector(lambda: notifier))
            wait_until(lambda: value(registry, "tdm_notifications_total", event="drop_claimed", result="sent") == 1)
        finally:
            notifier.stop()
        again = started(channel, store=store)  # a daemon restart: same store
        try:
            again.dispatch([note(key="claim-1"), note(key="claim-2")])
            wait_until(lambda: len(receiver.messages) == 2, what="the second claim")
        finally:
            again.stop()
        assert [m["message"] for m in receiver.messages] == ["body of claim-1", "body of claim-2"]
        assert receiver.messages[0]["title"] == "Twitchminert: drop_claimed"
        assert receiver.messages[0]["type"] == "success"  # Apprise's message type: a colour or an icon
        recent = again.recent()
        assert [(r["event"], r["result"], r["channel"]) for r in recent] == [("drop_claimed", "sent", "json://****")] * 2
        assert TOKEN not in json.dumps(recent)


def test_a_failing_channel_is_retried_with_backoff(store) -> None:
    with Receiver(fail_first=2) as receiver:
        notifier = started(NotifyChannel((receiver.url(),)), store=store, retry_delays=(0.1, 0.2))
        try:
            notifier.dispatch([note()])
            wait_until(lambda: receiver.messages, what="the message after two failures")
            assert receiver.attempts == 3
            wait_until(lambda: notifier.queue_length() == 0)
        finally:
            notifier.stop()
        assert [r["result"] for r in notifier.recent()] == ["sent"]


def test_a_failure_after_the_last_retry_is_stored_as_an_event_without_the_url(store, capfd) -> None:
    with Receiver(fail_first=99) as receiver:
        notifier = started(NotifyChannel((receiver.url(),)), store=store, retry_delays=(0.05,))
        try:
            notifier.dispatch([note()])
            wait_until(lambda: notifier.recent() and notifier.recent()[0]["result"] == "failed", what="the failure")
        finally:
            notifier.stop()
        assert receiver.attempts == 2
    [event] = store.query_events(kind="notification")
    assert event.fields["channel"] == "json://****" and "error=500" in event.fields["error"]
    registry = CollectorRegistry()
    registry.register(NotifyCollector(lambda: notifier))
    assert value(registry, "tdm_notifications_total", event="drop_claimed", result="failed") == 1
    stored = json.dumps([event.to_dict(), notifier.recent()])
    assert TOKEN not in stored and str(receiver.port) not in stored
    assert TOKEN not in capfd.readouterr().err


def test_a_hanging_channel_delays_neither_the_others_nor_the_caller(store) -> None:
    with Receiver(hang=True) as stuck, Receiver() as good:
        notifier = started(NotifyChannel((stuck.url(), good.url())), store=store)
        try:
            began = time.monotonic()
            for n in range(5):
                notifier.dispatch([note(key=f"claim-{n}")])
            assert time.monotonic() - began < 0.5  # queued, not sent, by the caller
            wait_until(lambda: len(good.messages) == 5, what="the good channel's messages")
            assert stuck.attempts == 1 and not stuck.messages
            assert notifier.queue_length() >= 4  # the stuck channel's backlog
            stuck.release.set()
            wait_until(lambda: len(stuck.messages) == 5, timeout=20, what="the stuck channel to catch up")
        finally:
            notifier.stop()


def test_a_repeating_event_is_sent_once_per_min_interval(store) -> None:
    with Receiver() as receiver:
        notifier = started(NotifyChannel((receiver.url(),), min_interval=600.0), store=store)
        now = time.time()
        try:
            notifier.dispatch([note("crash_loop", "crash_loop:1", repeating=True, t=now)])
            notifier.dispatch([note("recovered", "recovered:crash_loop:1", repeating=True, t=now + 10, group="recovered:crash_loop")])
            notifier.dispatch([note("crash_loop", "crash_loop:2", repeating=True, t=now + 20)])  # flapping
            notifier.dispatch([note("recovered", "recovered:crash_loop:2", repeating=True, t=now + 30, group="recovered:crash_loop")])
            notifier.dispatch([note("recovered", "recovered:stalled:1", repeating=True, t=now + 40, group="recovered:stalled")])  # another state
            notifier.dispatch([note("crash_loop", "crash_loop:3", repeating=True, t=now + 700)])
            wait_until(lambda: len(receiver.messages) == 4, what="four messages")
            wait_until(lambda: len(notifier.recent()) == 6)
        finally:
            notifier.stop()
        results = {r["message"].split("body of ")[1]: r["result"] for r in notifier.recent()}
        assert results == {
            "crash_loop:1": "sent",
            "recovered:crash_loop:1": "sent",
            "crash_loop:2": "suppressed",
            "recovered:crash_loop:2": "suppressed",
            "recovered:stalled:1": "sent",
            "crash_loop:3": "sent",
        }


def test_the_counters_of_each_configured_event_start_at_zero(store) -> None:
    notifier = Notifier((NotifyChannel(("json://127.0.0.1:9/x",), events=("crash_loop", "drop_claimed")),), NotifyRules(), store)
    registry = CollectorRegistry()
    registry.register(NotifyCollector(lambda: notifier))
    for event in ("crash_loop", "drop_claimed"):
        for result in ("sent", "failed", "suppressed", "dropped"):
            assert value(registry, "tdm_notifications_total", event=event, result=result) == 0
    assert value(registry, "tdm_notifications_total", event="stalled", result="failed") is None
    assert value(registry, "tdm_notification_queue_length") == 0


def test_a_channel_gets_only_the_events_it_asked_for(store) -> None:
    with Receiver() as receiver:
        notifier = started(NotifyChannel((receiver.url(),), events=("crash_loop",)), store=store)
        try:
            notifier.dispatch([note("drop_claimed", "a"), note("crash_loop", "b")])
            wait_until(lambda: receiver.messages)
        finally:
            notifier.stop()
        assert [m["message"] for m in receiver.messages] == ["body of b"]


def test_the_test_message_reports_each_url(store) -> None:
    with Receiver() as good, Receiver(fail_first=99) as bad:
        notifier = Notifier((NotifyChannel((good.url(), bad.url("other/" + TOKEN))),), NotifyRules(), store)
        results = notifier.test()
    assert [(r["channel"], r["ok"]) for r in results] == [("json://****", True), ("json://****", False)]
    assert "error=500" in results[1]["error"] and TOKEN not in results[1]["error"]
    assert good.messages[0]["title"] == "Twitchminert: test"


def test_routes_answer_json_and_refuse_cross_site_and_non_json(store) -> None:
    with Receiver() as receiver:
        notifier = Notifier((NotifyChannel((receiver.url(),), events=("drop_claimed",), min_interval=60.0),), NotifyRules(), store)
        server = Server("127.0.0.1", 0, web_routes(store, notifier)).start()
        port = server.port
        try:
            status, _, body = request(port, "/api/notify/test", {"Content-Type": "application/json"}, "POST", body=b"{}")
            assert status == 200
            assert json.loads(body) == {"results": [{"channel": "json://****", "ok": True, "error": None}]}
            status, _, raw = request(port, "/api/notifications")
            body = raw.decode()
            answer = json.loads(body)
            assert answer["channels"] == [{"urls": ["json://****"], "events": ["drop_claimed"], "min_interval": 60.0}]
            assert [(r["event"], r["result"], r["channel"]) for r in answer["recent"]] == [("test", "sent", "json://****")]
            assert TOKEN not in body and str(receiver.port) not in body
            cross_site = {"Content-Type": "application/json", "Origin": "http://evil.example"}
            status, _, _ = request(port, "/api/notify/test", cross_site, "POST", body=b"{}")
            assert status == 403
            form = {"Content-Type": "application/x-www-form-urlencoded"}
            status, _, _ = request(port, "/api/notify/test", form, "POST", body=b"x=1")
            assert status == 415
            assert len(receiver.messages) == 1
        finally:
            server.stop()
    empty = Server("127.0.0.1", 0, web_routes(store, None)).start()
    try:
        status, _, body = request(empty.port, "/api/notify/test", {}, "POST", body=b"")
        assert status == 409 and json.loads(body)["error"] == "not_configured"
    finally:
        empty.stop()


def test_config_reports_every_notify_problem_at_once_without_the_tokens() -> None:
    text = (
        "notify:\n"
        "  - urls: ['discord://1234/" + TOKEN + "', 'nosuchservice://" + TOKEN + "']\n"
        "    events: [drop_claimed, nonsense]\n"
        "    min_interval: soon\n"
        "  - events: [crash_loop]\n"
        "  - urls: [" + TOKEN + "]\n"
    )
    with pytest.raises(ConfigError) as error:
        parse_config(text, "tm.yaml")
    lines = str(error.value).splitlines()
    assert lines == [
        "tm.yaml:2: notify[0].urls[1]: not a valid Apprise URL (unknown service, or a part is missing): nosuchservice://****",
        "tm.yaml:3: notify[0].events[1]: expected one of drop_claimed, login_required, session_invalid, miner_terminated,"
        " crash_loop, gave_up, miner_down, stalled, campaign_ending, new_campaign, recovered, got 'nonsense'",
        "tm.yaml:4: notify[0].min_interval: expected a duration such as 90s, 30m or 1h, got 'soon'",
        "tm.yaml:5: notify[1]: urls: expected at least one Apprise URL",
        "tm.yaml:6: notify[2].urls[0]: not an Apprise URL (expected service://...): ****",
    ]
    config = parse_config("notify:\n  - urls: ['ntfy://ntfy.sh/" + TOKEN + "']\n    min_interval: 10m\n")
    [channel] = config.notify
    assert channel.min_interval == 600.0 and "drop_claimed" in channel.events and TOKEN not in repr(config)


def test_notify_test_command_reports_each_url_masked(tmp_path: Path) -> None:
    with Receiver() as good, Receiver(fail_first=99) as bad:
        config = tmp_path / "tm.yaml"
        config.write_text(f"notify:\n  - urls: [{json.dumps(good.url())}, {json.dumps(bad.url())}]\n")
        result = twitchminert("notify", "test", "--config.file", str(config), home=tmp_path / "home")
    assert result.returncode == 1, result.stderr
    ok, failed = result.stdout.splitlines()
    assert ok == "json://****: ok"
    assert failed.startswith("json://****: failed: ") and "error=500" in failed
    assert TOKEN not in result.stdout + result.stderr and str(bad.port) not in result.stdout + result.stderr
    assert [m["title"] for m in good.messages] == ["Twitchminert: test"]


def test_notify_test_and_demo_refuse_a_config_without_good_urls(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("web:\n  listen_address: 127.0.0.1:0\n")
    result = twitchminert("notify", "test", "--config.file", str(empty), home=tmp_path / "home")
    assert result.returncode == 2 and "no notify: section" in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"notify:\n  - urls: ['discord://{TOKEN}']\n")  # a webhook needs an id and a token
    result = twitchminert("demo", "--config.file", str(bad), "--web.listen-address", "127.0.0.1:0", home=tmp_path / "home")
    assert result.returncode == 2
    assert result.stderr == "twitchminert: bad.yaml:2: notify[0].urls[0]: not a valid Apprise URL (unknown service, or a part is missing): discord://****\n"


def test_the_rules_tick_every_second_only_when_a_channel_hears_what_a_tick_finds() -> None:
    url = "json://127.0.0.1:9/x"
    assert Notifier((), NotifyRules()).tick_seconds == UNHEARD_TICK_SECONDS  # nobody to tell
    claims_only = NotifyChannel((url,), events=("drop_claimed",))  # on_event's alone: a tick finds none
    assert Notifier((claims_only,), NotifyRules()).tick_seconds == UNHEARD_TICK_SECONDS
    assert Notifier((claims_only, NotifyChannel((url,), events=("recovered",))), NotifyRules()).tick_seconds == TICK_SECONDS
    assert Notifier((NotifyChannel((url,)),), NotifyRules()).tick_seconds == TICK_SECONDS  # every event by default


def test_a_slow_ticking_notifier_stops_at_once_and_saves_what_it_sees_then(store) -> None:
    # What nobody hears is looked at once a minute; a reload that adds a channel must not restore
    # a minute-old picture, so stop() looks once more before the state is saved.
    snapshot = MinerState().snapshot(time.time())
    campaigns = [{"id": "c1", "game": "G", "status": "active"}]
    notifier = Notifier((), NotifyRules(), store, observe=lambda: Observation(snapshot, None, None, campaigns))
    notifier.start()
    started = time.monotonic()
    notifier.stop()
    assert time.monotonic() - started < UNHEARD_TICK_SECONDS / 2
    assert json.loads(store.load_state()["notify.rules"])["known_campaigns"] == ["c1"]
