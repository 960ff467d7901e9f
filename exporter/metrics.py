"""Prometheus metrics built fresh from a state snapshot at every scrape."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from . import __version__
from .bridge_metrics import inventory_metrics
from .lifecycle import RESTART_REASONS, State
from .state import MINER_STATUSES, SESSION_STATES, Snapshot

if TYPE_CHECKING:
    from .housekeeping import Seen
    from .status import ConfigState
    from .supervisor import SupervisorStatus

COUNTER_HELP = {
    "tdm_log_records_total": "Log records read from TDM's files, by level.",
    "tdm_log_read_bytes_total": "Bytes of TDM's files turned into records.",
    "tdm_log_rotations_total": "Times a followed file was rotated or replaced.",
    "tdm_log_truncations_total": "Times a followed file was truncated in place (copytruncate).",
    "tdm_log_oversized_records_total": "Records longer than the limit, cut.",
    "tdm_log_read_errors_total": "Reads of a followed file that failed (permission, not a regular file...).",
    "tdm_log_bad_timestamps_total": "Records whose header time is no real time; they took the previous record's. Records of levels only counted (no pattern reads them) are not checked one by one.",
    "tdm_log_record_errors_total": "Records counted but not turned into events because a step failed.",
    "tdm_events_total": "Recognised events, by kind.",
    "tdm_drops_completed_total": "Drops whose progress reached the required minutes, by game.",
    "tdm_drops_claimed_total": "Drops claimed (needs the GUI output mirror), by game.",
    "tdm_drop_claim_failures_total": "Drop claims TDM reported as potentially failed.",
    "tdm_channel_switches_total": "Changes of the watched channel.",
    "tdm_channel_status_changes_total": "Channel status changes reported by TDM, by status.",
    "tdm_websocket_reconnects_total": "Websocket reconnects.",
    "tdm_task_crashes_total": "Exceptions in TDM's tasks, by task.",
    "tdm_session_invalid_total": "Restored sessions found invalid (or client ID mismatch).",
    "tdm_user_metric_series_dropped_total": "User pattern series dropped by the per-metric limit.",
}
# Always exported, so alerts and dashboards see a 0 instead of nothing.
ALWAYS_PRESENT = (
    "tdm_log_oversized_records_total",
    "tdm_drop_claim_failures_total",
    "tdm_channel_switches_total",
    "tdm_websocket_reconnects_total",
    "tdm_session_invalid_total",
)


class StateCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot], clock: Callable[[], float] = time.time) -> None:
        self._snapshot = snapshot
        self._clock = clock  # campaigns and login codes age: `replay` passes the log's own time

    def collect(self) -> Iterable[Metric]:
        snap = self._snapshot()
        yield from _counters(snap)
        yield from _user_gauges(snap)
        yield from _gauges(snap)
        yield from inventory_metrics(snap, self._clock())


def _counters(snap: Snapshot) -> Iterable[Metric]:
    families: dict[str, CounterMetricFamily] = {}
    for (name, label_set), value in sorted(snap.counters.items()):
        family = families.get(name)
        if family is None:
            doc = COUNTER_HELP.get(name) or snap.user_help.get(name, ("", name))[1]
            family = families[name] = CounterMetricFamily(name, doc, labels=[k for k, _ in label_set])
        family.add_metric([v for _, v in label_set], value)
    for name in ALWAYS_PRESENT:
        if name not in families:
            families[name] = CounterMetricFamily(name, COUNTER_HELP[name], value=0)
    return families.values()


def _user_gauges(snap: Snapshot) -> Iterable[Metric]:
    families: dict[str, GaugeMetricFamily] = {}
    for (name, label_set), value in sorted(snap.gauges.items()):
        family = families.get(name)
        if family is None:
            doc = snap.user_help.get(name, ("", name))[1]
            family = families[name] = GaugeMetricFamily(name, doc, labels=[k for k, _ in label_set])
        family.add_metric([v for _, v in label_set], value)
    return families.values()


def _gauges(snap: Snapshot) -> Iterable[Metric]:
    if snap.last_record_time is not None:
        yield GaugeMetricFamily(
            "tdm_log_last_record_timestamp_seconds",
            "Time of the newest record read (TDM's local time, converted).",
            value=snap.last_record_time,
        )
    current = GaugeMetricFamily("tdm_drop_current_minutes", "Progress of the current drop.", labels=["drop", "game"])
    required = GaugeMetricFamily("tdm_drop_required_minutes", "Minutes the current drop needs.", labels=["drop", "game"])
    if snap.drop is not None:
        current.add_metric([snap.drop.name, snap.drop.game], snap.drop.current)
        required.add_metric([snap.drop.name, snap.drop.game], snap.drop.required)
        yield GaugeMetricFamily(
            "tdm_drop_last_progress_timestamp_seconds",
            "When the current drop's progress last moved.",
            value=snap.drop.last_progress_time,
        )
    yield current
    yield required
    watching = GaugeMetricFamily("tdm_watching_info", "The channel TDM watches (1).", labels=["channel", "game"])
    if snap.channel:
        watching.add_metric([snap.channel, snap.game or ""], 1)
    yield watching
    yield GaugeMetricFamily(
        "tdm_websocket_connections", "Websocket shards connected now.", value=len(snap.websocket_shards)
    )
    backlog = GaugeMetricFamily("tdm_log_backlog_bytes", "Bytes of a followed file not read yet.", labels=["file"])
    for file, behind in sorted(snap.backlog.items()):
        backlog.add_metric([file], behind)
    yield backlog
    yield GaugeMetricFamily(
        "tdm_session_authenticated",
        "1 when the last login check succeeded.",
        value=1 if snap.session == "authenticated" else 0,
    )
    if snap.session_login_time is not None:
        yield GaugeMetricFamily(
            "tdm_session_login_timestamp_seconds", "Time of the last successful login.", value=snap.session_login_time
        )
    yield _one_hot("tdm_miner_status", "What TDM is doing (1 for the current status).", "status", MINER_STATUSES, snap.status)
    yield _one_hot("tdm_session_state", "TDM's login session (1 for the current state).", "state", SESSION_STATES, snap.session)


def _one_hot(name: str, doc: str, label: str, values: Iterable[str], current: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for value in values:
        family.add_metric([value], 1 if value == current else 0)
    return family


class SupervisorCollector(Collector):
    """The miner process as the supervisor sees it (run or attach mode)."""

    def __init__(self, status: Callable[[], "SupervisorStatus | None"]) -> None:
        self._status = status

    def collect(self) -> Iterable[Metric]:
        status = self._status()
        if status is None:  # logs only: nobody watches the process
            return
        yield GaugeMetricFamily("tdm_miner_up", "1 when TDM's process is running.", value=1 if status.up else 0)
        if status.start_time is not None and status.up:
            yield GaugeMetricFamily(
                "tdm_miner_start_time_seconds", "When the running TDM process started.", value=status.start_time
            )
        yield _one_hot(
            "tdm_supervisor_state",
            "The supervisor's state (1 for the current one).",
            "state",
            [state.value for state in State],
            status.state.value,
        )
        restarts = CounterMetricFamily("tdm_miner_restarts_total", "Restarts of TDM, by reason.", labels=["reason"])
        for reason in RESTART_REASONS:
            restarts.add_metric([reason], status.restarts.get(reason, 0))
        yield restarts
        exits = CounterMetricFamily("tdm_miner_exits_total", "Exits of TDM, by code and meaning.", labels=["code", "meaning"])
        for (code, meaning), count in sorted(status.exits.items()):
            exits.add_metric([str(code), meaning], count)
        yield exits
        if status.last_exit_code is not None:
            yield GaugeMetricFamily("tdm_miner_last_exit_code", "TDM's last exit code.", value=status.last_exit_code)
        sample = status.resources
        if sample is not None:
            yield CounterMetricFamily(
                "tdm_miner_cpu_seconds_total", "CPU time of TDM's whole process tree.", value=sample.cpu_seconds_total
            )
            yield GaugeMetricFamily(
                "tdm_miner_resident_memory_bytes", "Resident memory of TDM's process tree.", value=sample.resident_memory_bytes
            )
            yield GaugeMetricFamily("tdm_miner_threads", "Threads in TDM's process tree.", value=sample.threads)
            yield GaugeMetricFamily("tdm_miner_open_fds", "Open file descriptors in TDM's process tree.", value=sample.open_fds)
            yield GaugeMetricFamily("tdm_miner_processes", "Processes in TDM's process tree.", value=sample.processes)


@dataclass(frozen=True)
class ExporterHealth:
    """Our own state at one moment, for ExporterCollector."""

    last_reload_successful: bool = True
    last_success_time: float | None = None
    reloads: Mapping[str, int] | None = None  # by result: "success", "failure"
    settings_writes: int = 0
    cookies_present: bool | None = None  # None: cookies.jar not read (yet, or no miner.dir)
    cookies_modified_time: float | None = None
    token_expiry: float | None = None

    @classmethod
    def of(cls, config: ConfigState, reloads: Mapping[str, int], seen: Seen, settings_writes: int) -> ExporterHealth:
        """From the reloader's outcome and what housekeeping last saw of cookies.jar."""
        jar = seen.jar
        return cls(
            last_reload_successful=config.last_reload_successful,
            last_success_time=config.last_success_time,
            reloads=dict(reloads),
            settings_writes=settings_writes,
            cookies_present=None if jar is None else jar.present and jar.has_auth_token,
            cookies_modified_time=None if jar is None else jar.modified_time,
            token_expiry=seen.token_expiry,
        )


class ExporterCollector(Collector):
    """Our own health: build info, config reloads, settings writes, TDM's login cookies."""

    def __init__(self, health: Callable[[], ExporterHealth]) -> None:
        self._health = health

    def collect(self) -> Iterable[Metric]:
        health = self._health()
        info = GaugeMetricFamily("tdm_exporter_build_info", "Twitchminert's version (1).", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        yield GaugeMetricFamily(
            "tdm_config_last_reload_successful",
            "1 when the last config reload succeeded.",
            value=int(health.last_reload_successful),
        )
        if health.last_success_time is not None:
            yield GaugeMetricFamily(
                "tdm_config_last_reload_success_timestamp_seconds",
                "When the config was last loaded successfully.",
                value=health.last_success_time,
            )
        reloads = CounterMetricFamily("tdm_config_reloads_total", "Config reloads, by result.", labels=["result"])
        for result, count in (health.reloads or {}).items():
            reloads.add_metric([result], count)
        yield reloads
        yield CounterMetricFamily("tdm_settings_writes_total", "Writes of TDM's settings.json.", value=health.settings_writes)
        if health.cookies_present is not None:
            yield GaugeMetricFamily(
                "tdm_cookies_present", "1 when TDM's cookies.jar holds a login.", value=int(health.cookies_present)
            )
            if health.cookies_modified_time is not None:
                yield GaugeMetricFamily(
                    "tdm_cookies_modified_timestamp_seconds",
                    "When cookies.jar was last written.",
                    value=health.cookies_modified_time,
                )
        if health.token_expiry is not None:
            yield GaugeMetricFamily(
                "tdm_session_token_expiry_timestamp_seconds", "When TDM's OAuth token expires.", value=health.token_expiry
            )


# -- exposition ----------------------------------------------------------------------------------
# prometheus_client's generate_latest validates and escapes every name of every sample, which is
# about half of a scrape's time. Our collectors yield only plain counters and gauges with legal
# names, so exposition() writes those directly, byte for byte what generate_latest would write,
# and hands anything else (other types, timestamps, odd names) to generate_latest.

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_PLAIN_TYPES = frozenset({"counter", "gauge"})


class _NotPlain(Exception):
    pass


class _Collected:
    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> list[Metric]:
        return self._metrics


def exposition(registry: Collector) -> bytes:
    """generate_latest(registry) (the Prometheus text format 0.0.4), faster."""
    metrics = list(registry.collect())
    try:
        return _render(metrics)
    except _NotPlain:
        return generate_latest(_Collected(metrics))


def _value(value: float) -> str:
    if type(value) is int and -10**15 < value < 10**6:  # floatToGoString's answer, without float repr
        return f"{value}.0"
    return floatToGoString(value)


def _label_value(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')
    return value


def _render(metrics: list[Metric]) -> bytes:
    out: list[str] = []
    legal_labels: set[str] = set()
    for metric in metrics:
        kind = metric.type
        if kind not in _PLAIN_TYPES:
            raise _NotPlain
        base = metric.name
        name = base + "_total" if kind == "counter" else base
        if not _METRIC_NAME.fullmatch(name):
            raise _NotPlain
        doc = metric.documentation
        if "\\" in doc or "\n" in doc:
            doc = doc.replace("\\", r"\\").replace("\n", r"\n")
        out.append(f"# HELP {name} {doc}\n# TYPE {name} {kind}\n")
        for sample in metric.samples:
            if sample.timestamp is not None or sample.name != name:  # _created and the like
                raise _NotPlain
            if not sample.labels:
                out.append(f"{name} {_value(sample.value)}\n")
                continue
            parts = []
            for key, value in sorted(sample.labels.items()):
                if key not in legal_labels:
                    if not _LABEL_NAME.fullmatch(key):
                        raise _NotPlain
                    legal_labels.add(key)
                parts.append(f'{key}="{_label_value(value)}"')
            out.append(f"{name}{{{','.join(parts)}}} {_value(sample.value)}\n")
    return "".join(out).encode("utf-8")
