"""Patterns: turn a framed record into typed events.

Built-in templates (`builtin_patterns`) recognise every message TDM can show. User patterns, loaded
from YAML, add events or counter/gauge updates without code, like mtail. Everything is compiled
once; per record the work is a dict lookup on the record's level and on its first characters.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import yaml

from . import safefile, yamlfile
from .builtin_patterns import BUILTINS, Builtin, InvalidField, typed_fields
from .errors import UserError
from .events import Event, EventKind
from .framing import Record
from .redaction import redact

LEVELS = ("ERROR", "WARNING", "INFO", "CALL", "DEBUG", "GUI", "STDOUT", "STDERR")

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_EVENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Kinds our own code emits; a log line must not be able to fake them.
_RESERVED_KINDS = frozenset(
    {EventKind.CUSTOM, EventKind.USER_METRIC, EventKind.SUPERVISOR, EventKind.CONFIG_CHANGE}
)
_KIND_VALUES = frozenset(kind.value for kind in EventKind)
_PATTERN_KEYS = ("name", "regex", "levels", "event", "counter", "gauge")
_OUTPUT_KEYS = ("event", "counter", "gauge")
_METRIC_KEYS = ("metric", "help", "labels", "value")
# Every metric the exporter exports itself: a user metric with one of these names would either add to
# ours silently or give the scrape a second HELP/TYPE block, which Prometheus rejects whole.
BUILTIN_METRIC_NAMES = frozenset(
    {
        # log pipeline and the miner's state
        "tdm_log_records_total", "tdm_log_last_record_timestamp_seconds", "tdm_log_read_bytes_total",
        "tdm_log_rotations_total", "tdm_log_truncations_total", "tdm_log_oversized_records_total",
        "tdm_log_read_errors_total", "tdm_log_bad_timestamps_total", "tdm_log_record_errors_total",
        "tdm_log_backlog_bytes", "tdm_events_total", "tdm_drop_current_minutes", "tdm_drop_required_minutes",
        "tdm_drop_last_progress_timestamp_seconds", "tdm_drops_completed_total", "tdm_drops_claimed_total",
        "tdm_drop_claim_failures_total", "tdm_watching_info", "tdm_channel_switches_total",
        "tdm_channel_status_changes_total", "tdm_websocket_reconnects_total", "tdm_websocket_connections",
        "tdm_task_crashes_total", "tdm_session_authenticated", "tdm_session_login_timestamp_seconds",
        "tdm_session_invalid_total", "tdm_miner_status", "tdm_user_metric_series_dropped_total",
        # supervisor
        "tdm_miner_up", "tdm_miner_start_time_seconds", "tdm_supervisor_state", "tdm_miner_restarts_total",
        "tdm_miner_exits_total", "tdm_miner_last_exit_code", "tdm_miner_cpu_seconds_total",
        "tdm_miner_resident_memory_bytes", "tdm_miner_threads", "tdm_miner_open_fds", "tdm_miner_processes",
        # config, settings, session, build
        "tdm_config_last_reload_successful", "tdm_config_last_reload_success_timestamp_seconds",
        "tdm_config_reloads_total", "tdm_settings_writes_total", "tdm_session_state", "tdm_cookies_present",
        "tdm_cookies_modified_timestamp_seconds", "tdm_session_token_expiry_timestamp_seconds",
        "tdm_exporter_build_info",
        # notifications
        "tdm_notifications_total", "tdm_notification_queue_length",
        # the bridge: TDM's own picture
        "tdm_campaigns", "tdm_inventory_drops", "tdm_channels", "tdm_login_code_pending",
        "tdm_login_code_expiry_timestamp_seconds", "tdm_drop_confirmed_minutes", "tdm_drop_estimated_minutes",
        "tdm_bridge_up",
    }
)
_SEEN_LIMIT = 1024  # messages remembered with what they matched (then forgotten all at once): < 1 MiB
_SEEN_MESSAGE_LIMIT = 256  # longer messages (tracebacks, dumps) are rarely repeated: not remembered


class PatternError(ValueError, UserError):
    """A user pattern file that cannot be used; the message is one line naming file and pattern."""


@dataclass(frozen=True, slots=True)
class UserMetric:
    name: str  # Prometheus metric name
    type: str  # "counter" or "gauge"
    help: str
    labels: tuple[str, ...]  # named groups whose text becomes the label values
    value: str | None  # named group holding the number; None: count 1

    def fields(self, groups: Mapping[str, str | None]) -> dict[str, Any] | None:
        value = 1.0
        if self.value is not None:
            try:
                value = float(groups[self.value] or "")
            except ValueError:
                return None
            if not math.isfinite(value) or (self.type == "counter" and value < 0):
                return None
        return {
            "metric": self.name,
            "type": self.type,
            "help": self.help,
            "labels": {label: groups[label] or "" for label in self.labels},
            "value": value,
        }


@dataclass(frozen=True, slots=True)
class UserPattern:
    name: str
    regex: re.Pattern[str]  # searched anywhere in the redacted message
    levels: frozenset[str] | None = None  # None: every level
    event: str | None = None  # an EventKind value, or the name of a custom event
    metric: UserMetric | None = None  # set instead of `event`
    kind: EventKind = field(init=False, compare=False)  # what `event` names, or CUSTOM

    def __post_init__(self) -> None:
        if self.metric is not None:
            kind = EventKind.USER_METRIC
        elif self.event in _KIND_VALUES:
            kind = EventKind(self.event)
        else:
            kind = EventKind.CUSTOM
        object.__setattr__(self, "kind", kind)

    def match(self, message: str) -> tuple[EventKind, dict[str, Any]] | None:
        found = self.regex.search(message)
        if found is None:
            return None
        groups = found.groupdict()
        if self.metric is not None:
            fields = self.metric.fields(groups)
            return None if fields is None else (self.kind, fields)
        try:
            fields = typed_fields(groups)
        except InvalidField:
            return None
        if self.kind is EventKind.CUSTOM:
            fields["name"] = self.event
        return self.kind, fields


class _LevelIndex:
    """The built-in templates of one level, looked up by the first characters of the message."""

    def __init__(self, builtins: Sequence[Builtin]) -> None:
        prefixed = [builtin for builtin in builtins if builtin.prefix]
        # The shortest literal start decides how many characters are a key.
        self._key_length = min((len(builtin.prefix) for builtin in prefixed), default=0)
        by_key: dict[str, list[Builtin]] = {}
        for builtin in prefixed:
            by_key.setdefault(builtin.prefix[: self._key_length], []).append(builtin)
        self._by_key = {key: tuple(group) for key, group in by_key.items()}
        # Templates that start with a channel name: tried last, when their marker occurs.
        self._unanchored = tuple(builtin for builtin in builtins if not builtin.prefix)

    def match(self, message: str) -> tuple[EventKind, dict[str, Any]] | None:
        for builtin in self._by_key.get(message[: self._key_length], ()):
            if message.startswith(builtin.prefix):
                fields = builtin.fields(message)
                if fields is not None:
                    return builtin.kind, fields
        for builtin in self._unanchored:
            if builtin.marker in message:
                fields = builtin.fields(message)
                if fields is not None:
                    return builtin.kind, fields
        return None


class PatternSet:
    """Built-in templates plus user patterns; `events()` is the per-record entry point."""

    def __init__(self, builtins: Sequence[Builtin] = (), user: Sequence[UserPattern] = ()) -> None:
        problem = _conflicts(user)
        if problem:
            raise PatternError(problem)
        self._builtins = tuple(builtins)
        self._user = tuple(user)
        levels = {builtin.level for builtin in self._builtins}
        self._builtin_by_level = {
            level: _LevelIndex([b for b in self._builtins if b.level == level]) for level in levels
        }
        self._user_any_level = tuple(p for p in self._user if p.levels is None)
        self._user_by_level = {
            level: tuple(p for p in self._user if p.levels is None or level in p.levels)
            for level in LEVELS
        }
        # message -> (its level, what matches gave): the same text at another level is matched anew
        self._seen: dict[str, tuple[str, tuple[str, tuple[tuple[EventKind, dict[str, Any]], ...]]]] = {}

    @classmethod
    def builtin(cls) -> PatternSet:
        return cls(BUILTINS)

    def extended(self, user_patterns: Iterable[UserPattern]) -> PatternSet:
        return PatternSet(self._builtins, self._user + tuple(user_patterns))

    def silent_levels(self) -> frozenset[str]:
        """Levels no pattern reads: their records can be counted without being built."""
        return frozenset(
            level
            for level in LEVELS
            if level not in self._builtin_by_level and not self._user_by_level.get(level)
        )

    @property
    def user_patterns(self) -> tuple[UserPattern, ...]:
        return self._user

    def events(self, record: Record, time: float) -> list[Event]:
        redacted, matches = self.matches(record.level, record.message)
        # Each event gets its own fields: whoever receives one may keep it.
        return [Event(kind, time, record.level, record.source, redacted, dict(fields)) for kind, fields in matches]

    def matches(self, level: str, message: str) -> tuple[str, tuple[tuple[EventKind, dict[str, Any]], ...]]:
        """The redacted message and the (kind, fields) every pattern makes of it. The fields are
        shared between calls: copy them before handing them out."""
        seen = self._seen.get(message)  # keyed by the text alone: no key tuple to build and hash per record
        if seen is not None and seen[0] == level:
            return seen[1]
        if level not in self._builtin_by_level and not self._user_by_level.get(level, self._user_any_level):
            return message, ()  # e.g. every DEBUG Request/Response record
        found = self._match(level, message)
        if len(message) <= _SEEN_MESSAGE_LIMIT:  # a log repeats itself: match each text once
            if len(self._seen) >= _SEEN_LIMIT:
                self._seen.clear()
            self._seen[message] = (level, found)
        return found

    def _match(self, level: str, message: str) -> tuple[str, tuple[tuple[EventKind, dict[str, Any]], ...]]:
        """The redacted message and what every pattern makes of it; a pure function of its inputs."""
        message = redact(message)  # fields are cut from redacted text: no secrets
        matches = []
        builtins = self._builtin_by_level.get(level)
        if builtins is not None:
            # GUI prints can carry newlines around the text ("\nApplication Terminated.\n...")
            found = builtins.match(message.strip("\n"))
            if found is not None:
                matches.append(found)
        for pattern in self._user_by_level.get(level, self._user_any_level):
            found = pattern.match(message)
            if found is not None:
                matches.append(found)
        return message, tuple(matches)


def build_patterns(files: Iterable[str | os.PathLike[str]]) -> PatternSet:
    """The built-ins and every user pattern file, compiled now: a bad one stops start-up (PatternError names it)."""
    user = [pattern for file in files for pattern in load_user_patterns(file)]
    return PatternSet.builtin().extended(user)


def load_user_patterns(path: str | os.PathLike[str]) -> list[UserPattern]:
    """Read and compile a user pattern file; any problem raises PatternError."""
    origin = os.fspath(path)
    try:
        text = safefile.read_text(path, yamlfile.MAX_FILE_BYTES)  # no FIFO, device or huge file
    except FileNotFoundError:
        raise PatternError(f"{origin}: file not found") from None
    except UnicodeDecodeError as exc:
        raise PatternError(f"{origin}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise PatternError(f"{origin}: cannot read: {safefile.describe(exc)}") from None
    return parse_user_patterns(text, origin)


def parse_user_patterns(text: str, origin: str = "<patterns>") -> list[UserPattern]:
    """Compile user patterns from YAML text; `origin` names the file in error messages."""
    try:
        document = yamlfile.safe_load(text, origin)  # refuses a YAML bomb before it expands
    except yamlfile.YamlError as exc:
        raise PatternError(str(exc)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{origin}:{mark.line + 1}" if mark is not None else origin
        problem = getattr(exc, "problem", None) or str(exc).replace("\n", " ")
        raise PatternError(f"{where}: YAML syntax error: {problem}") from None
    if document is None:
        return []
    if not isinstance(document, dict) or set(document) != {"patterns"}:
        raise PatternError(f"{origin}: expected a mapping with a single key 'patterns'")
    entries = document["patterns"] or []
    if not isinstance(entries, list):
        raise PatternError(f"{origin}: 'patterns' must be a list, got {_shown(entries)}")
    patterns = []
    for position, entry in enumerate(entries, start=1):
        label = f"#{position}"
        if isinstance(entry, dict) and isinstance(entry.get("name"), str) and entry["name"]:
            label = repr(entry["name"])
        try:
            patterns.append(_user_pattern(entry))
        except ValueError as exc:
            raise PatternError(f"{origin}: pattern {label}: {exc}") from None
    problem = _conflicts(patterns)
    if problem:
        raise PatternError(f"{origin}: {problem}")
    return patterns


def _user_pattern(entry: object) -> UserPattern:
    """One YAML entry to a UserPattern; raises ValueError with the problem, caller adds where."""
    if not isinstance(entry, dict):
        raise ValueError(f"expected a mapping, got {_shown(entry)}")
    for key in entry:
        if key not in _PATTERN_KEYS:
            raise ValueError(f"unknown key {key!r} (expected {', '.join(_PATTERN_KEYS)})")
    if "name" not in entry:
        raise ValueError("missing 'name'")
    name = entry["name"]
    if not isinstance(name, str) or not name:
        raise ValueError(f"'name' must be a non-empty string, got {_shown(name)}")
    if "regex" not in entry:
        raise ValueError("missing 'regex'")
    if not isinstance(entry["regex"], str):
        raise ValueError(f"'regex' must be a string, got {_shown(entry['regex'])}")
    try:
        regex = re.compile(entry["regex"])
    except re.error as exc:
        raise ValueError(f"bad regex: {exc}") from None
    outputs = [key for key in _OUTPUT_KEYS if key in entry]
    if len(outputs) != 1:
        got = " and ".join(repr(key) for key in outputs) or "none"
        raise ValueError(f"give exactly one of 'event', 'counter' or 'gauge', got {got}")
    levels = _levels(entry.get("levels"))
    if outputs[0] == "event":
        return UserPattern(name, regex, levels, event=_event(entry["event"], regex))
    metric = _metric(outputs[0], entry[outputs[0]], regex)
    return UserPattern(name, regex, levels, metric=metric)


def _levels(levels: object) -> frozenset[str] | None:
    if levels is None:
        return None
    if isinstance(levels, str):
        levels = [levels]
    if not isinstance(levels, list) or not levels:
        raise ValueError(f"'levels' must be a non-empty list of level names, got {_shown(levels)}")
    for level in levels:
        if not isinstance(level, str) or level.upper() not in LEVELS:
            raise ValueError(f"unknown level {level!r} (expected one of {', '.join(LEVELS)})")
    return frozenset(level.upper() for level in levels)


def _event(event: object, regex: re.Pattern[str]) -> str:
    if not isinstance(event, str) or not event:
        raise ValueError(f"'event' must be a non-empty string, got {_shown(event)}")
    try:
        kind = EventKind(event)
    except ValueError:
        kind = None
    if kind in _RESERVED_KINDS:
        raise ValueError(f"event {event!r} is reserved")
    if kind is None:
        if not _EVENT_NAME.fullmatch(event):
            raise ValueError(f"event name {event!r} must match {_EVENT_NAME.pattern}")
        if "name" in regex.groupindex:
            raise ValueError("named group 'name' clashes with the custom event's 'name' field")
    return event


def _metric(kind: str, spec: object, regex: re.Pattern[str]) -> UserMetric:
    if not isinstance(spec, dict):
        raise ValueError(f"{kind!r} must be a mapping with 'metric', got {_shown(spec)}")
    for key in spec:
        if key not in _METRIC_KEYS:
            raise ValueError(f"{kind}: unknown key {key!r} (expected {', '.join(_METRIC_KEYS)})")
    name = spec.get("metric")
    if name is None:
        raise ValueError(f"{kind}: missing 'metric'")
    if not isinstance(name, str) or not _METRIC_NAME.fullmatch(name) or name.startswith("__"):
        raise ValueError(f"invalid metric name {name!r} (expected {_METRIC_NAME.pattern})")
    if kind == "counter" and not name.endswith("_total"):
        raise ValueError(f"counter metric {name!r} must end in '_total'")
    if _family(name) in _BUILTIN_FAMILIES:
        raise ValueError(f"metric {name!r} is one the exporter exports itself: choose another name (e.g. tdm_user_...)")
    help_text = spec.get("help", f"Matches of a user pattern ({name})")
    if not isinstance(help_text, str):
        raise ValueError(f"{kind}: 'help' must be a string, got {_shown(help_text)}")
    labels = spec.get("labels") or []
    if not isinstance(labels, list):
        raise ValueError(f"{kind}: 'labels' must be a list of group names, got {_shown(labels)}")
    for label in labels:
        if not isinstance(label, str) or label not in regex.groupindex:
            raise ValueError(f"label {label!r} is not a named group of the regex")
        if label.startswith("__"):
            raise ValueError(f"label {label!r} is reserved (starts with '__')")
    if len(set(labels)) != len(labels):
        raise ValueError(f"{kind}: 'labels' lists a group twice")
    value = spec.get("value")
    if value is None and kind == "gauge":
        raise ValueError("gauge: missing 'value' (the named group holding the number)")
    if value is not None and (not isinstance(value, str) or value not in regex.groupindex):
        raise ValueError(f"value {value!r} is not a named group of the regex")
    return UserMetric(name, kind, help_text, tuple(labels), value)


def _family(name: str) -> str:
    """The name of the metric family a sample name belongs to (a counter's `_total` is a suffix)."""
    return name[: -len("_total")] if name.endswith("_total") else name


_BUILTIN_FAMILIES = frozenset(_family(name) for name in BUILTIN_METRIC_NAMES)


def _conflicts(patterns: Sequence[UserPattern]) -> str | None:
    """A problem between patterns (same name; one metric with two shapes), or None."""
    names: set[str] = set()
    metrics: dict[str, tuple[str, UserMetric]] = {}
    for pattern in patterns:
        if pattern.name in names:
            return f"pattern {pattern.name!r}: duplicate name"
        names.add(pattern.name)
        metric = pattern.metric
        if metric is None:
            continue
        first = metrics.setdefault(metric.name, (pattern.name, metric))
        other = first[1]
        if (other.type, sorted(other.labels)) != (metric.type, sorted(metric.labels)):
            return (
                f"pattern {pattern.name!r}: metric {metric.name!r} is already a {other.type} "
                f"with labels {list(other.labels)} in pattern {first[0]!r}"
            )
    return None


def _shown(value: object) -> str:
    """A YAML value for an error message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
