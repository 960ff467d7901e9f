"""A Daemon in process: reloads that must change nothing (empty or half-written config, a busy listen
address), reloads that move the listener without a moment unbound, and the debounced file watcher.

Real parts: the Daemon, its HTTP server scraped over 127.0.0.1, its SQLite store, a supervisor in
attach mode (it starts nothing) where a miner must be supervised.
"""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import free_port, http_get, pause, sample, wait_until
from exporter.config import load_config
from exporter.daemon import Daemon
from exporter.watcher import FileChangeWatcher


def write_config(path: Path, *, listen: str | None = None, miner_dir: Path | None = None, web_file: Path | None = None,
                 mode: str = "attach", extra: str = "") -> Path:
    lines = [
        "storage:",
        f"  path: {json.dumps(str(path.parent / 'data'))}",
        "logs:",
        f"  files: [{json.dumps(str(path.parent / 'log.txt'))}]",
    ]
    if listen is not None or web_file is not None:
        lines.append("web:")
        if listen is not None:
            lines.append(f"  listen_address: {json.dumps(listen)}")
        if web_file is not None:
            lines.append(f"  config_file: {json.dumps(str(web_file))}")
    if miner_dir is not None:
        lines += ["miner:", f"  dir: {json.dumps(str(miner_dir))}", f"  mode: {mode}"]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


@pytest.fixture
def started():
    daemons: list[Daemon] = []

    def start(config_file: Path, listen: str = "127.0.0.1:0") -> Daemon:
        daemon = Daemon(load_config(config_file), listen, config_file)
        daemons.append(daemon)
        daemon.start()
        return daemon

    yield start
    for daemon in daemons:
        daemon.stop()


def url(daemon: Daemon) -> str:
    return f"http://127.0.0.1:{daemon.server.port}"


def metrics(daemon: Daemon) -> str:
    code, body = http_get(url(daemon) + "/metrics")
    assert code == 200
    return body


def refused(address: str) -> bool:
    try:
        urllib.request.urlopen(address + "/-/healthy", timeout=2).close()
    except urllib.error.URLError as error:
        return isinstance(error.reason, ConnectionRefusedError)
    except ConnectionResetError:  # accepted into the closing socket's backlog: try again
        return False
    return False


def config_events(daemon: Daemon) -> list:
    return daemon.store.query_events(kind="config_change")


# -- empty or half-written config -------------------------------------------------------------------


def test_an_empty_config_file_is_not_a_reload(tmp_path: Path, started) -> None:
    path = write_config(tmp_path / "twitchminert.yaml", extra="settings:\n  priority: [A]\n")
    daemon = started(path)
    before = daemon.config
    path.write_text("")  # an editor's truncate, before it writes the file again
    ok, message = daemon.reloader.reload("file")
    assert not ok
    assert message == f"{path}: the file is empty (half-written?); keeping the running config"
    assert daemon.config is before
    scrape = metrics(daemon)
    assert sample(scrape, "tdm_config_last_reload_successful") == 0
    assert sample(scrape, "tdm_config_reloads_total", result="failure") == 1
    status = json.loads(http_get(url(daemon) + "/api/miner/status")[1])
    assert status["config"] == {"last_reload_successful": False, "error": message}
    assert config_events(daemon) == []  # no bogus audit event

    path.write_text("# only a comment\n\n")
    assert daemon.reloader.reload("file")[0] is False

    write_config(path, extra="settings:\n  priority: [B]\n")  # the editor finishes
    ok, message = daemon.reloader.reload("file")
    assert (ok, message) == (True, "applied: settings.priority")
    assert sample(metrics(daemon), "tdm_config_last_reload_successful") == 1


def test_a_config_that_loses_miner_dir_while_supervising_is_not_a_reload(tmp_path: Path, started) -> None:
    tdm = tmp_path / "tdm"
    tdm.mkdir()
    path = write_config(tmp_path / "twitchminert.yaml", miner_dir=tdm)
    daemon = started(path)
    supervisor = daemon.supervisor
    assert supervisor is not None
    write_config(path)  # cut short before its miner section
    ok, message = daemon.reloader.reload("file")
    assert not ok and "miner.dir is missing while TDM runs" in message
    assert daemon.supervisor is supervisor and daemon.config.miner.dir == tdm
    assert sample(metrics(daemon), "tdm_config_last_reload_successful") == 0
    assert config_events(daemon) == []


# -- the listen address -----------------------------------------------------------------------------


def test_a_reload_to_a_busy_address_keeps_the_server(tmp_path: Path, started) -> None:
    path = write_config(tmp_path / "twitchminert.yaml")
    daemon = started(path)
    old = url(daemon)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = "127.0.0.1:%d" % busy.getsockname()[1]
        write_config(path, listen=address)
        ok, message = daemon.reloader.reload("file")
    assert not ok
    assert message == f"web.listen_address {address}: Address already in use: keeping the server on 127.0.0.1:0"
    assert url(daemon) == old and http_get(old + "/-/healthy") == (200, "OK\n")
    scrape = metrics(daemon)
    assert sample(scrape, "tdm_config_last_reload_successful") == 0
    assert sample(scrape, "tdm_config_reloads_total", result="success") == 0
    assert daemon.config.web.listen_address == "127.0.0.1:9797"  # the running config, unchanged


def test_a_reload_to_a_free_address_moves_the_server(tmp_path: Path, started) -> None:
    path = write_config(tmp_path / "twitchminert.yaml")
    daemon = started(path)
    old = url(daemon)
    address = f"127.0.0.1:{free_port()}"
    write_config(path, listen=address)
    assert daemon.reloader.reload("file") == (True, "applied: web.listen_address")
    assert http_get(f"http://{address}/-/healthy") == (200, "OK\n")
    wait_until(lambda: refused(old), what="the old server to close")
    daemon.stop()
    assert not [t.name for t in threading.enumerate() if t.name.startswith("twitchminert-http")]


def test_a_new_web_config_on_the_same_address_takes_the_socket_over(tmp_path: Path, started) -> None:
    address = f"127.0.0.1:{free_port()}"
    path = write_config(tmp_path / "twitchminert.yaml", listen=address)
    daemon = started(path, address)
    web = tmp_path / "web.yml"
    web.write_text("http_server_config:\n  headers:\n    X-Frame-Options: deny\n")
    # A client keeps connecting through the switch: the address is never unbound.
    failures: list[str] = []
    stop = threading.Event()

    def scrape() -> None:
        while not stop.is_set():
            try:
                urllib.request.urlopen(f"http://{address}/-/healthy", timeout=5).close()
            except OSError as error:
                failures.append(repr(error))

    client = threading.Thread(target=scrape)
    client.start()
    try:
        write_config(path, listen=address, web_file=web)
        ok, message = daemon.reloader.reload("file")
        pause(0.3)  # a few more requests after the switch
    finally:
        stop.set()
        client.join()
    assert (ok, message) == (True, "applied: web.config_file, web.config_file (contents)")
    with urllib.request.urlopen(f"http://{address}/-/healthy", timeout=5) as response:
        assert response.headers["X-Frame-Options"] == "deny"
    assert failures == []


def test_a_reload_that_fails_part_way_changes_nothing(tmp_path: Path, started) -> None:
    """A new listen address is bound before the new miner folder is found missing: the reload fails
    whole, the new address is let go, the old server and config stay."""
    path = write_config(tmp_path / "twitchminert.yaml")
    daemon = started(path)
    old = url(daemon)
    port = free_port()
    write_config(path, listen=f"127.0.0.1:{port}", miner_dir=tmp_path / "no-such-tdm", mode="run")
    ok, message = daemon.reloader.reload("file")
    assert not ok and "no-such-tdm" in message
    assert daemon.supervisor is None and daemon.config.miner.dir is None
    assert http_get(old + "/-/healthy") == (200, "OK\n")
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))  # released
    assert config_events(daemon) == []


# -- the watcher's reload of a file the daemon has read already -------------------------------------
# A settings save from the web console writes the file and reloads it at once; the file watcher then
# sees that write. Its reload (unless_read=True, as service.run asks for it) must count nothing.


def reload_counts(daemon: Daemon) -> tuple[float | None, float | None]:
    scrape = metrics(daemon)
    return sample(scrape, "tdm_config_reloads_total", result="success"), sample(scrape, "tdm_config_reloads_total", result="failure")


def test_the_watcher_seeing_a_file_the_daemon_has_read_is_no_reload(tmp_path: Path, started) -> None:
    path = write_config(tmp_path / "twitchminert.yaml", extra="settings:\n  priority: [A]\n")
    daemon = started(path)
    write_config(path, extra="settings:\n  priority: [B]\n")  # a save from the web console...
    assert daemon.reloader.reload("web") == (True, "applied: settings.priority")  # ...applied by its own reload
    applied_at = sample(metrics(daemon), "tdm_config_last_reload_success_timestamp_seconds")

    assert daemon.reloader.reload("file", unless_read=True) == (True, "unchanged since the last reload")  # the watcher
    assert reload_counts(daemon) == (1, 0)
    assert sample(metrics(daemon), "tdm_config_last_reload_success_timestamp_seconds") == applied_at
    assert [event.fields["source"] for event in config_events(daemon)] == ["web"]

    assert daemon.reloader.reload("sighup") == (True, "no change")  # asked for: always a reload
    assert reload_counts(daemon) == (2, 0)

    write_config(path, extra="settings:\n  priority: [C]\n")  # an edit of the file: reloaded
    assert daemon.reloader.reload("file", unless_read=True) == (True, "applied: settings.priority")
    write_config(path, extra="settings:\n  priority: [B]\n")  # back to a text read before, but not the last one
    assert daemon.reloader.reload("file", unless_read=True) == (True, "applied: settings.priority")
    assert reload_counts(daemon) == (4, 0)
    assert [event.fields["source"] for event in reversed(config_events(daemon))] == ["web", "file", "file"]


def test_a_file_the_daemon_has_read_is_reloaded_when_a_file_it_names_changed(tmp_path: Path, started) -> None:
    patterns = tmp_path / "patterns.yaml"
    patterns.write_text("patterns:\n  - name: one\n    regex: 'one'\n    counter: {metric: tdm_user_one_total, help: one}\n")
    path = write_config(tmp_path / "twitchminert.yaml", extra=f"  patterns: [{json.dumps(str(patterns))}]\n")
    daemon = started(path)
    assert daemon.reloader.reload("web") == (True, "no change")
    patterns.write_text(patterns.read_text().replace("'one'", "'two'"))
    path.touch()  # the config file's text is the same: the pattern file's is not
    assert daemon.reloader.reload("file", unless_read=True) == (True, "applied: logs.patterns (contents)")
    assert reload_counts(daemon) == (2, 0)


def test_the_watcher_seeing_a_file_whose_reload_failed_does_not_fail_it_again(tmp_path: Path, started) -> None:
    patterns = tmp_path / "patterns.yaml"
    good = "patterns:\n  - name: one\n    regex: 'one'\n    counter: {metric: tdm_user_one_total, help: one}\n"
    patterns.write_text(good)
    path = write_config(tmp_path / "twitchminert.yaml", extra=f"  patterns: [{json.dumps(str(patterns))}]\n")
    daemon = started(path)
    patterns.write_text(good.replace("'one'", "'(unclosed'"))  # broken since start-up
    write_config(path, extra=f"  patterns: [{json.dumps(str(patterns))}]\nsettings:\n  priority: [A]\n")  # a web save
    ok, message = daemon.reloader.reload("web")
    assert not ok and "patterns.yaml" in message

    assert daemon.reloader.reload("file", unless_read=True) == (False, message)  # the watcher: the same error
    assert reload_counts(daemon) == (0, 1)
    assert json.loads(http_get(url(daemon) + "/api/miner/status")[1])["config"] == {
        "last_reload_successful": False, "error": message}

    patterns.write_text(good)  # fixed: the config file's text is the same, the outcome is not
    assert daemon.reloader.reload("file", unless_read=True) == (True, "applied: settings.priority")
    assert reload_counts(daemon) == (1, 1)
    assert sample(metrics(daemon), "tdm_config_last_reload_successful") == 1


# -- start-up ---------------------------------------------------------------------------------------


def test_a_busy_address_stops_start_up_before_anything_is_created(tmp_path: Path) -> None:
    from exporter.daemon import StartupError

    tdm = tmp_path / "tdm"
    tdm.mkdir()
    path = write_config(tmp_path / "twitchminert.yaml", miner_dir=tdm)
    before = threading.active_count()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = "127.0.0.1:%d" % busy.getsockname()[1]
        with pytest.raises(StartupError) as raised:
            Daemon(load_config(path), address, path)
    assert str(raised.value) == f"web.listen_address {address}: Address already in use"
    assert not (tmp_path / "data").exists()  # no store, no captured output
    assert threading.active_count() == before


def test_a_missing_miner_dir_stops_start_up_and_frees_the_port(tmp_path: Path) -> None:
    from exporter.daemon import StartupError

    path = write_config(tmp_path / "twitchminert.yaml", miner_dir=tmp_path / "no-such-tdm", mode="run")
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(StartupError) as raised:
        Daemon(load_config(path), address, path)
    assert "\n" not in str(raised.value) and "no-such-tdm" in str(raised.value)
    assert not (tmp_path / "data").exists()
    with socket.socket() as again:
        again.bind(("127.0.0.1", int(address.rsplit(":", 1)[1])))  # the listener was closed


# -- the file watcher -------------------------------------------------------------------------------


@pytest.mark.slow
def test_file_changes_are_reported_once_the_file_is_stable(tmp_path: Path) -> None:
    path = tmp_path / "twitchminert.yaml"
    path.write_text("settings: {}\n")
    changed = threading.Event()
    watcher = FileChangeWatcher(path, changed, settle=1.0)
    try:
        path.write_text("")  # truncate in place...
        pause(0.3)  # ...and write the file again a moment later: a writer's pause, not a wait on us
        assert not changed.is_set(), "reported while the file was still being written"
        path.write_text("settings:\n  priority: [A]\n")
        wait_until(changed.is_set, 5, what="the change to be reported")
        assert watcher.take_source() == "file"
        changed.clear()
        pause(1.5)
        assert not changed.is_set()  # one change, one report
    finally:
        watcher.stop()
