"""Watcher on real directories: prompt wake-ups, and no thread left behind."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from exporter.watcher import Watcher

PROMPT = 2.0  # a wake-up must come well before the 5 s fallback used below


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Stricter than conftest's check: daemon threads count here too."""
    before = threading.active_count()
    yield
    assert threading.active_count() == before


def woken_promptly(w: Watcher) -> bool:
    started = time.monotonic()
    return w.wait(5.0) and time.monotonic() - started < PROMPT


def settle(w: Watcher) -> None:
    """Bring the watches up to date and forget earlier wake-ups."""
    w.wait(0)


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def test_append_wakes_promptly(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    log.write_bytes(b"one\n")
    with Watcher([log]) as w:
        settle(w)
        append(log, b"two\n")
        assert woken_promptly(w)


def test_created_later_wakes(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    with Watcher([log]) as w:
        settle(w)
        log.write_bytes(b"one\n")
        assert woken_promptly(w)


def test_rename_rotation_wakes(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    log.write_bytes(b"one\n")
    with Watcher([log]) as w:
        settle(w)
        log.rename(tmp_path / "log.txt.1")
        assert woken_promptly(w)
        settle(w)
        append(tmp_path / "log.txt.1", b"late\n")  # the renamed file may still be drained
        assert woken_promptly(w)


def test_other_files_do_not_wake(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    with Watcher([log]) as w:
        settle(w)
        (tmp_path / "settings.json").write_bytes(b"{}")
        assert not w.wait(0.3)


def test_glob_match_wakes(tmp_path: Path) -> None:
    with Watcher([tmp_path / "*.log"]) as w:
        settle(w)
        (tmp_path / "notes.txt").write_bytes(b"x")
        assert not w.wait(0.3)
        (tmp_path / "b.log").write_bytes(b"x")
        assert woken_promptly(w)


def test_directory_created_later(tmp_path: Path) -> None:
    """The nearest existing ancestor is watched until the directory appears."""
    log = tmp_path / "tdm" / "logs" / "log.txt"
    with Watcher([log]) as w:
        settle(w)
        (tmp_path / "tdm").mkdir()
        assert woken_promptly(w)
        settle(w)
        (tmp_path / "tdm" / "logs").mkdir()
        assert woken_promptly(w)
        settle(w)
        log.write_bytes(b"one\n")
        assert woken_promptly(w)


def test_a_missing_directory_counts_as_watched_through_its_ancestor(tmp_path: Path) -> None:
    """Its creation is an event in the watched ancestor: the caller's fallback poll may be slow."""
    log = tmp_path / "tdm" / "logs" / "log.txt"
    with Watcher([log]) as w:
        settle(w)
        assert w.watching()
        (tmp_path / "tdm").mkdir()
        assert woken_promptly(w)
        settle(w)
        assert w.watching()
    assert not w.watching()


def test_directory_replaced_is_watched_again(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "log.txt"
    with Watcher([log]) as w:
        settle(w)
        os.rename(logs, tmp_path / "logs.old")
        logs.mkdir()
        settle(w)
        log.write_bytes(b"one\n")
        assert woken_promptly(w)


def test_a_folder_and_a_symlink_to_it_share_one_watch_until_the_link_moves(tmp_path: Path) -> None:
    # The config watcher follows a path and its resolved target: inotify gives both one watch.
    real, other = tmp_path / "real", tmp_path / "other"
    real.mkdir()
    other.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    with Watcher([link / "config.yaml", real / "config.yaml"]) as w:
        settle(w)
        append(real / "config.yaml", b"a: 1\n")
        assert woken_promptly(w)
        link.unlink()
        link.symlink_to(other)  # the link's folder is another now: its watch moves, the target's stays
        settle(w)
        append(real / "config.yaml", b"a: 2\n")
        assert woken_promptly(w)
        settle(w)
        append(other / "config.yaml", b"a: 3\n")
        assert woken_promptly(w)


def test_fallback_timeout_without_events(tmp_path: Path) -> None:
    with Watcher([tmp_path / "log.txt"]) as w:
        settle(w)
        started = time.monotonic()
        assert w.wait(0.2) is False
        assert time.monotonic() - started >= 0.2


def open_fds() -> set[int]:
    return set(map(int, os.listdir("/proc/self/fd")))


def test_no_thread_of_its_own_and_stop_is_idempotent_and_releases_its_descriptors(tmp_path: Path) -> None:
    before, fds = threading.active_count(), open_fds()
    w = Watcher([tmp_path / "a" / "log.txt", tmp_path / "log.txt", tmp_path / "*.log"])
    w.start()
    assert threading.active_count() == before  # wait() reads the events itself
    assert len(open_fds() - fds) == 3  # inotify and the wake-up pipe
    w.stop()
    w.stop()
    assert open_fds() <= fds
    assert w.wait(5.0)  # a waiter is released by stop(), not left to its timeout
    with pytest.raises(RuntimeError):
        w.start()


def test_stop_without_start(tmp_path: Path) -> None:
    w = Watcher([tmp_path / "log.txt"])
    w.stop()


def test_stop_from_another_thread_releases_waiter(tmp_path: Path) -> None:
    w = Watcher([tmp_path / "log.txt"])
    w.start()
    settle(w)
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(w.wait(30.0)))
    started = time.monotonic()
    waiter.start()
    w.stop()
    waiter.join(10.0)
    assert not waiter.is_alive()
    assert time.monotonic() - started < 10.0
    assert results in ([True], [False])  # stop() may land before or after the waiter's clear
