"""Notifications from the real TDM (../shared/tdm-src) against the mock, to a local receiver: what TDM
itself says (its Output box, through the launcher and the bridge) becomes exactly one message each."""

from __future__ import annotations

import json

from conftest import pause, wait_until
from helpers import request
from realtdm import MOCK_GAME, real_tdm, tdm_runtime  # noqa: F401  (fixtures)
from receiver import Receiver

MOCK_CODE = "MOCKCODE"  # what ../shared/tdm/offline/mock_twitch.py hands out


def with_notify(tdm, receiver: Receiver, events: list[str]) -> None:
    text = tdm.config_file.read_text()
    tdm.config_file.write_text(text + f"notify:\n  - urls: [{json.dumps(receiver.url())}]\n    events: {json.dumps(events)}\n")


def test_a_fresh_tdm_asks_for_a_login_once_then_sends_the_code_then_recovers(real_tdm):
    with Receiver() as receiver:
        tdm = real_tdm(session="fresh", start=False)
        with_notify(tdm, receiver, ["login_required", "recovered"])
        tdm.start()
        wait_until(lambda: receiver.of("Twitchminert: login required"), 60, what="the login_required message")
        tdm.wait_status(lambda s: s["login"]["can_press_login"], what="TDM waiting for the Login button")
        port = int(tdm.url.rsplit(":", 1)[1])
        status, _, raw = request(port, "/api/miner/login", {"Content-Type": "application/json"}, "POST", body=b"{}")
        assert status == 202, raw
        wait_until(lambda: receiver.of("Twitchminert: log TDM in"), 20, what="the message with the code")
        tdm.wait_status(lambda s: s["session"] == "authenticated", what="the mock to grant the token")
        wait_until(lambda: receiver.of("Twitchminert: recovered"), 20, what="the recovery")
        pause(2)  # two more looks at a logged-in TDM
    [asked] = receiver.of("Twitchminert: login required")
    [code] = receiver.of("Twitchminert: log TDM in")
    assert code["message"].startswith(f"Enter the code {MOCK_CODE} at https://www.twitch.tv/activate?device-code={MOCK_CODE}, expires at")
    [over] = receiver.of("Twitchminert: recovered")
    assert over["message"].startswith("login required is over after")
    assert len(receiver.messages) == 3


def test_a_claim_by_the_real_tdm_is_one_message(real_tdm):
    with Receiver() as receiver:
        tdm = real_tdm(start=False)
        with_notify(tdm, receiver, ["drop_claimed"])
        tdm.start()
        tdm.wait_status(lambda s: s["drops"]["claimed_total"] >= 1 and s["status"] == "no_campaigns", what="claim, then idle")
        wait_until(lambda: receiver.messages, 20, what="the drop_claimed message")
        pause(2)
    [claimed] = receiver.messages
    assert claimed["title"] == "Twitchminert: drop claimed" and claimed["message"].startswith(f"{MOCK_GAME}: ")
    assert claimed["message"].endswith("drop 1/1 of the campaign"), claimed
