"""A user pattern file edited in place is picked up by a reload, though its path did not change."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from conftest import http_get, sample, wait_until


def test_edited_pattern_file_applies_on_reload(tmp_path: Path, daemon_factory) -> None:
    log = tmp_path / "log.txt"
    log.write_bytes(b"")
    patterns = tmp_path / "patterns.yaml"
    patterns.write_text(
        "patterns:\n  - name: reconnects\n    regex: 'reconnecting'\n"
        "    counter: {metric: tdm_user_reconnects_total, help: reconnects}\n"
    )
    config = tmp_path / "twitchminert.yaml"
    config.write_text(
        f"logs:\n  files: [{json.dumps(str(log))}]\n  patterns: [{json.dumps(str(patterns))}]\n"
        f"storage:\n  path: {json.dumps(str(tmp_path / 'data'))}\n"
    )
    daemon = daemon_factory("run", "--config.file", str(config), "--web.listen-address", "127.0.0.1:0")
    daemon.wait_listening()
    line = b"2026-11-23 22:23:54.001:\tWARNING:\tWebsocket[0] reconnecting...\n"
    with open(log, "ab") as out:
        out.write(line)
    wait_until(lambda: sample(daemon.metrics(), "tdm_user_reconnects_total") == 1, what="the first user counter")

    patterns.write_text(patterns.read_text() + (
        "  - name: shards\n    regex: 'Websocket\\[(?P<shard>\\d+)\\] reconnecting'\n"
        "    counter: {metric: tdm_user_shard_reconnects_total, help: by shard, labels: [shard]}\n"
    ))
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(
        lambda: "logs.patterns (contents)" in http_get(daemon.url + "/api/events?kind=config_change")[1],
        what="the reload to record the pattern change",
    )
    with open(log, "ab") as out:
        out.write(line)
    wait_until(lambda: sample(daemon.metrics(), "tdm_user_shard_reconnects_total", shard="0") == 1, what="the new counter")
    assert sample(daemon.metrics(), "tdm_user_reconnects_total") == 2
