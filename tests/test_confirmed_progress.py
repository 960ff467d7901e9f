"""Confirmed and estimated minutes stay apart: only what Twitch confirmed is progress.

TDM's log says "Drop update from websocket" and "Drop progress from GQL" for minutes Twitch
confirmed, and "Drop progress from active search" for its own estimate while Twitch is silent
(shared/tdm/log_catalog.md). The bridge carries real_current_minutes and extra_current_minutes.
"""

from __future__ import annotations

from exporter.bridge import encode_record
from exporter.bridge_metrics import inventory_metrics
from exporter.status import current_mining_fields
from exporter.events import Event, EventKind
from exporter.state import MinerState

T0 = 1_800_000_000.0


def progress(state: MinerState, when: float, current: int, source: str, drop: str = "Hat") -> None:
    fields = {"drop": drop, "game": "Game", "current": current, "required": 60, "source": source}
    state.apply(Event(EventKind.DROP_PROGRESS, when, "CALL", "log.txt", "", fields))


def test_estimates_from_the_log_do_not_move_the_progress_clock():
    state = MinerState()
    progress(state, T0, 10, "websocket")
    for minute in range(1, 16):  # Twitch falls silent: TDM counts on its own
        progress(state, T0 + 60 * minute, 10 + minute, "active_search")
    drop = state.snapshot(T0 + 900).drop
    assert (drop.current, drop.confirmed, drop.estimated) == (25, 10, 15)
    assert drop.last_progress_time == T0  # 15 minutes on estimates alone: no progress since T0
    progress(state, T0 + 1000, 12, "gql")  # Twitch's own count is lower than TDM's estimate
    drop = state.snapshot(T0 + 1000).drop
    assert (drop.current, drop.confirmed, drop.estimated, drop.last_progress_time) == (12, 12, 0, T0 + 1000)


def test_a_new_drop_seen_first_through_an_estimate_starts_its_clock():
    state = MinerState()
    progress(state, T0, 10, "websocket")
    progress(state, T0 + 60, 1, "active_search", drop="Other")
    drop = state.snapshot(T0 + 60).drop
    assert (drop.name, drop.confirmed, drop.estimated, drop.last_progress_time) == ("Other", None, None, T0 + 60)


def test_the_status_and_metrics_show_them_apart():
    state = MinerState()
    progress(state, T0, 10, "websocket")
    progress(state, T0 + 60, 11, "active_search")
    snap = state.snapshot(T0 + 60)
    assert current_mining_fields(snap, shown=True) == {
        "campaign_id": None, "campaign": None, "confirmed_minutes": 10, "estimated_minutes": 1,
    }
    samples = {(m.name, s.labels.get("drop")): s.value for m in inventory_metrics(snap, T0) for s in m.samples}
    assert samples[("tdm_drop_confirmed_minutes", "Hat")] == 10
    assert samples[("tdm_drop_estimated_minutes", "Hat")] == 1


def test_with_the_bridge_the_later_confirmation_counts():
    state = MinerState()
    progress(state, T0, 10, "websocket")
    drop = {"id": "d1", "name": "Hat", "campaign_id": "c1", "required_minutes": 60, "current_minutes": 12,
            "confirmed_minutes": 11, "estimated_minutes": 1, "claimed": False, "can_claim": False, "rewards": []}
    state.inventory.apply(encode_record("hello", capabilities={}), T0)
    state.inventory.apply(encode_record("campaign", campaign={"id": "c1", "name": "Season", "game": {"name": "Game"}, "drops": [drop]}), T0)
    state.inventory.apply(encode_record("current_drop", drop=drop), T0 + 30)
    state.inventory.apply(encode_record("current_drop", drop=drop | {"current_minutes": 13, "estimated_minutes": 2}), T0 + 90)
    snap = state.snapshot(T0 + 90)
    assert snap.confirmed_progress_time() == T0 + 30  # the estimate at T0 + 90 is not progress
    fields = current_mining_fields(snap, shown=True)
    assert fields == {"campaign_id": "c1", "campaign": "Season", "confirmed_minutes": 11, "estimated_minutes": 2}
    assert current_mining_fields(snap, shown=False)["confirmed_minutes"] is None


def test_a_stall_restart_counts_only_confirmed_progress():
    from exporter.housekeeping import stall_due
    from exporter.lifecycle import State
    from exporter.supervisor import SupervisorStatus

    running = SupervisorStatus(State.RUNNING, "run", 1, False, T0 - 60, {}, {}, None, None, None, None, None)
    state = MinerState()
    progress(state, T0, 10, "websocket")
    for minute in range(1, 40):  # TDM estimates, minute after minute, for 39 minutes
        progress(state, T0 + 60 * minute, 10 + minute, "active_search")
    snap = state.snapshot(T0 + 60 * 39)
    assert snap.status == "mining"
    assert stall_due(snap, running, T0 + 1801, 1800)  # 30 minutes since Twitch last confirmed
    assert not stall_due(snap, running, T0 + 1799, 1800)
