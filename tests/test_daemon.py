"""`twitchminert run` as a real process: follows real files, serves real HTTP, survives kill -9."""

from __future__ import annotations

import json
import random
import signal
import threading
from pathlib import Path


from conftest import MOCK_TOKEN, RUNS, http_get, sample, wait_until

LEVELS = ("ERROR", "WARNING", "INFO", "CALL", "DEBUG")


def write_config(tmp_path: Path, files: list[Path], extra: str = "") -> Path:
    config = tmp_path / "twitchminert.yaml"
    config.write_text(
        "logs:\n"
        f"  files: [{', '.join(json.dumps(str(f)) for f in files)}]\n"
        "storage:\n"
        f"  path: {json.dumps(str(tmp_path / 'data'))}\n" + extra
    )
    return config


def records_total(metrics: str) -> float:
    return sum(sample(metrics, "tdm_log_records_total", level=level) or 0 for level in LEVELS)


def record(i: int, level: str = "CALL") -> bytes:
    message = f"Drop update from websocket: Drop {i} (Game, {i % 10}/10)"
    if i % 7 == 0:
        level, message = "ERROR", f"Exception in process_drops task\nTraceback (most recent call last):\nKeyError: {i}"
    return f"2026-11-23 22:23:54.{i % 1000:03d}:\t{level:>7}:\t{message}\n".encode()


def start(daemon_factory, config: Path, *extra: str):
    daemon = daemon_factory("--log.level", "DEBUG", "run", "--config.file", str(config), "--web.listen-address", "127.0.0.1:0", *extra)
    daemon.wait_listening()
    return daemon


def test_follows_a_file_created_later_and_serves_metrics(tmp_path: Path, daemon_factory) -> None:
    log = tmp_path / "tdm" / "log.txt"
    log.parent.mkdir()
    daemon = start(daemon_factory, write_config(tmp_path, [log]))
    assert http_get(daemon.url + "/-/healthy")[0] == 200
    assert records_total(daemon.metrics()) == 0

    data = (RUNS / "E_restore_cookie_vvv" / "log.txt").read_bytes()
    with open(log, "ab") as out:
        for line in data.splitlines(keepends=True):
            out.write(line)
            out.flush()
    wait_until(lambda: records_total(daemon.metrics()) == 15, what="15 records on /metrics")
    metrics = daemon.metrics()
    assert sample(metrics, "tdm_drop_current_minutes", drop="Mock Drop", game="Mock Game") == 4
    assert sample(metrics, "tdm_log_read_bytes_total", file=str(log)) == len(data)
    assert daemon.stop() == 0


def test_rotation_and_truncation_are_counted_and_nothing_is_lost(tmp_path: Path, daemon_factory) -> None:
    log = tmp_path / "log.txt"
    log.write_bytes(b"".join(record(i) for i in range(1, 6)))
    daemon = start(daemon_factory, write_config(tmp_path, [log]))
    wait_until(lambda: records_total(daemon.metrics()) == 5, what="5 records")
    log.rename(tmp_path / "log.txt.1")
    with open(tmp_path / "log.txt.1", "ab") as old:
        old.write(record(6))  # written after the rename, before the switch
    log.write_bytes(record(7) + record(8))
    wait_until(lambda: records_total(daemon.metrics()) == 8, what="8 records after rotation")
    log.write_bytes(b"")  # copytruncate
    wait_until(lambda: sample(daemon.metrics(), "tdm_log_truncations_total", file=str(log)) == 1, what="truncation")
    with open(log, "ab") as out:
        out.write(record(9))
    wait_until(lambda: records_total(daemon.metrics()) == 9, what="9 records after truncation")
    assert sample(daemon.metrics(), "tdm_log_rotations_total", file=str(log)) == 1


def test_kill_9_at_random_points_then_resume_counts_exactly(tmp_path: Path, daemon_factory) -> None:
    log = tmp_path / "log.txt"
    log.write_bytes(b"")
    config = write_config(tmp_path, [log])
    written = 0
    stop_writing = threading.Event()
    lock = threading.Lock()

    def writer() -> None:
        nonlocal written
        with open(log, "ab") as out:
            while not stop_writing.is_set() and written < 20000:
                with lock:
                    out.write(b"".join(record(written + k) for k in range(1, 6)))
                    out.flush()
                    written += 5
                stop_writing.wait(0.002)  # pacing of the writer, not synchronisation

    thread = threading.Thread(target=writer)
    thread.start()
    rng = random.Random(7)
    try:
        for _ in range(3):
            daemon = start(daemon_factory, config)
            target = records_total(daemon.metrics()) + rng.randint(50, 600)
            wait_until(lambda: records_total(daemon.metrics()) >= target, 30, what="progress before the kill")
            daemon.stop(signal.SIGKILL)
    finally:
        stop_writing.set()
        thread.join()
    daemon = start(daemon_factory, config)
    with lock:
        total = written
    errors = sum(1 for i in range(1, total + 1) if i % 7 == 0)
    wait_until(lambda: records_total(daemon.metrics()) >= total, 30, what=f"{total} records")
    metrics = daemon.metrics()
    assert records_total(metrics) == total
    assert sample(metrics, "tdm_log_records_total", level="ERROR") == errors
    assert sample(metrics, "tdm_events_total", kind="drop_progress") == total - errors
    assert sample(metrics, "tdm_log_read_bytes_total", file=str(log)) == log.stat().st_size
    # the stored events agree with the counters
    status, body = http_get(daemon.url + "/api/events?kind=task_crash&limit=1000")
    assert status == 200 and len(json.loads(body)) == min(errors, 1000)
    assert daemon.stop() == 0


def test_secrets_never_leave(tmp_path: Path, daemon_factory) -> None:
    tdm = tmp_path / "tdm"
    tdm.mkdir()
    log = tdm / "log.txt"
    log.write_bytes((RUNS / "A_fresh_login_vvvv" / "log.txt").read_bytes())
    daemon = start(daemon_factory, write_config(tmp_path, [log]))
    wait_until(lambda: records_total(daemon.metrics()) == 52, what="all of run A")
    answers = [daemon.metrics()]
    for path in ("/api/events?limit=1000", "/", "/-/ready"):
        answers.append(http_get(daemon.url + path)[1])
    assert daemon.stop() == 0
    stored = b"".join(p.read_bytes() for p in (tmp_path / "data").iterdir() if p.is_file())
    secrets = [MOCK_TOKEN, "DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD", "fedcba9876543210fedcba9876543210"]
    for secret in secrets:
        assert secret not in "".join(answers)
        assert secret.encode() not in stored
        assert secret not in daemon.output()
    assert "login_successful" in answers[1]


def test_bad_config_is_a_one_line_error(tmp_path: Path, daemon_factory) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("logs:\n  start_at: middle\n")
    daemon = daemon_factory("run", "--config.file", str(config))
    assert daemon.proc.wait(20) == 2
    daemon.stop()
    assert daemon.output().strip() == (
        "twitchminert: bad.yaml:2: logs.start_at: expected one of beginning, end, got 'middle'"
    )


def test_bad_user_pattern_stops_start_up(tmp_path: Path, daemon_factory) -> None:
    patterns = tmp_path / "patterns.yaml"
    patterns.write_text("patterns:\n  - name: p1\n    regex: '(unclosed'\n    event: x\n")
    config = write_config(tmp_path, [tmp_path / "log.txt"], "  \n")
    config.write_text(config.read_text().replace("logs:\n", f"logs:\n  patterns: [{json.dumps(str(patterns))}]\n"))
    daemon = daemon_factory("run", "--config.file", str(config))
    assert daemon.proc.wait(20) == 2
    daemon.stop()
    out = daemon.output().strip()
    assert len(out.splitlines()) == 1 and "patterns.yaml" in out and "'p1'" in out
