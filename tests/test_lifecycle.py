"""The pure lifecycle: injected time, a seeded rng, no processes, no sleeps."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.lifecycle import (
    TERMINATED_GRACE,
    NO_RESTART_CODES,
    RESTART_REASONS,
    Action,
    BackoffPolicy,
    Lifecycle,
    State,
    TransitionError,
    exit_meaning,
)

NO_JITTER = BackoffPolicy(jitter=0.0, max_restarts=1000)


def running(lc: Lifecycle, now: float = 0.0, pid: int = 100) -> Lifecycle:
    """Drive a fresh or STARTING lifecycle to RUNNING."""
    if lc.state is State.STOPPED:
        lc.start_requested(now)
    assert lc.tick(now) is Action.START
    lc.started(now, pid)
    assert lc.state is State.RUNNING
    return lc


def crash_and_wait(lc: Lifecycle, now: float, code: int = 1) -> float:
    """Crash the running miner at `now`; return the backoff delay it got."""
    lc.exited(now, code, expected=False)
    assert lc.state is State.BACKOFF
    return lc.start_at - now


def restart_after_backoff(lc: Lifecycle, pid: int = 100) -> float:
    """From BACKOFF: tick at the due time, start; return the time it started."""
    now = lc.start_at
    assert lc.tick(now - 1e-6) is None
    assert lc.tick(now) is Action.START
    lc.started(now, pid)
    return now


# -- exit codes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, meaning",
    [
        (0, "closed"),
        (1, "fatal error"),
        (2, "bad arguments"),
        (3, "already running"),
        (4, "unreadable settings"),
        (-15, "killed by SIGTERM"),
        (-9, "killed by SIGKILL"),
        (143, "killed by SIGTERM"),
        (129, "killed by SIGHUP"),
        (137, "killed by SIGKILL"),
        (5, "unknown"),
        (None, "unknown"),
    ],
)
def test_exit_meaning(code, meaning):
    assert exit_meaning(code) == meaning


# -- backoff ------------------------------------------------------------------------------------


def test_backoff_doubles_from_10s_and_caps_at_1800s():
    lc = running(Lifecycle(NO_JITTER))
    now, delays = 0.0, []
    for _ in range(12):
        now += 1.0  # a short, unhealthy run
        delays.append(crash_and_wait(lc, now))
        now = restart_after_backoff(lc)
    assert delays == [10, 20, 40, 80, 160, 320, 640, 1280, 1800, 1800, 1800, 1800]
    assert lc.restarts == {"crash": 12}
    assert lc.exits == {(1, "fatal error"): 12}


def test_jitter_stays_within_bounds():
    policy = BackoffPolicy(max_restarts=1000)
    lc = running(Lifecycle(policy, random.Random(42)))
    now, nominal = 0.0, 10.0
    seen = []
    for _ in range(15):
        now += 1.0
        delay = crash_and_wait(lc, now)
        assert nominal * 0.9 <= delay <= nominal * 1.1
        seen.append(delay / nominal)
        now = restart_after_backoff(lc)
        nominal = min(nominal * 2, 1800)
    assert len(set(seen)) > 1  # the jitter actually varies


def test_a_healthy_run_resets_the_delay():
    lc = running(Lifecycle(NO_JITTER))
    now = 0.0
    for expected in (10, 20, 40):
        now += 1.0
        assert crash_and_wait(lc, now) == expected
        now = restart_after_backoff(lc)
    now += 599.0  # not quite healthy
    assert crash_and_wait(lc, now) == 80
    now = restart_after_backoff(lc)
    now += 600.0  # healthy
    assert crash_and_wait(lc, now) == 10


# -- crash-loop cap -----------------------------------------------------------------------------


def test_crash_loop_cap_fails_and_only_reset_leaves_failed():
    lc = running(Lifecycle(BackoffPolicy(jitter=0.0)))  # 5 restarts per 3600 s
    now = 0.0
    for _ in range(5):
        now += 1.0
        crash_and_wait(lc, now)
        now = restart_after_backoff(lc)
    now += 1.0
    lc.exited(now, 1, expected=False)  # the 6th restart within the hour would be one too many
    assert lc.state is State.FAILED
    assert "crash loop" in lc.failure
    assert lc.restarts == {"crash": 5}
    assert lc.exits == {(1, "fatal error"): 6}
    for later in (now, now + 10, now + 1e6):
        assert lc.tick(later) is None
        assert lc.next_due() is None
    lc.stop_requested(now)
    assert lc.state is State.FAILED
    with pytest.raises(TransitionError):
        lc.start_requested(now)
    with pytest.raises(TransitionError):
        lc.restart_requested(now, "manual")
    lc.reset(now)
    assert lc.state is State.STARTING and lc.failure is None
    running(lc, now)
    now += 1.0
    assert crash_and_wait(lc, now) == 10  # the history is forgotten too


def test_reset_with_a_reason_counts_it_as_a_restart():
    lc = running(Lifecycle(NO_JITTER))
    lc.exited(1.0, 3, expected=False)
    lc.reset(2.0, "manual")
    assert lc.state is State.STARTING and lc.restarts == {"manual": 1}
    with pytest.raises(ValueError, match="'crash'"):
        lc.reset(3.0, "crash")


def test_restarts_spread_over_more_than_the_window_are_not_a_loop():
    lc = running(Lifecycle(BackoffPolicy(jitter=0.0, max_restarts=2, window=100.0, healthy_after=1e9)))
    now = 0.0
    for _ in range(6):
        now += 60.0
        crash_and_wait(lc, now)
        now = restart_after_backoff(lc)
        assert lc.recent_restarts(now) <= 2
    assert lc.restarts == {"crash": 6}


@pytest.mark.parametrize("code", sorted(NO_RESTART_CODES))
def test_exit_2_3_4_fail_at_once(code):
    lc = running(Lifecycle(NO_JITTER))
    lc.exited(5.0, code, expected=False)
    assert lc.state is State.FAILED
    assert f"exit code {code}" in lc.failure and exit_meaning(code) in lc.failure
    assert lc.restarts == {}
    assert lc.exits == {(code, exit_meaning(code)): 1}
    assert (lc.last_exit_code, lc.last_exit_meaning) == (code, exit_meaning(code))
    assert lc.tick(1e9) is None


def test_a_failed_spawn_backs_off_and_counts_toward_the_cap():
    lc = Lifecycle(BackoffPolicy(jitter=0.0, max_restarts=1))
    lc.start_requested(0.0)
    assert lc.tick(0.0) is Action.START
    lc.start_failed(0.0, "no such file: main.py")
    assert lc.state is State.BACKOFF and lc.last_error == "no such file: main.py"
    assert lc.tick(10.0) is Action.START
    lc.start_failed(10.0, "no such file: main.py")
    assert lc.state is State.FAILED


# -- stop and restart ---------------------------------------------------------------------------


def test_stop_terminates_then_kills_after_the_timeout_and_does_not_restart():
    lc = running(Lifecycle(NO_JITTER, stop_timeout=10.0), now=0.0)
    lc.stop_requested(100.0)
    assert lc.state is State.STOPPING
    assert lc.next_due() == float("-inf")
    assert lc.tick(100.0) is Action.TERMINATE
    assert lc.next_due() == 110.0
    assert lc.tick(109.9) is None
    assert lc.tick(110.0) is Action.KILL
    assert lc.tick(200.0) is None  # each action once
    lc.stop_requested(111.0)  # idempotent
    lc.exited(111.0, -9, expected=True)
    assert lc.state is State.STOPPED
    assert lc.restarts == {}
    assert lc.exits == {(-9, "killed by SIGKILL"): 1}
    lc.stop_requested(112.0)
    assert lc.state is State.STOPPED


def test_graceful_stop_exit_0():
    lc = running(Lifecycle(NO_JITTER))
    lc.stop_requested(1.0)
    assert lc.tick(1.0) is Action.TERMINATE
    lc.exited(1.7, 0, expected=True)
    assert lc.state is State.STOPPED and lc.last_exit_meaning == "closed"


def test_stop_during_backoff_cancels_the_restart():
    lc = running(Lifecycle(NO_JITTER))
    crash_and_wait(lc, 1.0)
    lc.stop_requested(2.0)
    assert lc.state is State.STOPPED
    assert lc.tick(1e6) is None


@pytest.mark.parametrize("reason", ["terminated", "stall"])
def test_terminated_or_stalled_restart_goes_through_the_backoff(reason):
    lc = running(Lifecycle(NO_JITTER))
    lc.restart_requested(50.0, reason)
    assert lc.state is State.STOPPING
    grace = TERMINATED_GRACE if reason == "terminated" else 0.0
    assert lc.tick(50.0 + grace) is Action.TERMINATE
    lc.exited(50.6 + grace, -15, expected=True)
    assert lc.state is State.BACKOFF and lc.start_at == pytest.approx(60.6 + grace)
    assert lc.restarts == {reason: 1}
    assert lc.recent_restarts(51.0) == 1


def test_a_terminated_miner_is_terminated_after_a_grace_and_again_until_it_is_gone():
    # TDM swallows a SIGTERM in its except block and dies of one once it waits for its window.
    lc = running(Lifecycle(NO_JITTER, stop_timeout=10.0), now=0.0)
    lc.restart_requested(100.0, "terminated")
    assert lc.next_due() == 100.0 + TERMINATED_GRACE
    assert lc.tick(100.0) is None  # cookies.jar is being saved
    assert lc.tick(100.0 + TERMINATED_GRACE) is Action.TERMINATE
    assert lc.tick(100.0 + TERMINATED_GRACE) is None
    assert lc.next_due() == 100.0 + 2 * TERMINATED_GRACE
    assert lc.tick(100.0 + 2 * TERMINATED_GRACE) is Action.TERMINATE
    assert lc.tick(100.0 + TERMINATED_GRACE + 10.0) is Action.KILL  # stop_timeout after the first
    assert lc.tick(200.0) is None
    lc.exited(200.0, 143, expected=True)
    assert lc.state is State.BACKOFF and lc.restart_reason == "terminated"


def test_other_stops_terminate_once():
    lc = running(Lifecycle(NO_JITTER, stop_timeout=10.0), now=0.0)
    lc.restart_requested(100.0, "manual")
    assert lc.tick(100.0) is Action.TERMINATE
    assert lc.next_due() == 110.0
    assert lc.tick(105.0) is None


def test_adopted_miner_is_ours_to_stop():
    lc = Lifecycle(NO_JITTER)
    lc.start_requested(0.0)
    assert lc.tick(0.0) is Action.START
    lc.attached_to(0.5, 4242, adopted=True)
    assert lc.state is State.RUNNING and lc.adopted and not lc.attached
    lc.restart_requested(1.0, "manual")
    assert lc.tick(1.0) is Action.TERMINATE


def test_terminated_restarts_share_the_crash_loop_cap():
    lc = running(Lifecycle(BackoffPolicy(jitter=0.0, max_restarts=2)))
    now = 0.0
    for reason in ("terminated", "crash"):
        now += 1.0
        if reason == "crash":
            lc.exited(now, 1, expected=False)
        else:
            lc.restart_requested(now, reason)
            lc.tick(now)
            lc.exited(now, -15, expected=True)
        now = restart_after_backoff(lc)
    lc.restart_requested(now + 1, "stall")
    lc.tick(now + 1)
    lc.exited(now + 1, -15, expected=True)
    assert lc.state is State.FAILED


@pytest.mark.parametrize("reason", ["manual", "config"])
def test_deliberate_restart_is_immediate_and_not_capped(reason):
    lc = running(Lifecycle(BackoffPolicy(jitter=0.0, max_restarts=0)))
    for i in range(3):
        lc.restart_requested(float(i), reason)
        assert lc.tick(float(i)) is Action.TERMINATE
        lc.exited(float(i), 0, expected=True)
        assert lc.state is State.STARTING
        running(lc, float(i))
    assert lc.restarts == {reason: 3}


def test_manual_restart_skips_a_backoff_wait():
    lc = running(Lifecycle(NO_JITTER))
    crash_and_wait(lc, 1.0)
    lc.restart_requested(2.0, "manual")
    assert lc.tick(2.0) is Action.START
    assert lc.restarts == {"crash": 1, "manual": 1}


# -- attach -------------------------------------------------------------------------------------


def test_an_attached_process_is_never_signalled():
    lc = Lifecycle(NO_JITTER)
    lc.attached_to(0.0, 4242)
    assert (lc.state, lc.pid, lc.attached) == (State.RUNNING, 4242, True)
    with pytest.raises(TransitionError, match="not started by us"):
        lc.restart_requested(1.0, "terminated")
    lc.stop_requested(2.0)
    assert lc.state is State.STOPPED and lc.pid is None
    assert lc.tick(1e6) is None


def test_attached_process_gone_expected_stops_unexpected_restarts():
    lc = Lifecycle(NO_JITTER)
    lc.attached_to(0.0, 1)
    lc.exited(5.0, None, expected=True)
    assert lc.state is State.STOPPED and lc.exits == {}
    lc.start_requested(6.0)
    assert lc.tick(6.0) is Action.START
    lc.attached_to(6.0, 2)  # the run-mode preflight found a lock holder
    lc.exited(7.0, None, expected=False)
    assert lc.state is State.BACKOFF and lc.restarts == {"crash": 1}


# -- guards -------------------------------------------------------------------------------------


def test_illegal_transitions_raise_and_change_nothing():
    lc = Lifecycle(NO_JITTER)
    for event in (
        lambda: lc.started(0.0, 1),
        lambda: lc.exited(0.0, 0, expected=False),
        lambda: lc.start_failed(0.0, "x"),
        lambda: lc.restart_requested(0.0, "crash"),
    ):
        with pytest.raises(TransitionError):
            event()
        assert lc.state is State.STOPPED
    lc.start_requested(0.0)
    with pytest.raises(TransitionError, match="not handed out"):
        lc.started(0.0, 1)  # the shell must tick first
    running(lc)
    with pytest.raises(TransitionError):
        lc.start_requested(1.0)
    with pytest.raises(TransitionError):
        lc.started(1.0, 2)
    with pytest.raises(ValueError, match="'reboot'"):
        lc.restart_requested(1.0, "reboot")
    assert (lc.state, lc.pid) == (State.RUNNING, 100)


@pytest.mark.parametrize(
    "field, value",
    [("initial", 0), ("factor", 0.5), ("max", 1.0), ("jitter", 1.0), ("max_restarts", -1), ("window", 0)],
)
def test_policy_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=repr(value)):
        BackoffPolicy(**{field: value})


# -- random event sequences ---------------------------------------------------------------------

EVENTS = st.one_of(
    st.tuples(st.just("start")),
    st.tuples(st.just("started")),
    st.tuples(st.just("attached")),
    st.tuples(st.just("start_failed")),
    st.tuples(st.just("exited"), st.sampled_from([0, 1, 2, 3, 4, -15, -9, 143, None]), st.booleans()),
    st.tuples(st.just("stop")),
    st.tuples(st.just("restart"), st.sampled_from(RESTART_REASONS)),
    st.tuples(st.just("reset")),
    st.tuples(st.just("tick")),
)


def snapshot(lc: Lifecycle) -> tuple:
    return (lc.state, lc.pid, lc.attached, lc.start_at, lc.delay, dict(lc.restarts), dict(lc.exits), lc.failure)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(st.tuples(EVENTS, st.floats(0, 4000, allow_nan=False)), max_size=60),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_event_sequences_stay_consistent(steps, seed):
    policy = BackoffPolicy(initial=10.0, max=100.0, jitter=0.2, max_restarts=3, window=1000.0)
    lc = Lifecycle(policy, random.Random(seed), stop_timeout=5.0)
    now, pid = 0.0, 0
    for event, advance in steps:
        now += advance
        before = snapshot(lc)
        name = event[0]
        try:
            if name == "start":
                lc.start_requested(now)
            elif name == "started":
                pid += 1
                lc.started(now, pid)
            elif name == "attached":
                pid += 1
                lc.attached_to(now, pid)
            elif name == "start_failed":
                lc.start_failed(now, "boom")
            elif name == "exited":
                lc.exited(now, event[1], expected=event[2])
            elif name == "stop":
                lc.stop_requested(now)
            elif name == "restart":
                lc.restart_requested(now, event[1])
            elif name == "reset":
                lc.reset(now)
            else:
                action = lc.tick(now)
                if action is Action.START:
                    assert lc.state is State.STARTING
                elif action is not None:
                    assert lc.state is State.STOPPING and not lc.attached
        except TransitionError:
            assert snapshot(lc) == before  # a refused event changes nothing
            continue
        # FAILED is left only through reset
        if before[0] is State.FAILED and name != "reset":
            assert lc.state is State.FAILED
        # the delay and the wait never exceed max * (1 + jitter)
        if lc.delay is not None:
            assert policy.initial <= lc.delay <= policy.max
        if lc.state is State.BACKOFF:
            assert lc.start_at is not None
            if before[0] is not State.BACKOFF:
                assert 0 <= lc.start_at - now <= policy.max * (1 + policy.jitter)
        else:
            assert lc.start_at is None
        # a pid exactly while something runs
        assert (lc.pid is not None) == (lc.state in (State.RUNNING, State.STOPPING))
        assert not (lc.attached and lc.state is State.STOPPING)  # never signal a process we did not start
        assert lc.failure is not None or lc.state is not State.FAILED
        assert lc.recent_restarts(now) <= policy.max_restarts
        assert all(count > 0 for count in lc.restarts.values())
