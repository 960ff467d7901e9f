"""The bridge's picture once the TDM that reported it is gone: kept as last known, never shown as live.

Pure parts only (the status module's `effective`, the status fields, the routes' answers, the
metrics); test_console_live.py stops a real supervised miner and checks the same end to end.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

from exporter.bridge import encode_record
from exporter.bridge_link import BridgeLink
from exporter.bridge_metrics import inventory_metrics
from exporter.bridge_web import campaigns, channels
from exporter.status import current_mining_fields, status_fields
from exporter.events import Event, EventKind
from exporter.housekeeping import Seen
from exporter.http import Request
from exporter.inventory import InventoryState
from exporter.lifecycle import State
from exporter.state import MinerState, Snapshot
from exporter.status import ConfigState, effective, status_answer
from exporter.supervisor import SupervisorStatus

NOW = 1_800_000_000.0
HOUR = 3600.0
PID = 4242

DROP = {"id": "d1", "name": "Hat", "campaign_id": "c1", "required_minutes": 10, "current_minutes": 4,
        "confirmed_minutes": 4, "estimated_minutes": 0, "claimed": False, "can_claim": False, "rewards": ["Hat"],
        "starts_at": NOW - HOUR, "ends_at": NOW + HOUR}
CAMPAIGN = {"id": "c1", "name": "Season", "game": {"id": "7", "name": "Game"}, "status": "active", "linked": True,
            "link_url": None, "starts_at": NOW - HOUR, "ends_at": NOW + HOUR, "drops": [DROP]}
CHANNELS = [{"id": "1", "name": "Watched", "online": True, "pending_online": False, "game": "Game", "drops_enabled": True,
             "viewers": 42, "acl_based": False},
            {"id": "2", "name": "Other", "online": True, "pending_online": False, "game": "Game", "drops_enabled": True,
             "viewers": 7, "acl_based": False}]
CAPABILITIES = {name: True for name in ("login", "campaigns", "channels", "games", "reload")}


def mining(pid: int | None = PID) -> MinerState:
    """A MinerState whose TDM (process `pid`) mines Hat on Watched, by its log and by its bridge."""
    state = MinerState()
    hello = {"capabilities": CAPABILITIES, "missing": []} | ({"pid": pid} if pid is not None else {})
    records = [("hello", hello), ("login", {"state": "logged_in", "user_id": 5}), ("campaign", {"campaign": CAMPAIGN}),
               ("channel", {"channel": CHANNELS[0]}), ("channel", {"channel": CHANNELS[1]}), ("watching", {"id": "1"}),
               ("current_drop", {"drop": DROP}), ("websocket", {"idx": 0, "status": "connected", "topics": 3})]
    for offset, (kind, fields) in enumerate(records):
        assert state.inventory.apply(encode_record(kind, **fields), NOW - 60 + offset)
    state.apply(Event(EventKind.DROP_PROGRESS, NOW - 30, "CALL", "log.txt", "",
                      {"drop": "Hat", "game": "Game", "current": 4, "required": 10, "source": "websocket"}))
    return state


def supervisor(state: State, pid: int | None) -> SupervisorStatus:
    return SupervisorStatus(state=state, mode="run", pid=pid, attached=False, start_time=NOW - HOUR if pid else None,
                            restarts={}, exits={}, last_exit_code=None, last_exit_meaning=None, failure=None,
                            last_error=None, resources=None)


RUNNING = supervisor(State.RUNNING, PID)
DOWN = [supervisor(State.BACKOFF, None), supervisor(State.STOPPED, None), supervisor(State.FAILED, None),
        supervisor(State.STARTING, None)]
NEW_PROCESS = supervisor(State.RUNNING, PID + 1)  # restarted; its launcher has not said hello yet


def link() -> BridgeLink:
    answering = BridgeLink(Path("bridge.sock"), expected=True)
    answering.connected = True
    return answering


def samples(snap: Snapshot) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for m in inventory_metrics(snap, NOW) for s in m.samples}


def answer(handler, snap: Snapshot) -> list[dict]:
    ctx = SimpleNamespace(snapshot=lambda: snap, bridge=link)
    response = handler(ctx, Request("GET", "/", {}, {}, b""))
    assert response.status == 200
    return json.loads(response.body)


def test_while_the_tdm_that_reported_it_runs_the_picture_is_live():
    snap = effective(mining().snapshot(NOW), RUNNING)
    view = snap.inventory
    assert view.live and view.pid == PID and view.reported_at == NOW - 60 + 7
    fields = status_fields(snap, link(), True, NOW)
    assert fields["bridge"]["live"] is True and fields["bridge"]["as_of"] == NOW - 53
    assert fields["channels_monitored"] == 2 and fields["login"]["state"] == "logged_in"
    assert current_mining_fields(snap, shown=True)["campaign_id"] == "c1"
    listed = answer(channels, snap)
    assert [(c["name"], c["online"], c["watching"], c["live"]) for c in listed] == [("Watched", True, True, True), ("Other", True, False, True)]
    assert [c["live"] for c in answer(campaigns, snap)] == [True]
    metrics = samples(snap)
    assert metrics[("tdm_channels", (("status", "online"),))] == 2
    assert metrics[("tdm_drop_confirmed_minutes", (("drop", "Hat"), ("game", "Game")))] == 4


def test_once_tdm_is_down_nothing_says_it_is_doing_anything():
    for status in DOWN:
        snap = effective(mining().snapshot(NOW), status)
        view = snap.inventory
        assert not view.live, status.state
        # What it was doing is void; what it knew of the account stays, as last known.
        assert view.watching is None and view.current_drop is None and view.websockets == {} and view.code is None
        assert [c.id for c in view.campaigns] == ["c1"] and len(view.channels) == 2

        fields = status_fields(snap, link(), False, NOW)
        assert fields["bridge"] == {"connected": False, "capabilities": fields["bridge"]["capabilities"],
                                    "live": False, "as_of": NOW - 53}
        assert fields["channels_monitored"] is None and fields["login"]["state"] == "unknown"
        assert fields["pending_drops"] == 1  # last known, marked by bridge.live
        assert current_mining_fields(snap, shown=True) == {"campaign_id": None, "campaign": None,
                                                           "confirmed_minutes": None, "estimated_minutes": None}

        listed = answer(channels, snap)
        assert all(c["online"] is None and c["viewers"] is None and not c["watching"] and c["live"] is False for c in listed)
        assert [c["name"] for c in listed] == ["Watched", "Other"]
        (campaign,) = answer(campaigns, snap)
        assert campaign["live"] is False and campaign["drops"][0]["current_minutes"] == 4  # kept, marked

        # The series a running TDM vouched for are dropped, not repeated; no code waits for a gone TDM.
        metrics = samples(snap)
        assert metrics == {("tdm_login_code_pending", ()): 0}, metrics


def test_the_status_answer_is_composed_from_the_effective_snapshot():
    """The daemon hands status_answer the pipeline's raw snapshot: the bridge's fields are judged there."""
    raw = mining().snapshot(NOW)
    live = status_answer(raw, RUNNING, ConfigState(), Seen(), link(), NOW, 60.0)
    assert live["bridge"]["live"] and live["current_mining"]["campaign_id"] == "c1" and live["channels_monitored"] == 2
    down = status_answer(raw, DOWN[0], ConfigState(), Seen(), link(), NOW, 60.0)
    assert down["running"] is False and down["bridge"]["live"] is False and down["bridge"]["as_of"] == NOW - 53
    assert down["current_mining"]["channel"] is None and down["current_mining"]["campaign_id"] is None
    assert down["channels_monitored"] is None and down["login"]["state"] == "unknown"
    restarted = status_answer(raw, NEW_PROCESS, ConfigState(), Seen(), link(), NOW, 60.0)
    assert restarted["bridge"]["live"] is False and restarted["current_mining"]["campaign_id"] is None


def test_a_new_process_shows_the_previous_ones_picture_as_last_known_until_its_hello():
    state = mining()
    snap = effective(state.snapshot(NOW), NEW_PROCESS)
    assert not snap.inventory.live and snap.status != "stopped"  # the log side is the new process's
    fields = status_fields(snap, link(), True, NOW)
    assert fields["bridge"]["live"] is False and fields["channels_monitored"] is None
    assert fields["login"]["state"] == "unknown"  # the log has said nothing of a login yet
    assert not any(c["watching"] or c["online"] for c in answer(channels, snap))
    assert ("tdm_channels", (("status", "online"),)) not in samples(snap)
    # The new TDM says hello: its (empty, then growing) picture is live.
    assert state.inventory.apply(encode_record("hello", pid=PID + 1, capabilities=CAPABILITIES, missing=[]), NOW + 1)
    snap = effective(state.snapshot(NOW + 1), NEW_PROCESS)
    assert snap.inventory.live and snap.inventory.campaigns == () and snap.inventory.reported_at == NOW + 1


def test_a_picture_saved_before_pids_were_recorded_is_taken_as_the_running_ones():
    state = mining(pid=None)
    saved = json.loads(state.inventory.to_json())
    del saved["pid"], saved["reported_at"]  # what an older store holds
    restored = InventoryState()
    restored.restore(json.dumps(saved))
    assert restored.known and restored.pid is None and restored.reported_at is None
    snap = replace(mining().snapshot(NOW), inventory=restored.view())
    assert effective(snap, RUNNING).inventory.live
    assert not effective(snap, DOWN[0]).inventory.live


def test_the_pid_and_report_time_survive_a_save():
    state = mining()
    again = InventoryState()
    again.restore(state.inventory.to_json())
    assert (again.pid, again.reported_at) == (PID, NOW - 53)


def test_without_a_supervisor_nothing_is_judged():
    snap = mining().snapshot(NOW)  # replay, or a daemon that only follows logs
    assert effective(snap, None) is snap and snap.inventory.live
    assert status_fields(snap, BridgeLink(None, expected=False), None, NOW)["bridge"]["live"] is True
