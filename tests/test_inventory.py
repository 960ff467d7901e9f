"""InventoryState: the bridge's STATE records folded into TDM's own picture, without threads or files."""

from __future__ import annotations

import json

from exporter.bridge import encode_record
from exporter.inventory import InventoryState

NOW = 1_800_000_000.0
HOUR = 3600.0


def drop(drop_id: str = "d1", confirmed: int = 2, estimated: int = 0, required: int = 10, **fields) -> dict:
    return {
        "id": drop_id, "name": f"Drop {drop_id}", "campaign_id": "c1", "required_minutes": required,
        "current_minutes": confirmed + estimated, "confirmed_minutes": confirmed, "estimated_minutes": estimated,
        "claimed": False, "can_claim": False, "rewards": ["Hat"], "starts_at": NOW - HOUR, "ends_at": NOW + HOUR,
        **fields,
    }


def campaign(campaign_id: str = "c1", status: str = "active", drops: list | None = None, **fields) -> dict:
    return {
        "id": campaign_id, "name": f"Campaign {campaign_id}", "game": {"id": "7", "name": "Game"}, "status": status,
        "linked": True, "eligible": True, "link_url": "https://example.invalid/link", "starts_at": NOW - HOUR,
        "ends_at": NOW + HOUR, "allowed_channels": [], "drops": drops if drops is not None else [drop()], **fields,
    }


def channel(channel_id: str = "1", online: bool = True, **fields) -> dict:
    return {"id": channel_id, "name": f"Streamer{channel_id}", "online": online, "pending_online": False,
            "game": "Game", "drops_enabled": True, "viewers": 42, "acl_based": True, **fields}


def fold(*records: tuple[str, dict], start: float = NOW) -> InventoryState:
    state = InventoryState()
    for offset, (kind, fields) in enumerate(records):
        assert state.apply(encode_record(kind, **fields), start + offset)
    return state


HELLO = ("hello", {"pid": 1, "capabilities": {"login": True, "campaigns": True, "reload": False}, "missing": []})


def test_hello_starts_a_new_tdm_and_forgets_the_last_one():
    state = fold(HELLO, ("campaign", {"campaign": campaign()}), ("login", {"state": "logged_in", "user_id": 5, "status": "Logged in"}))
    assert state.view().campaigns and state.view().login(NOW) == "logged_in"
    state.apply(encode_record("hello", capabilities={"login": False}), NOW + 10)
    view = state.view()
    assert view.known and view.capabilities == {"login": False}
    assert view.campaigns == () and view.login(NOW) == "unknown" and view.user_id is None


def test_device_code_flow_states():
    state = fold(HELLO, ("login", {"state": "login_required", "user_id": None}), ("login_wait", {"waiting": True}))
    view = state.view()
    assert view.login(NOW) == "login_required" and view.waiting_for_login
    state.apply(encode_record("login_wait", waiting=False), NOW + 5)
    state.apply(encode_record("login_code", user_code="ABCDEFGH", activation_url="https://www.twitch.tv/activate?device-code=ABCDEFGH",
                              expires_at=NOW + 1800), NOW + 5)
    view = state.view()
    assert view.login(NOW + 6) == "code_shown" and view.code_pending(NOW + 6)
    assert view.login(NOW + 1800) == "login_required"  # expired: TDM needs a new press and code
    state.apply(encode_record("login", state="logged_in", user_id=123, status="Logged in"), NOW + 20)
    view = state.view()
    assert view.login(NOW + 21) == "logged_in" and view.code is None and view.user_id == 123


def test_inventory_is_rebuilt_on_each_fetch_and_drops_update_in_place():
    state = fold(HELLO, ("inventory_clear", {}), ("campaign", {"campaign": campaign("c1")}),
                 ("campaign", {"campaign": campaign("c2", status="upcoming", starts_at=NOW + HOUR, ends_at=NOW + 2 * HOUR,
                                                     drops=[drop("d2", confirmed=0) | {"campaign_id": "c2"}])}))
    assert [c.id for c in state.view().campaigns] == ["c1", "c2"]
    state.apply(encode_record("drop", drop=drop("d1", confirmed=3, estimated=1)), NOW + 10)
    (d1,) = state.view().campaign("c1").drops
    assert (d1.current_minutes, d1.confirmed_minutes, d1.estimated_minutes) == (4, 3, 1)
    view = state.view()
    assert view.campaign_statuses(NOW) == {"active": 1, "upcoming": 1, "expired": 0}
    assert view.campaign_statuses(NOW + 1.5 * HOUR) == {"active": 1, "upcoming": 0, "expired": 1}  # campaigns age
    assert view.drop_states() == {"pending": 1, "in_progress": 1, "claimable": 0, "claimed": 0}
    state.apply(encode_record("inventory_clear"), NOW + 20)
    assert state.view().campaigns == ()


def test_only_confirmed_minutes_move_the_progress_clock():
    state = fold(HELLO, ("campaign", {"campaign": campaign()}), ("current_drop", {"drop": drop(confirmed=2)}))
    assert state.view().confirmed_progress_time == NOW + 2  # a new current drop starts its clock
    for minute in range(1, 16):  # TDM's own estimate, minute after minute: no progress
        state.apply(encode_record("drop", drop=drop(confirmed=2, estimated=minute)), NOW + 60 * minute)
    assert state.view().confirmed_progress_time == NOW + 2
    assert state.view().current_drop.estimated_minutes == 15
    state.apply(encode_record("current_drop", drop=drop(confirmed=3)), NOW + 1000)  # Twitch confirms
    assert state.view().confirmed_progress_time == NOW + 1000
    state.apply(encode_record("current_drop", drop=drop("d9", confirmed=0)), NOW + 1100)
    assert state.view().confirmed_progress_time == NOW + 1100
    state.apply(encode_record("current_drop", drop=None), NOW + 1200)
    assert state.view().current_drop is None and state.view().confirmed_progress_time is None


def test_channels_and_the_watched_one():
    state = fold(HELLO, ("channels_clear", {}), ("channel", {"channel": channel("1")}), ("channel", {"channel": channel("2", online=False)}),
                 ("channel", {"channel": channel("3", online=False, pending_online=True)}), ("watching", {"id": "1"}))
    view = state.view()
    assert view.watching == "1" and view.channel_statuses() == {"online": 1, "offline": 1, "pending": 1}
    state.apply(encode_record("channel_remove", id="1"), NOW + 10)
    assert state.view().watching is None and len(state.view().channels) == 2
    state.apply(encode_record("channels_clear"), NOW + 11)
    assert state.view().channels == ()


def test_games_websockets_and_status_text():
    state = fold(HELLO, ("games", {"games": [{"id": "1", "name": "A"}, {"id": None, "name": "B"}]}),
                 ("websocket", {"idx": 0, "status": "Connected", "topics": 2}), ("status", {"text": "Idle"}))
    view = state.view()
    assert view.games == ("A", "B") and view.websockets == {0: ("Connected", 2)} and view.status_text == "Idle"
    state.apply(encode_record("websocket_remove", idx=0), NOW + 10)
    assert state.view().websockets == {}


def test_a_snapshot_replaces_everything():
    state = fold(HELLO, ("campaign", {"campaign": campaign("old")}), ("channel", {"channel": channel("9")}))
    snapshot = {
        "capabilities": {"login": True, "campaigns": True}, "login": {"state": "logged_in", "user_id": 7}, "waiting": False,
        "code": None, "campaigns": [campaign("c1")], "channels": [channel("1")], "watching": "1",
        "games": [{"id": "1", "name": "Game"}], "websockets": {"0": {"status": "Connected", "topics": 2}},
        "status": "Watching: Streamer1", "current_drop": drop(),
    }
    state.apply(encode_record("snapshot", **snapshot), NOW + 10)
    view = state.view()
    assert [c.id for c in view.campaigns] == ["c1"] and [c.id for c in view.channels] == ["1"]
    assert view.login(NOW) == "logged_in" and view.user_id == 7 and view.watching == "1"
    assert view.current_drop.id == "d1" and view.websockets == {0: ("Connected", 2)}


def test_unreadable_records_are_counted_and_change_nothing():
    state = fold(HELLO, ("campaign", {"campaign": campaign()}))
    before = state.to_json()
    for message in ("not json", "[]", json.dumps({"v": 2, "type": "campaign"}), encode_record("campaign"),
                    encode_record("campaign", campaign={"name": "no id"}), encode_record("nonsense")):
        assert not state.apply(message, NOW + 10)
    assert state.unreadable == 6
    assert json.loads(state.to_json()) | {"unreadable": 0} == json.loads(before) | {"unreadable": 0}


def test_saved_and_restored_picture_is_the_same():
    state = fold(HELLO, ("login", {"state": "login_required", "user_id": None}),
                 ("login_code", {"user_code": "ABCDEFGH", "activation_url": "https://x.invalid/a", "expires_at": NOW + 1800}),
                 ("campaign", {"campaign": campaign()}), ("current_drop", {"drop": drop(confirmed=2, estimated=1)}),
                 ("channel", {"channel": channel("1")}), ("watching", {"id": "1"}), ("games", {"games": [{"id": "1", "name": "G"}]}),
                 ("websocket", {"idx": 1, "status": "Connected", "topics": 3}), ("status", {"text": "Watching: x"}))
    restored = InventoryState()
    restored.restore(state.to_json())
    assert restored.view() == state.view()
    assert restored.revision == state.revision
    broken = InventoryState()
    broken.restore('{"known": true}')  # an older or damaged save: dropped, the next hello rebuilds it
    assert broken.view() == InventoryState().view()


def test_saved_picture_is_what_dataclasses_asdict_gives():
    """to_json skips asdict's deep copies for speed; the JSON must not change."""
    import dataclasses

    state = fold(HELLO, ("login", {"state": "login_required", "user_id": None}),
                 ("login_code", {"user_code": "ABCDEFGH", "activation_url": "https://x.invalid/a", "expires_at": NOW + 1800}),
                 ("campaign", {"campaign": campaign()}), ("current_drop", {"drop": drop(confirmed=2, estimated=1)}),
                 ("channel", {"channel": channel("1")}), ("watching", {"id": "1"}), ("games", {"games": [{"id": "1", "name": "G"}]}),
                 ("websocket", {"idx": 1, "status": "Connected", "topics": 3}), ("status", {"text": "Watching: x"}))
    expected = dataclasses.asdict(state)
    expected["websockets"] = [[idx, *entry] for idx, entry in state.websockets.items()]
    assert state.to_json() == json.dumps(expected, separators=(",", ":"))


def test_saved_picture_stays_what_asdict_gives_as_records_change_it():
    """to_json keeps the plain form of campaigns and channels carried over unchanged: one that changed
    (a drop's progress replaces its campaign) must be saved anew."""
    import dataclasses

    def expected(state: InventoryState) -> str:
        data = dataclasses.asdict(state)
        data["websockets"] = [[idx, *entry] for idx, entry in state.websockets.items()]
        return json.dumps(data, separators=(",", ":"))

    state = fold(HELLO, ("campaign", {"campaign": campaign()}), ("channel", {"channel": channel("1")}),
                 ("current_drop", {"drop": drop(confirmed=2, estimated=1)}))
    assert state.to_json() == expected(state)
    for confirmed in (3, 4):
        assert state.apply(encode_record("drop", drop=drop(confirmed=confirmed, estimated=0)), NOW)
        assert state.to_json() == expected(state)
        assert f'"confirmed_minutes":{confirmed}' in state.to_json()
