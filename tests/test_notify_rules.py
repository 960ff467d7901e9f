"""The notification rules, pure: events, snapshots and supervisor states in, notifications out; time is an argument."""

from __future__ import annotations

import datetime

from exporter.events import Event, EventKind
from exporter.lifecycle import State
from exporter.notify_rules import NotifyRules, RuleSettings
from exporter.state import MinerState
from exporter.supervisor import SupervisorStatus

T0 = 1_800_000_000.0


def ev(kind: EventKind, t: float = T0, level: str = "INFO", **fields) -> Event:
    return Event(kind, t, level, "log.txt", kind.value, fields)


def sup(state: State = State.RUNNING, failure: str | None = None, start_time: float = T0 - 60, exit_meaning=None):
    return SupervisorStatus(state, "run", 42 if state is State.RUNNING else None, False, start_time, {}, {}, None,
                            exit_meaning, failure, None, None)


def miner(*events: Event) -> MinerState:
    state = MinerState()
    for event in events:
        state.apply(event)
    return state


def events_of(notifications) -> list[str]:
    return [n.event for n in notifications]


def test_a_claimed_drop_names_game_rewards_drop_and_count() -> None:
    state = miner(ev(EventKind.DROP_PROGRESS, T0 - 5, drop="Golden Helmet", game="Starfall Arena", current=60, required=60))
    claim = ev(EventKind.DROP_CLAIMED, T0, "GUI", text="Starfall Arena Golden Helmet, Banner", claimed=2, total=5)
    rules = NotifyRules()
    [note] = rules.on_event(claim, T0 + 1, state.known_games, state.drop)
    assert note.event == "drop_claimed" and not note.repeating
    assert note.body == "Starfall Arena: Golden Helmet, Banner (Golden Helmet), drop 2/5 of the campaign"
    # The same record read again (a log read twice) has the same key: the sender drops it.
    [again] = NotifyRules().on_event(claim, T0 + 1, state.known_games, state.drop)
    assert again.key == note.key


def test_old_records_are_history_not_news() -> None:
    claim = ev(EventKind.DROP_CLAIMED, T0, "GUI", text="Game Reward", claimed=1, total=1)
    assert NotifyRules().on_event(claim, T0 + 3600, ["Game"]) == []


def test_login_required_once_then_the_code_from_the_gui_line() -> None:
    rules = NotifyRules()
    state = miner(ev(EventKind.LOGIN_CHECKING, T0), ev(EventKind.LOGIN_REQUIRED, T0 + 1, "GUI"))
    assert events_of(rules.tick(T0 + 2, state.snapshot(T0 + 2), sup())) == ["login_required"]
    assert rules.tick(T0 + 3, state.snapshot(T0 + 3), sup()) == []  # still the same wait
    code = ev(EventKind.LOGIN_DEVICE_CODE, T0 + 10, "GUI", user_code="ABCD-EFGH")
    state.apply(code)
    assert rules.on_event(code, T0 + 10) == []  # a moment for the bridge to tell it with its exact link
    assert rules.tick(T0 + 11, state.snapshot(T0 + 11), sup()) == []
    [note] = rules.tick(T0 + 12, state.snapshot(T0 + 12), sup())
    assert note.event == "login_required" and "ABCD-EFGH" in note.body and "https://www.twitch.tv/activate" in note.body
    assert "expires at" in note.body
    assert rules.on_event(code, T0 + 13) == [] and rules.tick(T0 + 20, state.snapshot(T0 + 20), sup()) == []
    state.apply(ev(EventKind.LOGIN_SUCCESSFUL, T0 + 30, user_id="1"))
    assert events_of(rules.tick(T0 + 31, state.snapshot(T0 + 31), sup())) == ["recovered"]


def test_the_bridge_login_state_gives_the_code_and_its_expiry() -> None:
    rules = NotifyRules()
    snap = miner(ev(EventKind.LOGIN_CHECKING, T0)).snapshot(T0 + 1)  # the log alone says nothing yet
    login = {"state": "login_required", "user_code": None, "activation_url": None, "code_expires_at": None}
    assert events_of(rules.tick(T0 + 1, snap, sup(), login)) == ["login_required"]
    shown = {**login, "state": "code_shown", "user_code": "WXYZ-1234",
             "activation_url": "https://www.twitch.tv/activate?device-code=WXYZ-1234", "code_expires_at": T0 + 1800}
    [note] = rules.tick(T0 + 5, snap, sup(), shown)
    assert "WXYZ-1234" in note.body and "device-code=WXYZ-1234" in note.body and "UTC" in note.body
    assert rules.tick(T0 + 6, snap, sup(), shown) == []
    # The same code from TDM's output line as well: still one message.
    rules.on_event(ev(EventKind.LOGIN_DEVICE_CODE, T0 + 6, "GUI", user_code="WXYZ-1234"), T0 + 6)
    assert rules.tick(T0 + 9, snap, sup(), shown) == []
    assert events_of(rules.tick(T0 + 20, snap, sup(), {**login, "state": "logged_in"})) == ["recovered"]


def test_crash_loop_and_gave_up_come_from_the_supervisor_and_recover_when_it_runs_again() -> None:
    snap = MinerState().snapshot(T0)
    rules = NotifyRules()
    loop = sup(State.FAILED, "crash loop: 5 restarts within 3600 s already (limit 5); not restarting until reset")
    [note] = rules.tick(T0, snap, loop)
    assert note.event == "crash_loop" and "5 restarts" in note.body
    assert rules.tick(T0 + 600, snap, loop) == []  # FAILED is not also "down"
    assert rules.tick(T0 + 700, snap, sup(State.STARTING)) == []  # reset: starting again
    assert events_of(rules.tick(T0 + 705, snap, sup())) == ["recovered"]
    gave_up = sup(State.FAILED, "exit 3 (already running): not restarting")
    assert events_of(NotifyRules().tick(T0, snap, gave_up)) == ["gave_up"]


def test_miner_down_only_after_the_threshold() -> None:
    snap = MinerState().snapshot(T0)
    rules = NotifyRules(RuleSettings(miner_down_after=300))
    backoff = sup(State.BACKOFF, exit_meaning="fatal error")
    assert rules.tick(T0, snap, backoff) == []
    assert rules.tick(T0 + 299, snap, backoff) == []
    [note] = rules.tick(T0 + 301, snap, backoff)
    assert note.event == "miner_down" and "fatal error" in note.body
    assert events_of(rules.tick(T0 + 400, snap, sup())) == ["recovered"]
    # Down again, briefly: nothing.
    assert rules.tick(T0 + 500, snap, backoff) == [] and rules.tick(T0 + 510, snap, sup()) == []


def test_terminated_with_its_cause_and_stalled_progress() -> None:
    state = miner(
        ev(EventKind.DROP_PROGRESS, T0, drop="D", game="G", current=3, required=60),
        ev(EventKind.TASK_CRASH, T0 + 5, "ERROR", task="_watch_loop", critical=True),
    )
    rules = NotifyRules()
    [note] = rules.tick(T0 + 6, state.snapshot(T0 + 6), sup(start_time=T0 - 10))
    assert note.event == "miner_terminated" and "task_crash" in note.body

    stalled = miner(ev(EventKind.DROP_PROGRESS, T0, drop="D", game="G", current=3, required=60))
    rules = NotifyRules(RuleSettings(stalled_after=1800))
    assert rules.tick(T0 + 1700, stalled.snapshot(T0 + 1700), sup(start_time=T0 - 10)) == []
    [note] = rules.tick(T0 + 1801, stalled.snapshot(T0 + 1801), sup(start_time=T0 - 10))
    assert note.event == "stalled" and "'D'" in note.body
    # A fresh miner start counts as progress: no stall right after a restart.
    assert NotifyRules().tick(T0 + 1801, stalled.snapshot(T0 + 1801), sup(start_time=T0 + 1790)) == []


def test_a_log_about_a_process_that_is_gone_raises_nothing_and_clears_nothing() -> None:
    state = miner(ev(EventKind.LOGIN_REQUIRED, T0, "GUI"))
    rules = NotifyRules()
    assert events_of(rules.tick(T0, state.snapshot(T0), sup())) == ["login_required"]
    # The miner restarts: while it is down, the wait for a login is neither over nor new.
    assert rules.tick(T0 + 10, state.snapshot(T0 + 10), sup(State.BACKOFF)) == []
    assert rules.tick(T0 + 20, state.snapshot(T0 + 20), sup()) == []
    assert NotifyRules().tick(T0, state.snapshot(T0), sup(State.BACKOFF)) == []


def test_session_invalid() -> None:
    state = miner(ev(EventKind.LOGIN_INVALID, T0))
    assert events_of(NotifyRules().tick(T0, state.snapshot(T0), sup())) == ["session_invalid"]


def test_campaigns_new_for_a_priority_game_and_ending_with_unclaimed_drops() -> None:
    rules = NotifyRules(RuleSettings(priority=("Starfall Arena",), campaign_ending_within=6 * 3600))
    snap = MinerState().snapshot(T0)

    def campaign(cid, game="Starfall Arena", ends=T0 + 86400, claimed=(False,), status="active"):
        return {"id": cid, "name": f"Campaign {cid}", "game": game, "status": status, "ends_at": ends,
                "drops": [{"name": f"Drop {i}", "claimed": c} for i, c in enumerate(claimed)]}

    assert rules.tick(T0, snap, sup(), campaigns=[campaign("a")]) == []  # the first list is the baseline
    found = rules.tick(T0 + 60, snap, sup(), campaigns=[campaign("a"), campaign("b"), campaign("c", game="Other")])
    assert [(n.event, n.key) for n in found] == [("new_campaign", "new_campaign:b")]
    ending = "2027-01-15T10:00:00Z"  # the bridge may give ISO times
    near = datetime.datetime(2027, 1, 15, 9, 0, tzinfo=datetime.timezone.utc).timestamp()
    [note] = rules.tick(near, snap, sup(), campaigns=[campaign("a", ends=ending, claimed=(True, False))])
    assert note.event == "campaign_ending" and "1 unclaimed drop: Drop 1" in note.body and "60 min" in note.body
    assert rules.tick(near + 60, snap, sup(), campaigns=[campaign("a", ends=ending, claimed=(True, False))]) == []
    all_claimed = campaign("d", ends=near + 600, claimed=(True,))
    assert events_of(rules.tick(near, snap, sup(), campaigns=[all_claimed])) == ["new_campaign"]


def test_state_survives_a_restart_so_nothing_is_sent_again() -> None:
    state = miner(ev(EventKind.LOGIN_REQUIRED, T0, "GUI"))
    rules = NotifyRules()
    rules.tick(T0, state.snapshot(T0), sup())
    rules.tick(T0, state.snapshot(T0), sup(), campaigns=[{"id": "a", "game": "G", "status": "active"}])
    again = NotifyRules()
    again.restore(rules.to_json())
    assert again.tick(T0 + 5, state.snapshot(T0 + 5), sup()) == []
    assert again.tick(T0 + 5, state.snapshot(T0 + 5), sup(), campaigns=[{"id": "a", "game": "G", "status": "active"}]) == []


def test_terminated_is_told_by_the_event_even_when_the_restart_comes_before_a_tick() -> None:
    crash = Event(EventKind.FATAL_ERROR, T0, "GUI", "out.log",
                  "Fatal error encountered:\nTraceback (most recent call last):\n  ...\nKeyError: 'game'", {})
    rules = NotifyRules()
    [note] = rules.on_event(crash, T0 + 1)
    assert note.event == "miner_terminated"
    assert note.body == "TDM stopped mining: Fatal error encountered: KeyError: 'game'"
    state = miner(ev(EventKind.FATAL_ERROR, T0, "GUI"))
    assert rules.tick(T0 + 2, state.snapshot(T0 + 2), sup(State.STOPPING)) == []  # restarting it
    assert rules.tick(T0 + 3, state.snapshot(T0 + 3), sup(start_time=T0 + 3)) == []  # up, nothing said yet
    state.apply(ev(EventKind.LOGIN_CHECKING, T0 + 4))
    assert events_of(rules.tick(T0 + 5, state.snapshot(T0 + 5), sup(start_time=T0 + 3))) == ["recovered"]


def test_a_stall_restart_is_a_stall_until_the_drop_moves_again() -> None:
    def restarted(n: int, state=State.RUNNING):
        status = sup(state, start_time=T0 + 100)
        return SupervisorStatus(**{**status.__dict__, "restarts": {"stall": n}}) if n else status

    state = miner(ev(EventKind.DROP_PROGRESS, T0, drop="D", game="G", current=3, required=60))
    rules = NotifyRules()
    assert rules.tick(T0 + 10, state.snapshot(T0 + 10), restarted(0)) == []
    [note] = rules.tick(T0 + 20, state.snapshot(T0 + 20), restarted(1, State.STOPPING))
    assert note.event == "stalled" and "restart_on_stall" in note.body
    state.apply(ev(EventKind.DROP_PROGRESS, T0 + 30, drop="D", game="G", current=3, required=60))  # same minute
    assert rules.tick(T0 + 40, state.snapshot(T0 + 40), restarted(1)) == []
    state.apply(ev(EventKind.DROP_PROGRESS, T0 + 90, drop="D", game="G", current=4, required=60))
    assert events_of(rules.tick(T0 + 95, state.snapshot(T0 + 95), restarted(1))) == ["recovered"]
