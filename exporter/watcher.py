"""Watcher: wake the tail loop promptly when a followed file changes.

Only an accelerator. The caller reads its tails after every wake-up and at least once per poll
interval anyway (1 s, or WATCHED_POLL_SECONDS while `watching()`), so a lost or unsupported
notification only costs latency.

The parent directory of each followed path is watched with inotify, not recursively. For a
glob, the directories its directory part matches are. A directory that does not exist yet
is covered by watching its nearest existing ancestor: creating the directory wakes the caller, and
the next `wait()` moves the watch down to it. Watches are brought up to date at each `wait()`, on
the caller's thread.

No thread of its own: `wait()` sleeps in poll() on the inotify descriptor and on a pipe that
`wake()` writes to, and reads the events itself. (watchdog's observer passed each event through
three threads, a reader, an emitter and a dispatcher: a third of what following a busy log cost
at rest.) Where inotify is missing or out of instances, `wait()` only times out or is woken.

A watched directory deleted, renamed away or replaced is noticed at the next `wait()`, which compares
each watched directory's (st_dev, st_ino) with what is at its path now and watches what is there.
"""

from __future__ import annotations

import fnmatch
import glob
import math
import os
import select
import threading
import time
from pathlib import Path
from typing import Iterable, Protocol

from inotify_simple import INotify, flags
from loguru import logger

from .tailer import has_glob

WATCHED_POLL_SECONDS = 5.0  # the fallback poll while inotify covers everything: only a lost event waits for it
# What a followed file or a directory we wait for can go through: written, made, renamed, deleted.
_MASK = (flags.CREATE | flags.MODIFY | flags.ATTRIB | flags.MOVED_FROM | flags.MOVED_TO | flags.DELETE
         | flags.DELETE_SELF | flags.MOVE_SELF | flags.ONLYDIR)
_SELF = flags.DELETE_SELF | flags.MOVE_SELF | flags.Q_OVERFLOW  # the directory itself, or events lost: look again


class Watcher:
    """`wait(timeout)` returns when something happens to a followed path, `wake()` is called, or in time."""

    def __init__(self, paths: Iterable[Path | str]) -> None:
        self._files: set[str] = set()
        self._globs: list[str] = []
        for path in paths:
            path = os.path.abspath(os.fspath(path))
            if has_glob(path):
                self._globs.append(path)
            else:
                self._files.add(path)
        self._lock = threading.Lock()  # guards the watches and the descriptors against stop() from another thread
        self._wake_read = self._wake_write = -1  # a pipe made by start(): wake() writes to it
        self._poller = select.poll()
        self._inotify: INotify | None = None  # made by start()
        self._watches: dict[str, tuple[tuple[int, int], int]] = {}  # directory -> (identity, watch descriptor)
        self._directories: dict[int, set[str]] = {}  # watch descriptor -> directories (a symlink and its target share one)
        self._missing: frozenset[str] = frozenset()  # directories we wait for
        self._unwatchable: set[str] = set()  # watching failed; warned once, retried at each wait()
        self._waiters = 0  # threads inside wait(): the last one out of a stopped watcher closes it
        self._state = "new"  # new -> started -> stopped

    def start(self) -> None:
        with self._lock:
            if self._state != "new":
                raise RuntimeError(f"Watcher already {self._state}")
            self._state = "started"
            self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._poller.register(self._wake_read, select.POLLIN)
            try:
                self._inotify = INotify(nonblocking=True)
            except (OSError, AttributeError) as error:  # out of instances (or no inotify): the poll still works
                logger.warning("cannot watch files ({}); polling them instead", error)
            else:
                self._poller.register(self._inotify.fileno(), select.POLLIN)
            self._sync()

    def stop(self) -> None:
        """Stop watching and release the descriptors. Idempotent; wakes a waiter."""
        with self._lock:
            if self._state == "stopped":
                return
            started, self._state = self._state == "started", "stopped"
            if started:
                self._signal()
                if not self._waiters:
                    self._close()

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a change; True if woken. Read the tails after it returns.

        Also True at once when a directory we waited for has appeared (its events may have been missed).
        """
        with self._lock:
            if self._state == "stopped":
                return True
            if self._state == "new":
                raise RuntimeError("Watcher.wait() before start()")
            moved = self._sync()
            self._waiters += 1
        try:
            ready = self._poller.poll(0 if moved else max(0, math.ceil(timeout * 1000)))
            woken = self._take(ready)
        finally:
            with self._lock:
                self._waiters -= 1
                if self._state == "stopped" and not self._waiters:
                    self._close()
        return moved or woken

    def wake(self) -> None:
        with self._lock:
            if self._state == "started":
                self._signal()

    def watching(self) -> bool:
        """Whether inotify covers every followed directory now (none unwatchable; a missing one through
        its nearest existing ancestor, where its creation is an event): then a caller's fallback poll
        only guards against a lost event and can be slow."""
        with self._lock:
            return (self._state == "started" and self._inotify is not None
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

    def _signal(self) -> None:
        try:
            os.write(self._wake_write, b"!")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already

    def _take(self, ready: list[tuple[int, int]]) -> bool:
        """Drain what poll() found ready: True for a wake-up or an event that concerns us."""
        fds = {fd for fd, _ in ready}
        woken = False
        if self._wake_read in fds:
            woken = True
            try:
                while os.read(self._wake_read, 4096):
                    pass
            except BlockingIOError:
                pass
        inotify = self._inotify
        if inotify is not None and inotify.fileno() in fds:
            for event in inotify.read(timeout=0):
                directories = self._directories.get(event.wd, ())
                if event.mask & _SELF or any(self.matches(os.path.join(d, event.name)) for d in directories):
                    woken = True
        return woken

    def _close(self) -> None:
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None
        self._watches.clear()
        self._directories.clear()
        os.close(self._wake_read)
        os.close(self._wake_write)

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
        inotify = self._inotify
        if inotify is None:
            return moved
        for d, (ident, wd) in list(self._watches.items()):
            if wanted.get(d) != ident:  # gone, no longer needed, or a new directory under that name
                moved = moved or d in wanted
                del self._watches[d]
                sharing = self._directories.get(wd, set())
                sharing.discard(d)
                if not sharing:
                    self._directories.pop(wd, None)
                    try:
                        inotify.rm_watch(wd)
                    except OSError:
                        pass  # the kernel dropped it already (the directory was deleted)
        scheduled = False
        for d, ident in wanted.items():
            if d not in self._watches:
                try:
                    wd = inotify.add_watch(d, _MASK)
                except OSError as e:  # e.g. the inotify watch limit: the fallback poll still works
                    if d not in self._unwatchable:
                        self._unwatchable.add(d)
                        logger.warning("cannot watch {} ({}); polling it instead", d, e)
                    continue
                self._unwatchable.discard(d)
                self._watches[d] = (ident, wd)
                self._directories.setdefault(wd, set()).add(d)
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
