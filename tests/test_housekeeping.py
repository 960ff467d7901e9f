"""When housekeeping and the event reaction restart TDM: pure decisions of (snapshot, status, now)."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from exporter.events import Event, EventKind
from exporter.housekeeping import Housekeeping, Seen, cpu_percent, stall_due, terminated_while_up
from exporter.lifecycle import State
from exporter.resources import ResourceSample
from exporter.state import Drop, Snapshot
from exporter.supervisor import SupervisorStatus

START = 1_800_000_000.0
LIMIT = 1800.0
DROP = Drop("Sim Drop", "Sim Game", current=3, required=10, source="websocket", last_progress_time=START + 600)


def snapshot(status: str = "mining", drop: Drop | None = DROP) -> Snapshot:
    return Snapshot({}, {}, {}, status, "authenticated", None, drop, "SimStreamer1", "Sim Game", frozenset({0}),
                    START + 700, None, 0, 0, 0.0)


def supervisor(state: State = State.RUNNING, start_time: float | None = START) -> SupervisorStatus:
    return SupervisorStatus(state, "run", 1234, False, start_time, {}, {}, None, None, None, None, None)


def test_stall_is_due_only_past_the_limit_since_the_last_progress() -> None:
    last = DROP.last_progress_time
    assert not stall_due(snapshot(), supervisor(), last + LIMIT, LIMIT)
    assert stall_due(snapshot(), supervisor(), last + LIMIT + 0.001, LIMIT)


def test_a_restart_starts_a_fresh_limit() -> None:
    restarted = START + 5000  # long after the last progress
    assert not stall_due(snapshot(), supervisor(start_time=restarted), restarted + LIMIT - 1, LIMIT)
    assert stall_due(snapshot(), supervisor(start_time=restarted), restarted + LIMIT + 1, LIMIT)


@pytest.mark.parametrize(
    "snap, status, limit",
    [
        (snapshot(), supervisor(), None),  # restart_on_stall is off
        (snapshot(), None, LIMIT),  # nobody supervises TDM
        (snapshot(status="idle"), supervisor(), LIMIT),  # not mining: nothing to progress
        (snapshot(drop=None), supervisor(), LIMIT),
        (snapshot(), supervisor(State.BACKOFF), LIMIT),  # not running
        (snapshot(), supervisor(start_time=None), LIMIT),
    ],
)
def test_no_stall_without_a_running_miner_mining_a_drop(snap, status, limit) -> None:
    assert not stall_due(snap, status, START + 10 * LIMIT, limit)


def event(kind: EventKind, time: float, **fields) -> Event:
    return Event(kind, time, "ERROR", "log.txt", kind.value, fields)


def test_terminated_while_up_counts_only_the_running_process() -> None:
    up = supervisor()
    assert terminated_while_up(event(EventKind.APPLICATION_TERMINATED, START + 10), up)
    assert terminated_while_up(event(EventKind.FATAL_ERROR, START - 0.5), up)  # clocks a little apart
    assert terminated_while_up(event(EventKind.TASK_CRASH, START + 10, critical=True), up)
    assert not terminated_while_up(event(EventKind.TASK_CRASH, START + 10, critical=False), up)
    assert not terminated_while_up(event(EventKind.APPLICATION_TERMINATED, START - 60), up)  # an earlier run's
    assert not terminated_while_up(event(EventKind.APPLICATION_TERMINATED, START + 10), supervisor(State.BACKOFF))
    assert not terminated_while_up(event(EventKind.DROP_PROGRESS, START + 10), up)


def test_cpu_percent_of_one_core() -> None:
    assert cpu_percent(None, 10.0, 5.0) is None
    assert cpu_percent((10.0, 5.0), 10.0, 5.0) is None  # no time passed
    assert cpu_percent((10.0, 5.0), 12.0, 6.0) == 50.0
    assert cpu_percent((10.0, 5.0), 12.0, 4.0) == 0.0  # a new process tree counts from zero


def test_the_token_check_expiry_wins_over_the_jar() -> None:
    from exporter.cookies import JarInfo

    jar = JarInfo(present=True, has_auth_token=True, auth_token_expiry=100.0)
    assert Seen().token_expiry is None
    assert Seen(jar=jar).token_expiry == 100.0
    assert replace(Seen(jar=jar), checked_token_expiry=200.0).token_expiry == 200.0


def test_the_cpu_share_is_worked_out_when_seen_is_read_not_at_a_tick() -> None:
    status = {"now": supervisor()}
    keeping = Housekeeping(SimpleNamespace(supervisor=SimpleNamespace(status=lambda: status["now"])))  # never started
    assert keeping.seen.cpu_percent is None  # no sample yet
    status["now"] = replace(supervisor(), resources=ResourceSample(10.0, 1, 1, 1, 1, taken_at=100.0))
    assert keeping.seen.cpu_percent is None  # one sample: no share yet
    status["now"] = replace(supervisor(), resources=ResourceSample(11.0, 1, 1, 1, 1, taken_at=102.0))
    assert keeping.seen.cpu_percent == 50.0
    assert keeping.seen.cpu_percent == 50.0  # read again before the next sample: the last two's share
    status["now"] = supervisor()  # the miner is gone
    assert keeping.seen.cpu_percent is None
