"""The bridge's picture resumes exactly with the store: records, positions and the picture are
committed together, a restart (or a failed commit) reads on from there, and the result is what a
replay of the whole file gives."""

from __future__ import annotations

import time
from pathlib import Path

from exporter.bridge import STATE_LEVEL, encode_record
from exporter.capture import format_record
from exporter.patterns import PatternSet
from exporter.pipeline import Pipeline, RecordHandler, replay
from exporter.state import MinerState
from exporter.store import Store
from exporter.timestamps import LocalClock, zone

NOW = time.time()


def handler() -> RecordHandler:
    return RecordHandler(PatternSet.builtin(), LocalClock(zone("local")), MinerState())


def state_line(kind: str, **fields) -> bytes:
    return format_record(STATE_LEVEL, encode_record(kind, **fields), NOW)


def campaign(n: int, minutes: int = 0) -> dict:
    drop = {"id": f"d{n}", "name": f"Drop {n}", "campaign_id": f"c{n}", "required_minutes": 60,
            "current_minutes": minutes, "confirmed_minutes": minutes, "estimated_minutes": 0, "rewards": ["Hat"]}
    return {"id": f"c{n}", "name": f"Campaign {n}", "game": {"id": str(n), "name": f"Game {n}"}, "status": "active",
            "starts_at": NOW - 3600, "ends_at": NOW + 86400, "drops": [drop]}


def test_a_restarted_daemon_has_the_same_picture_as_a_replay(tmp_path: Path) -> None:
    output = tmp_path / "miner_output.log"
    first_part = [state_line("hello", capabilities={"campaigns": True}), state_line("inventory_clear")]
    first_part += [state_line("campaign", campaign=campaign(n)) for n in range(5)]
    output.write_bytes(b"".join(first_part) + format_record("GUI", "Watching: Streamer", NOW))
    db = tmp_path / "state.db"
    with Store.open(db) as store:
        first = Pipeline([str(output)], handler(), store, quiet_seconds=0.0)
        first.poll(0.0)
        first.poll(1.0)
        first.close()
        assert "bridge" in store.load_state()
    with output.open("ab") as file:  # TDM went on while the daemon was down
        file.write(state_line("drop", drop=campaign(2, minutes=7)["drops"][0]) + state_line("games", games=[{"name": "Game 2"}]))
    with Store.open(db) as store:
        second = Pipeline([str(output)], handler(), store, quiet_seconds=0.0)
        second.poll(0.0)
        second.poll(1.0)
        second.close()
    resumed = second.handler.state.inventory.view()
    replayed = handler()
    replay([output], replayed)
    assert resumed == replayed.state.inventory.view()
    assert [c.id for c in resumed.campaigns] == [f"c{n}" for n in range(5)]
    assert resumed.campaign("c2").drops[0].confirmed_minutes == 7 and resumed.games == ("Game 2",)
    assert second.handler.state.counters[("tdm_log_records_total", (("level", "STATE"),))] == 9  # none twice
