"""Tailer: follow a file by identity across rotation, truncation and replacement.

No threads and no waiting: the caller calls `read()` whenever the watcher wakes it and at least once per
poll interval. Every call stats the path again, so a missed notification only delays us.

A *generation* is one file identity `(st_dev, st_ino)` and the bytes we read from it. A `Reset` item ends
one generation; the `Data` after it count offsets from 0 in the next one. For each generation, the
`Data` bytes joined together are exactly the file's bytes from where we started, none lost or repeated.

Rotation by rename is drained first: bytes appended to the renamed file before we switch are not lost.
We stay on a renamed file while the new file at the path is still empty, because a writer that never
reopens its log (TDM opens log.txt once) keeps writing to the renamed file.

Reset reasons: "created" (a file appeared where there was none), "rotated" (the path names a new
file; the old one, still linked under another name, was drained first), "truncated" (the followed file
got shorter than what we had read: copytruncate), "replaced" (the followed file was deleted and another
is at the path, its first bytes changed under the same inode, or the saved file is gone at resume),
"deleted" (the followed file was deleted and nothing is at the path).

Persisting: after handling a whole read() batch, persist `tail.position_at(committed)`, where
`committed` is the offset up to which the caller has consumed the bytes of the current generation
(it restarts at 0 after each Reset). Give that Position back to the constructor on the next start.
"""

from __future__ import annotations

import dataclasses
import errno
import fnmatch
import glob
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from .positions import HEAD_BYTES, Position

CHUNK_SIZE = 1 << 20
MAX_CHUNKS = 8  # per read() call and file, so one huge file cannot starve the others
START_AT = ("beginning", "end")
RESET_REASONS = ("created", "rotated", "truncated", "replaced", "deleted")


@dataclass(frozen=True, slots=True)
class Data:
    key: str
    data: bytes
    offset: int  # file offset of data[0] in the current generation


@dataclass(frozen=True, slots=True)
class Reset:
    key: str
    reason: str  # one of RESET_REASONS; the next Data belongs to a new generation and starts at 0


TailItem = Data | Reset


def head_hash(head: bytes) -> str:
    return hashlib.sha256(head).hexdigest()


def has_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _find_by_ident(directory: Path, dev: int, ino: int) -> Path | None:
    """A file in `directory` with this identity: where a rotated file went (log.txt.1, log.txt.0)."""
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)  # not entry.inode(): d_ino can differ on overlayfs
                except FileNotFoundError:
                    continue
                if (st.st_dev, st.st_ino) == (dev, ino):
                    return Path(entry.path)
    except (FileNotFoundError, NotADirectoryError):
        pass
    return None


class _Generation:
    """One open file: its identity, the next offset to read, and its first bytes (up to HEAD_BYTES)."""

    def __init__(self, fd: int) -> None:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        self.fd = fd
        self.ident = (st.st_dev, st.st_ino)
        self.offset = 0
        self.head = b""

    def seek(self, offset: int) -> None:
        self.offset = offset
        self.head = os.pread(self.fd, HEAD_BYTES, 0) if offset else b""

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def linked(self) -> bool:
        """Whether some name still leads to the file (False once it is deleted)."""
        return os.fstat(self.fd).st_nlink > 0

    def head_changed(self) -> bool:
        return bool(self.head) and os.pread(self.fd, len(self.head), 0) != self.head

    def read(self, size: int) -> bytes:
        data = os.pread(self.fd, size, self.offset)
        known = len(self.head)
        if known < HEAD_BYTES and self.offset <= known:
            self.head += data[known - self.offset : HEAD_BYTES - self.offset]
        self.offset += len(data)
        return data

    def position(self, key: str, offset: int) -> Position:
        dev, ino = self.ident
        return Position(key, dev, ino, offset, head_hash(self.head), len(self.head))

    def close(self) -> None:
        os.close(self.fd)


class FileTail:
    """Follow one path. `read()` returns the new bytes and the resets since the last call.

    `last_error` is the OSError the last read() met (permission denied, a directory, a path through
    a file), or None: read() records it instead of raising, and the pipeline reports it.
    """

    def __init__(
        self,
        key: str,
        path: Path | str,
        position: Position | None = None,
        start_at: str = "beginning",
        chunk_size: int = CHUNK_SIZE,
        max_chunks: int = MAX_CHUNKS,
    ) -> None:
        if start_at not in START_AT:
            raise ValueError(f"start_at: expected 'beginning' or 'end', got {start_at!r}")
        self.key = key
        self.path = Path(path)
        self.chunk_size = chunk_size
        self.max_chunks = max_chunks
        self.pending = False  # True when read() stopped at its chunk budget: call it again soon
        self.last_error: OSError | None = None
        self._saved = position
        self._start_at = start_at
        self._started = False
        self._gen: _Generation | None = None
        self._budget = 0

    def read(self) -> list[TailItem]:
        out: list[TailItem] = []
        self._budget = self.max_chunks
        self.last_error = None
        try:
            if not self._started:
                self._start(out)  # if this raises, the next read() starts again from the saved position
                self._started, self._saved = True, None
            elif self._gen is None:
                self._open(self.path, out, "created")
            if self._gen is not None:
                self._check_in_place(self._gen, out)
                self._follow(self._gen, out)
        except OSError as e:  # the items so far are consistent with our offsets: hand them out
            self.last_error = e
            if not self._started:
                self.close()
                out.clear()
        self.pending = self._budget == 0
        return out

    def backlog(self) -> int:
        """Bytes of the followed file not read yet (0 while none is followed)."""
        if self._gen is None:
            return 0
        try:
            return max(0, self._gen.size() - self._gen.offset)
        except OSError:
            return 0

    def position(self) -> Position | None:
        """Where reading has got to in the followed file; None while no file is followed.

        Before the first read() it is the position given to the constructor, unchanged.
        """
        if self._gen is None:
            return self._saved  # None once started
        return self._gen.position(self.key, self._gen.offset)

    def position_at(self, offset: int) -> Position | None:
        """A Position for the followed file at `offset` (what the caller has committed), for persisting.

        `offset` counts in the generation of the last Data returned (after the last Reset). None while
        no file is followed (before the file exists, or after a Reset("deleted")).
        """
        current = self.position()
        if current is None:
            return None
        if not 0 <= offset <= current.offset:
            raise ValueError(f"offset {offset!r} is outside 0..{current.offset} for {self.key}")
        return dataclasses.replace(current, offset=offset)

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()
            self._gen = None

    def __enter__(self) -> FileTail:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- internals ---

    def _start(self, out: list[TailItem]) -> None:
        if self._saved is not None:
            self._resume(self._saved, out)
        elif self._open(self.path, out) and self._start_at == "end":
            self._gen.seek(self._gen.size())

    def _resume(self, saved: Position, out: list[TailItem]) -> None:
        ident = (saved.dev, saved.ino)
        st = _stat(self.path)
        at_path = st is not None and (st.st_dev, st.st_ino) == ident
        where = self.path if at_path else _find_by_ident(self.path.parent, *ident)
        if where is not None and self._open(where, out):
            gen = self._gen
            if gen.ident == ident:
                gen.seek(saved.offset)
                if gen.size() < saved.offset or len(gen.head) < saved.head_len:
                    reason = "truncated"
                elif head_hash(gen.head[: saved.head_len]) != saved.head_hash:
                    reason = "replaced"
                else:
                    return  # continue exactly where we were, at the path or in a rotated copy
                if at_path:  # the same file, changed while we were down: start it over
                    gen.seek(0)
                    self._reset(out, reason)
                    return
            self.close()
        # The saved file is gone: whatever is at the path now is new to us.
        if not self._open(self.path, out, "replaced"):
            self._reset(out, "deleted")

    def _open(self, path: Path, out: list[TailItem], reason: str | None = None) -> bool:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # NONBLOCK: a FIFO must not hang us
        except FileNotFoundError:
            return False  # not there yet; a path through a file (NotADirectoryError) is an error
        try:
            self._gen = _Generation(fd)
        except OSError as e:
            os.close(fd)
            e.filename = os.fspath(path)
            raise
        if reason is not None:
            self._reset(out, reason)
        return True

    def _check_in_place(self, gen: _Generation, out: list[TailItem]) -> None:
        """Copytruncate, or the same inode rewritten: start this file over from 0."""
        size = gen.size()
        if size < gen.offset or size < len(gen.head):
            reason = "truncated"
        elif gen.head_changed():
            reason = "replaced"
        else:
            return
        gen.seek(0)
        self._reset(out, reason)

    def _follow(self, gen: _Generation, out: list[TailItem]) -> None:
        st = _stat(self.path)
        linked = gen.linked()
        if st is not None and (st.st_dev, st.st_ino) == gen.ident:
            self._drain(gen, out)
            return
        if linked and (st is None or st.st_size == 0):
            self._drain(gen, out)  # renamed away; the writer may still write to it, the new file is empty
            return
        if not self._drain(gen, out):
            return  # finish the old generation first, on the next calls
        self.close()
        if st is None:
            self._reset(out, "deleted")
            return
        self._reset(out, "rotated" if linked else "replaced")
        if self._open(self.path, out):
            self._drain(self._gen, out)

    def _drain(self, gen: _Generation, out: list[TailItem]) -> bool:
        """Read up to EOF or the chunk budget; True when EOF was reached."""
        while self._budget > 0:
            offset = gen.offset
            data = gen.read(self.chunk_size)
            if data:
                out.append(Data(self.key, data, offset))
            if len(data) < self.chunk_size:
                return True
            self._budget -= 1
        return False

    def _reset(self, out: list[TailItem], reason: str) -> None:
        out.append(Reset(self.key, reason))


class GlobTail:
    """Follow every file matching `pattern`, discovering new ones on each read.

    One FileTail per matching path, keyed by the path as glob returns it. Files present at the first
    read start as `start_at` says, or at their saved position; a saved key that matches the pattern
    but whose file is gone (rotated away while we were down) is still resumed. Files found later start
    at 0 after a Reset("created"). A tail is dropped once its file is gone and no longer matches.
    Paths in `taken` (followed by another source) are skipped.
    """

    def __init__(
        self,
        pattern: str,
        positions: Mapping[str, Position] | None = None,
        start_at: str = "beginning",
        chunk_size: int = CHUNK_SIZE,
        max_chunks: int = MAX_CHUNKS,
        taken: set[str] | None = None,
    ) -> None:
        if start_at not in START_AT:
            raise ValueError(f"start_at: expected 'beginning' or 'end', got {start_at!r}")
        self.pattern = pattern
        self.tails: dict[str, FileTail] = {}
        self.pending = False
        self._positions = {k: p for k, p in (positions or {}).items() if fnmatch.fnmatchcase(k, pattern)}
        self._start_at = start_at
        self._chunk_size = chunk_size
        self._max_chunks = max_chunks
        self._taken = taken if taken is not None else set()
        self._first = True

    def read(self) -> list[TailItem]:
        out: list[TailItem] = []
        matched = set(glob.glob(self.pattern))
        found = matched | set(self._positions) if self._first else matched
        for path in sorted(found - self._taken):
            start_at = self._start_at if self._first else "beginning"
            position = self._positions.pop(path, None)
            self.tails[path] = FileTail(path, path, position, start_at, self._chunk_size, self._max_chunks)
            self._taken.add(path)
            if not self._first:
                out.append(Reset(path, "created"))
        self._first = False
        for key, tail in list(self.tails.items()):
            out.extend(tail.read())
            if tail.position() is None and key not in matched:
                tail.close()
                del self.tails[key]
                self._taken.discard(key)
        self.pending = any(tail.pending for tail in self.tails.values())
        return out

    def close(self) -> None:
        for tail in self.tails.values():
            tail.close()
        self._taken.difference_update(self.tails)
        self.tails.clear()

    def __enter__(self) -> GlobTail:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class TailSet:
    """Every configured source: a plain path gets a FileTail keyed by the source string as given,
    a glob gets a GlobTail. A file is followed once even if several sources name it.

    `positions` maps keys to saved Positions (what the store loaded). After each read() batch,
    persist `tail.position_at(committed)` for each `(key, tail)` in `items()`.
    """

    def __init__(
        self,
        sources: Iterable[str],
        positions: Mapping[str, Position] | None = None,
        start_at: str = "beginning",
        chunk_size: int = CHUNK_SIZE,
        max_chunks: int = MAX_CHUNKS,
    ) -> None:
        positions = positions or {}
        sources = list(dict.fromkeys(os.fspath(s) for s in sources))
        plain = [s for s in sources if not has_glob(s)]
        self._taken = set(plain)
        self._files = {s: FileTail(s, s, positions.get(s), start_at, chunk_size, max_chunks) for s in plain}
        self._globs = [
            GlobTail(s, positions, start_at, chunk_size, max_chunks, taken=self._taken) for s in sources if has_glob(s)
        ]
        self.pending = False

    def read(self) -> list[TailItem]:
        out: list[TailItem] = []
        for tail in [*self._files.values(), *self._globs]:
            out.extend(tail.read())
        self.pending = any(tail.pending for tail in [*self._files.values(), *self._globs])
        return out

    def backlog(self) -> dict[str, int]:
        """Bytes not read yet, by key."""
        return {key: tail.backlog() for key, tail in self.items()}

    def errors(self) -> dict[str, OSError]:
        """Files whose last read failed, by key, with what it met."""
        return {key: tail.last_error for key, tail in self.items() if tail.last_error is not None}

    def items(self) -> list[tuple[str, FileTail]]:
        """Every followed file by key, for positions and per-file counters."""
        pairs = list(self._files.items())
        for g in self._globs:
            pairs.extend(g.tails.items())
        return pairs

    def close(self) -> None:
        for tail in [*self._files.values(), *self._globs]:
            tail.close()

    def __enter__(self) -> TailSet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def watch_paths(sources: Iterable[str]) -> list[str]:
    """What the Watcher should watch for these sources: the paths and globs themselves."""
    return [os.fspath(s) for s in sources]
