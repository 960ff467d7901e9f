"""TDM's zone-less local times to POSIX seconds, in the machine's zone and in a configured one."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from exporter.timestamps import LocalClock, zone


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch):
    """The machine's own zone is Europe/Berlin for the test (TZ, as a user's service would set it)."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


CASES = [
    ("2025-01-15 12:00:00", "2025-01-15 11:00:00"),  # CET, +01:00
    ("2025-07-15 12:00:00", "2025-07-15 10:00:00"),  # CEST, +02:00
    ("2025-03-30 01:59:59", "2025-03-30 00:59:59"),  # the last second before the clocks go forward
    ("2025-03-30 03:00:00", "2025-03-30 01:00:00"),  # the first one after
    # The hour the clocks go back happens twice: TDM's log cannot say which, so the first is taken.
    ("2025-10-26 02:30:00", "2025-10-26 00:30:00"),
    ("2025-10-26 03:00:00", "2025-10-26 02:00:00"),
]


@pytest.mark.parametrize(("local", "expected"), CASES)
def test_the_machines_zone(berlin, local: str, expected: str) -> None:
    assert LocalClock().to_epoch(local, 250) == utc(expected) + 0.25


@pytest.mark.parametrize(("local", "expected"), CASES)
def test_a_configured_zone_reads_the_same(local: str, expected: str) -> None:
    assert LocalClock(zone("Europe/Berlin")).to_epoch(local, 0) == utc(expected)


def test_each_second_is_converted_once_and_remembered_right(berlin) -> None:
    clock = LocalClock()
    seconds = [time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(1_761_436_000 + step * 7)) for step in range(2000)]
    first = [clock.second(text) for text in seconds]  # across the night the clocks went back
    assert [clock.second(text) for text in seconds] == first == [LocalClock().second(text) for text in seconds]
    assert first[0] == 1_761_436_000


@pytest.mark.parametrize(
    "text", ["2026-02-30 00:00:00", "2026-13-01 00:00:00", "2026-01-01 24:00:00", "2026-01-01 00:00:60", "2026-01-01 0a:00:00", "yesterday"]
)
def test_a_time_that_is_no_time_raises(text: str) -> None:
    with pytest.raises(ValueError):
        LocalClock().to_epoch(text, 0)
