"""Session states from the real fixture runs: log.txt records and the GUI lines TDM printed, in time order."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from conftest import RUNS
from exporter.framing import Framer, Record
from exporter.patterns import PatternSet
from exporter.state import MinerState
from exporter.timestamps import LocalClock

GUI_LINE = re.compile(r"^(\d\d:\d\d:\d\d)\.(\d{3}) PRINT (.*)$")


def gui_records(run: Path, day: str) -> list[Record]:
    """The GUI-only lines of gui_output.txt as the launcher writes them: level GUI."""
    records = []
    for line in (run / "gui_output.txt").read_text().splitlines():
        match = GUI_LINE.match(line)
        if match:
            text = ast.literal_eval(match.group(3))  # the capture tool wrote repr() of each printed text
            records.append(Record("gui", f"{day} {match.group(1)}", int(match.group(2)), "GUI", text, 0, 0))
    return records


def session_timeline(run: Path) -> list[str]:
    framer = Framer("log.txt")
    data = (run / "log.txt").read_bytes()
    records = framer.feed(data, 0.0).records + framer.flush().records
    day = records[0].timestamp.split()[0]
    merged = sorted(records + gui_records(run, day), key=lambda r: (r.timestamp, r.msecs))
    patterns, clock, state = PatternSet.builtin(), LocalClock(), MinerState()
    timeline = [state.session]
    for record in merged:
        when = clock.to_epoch(record.timestamp, record.msecs)
        for event in patterns.events(record, when):
            state.apply(event)
        if state.session != timeline[-1]:
            timeline.append(state.session)
    return timeline


@pytest.mark.parametrize(
    "run, expected",
    [
        ("A_fresh_login_vvvv", ["unknown", "login_required", "authenticated"]),
        ("C_restore_cookie_vv", ["unknown", "restoring", "authenticated"]),
        ("E_restore_cookie_vvv", ["unknown", "restoring", "authenticated"]),
        ("F_errors_and_fatal_vvv", ["unknown", "restoring", "authenticated"]),
    ],
)
def test_session_states_of_the_real_runs(run: str, expected: list[str]) -> None:
    assert session_timeline(RUNS / run) == expected


def test_fatal_error_run_ends_terminated() -> None:
    run = RUNS / "F_errors_and_fatal_vvv"
    framer = Framer("log.txt")
    records = framer.feed((run / "log.txt").read_bytes(), 0.0).records + framer.flush().records
    merged = sorted(records + gui_records(run, records[0].timestamp.split()[0]), key=lambda r: (r.timestamp, r.msecs))
    patterns, clock, state = PatternSet.builtin(), LocalClock(), MinerState()
    statuses = []
    for record in merged:
        for event in patterns.events(record, clock.to_epoch(record.timestamp, record.msecs)):
            state.apply(event)
            statuses.append(state.status)
    assert "mining" in statuses and "no_channels" in statuses
    assert statuses[-1] == "terminated"
