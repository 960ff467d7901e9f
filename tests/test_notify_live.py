"""Notifications end to end: a real daemon supervising the simulator, notifying through Apprise to a
local HTTP receiver (`json://127.0.0.1:PORT/...`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil
from conftest import (
    DaemonProcess,
    demo_args,
    http_get,
    http_post,
    pause,
    processes_mentioning,
    run_args,
    sample,
    simulator_config,
    status_json,
    stop_all,
    wait_until,
)
from helpers import request
from receiver import Receiver

from exporter.capture import format_record
from exporter.store import Store

TOKEN = "s3cr3t-token"


def notify_lines(*channels: tuple[list[str], list[str]], min_interval: str = "5m") -> str:
    lines = ["notify:"]
    for urls, events in channels:
        lines += [f"  - urls: {json.dumps(urls)}", f"    events: {json.dumps(events)}", f"    min_interval: {min_interval}"]
    return "\n".join(lines) + "\n"


def with_notify(config: Path, text: str) -> Path:
    config.write_text(config.read_text() + text)
    return config


def notifications(daemon: DaemonProcess) -> dict:
    code, body = http_get(daemon.url + "/api/notifications")
    assert code == 200, body
    assert TOKEN not in body
    return json.loads(body)


def test_a_claimed_drop_in_the_demo_is_notified_exactly_once(tmp_path: Path) -> None:
    with Receiver() as receiver:
        config = tmp_path / "notify.yaml"
        config.write_text(notify_lines(([receiver.url()], ["drop_claimed"])))
        daemon = DaemonProcess([*demo_args("happy"), "--config.file", str(config)])
        try:
            daemon.wait_listening()

            def claims() -> int:
                return status_json(daemon)["drops"]["claimed_total"]

            wait_until(lambda: claims() >= 1 and len(receiver.messages) >= 1, 60, what="a claim and its message")
            wait_until(lambda: len(receiver.messages) == claims(), 10, what="one message per claim")
            # The receiver has a message before the sender records it as sent: wait for the record too.
            wait_until(lambda: len(notifications(daemon)["recent"]) >= len(receiver.messages), 10, what="each message recorded")
            answer = notifications(daemon)
        finally:
            stop_all([daemon], tmp_path)
        bodies = [m["message"] for m in receiver.messages]
        assert len(set(bodies)) == len(bodies)  # no claim twice
        assert all(m["title"] == "Twitchminert: drop claimed" for m in receiver.messages)
        assert bodies[0].startswith(("Starfall Arena: ", "Pixel Kingdoms: ")) and "drop 1/" in bodies[0]
        assert answer["channels"] == [{"urls": ["json://****"], "events": ["drop_claimed"], "min_interval": 300.0}]
        assert {(r["event"], r["result"], r["channel"]) for r in answer["recent"]} == {("drop_claimed", "sent", "json://****")}
        assert TOKEN not in daemon.output()


def test_a_crash_loop_is_notified_once(tmp_path: Path) -> None:
    with Receiver() as receiver:
        backoff = "restart_on_terminated: false\nbackoff: {initial: 100ms, max: 100ms, max_restarts: 2}"
        config = with_notify(
            simulator_config(tmp_path, "crash", speed=600, miner=backoff),
            notify_lines(([receiver.url()], ["crash_loop", "gave_up", "miner_terminated"])),
        )
        daemon = DaemonProcess(run_args(config))
        try:
            daemon.wait_listening()
            wait_until(lambda: status_json(daemon)["supervisor"]["state"] == "failed", 60, what="the crash loop")
            wait_until(lambda: receiver.of("Twitchminert: crash loop"), 10, what="the crash_loop message")
            pause(3)  # three more looks at the same failed state
            metrics = daemon.metrics()
            recent = notifications(daemon)["recent"]
        finally:
            stop_all([daemon], tmp_path)
        [message] = receiver.of("Twitchminert: crash loop")
        assert "crash loop: 2 restarts" in message["message"] and message["type"] == "failure"
        assert [r["event"] for r in recent if r["event"] == "crash_loop"] == ["crash_loop"]
        assert sample(metrics, "tdm_notifications_total", event="crash_loop", result="sent") == 1
        assert not receiver.of("Twitchminert: gave up")


def test_a_failing_or_hanging_channel_delays_nothing_and_is_retried(tmp_path: Path) -> None:
    with Receiver(hang=True) as stuck, Receiver(fail_first=1) as flaky:
        config = with_notify(
            simulator_config(tmp_path, "happy"),
            notify_lines(([stuck.url(), flaky.url()], ["drop_claimed"])),
        )
        daemon = DaemonProcess(run_args(config))
        try:
            daemon.wait_listening()
            wait_until(lambda: stuck.attempts >= 1, 60, what="a claim sent to the stuck channel")
            wait_until(lambda: flaky.messages, 20, what="the flaky channel's retry")  # retried after its failure
            assert flaky.attempts >= 2
            slowest = 0.0
            for _ in range(20):  # the stuck channel holds a send: scrapes and the status stay fast
                began = time.monotonic()
                metrics = daemon.metrics()
                status_json(daemon)
                slowest = max(slowest, time.monotonic() - began)
            assert slowest < 1.0, slowest
            assert sample(metrics, "tdm_notification_queue_length") >= 1  # the stuck channel's message
            assert status_json(daemon)["status"] == "mining"
            stuck.release.set()
            wait_until(lambda: stuck.messages, 20, what="the stuck channel's message once released")
            campaigns = json.loads(http_get(daemon.url + "/api/campaigns")[1])
        finally:
            stop_all([daemon], tmp_path)
        # TDM's campaigns (through the bridge) reached the rules: the first list is their baseline.
        with Store.open(tmp_path / "data" / "twitchminert.sqlite") as store:
            rules = json.loads(store.load_state()["notify.rules"])
        assert campaigns and set(rules["known_campaigns"]) == {c["id"] for c in campaigns}


def test_login_required_once_across_a_restart_then_the_code_once(tmp_path: Path) -> None:
    with Receiver() as receiver:
        config = with_notify(
            simulator_config(tmp_path, "login-required"),
            notify_lines(([receiver.url()], ["login_required", "recovered"])),
        )
        daemon = DaemonProcess(run_args(config))
        try:
            daemon.wait_listening()
            wait_until(lambda: receiver.of("Twitchminert: login required"), 30, what="the login_required message")
        finally:
            stop_all([daemon], tmp_path)
        again = DaemonProcess(run_args(config))  # a restart: same store, TDM asks again
        try:
            again.wait_listening()
            wait_until(lambda: status_json(again)["status"] == "login_required", 30, what="TDM to ask again")
            pause(3)  # three looks at the same wait
            assert len(receiver.of("Twitchminert: login required")) == 1
            wait_until(lambda: status_json(again)["login"]["can_press_login"], 30, what="the Login button")
            status, _, raw = request(int(again.url.rsplit(":", 1)[1]), "/api/miner/login",
                                     {"Content-Type": "application/json"}, "POST", body=b"{}")
            assert status == 202, raw
            login = json.loads(raw)["login"]
            wait_until(lambda: receiver.of("Twitchminert: log TDM in"), 30, what="the message with the code")
            wait_until(lambda: receiver.of("Twitchminert: recovered"), 60, what="logged in")
            pause(1.5)
        finally:
            stop_all([again], tmp_path)
        [code] = receiver.of("Twitchminert: log TDM in")
        assert code["message"].startswith(f"Enter the code {login['user_code']} at {login['activation_url']}")
        assert "expires at" in code["message"]
        assert len(receiver.of("Twitchminert: login required")) == 1
        assert len(receiver.of("Twitchminert: recovered")) == 1
        assert not any(psutil.pid_exists(p.pid) and p.is_running() for p in processes_mentioning(str(tmp_path)))


def test_a_reload_switches_channels_and_its_audit_trail_masks_the_urls(tmp_path: Path) -> None:
    log = tmp_path / "miner_output.log"
    log.write_bytes(b"")

    def config_text(receiver: Receiver) -> str:
        return (
            f"logs:\n  files: [{json.dumps(str(log))}]\n"
            f"storage:\n  path: {json.dumps(str(tmp_path / 'data'))}\n"
            + notify_lines(([receiver.url()], ["drop_claimed"]))
        )

    def claim(reward: str) -> None:
        progress = format_record("GUI", "Watching: somechannel", time.time())
        line = format_record("GUI", f"Claimed drop: {reward} (1/3)", time.time())
        with log.open("ab") as out:
            out.write(progress + line)

    with Receiver() as first, Receiver() as second:
        config = tmp_path / "tm.yaml"
        config.write_text(config_text(first))
        daemon = DaemonProcess(run_args(config))
        try:
            daemon.wait_listening()
            claim("Reward One")
            wait_until(lambda: first.messages, 20, what="the first channel's message")
            config.write_text(config_text(second))
            assert http_post(daemon.url + "/-/reload")[0] == 200
            claim("Reward Two")
            wait_until(lambda: second.messages, 20, what="the second channel's message")
            code, body = http_get(daemon.url + "/api/events?kind=config_change")
        finally:
            stop_all([daemon], tmp_path)
        assert [m["message"] for m in first.messages] == ["unknown: Reward One, drop 1/3 of the campaign"]
        assert [m["message"] for m in second.messages] == ["unknown: Reward Two, drop 1/3 of the campaign"]
        assert code == 200 and TOKEN not in body and str(second.port) not in body
        [change] = [e["fields"]["changes"] for e in json.loads(body) if e["fields"].get("source") in ("file", "http")]
        masked = {"urls": ["json://****"], "events": ["drop_claimed"], "min_interval": 300.0}
        assert change == {"notify.0": [masked, masked]}  # the token changed, it is not shown
        assert TOKEN not in daemon.output()


def test_terminated_is_notified_with_its_cause_although_the_restart_comes_at_once(tmp_path: Path) -> None:
    with Receiver() as receiver:
        config = with_notify(
            # restart_on_terminated: on (the default). At 60x the restarted TDM mines 3 s before it ends
            # again, so a rules tick (every second) sees it running; at 300x its 0.6 s fell between ticks.
            simulator_config(tmp_path, "terminated", speed=60),
            notify_lines(([receiver.url()], ["miner_terminated", "recovered"]), min_interval="1h"),
        )
        daemon = DaemonProcess(run_args(config))
        try:
            daemon.wait_listening()
            wait_until(lambda: status_json(daemon)["supervisor"]["restarts"] >= 1, 60, what="the terminated restart")
            wait_until(lambda: receiver.of("Twitchminert: miner terminated"), 10, what="the miner_terminated message")
            wait_until(lambda: receiver.of("Twitchminert: recovered"), 30, what="TDM running again")
        finally:
            stop_all([daemon], tmp_path)
        first = receiver.of("Twitchminert: miner terminated")[0]
        assert first["type"] == "failure"
        assert first["message"].startswith("TDM stopped mining: ") and "_watch_loop" in first["message"]
