"""Watcher: wake the tail loop promptly when a followed file changes.

Only an accelerator. The caller reads its tails after every wake-up and at least once per poll
interval anyway (1 s, or WATCHED_POLL_SECONDS while `watching()`), so a lost or unsupported
notification only costs latency.

A watchdog Observer watches the parent directory of each followed path, not recursively. For a
glob, it watches the directories its directory part matches. A directory that does not exist yet
is covered by watching its nearest existing ancestor: creating the directory wakes the caller, and
the next `wait()` moves the watch down to it. Watches are brought up to date at each `wait()`, on
the caller's thread, so the observer's thread never changes them.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import threading
import time
from pathlib import Path
from typing import Iterable, Protocol

from loguru import logger
from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from .tailer import has_glob

WATCHED_POLL_SECONDS = 5.0  # the fallback poll while inotify covers everything: only a lost event waits for it
_EVENT_FILTER = [FileCreatedEvent, FileModifiedEvent, FileMovedEvent, FileDeletedEvent, DirCreatedEvent, DirMovedEvent]


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if self._watcher.matches(event.src_path) or (event.dest_path and self._watcher.matches(event.dest_path)):
            self._watcher.wake()


class Watcher:
    """Set an Event when something happens to a followed path; `wait(timeout)` waits for it."""

    def __init__(self, paths: Iterable[Path | str]) -> None:
        self._files: set[str] = set()
        self._globs: list[str] = []
        for path in paths:
            path = os.path.abspath(os.fspath(path))
            if has_glob(path):
                self._globs.append(path)
            else:
                self._files.add(path)
        self._woken = threading.Event()
        self._lock = threading.Lock()  # guards the watches against stop() from another thread
        self._observer: BaseObserver | None = None  # made by start(): watchdog's inotify one starts a thread
        self._handler = _Handler(self)
        self._watches: dict[str, tuple[tuple[int, int], ObservedWatch]] = {}
        self._missing: frozenset[str] = frozenset()  # directories we wait for
        self._unwatchable: set[str] = set()  # scheduling failed; warned once, retried at each wait()
        self._state = "new"  # new -> started -> stopped

    def start(self) -> None:
        with self._lock:
            if self._state != "new":
                raise RuntimeError(f"Watcher already {self._state}")
            self._state = "started"
            self._observer = Observer()
            self._observer.start()
            self._sync()

    def stop(self) -> None:
        """Stop and join the observer's threads. Idempotent; wakes a waiter."""
        with self._lock:
            if self._state == "started":
                self._observer.stop()
                self._observer.join()
            self._state = "stopped"
        self._woken.set()

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a change; True if woken. Read the tails after it returns.

        Also True at once when a directory we waited for has appeared (its events may have been missed).
        """
        with self._lock:
            moved = self._state == "started" and self._sync()
        woken = moved or self._woken.wait(timeout)
        self._woken.clear()
        return woken

    def wake(self) -> None:
        self._woken.set()

    def watching(self) -> bool:
        """Whether inotify covers every followed directory now (none unwatchable; a missing one through
        its nearest existing ancestor, where its creation is an event): then a caller's fallback poll
        only guards against a lost event and can be slow."""
        with self._lock:
            return (self._state == "started" and self._observer.is_alive()
                    and not self._unwatchable and bool(self._watches))

    def matches(self, path: bytes | str) -> bool:
        """Whether an event on `path` concerns us: a followed file, a rotated copy of it
        (log.txt.1: we may still be draining it), a glob match, or a directory we wait for."""
        path = os.path.normpath(os.fsdecode(path))
        return (
            path in self._missing
            or any(path.startswith(f) for f in self._files)
            or any(fnmatch.fnmatch(path, g) for g in self._globs)
        )

    def __enter__(self) -> Watcher:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _wanted_dirs(self) -> set[str]:
        dirs = {os.path.dirname(f) for f in self._files}
        for pattern in self._globs:
            parent = os.path.dirname(pattern)
            dirs.update(glob.glob(parent) if has_glob(parent) else [parent])
        return dirs

    def _sync(self) -> bool:
        """Watch the wanted directories, or their nearest existing ancestors; drop stale watches.

        True when a watch moved: a directory appeared or was replaced, and events in it may have
        been missed.
        """
        wanted: dict[str, tuple[int, int]] = {}
        missing: set[str] = set()
        for d in self._wanted_dirs():
            while True:
                try:
                    st = os.stat(d)
                    wanted[d] = (st.st_dev, st.st_ino)
                    break
                except (FileNotFoundError, NotADirectoryError):
                    missing.add(d)
                    if os.path.dirname(d) == d:
                        break
                    d = os.path.dirname(d)
        moved = bool(self._missing - missing)
        self._missing = frozenset(missing)
        for d, (ident, watch) in list(self._watches.items()):
            if wanted.get(d) != ident:  # gone, no longer needed, or a new directory under that name
                moved = moved or d in wanted
                del self._watches[d]
                self._observer.unschedule(watch)
        scheduled = False
        for d, ident in wanted.items():
            if d not in self._watches:
                try:
                    watch = self._observer.schedule(self._handler, d, recursive=False, event_filter=_EVENT_FILTER)
                except OSError as e:  # e.g. the inotify watch limit: the fallback poll still works
                    if d not in self._unwatchable:
                        self._unwatchable.add(d)
                        logger.warning("cannot watch {} ({}); polling it instead", d, e)
                    continue
                self._unwatchable.discard(d)
                self._watches[d] = (ident, watch)
                scheduled = True
        if scheduled and any(os.path.isdir(d) for d in missing):
            moved = True  # created between our stat and the new watch: its event is lost, look again now
        return moved


class Settable(Protocol):
    def set(self) -> None: ...


class FileChangeWatcher:
    """Sets `changed` when one file is written or replaced (the daemon's config file, so it reloads).

    Only once the file has stayed the same for `settle` seconds: an editor that truncates the file and
    writes it again a moment later, or a writer that writes it in pieces, is seen when it is done.
    """

    def __init__(self, path: Path, changed: Settable, settle: float = 1.0) -> None:
        # Not resolve()d: the identity follows a symlink at every check, so a link switched to a new target
        # (a Kubernetes ConfigMap update) is a change; the target's folder is watched too, for prompt wake-ups.
        self._path = path.absolute()
        self._changed = changed
        self._settle = settle
        self._file_changed = False
        self._stat = self._identity()
        self._watcher = Watcher({self._path, self._path.resolve()})
        self._watcher.start()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="twitchminert-file-watch")
        self._thread.start()

    def _identity(self):
        try:
            st = self._path.stat()
            return (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            return None

    def _run(self) -> None:
        seen, quiet_at = self._stat, None  # the latest identity, and when it will have settled
        while not self._stop.is_set():
            idle = WATCHED_POLL_SECONDS if self._watcher.watching() else 1.0
            timeout = idle if quiet_at is None else max(0.0, quiet_at - time.monotonic())
            self._watcher.wait(timeout)
            current = self._identity()
            if current != seen:  # still moving: wait for a quiet `settle`
                seen, quiet_at = current, time.monotonic() + self._settle
                continue
            if quiet_at is not None and time.monotonic() >= quiet_at:
                quiet_at = None
                if current != self._stat and current is not None:
                    self._stat = current
                    self._file_changed = True
                    self._changed.set()

    def take_source(self) -> str:
        source = "file" if self._file_changed else "sighup"
        self._file_changed = False
        return source

    def stop(self) -> None:
        self._stop.set()
        self._watcher.wake()
        self._thread.join()
        self._watcher.stop()
