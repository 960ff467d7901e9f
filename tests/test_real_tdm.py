"""The real TDM (../shared/tdm-src) supervised by `twitchminert run`, against the offline Twitch mock.

Each test starts as few TDMs as it needs (see realtdm.py); every wait is bounded. Assertions go
through what a user sees: /metrics, /api/miner/status and /api/events.
"""

from __future__ import annotations

from conftest import sample
from realtdm import MOCK_GAME, real_tdm, tdm_runtime  # noqa: F401  (fixtures)


def kinds(events: list[dict]) -> list[str]:
    return [event["kind"] for event in events]


def test_restored_session_mines_claims_and_goes_idle(real_tdm):
    tdm = real_tdm()
    mining = tdm.wait_status(
        lambda s: s["status"] == "mining" and ((s["current_mining"] or {}).get("progress_minutes") or 0) >= 3,
        what="mining with progress",
    )
    assert mining["session"] == "authenticated"
    assert mining["current_mining"]["game"] == MOCK_GAME
    assert mining["current_mining"]["channel"]
    assert mining["supervisor"]["state"] == "running" and not mining["supervisor"]["attached"]

    idle = tdm.wait_status(lambda s: s["drops"]["claimed_total"] >= 1 and s["status"] == "no_campaigns", what="claim, then idle")
    metrics = tdm.metrics()
    assert sample(metrics, "tdm_drops_claimed_total", game=MOCK_GAME) == 1
    assert sample(metrics, "tdm_miner_up") == 1
    seen = kinds(tdm.events(limit="1000"))
    for kind in ("login_successful", "watching", "drop_progress", "drop_claimed", "channel_updated", "no_campaigns"):
        assert kind in seen, (kind, seen)
    tdm.wait_log("Websocket[0] requested reconnect")
    assert idle["supervisor"]["state"] == "running"
