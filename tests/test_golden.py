"""Golden files: what the exporter exports, pinned byte for byte, and the hand-kept test data checked
against what the code produces.

- tests/data/golden/metrics.prom: /metrics after replaying tests/data/golden/ (two real TDM runs,
  log.txt and the GUI output the launcher captures) with fixed supervisor and exporter snapshots.
  A change of a metric's name, help, labels or value fails here. After a deliberate change:
  `UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py`, then review the diff.
- tests/data/exported_metrics.txt (read by the rule and dashboard tests) lists exactly the names
  the code exports.
- tests/data/status/*.json (the landing page's canned answers) have the shape of a real status
  answer, and each event in events.json is what the patterns make of its own message.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from exporter import __version__
from exporter.capture import format_record
from exporter.bridge_link import BridgeLink
from exporter.bridge_metrics import BridgeCollector
from exporter.cookies import JarInfo
from exporter.bridge_metrics import BridgeCollector
from exporter.lifecycle import State
from exporter.notify import NotifyCollector
from exporter.metrics import COUNTER_HELP, ExporterCollector, ExporterHealth, StateCollector, SupervisorCollector, exposition
from exporter.pipeline import RecordHandler, replay
from exporter.patterns import build_patterns
from exporter.resources import ResourceSample
from exporter.state import MinerState, Snapshot
from exporter.status import ConfigState, miner_status
from exporter.supervisor import SupervisorStatus
from exporter.timestamps import LocalClock, zone

DATA = Path(__file__).resolve().parent / "data"
GOLDEN = DATA / "golden"
SAMPLES = DATA / "status"
EXPORTED_METRICS = DATA / "exported_metrics.txt"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
SOURCES = ("log.txt", "miner_output.log")  # replayed from GOLDEN, so the file labels are these names

# The moment of the scrape: a little after the last record (22:28:18.154 UTC).
NOW = 1795472900.0
SUPERVISOR = SupervisorStatus(
    state=State.RUNNING,
    mode="run",
    pid=27942,
    attached=False,
    start_time=1795472873.0,
    restarts={"crash": 2, "terminated": 1},
    exits={(1, "fatal error"): 2, (0, "closed"): 1},
    last_exit_code=1,
    last_exit_meaning="fatal error",
    failure=None,
    last_error=None,
    resources=ResourceSample(cpu_seconds_total=12.5, resident_memory_bytes=89_337_856, threads=14, open_fds=31, processes=2),
)
BRIDGE = BridgeLink(Path("bridge.sock"), expected=True)  # TDM through the launcher; never called here
BRIDGE.connected = True
HEALTH = ExporterHealth(
    last_reload_successful=False,
    last_success_time=1795472800.0,
    reloads={"success": 3, "failure": 1},
    settings_writes=2,
    cookies_present=True,
    cookies_modified_time=1795472490.0,
    token_expiry=1800656490.0,
)

# Exported only in a state the golden replay does not end in (it ends idle, with no login code shown).
CONDITIONAL = {"tdm_drop_last_progress_timestamp_seconds", "tdm_login_code_expiry_timestamp_seconds"}


def check_golden(path: Path, produced: bytes) -> None:
    """`produced` must equal the file; with UPDATE_GOLDEN=1 the file is rewritten instead."""
    if UPDATE:
        if os.environ.get("CI") == "true":
            pytest.fail("UPDATE_GOLDEN=1 rewrites the golden files: not in CI")
        path.write_bytes(produced)
        return
    expected = path.read_bytes() if path.exists() else b""
    if produced != expected:
        diff = difflib.unified_diff(
            expected.decode().splitlines(), produced.decode().splitlines(), str(path), "produced", lineterm=""
        )
        pytest.fail(
            f"{path.name} is not what the code produces (after a deliberate change: UPDATE_GOLDEN=1):\n"
            + "\n".join(diff)
        )


@pytest.fixture(scope="module")
def replayed() -> RecordHandler:
    """The golden input replayed (as `twitchminert replay` does), with TDM's clock in UTC."""
    handler = RecordHandler(build_patterns(()), LocalClock(zone("UTC")), MinerState())
    cwd = Path.cwd()
    os.chdir(GOLDEN)  # the file keys (labels) are the plain names, wherever the repository is
    try:
        replay([Path(name) for name in SOURCES], handler)
    finally:
        os.chdir(cwd)
    return handler


def golden_registry(snapshot: Snapshot) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(StateCollector(lambda: snapshot, clock=lambda: NOW))
    registry.register(SupervisorCollector(lambda: SUPERVISOR))
    registry.register(ExporterCollector(lambda: HEALTH))
    registry.register(BridgeCollector(lambda: BRIDGE, lambda: SUPERVISOR.up))
    registry.register(NotifyCollector(lambda: None))
    return registry


def test_metrics_exposition_is_golden(replayed: RecordHandler) -> None:
    registry = golden_registry(replayed.state.snapshot(NOW))
    produced = exposition(registry)
    assert produced == generate_latest(registry)  # the fast writer is byte for byte the library's
    check_golden(GOLDEN / "metrics.prom", produced.replace(__version__.encode(), b"VERSION"))


def exposition_names(text: str) -> set[str]:
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def test_exported_metrics_lists_exactly_what_the_code_exports(replayed: RecordHandler) -> None:
    """The golden exposition has every conditional metric (a drop, a running miner, a cookies jar);
    counters a replay cannot produce (rotations, say) are in COUNTER_HELP."""
    exported = exposition_names(exposition(golden_registry(replayed.state.snapshot(NOW))).decode()) | set(COUNTER_HELP)
    listed, generated, by_prometheus = set(), set(), False
    for line in EXPORTED_METRICS.read_text().splitlines():
        if line.startswith("#"):
            by_prometheus = by_prometheus or line.startswith("# Generated by Prometheus")
        elif line.strip():
            (generated if by_prometheus else listed).add(line.strip())
    assert sorted(exported - listed) == [], "exported but not listed in exported_metrics.txt"
    assert sorted(listed - exported - CONDITIONAL) == [], "listed in exported_metrics.txt but never exported"
    assert generated == {"up", "scrape_duration_seconds", "ALERTS"}


# -- the landing page's canned answers ------------------------------------------------------------


def shape(value):
    """The keys of nested objects; leaves are only "value" (a sample's numbers are its own)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    return "value"


def real_status(replayed: RecordHandler) -> dict:
    jar = JarInfo(present=True, modified_time=1795472490.0, format="json", has_auth_token=True)
    return miner_status(replayed.state.snapshot(NOW), SUPERVISOR, ConfigState(True, NOW, None), jar, 1.5, NOW)


@pytest.mark.parametrize("name", ["happy", "down", "terminated", "login_required"])
def test_status_samples_have_the_shape_the_code_answers(replayed: RecordHandler, name: str) -> None:
    sample = json.loads((SAMPLES / f"{name}.json").read_text())
    real = real_status(replayed)
    # Nested objects that may be null: compare those a sample has.
    for key in ("supervisor", "cookies", "last_error"):
        if sample.get(key) is None:
            real[key] = None
    assert shape(sample) == shape(real)


def test_status_is_strict_json(replayed: RecordHandler) -> None:
    json.dumps(real_status(replayed), allow_nan=False)


def test_event_samples_are_what_the_patterns_make_of_their_messages(tmp_path: Path) -> None:
    """Each sample's message, written as TDM (or our GUI capture) would, replays to that event."""
    samples = json.loads((SAMPLES / "events.json").read_text())
    for sample in samples:
        log = tmp_path / "log.txt"
        log.write_bytes(format_record(sample["level"], sample["message"], sample["time"]))
        handler = RecordHandler(build_patterns(()), LocalClock(), MinerState())
        replay([log], handler)
        (event,) = handler.take_events()
        produced = {**event.to_dict(), "source": sample["source"]}  # the source is the followed file's path
        assert _same(produced, sample), (produced, sample)


def _same(produced: dict, sample: dict) -> bool:
    return abs(produced["time"] - sample["time"]) < 1e-3 and {**produced, "time": 0} == {**sample, "time": 0}
