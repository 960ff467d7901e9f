from __future__ import annotations

from exporter.events import Event, EventKind
from exporter.state import MinerState, labels


def ev(kind: EventKind, t: float = 1000.0, level: str = "INFO", message: str = "", **fields) -> Event:
    return Event(kind, t, level, "log.txt", message or kind.value, fields)


def progress(drop: str, game: str, cur: int, req: int, t: float) -> Event:
    return ev(EventKind.DROP_PROGRESS, t, "CALL", drop=drop, game=game, current=cur, required=req, source="websocket")


def counter(state: MinerState, name: str, **label_pairs) -> float:
    return state.counters.get((name, labels(**label_pairs)), 0.0)


def test_drop_progress_tracks_the_current_drop_and_when_it_last_moved() -> None:
    state = MinerState()
    state.apply(progress("Drop A", "Game", 3, 10, 100.0))
    state.apply(progress("Drop A", "Game", 3, 10, 160.0))  # GQL repeats the same value
    snap = state.snapshot(200.0)
    assert snap.status == "mining"
    assert (snap.drop.name, snap.drop.current, snap.drop.required) == ("Drop A", 3, 10)
    assert snap.drop.last_progress_time == 100.0
    assert snap.drop.percent == 30.0
    state.apply(progress("Drop A", "Game", 4, 10, 220.0))
    assert state.snapshot(230.0).drop.last_progress_time == 220.0


def test_a_drop_is_completed_once_when_progress_reaches_required() -> None:
    state = MinerState()
    for t, cur in enumerate([9, 10, 10, 10]):
        state.apply(progress("Drop A", "Game", cur, 10, float(t)))
    assert counter(state, "tdm_drops_completed_total", game="Game") == 1
    state.apply(progress("Drop B", "Game", 5, 5, 10.0))
    assert counter(state, "tdm_drops_completed_total", game="Game") == 2


def test_claimed_drop_game_is_resolved_from_known_games() -> None:
    state = MinerState()
    state.apply(progress("Drop", "Mock Game", 9, 10, 1.0))
    state.apply(ev(EventKind.DROP_CLAIMED, 2.0, "GUI", text="Mock Game Mock Reward", claimed=1, total=1))
    state.apply(ev(EventKind.DROP_CLAIMED, 3.0, "GUI", text="Other Thing Reward", claimed=1, total=1))
    assert counter(state, "tdm_drops_claimed_total", game="Mock Game") == 1
    assert counter(state, "tdm_drops_claimed_total", game="unknown") == 1
    snap = state.snapshot(10.0)
    assert snap.claims_last_24h == 2
    assert snap.drops_per_hour == 2 / 24
    assert state.snapshot(3.0 + 25 * 3600).claims_last_24h == 0


def test_websocket_shards_and_reconnects() -> None:
    state = MinerState()
    state.apply(ev(EventKind.WS_CONNECTED, shard=0))
    state.apply(ev(EventKind.WS_CONNECTED, shard=1))
    assert state.snapshot(0).websocket_shards == {0, 1}
    state.apply(ev(EventKind.WS_RECONNECTING, shard=1))
    assert state.snapshot(0).websocket_shards == {0}
    assert counter(state, "tdm_websocket_reconnects_total") == 1


def test_session_states() -> None:
    state = MinerState(login_timeout=180)
    state.apply(ev(EventKind.LOGIN_CHECKING, 100.0))
    assert state.snapshot(150.0).session == "unknown"
    assert state.snapshot(281.0).session == "login_required"  # no success within the timeout
    state.apply(ev(EventKind.LOGIN_RESTORING, 101.0))
    assert state.snapshot(102.0).session == "restoring"
    state.apply(ev(EventKind.LOGIN_SUCCESSFUL, 102.0, user_id="1"))
    snap = state.snapshot(1000.0)
    assert snap.session == "authenticated" and snap.session_login_time == 102.0
    state.apply(ev(EventKind.LOGIN_CHECKING, 2000.0))
    state.apply(ev(EventKind.LOGIN_INVALID, 2001.0))
    state.apply(ev(EventKind.LOGIN_REQUIRED, 2002.0, level="GUI"))
    assert state.snapshot(2003.0).session == "invalid"
    assert state.snapshot(2003.0).status == "login_required"
    assert counter(state, "tdm_session_invalid_total") == 1


def test_critical_task_crash_means_terminated() -> None:
    state = MinerState()
    state.apply(progress("D", "G", 1, 2, 1.0))
    state.apply(ev(EventKind.TASK_CRASH, 2.0, "ERROR", "Exception in process_drops task\nTraceback", task="process_drops", critical=False))
    assert state.snapshot(3.0).status == "mining"
    state.apply(ev(EventKind.TASK_CRASH, 4.0, "ERROR", "Exception in _watch_loop task\nTraceback", task="_watch_loop", critical=True))
    snap = state.snapshot(5.0)
    assert snap.status == "terminated"
    assert snap.last_error == (4.0, "Exception in _watch_loop task")
    assert counter(state, "tdm_task_crashes_total", task="_watch_loop") == 1


def test_watching_counts_channel_switches() -> None:
    state = MinerState()
    for channel in ["A", "A", "B"]:
        state.apply(ev(EventKind.WATCHING, level="GUI", channel=channel))
    assert counter(state, "tdm_channel_switches_total") == 2
    assert state.snapshot(0).channel == "B"


def test_user_metric_series_are_capped() -> None:
    state = MinerState(user_series_limit=3)
    for i in range(5):
        state.apply(
            ev(EventKind.USER_METRIC, metric="tdm_user_x_total", type="counter", help="x", labels={"op": str(i)}, value=1.0)
        )
    state.apply(ev(EventKind.USER_METRIC, metric="tdm_user_x_total", type="counter", help="x", labels={"op": "0"}, value=2.0))
    assert counter(state, "tdm_user_x_total", op="0") == 3.0
    assert sum(1 for name, _ in state.counters if name == "tdm_user_x_total") == 3
    assert counter(state, "tdm_user_metric_series_dropped_total", metric="tdm_user_x_total") == 2


def test_restore_round_trip() -> None:
    state = MinerState()
    state.count_record("INFO", 50.0)
    state.apply(ev(EventKind.LOGIN_SUCCESSFUL, 10.0, user_id="1"))
    state.apply(progress("Drop", "Game", 3, 10, 20.0))
    state.apply(ev(EventKind.WS_CONNECTED, shard=0))
    state.apply(ev(EventKind.USER_METRIC, metric="tdm_user_g", type="gauge", help="g", labels={}, value=7.0))
    copy = MinerState()
    copy.restore(state.totals(), state.to_json())
    assert copy.snapshot(100.0) == state.snapshot(100.0)
