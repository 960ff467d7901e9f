"""`twitchminert replay`: one-shot metrics from real TDM logs, through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MOCK_TOKEN, REPO, RUNS, sample


def replay(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "replay", *args], capture_output=True, text=True, cwd=REPO, timeout=60
    )


def test_replay_of_the_vvv_run_gives_the_drop_and_session() -> None:
    result = replay(str(RUNS / "E_restore_cookie_vvv" / "log.txt"), "--timezone", "UTC")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert sample(out, "tdm_log_records_total", level="INFO") == 7
    assert sample(out, "tdm_log_records_total", level="CALL") == 5
    assert sample(out, "tdm_log_records_total", level="WARNING") == 3
    assert sample(out, "tdm_drop_current_minutes", drop="Mock Drop", game="Mock Game") == 4
    assert sample(out, "tdm_drop_required_minutes", drop="Mock Drop", game="Mock Game") == 10
    assert sample(out, "tdm_websocket_reconnects_total") == 1
    assert sample(out, "tdm_session_authenticated") == 1
    assert sample(out, "tdm_miner_status", status="mining") == 1
    # 2026-11-23 22:26:27.865 in UTC, the last record
    assert sample(out, "tdm_log_last_record_timestamp_seconds") == pytest.approx(1795472787.865)


def test_replay_of_errors_counts_crashes_and_failed_claims() -> None:
    result = replay(str(RUNS / "F_errors_and_fatal_vvv" / "log.txt"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert sample(out, "tdm_task_crashes_total", task="process_stream_state") == 1
    assert sample(out, "tdm_drop_claim_failures_total") == 1
    assert sample(out, "tdm_events_total", kind="gql_retry") == 1
    assert sample(out, "tdm_log_records_total", level="ERROR") == 4


def test_replay_json_lists_events_in_order_and_redacted() -> None:
    result = replay(str(RUNS / "A_fresh_login_vvvv" / "log.txt"), "--format", "json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [e["kind"] for e in events]
    assert kinds[:3] == ["login_checking", "login_successful", "ws_connecting"]
    assert "drop_progress" in kinds
    progress = next(e for e in events if e["kind"] == "drop_progress")
    assert progress["fields"] == {"drop": "Mock Drop", "game": "Mock Game", "current": 3, "required": 10, "source": "websocket"}
    assert MOCK_TOKEN not in result.stdout


def test_replay_of_the_vvvv_run_never_prints_the_token() -> None:
    result = replay(str(RUNS / "A_fresh_login_vvvv" / "log.txt"))
    assert result.returncode == 0
    assert MOCK_TOKEN not in result.stdout + result.stderr
    assert sample(result.stdout, "tdm_log_records_total", level="DEBUG") == 38


def test_replay_missing_file_is_a_one_line_error() -> None:
    result = replay("does-not-exist.txt")
    assert result.returncode == 2
    assert result.stderr.strip() == "twitchminert: replay: no such file: does-not-exist.txt"
    assert result.stdout == ""


def test_replay_bad_pattern_names_file_pattern_and_regex_error(tmp_path: Path) -> None:
    patterns = tmp_path / "mine.yaml"
    patterns.write_text("patterns:\n  - name: broken\n    regex: 'Drop (?P<x>'\n    event: my_event\n")
    result = replay(str(RUNS / "C_restore_cookie_vv" / "log.txt"), "--patterns", str(patterns))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "mine.yaml" in lines[0] and "'broken'" in lines[0] and "missing )" in lines[0]


def test_replay_with_user_patterns_exports_user_metrics(tmp_path: Path) -> None:
    patterns = tmp_path / "mine.yaml"
    patterns.write_text(
        "patterns:\n"
        "  - name: reconnects_by_shard\n"
        "    regex: 'Websocket\\[(?P<shard>\\d+)\\] reconnecting'\n"
        "    counter: {metric: tdm_user_reconnects_total, help: reconnects, labels: [shard]}\n"
    )
    result = replay(str(RUNS / "C_restore_cookie_vv" / "log.txt"), "--patterns", str(patterns))
    assert result.returncode == 0, result.stderr
    assert sample(result.stdout, "tdm_user_reconnects_total", shard="0") == 1


def test_replay_of_garbage_does_not_stop(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    good = (RUNS / "C_restore_cookie_vv" / "log.txt").read_bytes()
    cut = good.index(b"\n", 200) + 1
    log.write_bytes(b"\x00\xff garbage\n" + good[:cut] + b"\xfe\xfe\n" + good[cut:] + b"no newline at the end")
    result = replay(str(log))
    assert result.returncode == 0, result.stderr
    assert sum(sample(result.stdout, "tdm_log_records_total", level=l) or 0 for l in ("INFO", "WARNING")) == 10


def test_replay_refuses_a_user_metric_named_like_a_builtin_one(tmp_path: Path) -> None:
    patterns = tmp_path / "mine.yaml"
    patterns.write_text(
        "patterns:\n  - name: mine\n    regex: 'Websocket\\[(?P<n>\\d+)\\]'\n"
        "    gauge: {metric: tdm_websocket_connections, value: n}\n"
    )
    result = replay(str(RUNS / "C_restore_cookie_vv" / "log.txt"), "--patterns", str(patterns))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "tdm_websocket_connections" in result.stderr
    assert str(patterns) in result.stderr and "'mine'" in result.stderr


def test_config_validate_refuses_a_user_metric_named_like_a_builtin_one(tmp_path: Path) -> None:
    patterns = tmp_path / "mine.yaml"
    patterns.write_text("patterns:\n  - {name: mine, regex: 'x', counter: {metric: tdm_websocket_reconnects_total}}\n")
    config = tmp_path / "twitchminert.yaml"
    config.write_text(f"logs:\n  patterns: [{json.dumps(str(patterns))}]\nstorage:\n  path: {json.dumps(str(tmp_path / 'data'))}\n")
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "config", "validate", str(config)],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "tdm_websocket_reconnects_total" in result.stderr and "exports itself" in result.stderr
    assert "Traceback" not in result.stderr
