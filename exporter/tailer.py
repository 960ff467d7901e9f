"""Tailer: follow a file by identity across rotation, truncation and replacement.

No threads and no waiting: the caller calls `read()` whenever the watcher wakes it and at least once per
poll interval. Every call stats the path again, so a missed notification only delays us.

A *generation* is one file identity `(st_dev, st_ino)` and the bytes we read from it. A `Reset` item ends
one generation; the `Data` after it count offsets from 0 in the next one. For each generation, the
`Data` bytes joined together are exactly the file's bytes from where we started, none lost or repeated.

Rotation by rename is drained first: bytes appended to the renamed file before we switch are not lost.
We stay on a renamed file while the new file at the path is still empty, because a writer that never
reopens its log (TDM opens log.txt once) keeps writing to the renamed file.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Union

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


TailItem = Union[Data, Reset]


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
                if entry.inode() == ino and entry.is_file(follow_symlinks=False):
                    if entry.stat(follow_symlinks=False).st_dev == dev:
                        return Path(entry.path)
    except (FileNotFoundError, NotADirectoryError):
        pass
    return None


class _Generation:
    """One open file: its identity, the next offset to read, and its first bytes (up to HEAD_BYTES)."""

    def __init__(self, fd: int) -> None:
        st = os.fstat(fd)
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

    Counters for metrics: `bytes_read`, `rotations` (renamed away), `truncations` (same file cut
    short), `replacements` (deleted, or rewritten under the same inode). `last_error` is the last
    OSError met (for example permission denied); read() records it instead of raising it.
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
        self.bytes_read = 0
        self.rotations = 0
        self.truncations = 0
        self.replacements = 0
        self.last_error: OSError | None = None
        self._saved = position
        self._start_at = start_at
        self._started = False
        self._gen: _Generation | None = None
        self._budget = 0

    def read(self) -> list[TailItem]:
        out: list[TailItem] = []
        self._budget = self.max_chunks
        try:
            if not self._started:
                self._started = True
                self._start(out)
            elif self._gen is None:
                self._open(self.path, out, "created")
            if self._gen is not None:
                self._check_in_place(self._gen, out)
                self._follow(self._gen, out)
        except OSError as e:  # the items so far are consistent with our offsets: hand them out
            self.last_error = e
        self.pending = self._budget == 0
        return out

    def position(self) -> Position | None:
        """Where reading has got to in the followed file; None while no file is followed."""
        return None if self._gen is None else self._gen.position(self.key, self._gen.offset)

    def position_at(self, offset: int) -> Position | None:
        """A Position for the followed file at `offset` (what the caller has committed), for persisting.

        `offset` counts in the generation of the last Data returned (after the last Reset); None while
        no file is followed (after a Reset("deleted"), or before the file exists).
        """
        if self._gen is None:
            return None
        if not 0 <= offset <= self._gen.offset:
            raise ValueError(f"offset {offset!r} is outside 0..{self._gen.offset} for {self.key}")
        return self._gen.position(self.key, offset)

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
        saved, self._saved = self._saved, None
        if saved is not None:
            self._resume(saved, out)
        elif self._open(self.path, out) and self._start_at == "end":
            self._gen.seek(self._gen.size())

    def _resume(self, saved: Position, out: list[TailItem]) -> None:
        ident = (saved.dev, saved.ino)
        st = _stat(self.path)
        at_path = st is not None and (st.st_dev, st.st_ino) == ident
        where = self.path if at_path else _find_by_ident(self.path.parent, *ident)
        if where is not None and self._open(where, out):
            gen = self._gen
            gen.seek(saved.offset)
            size = gen.size()
            if gen.ident == ident and size >= saved.offset and len(gen.head) >= saved.head_len:
                if head_hash(gen.head[: saved.head_len]) == saved.head_hash:
                    return  # continue exactly where we were (the path or a rotated copy)
                reason = "replaced"
            else:
                reason = "truncated"
            if gen.ident == ident and at_path:  # the same file, changed while we were down: start it over
                gen.seek(0)
                self._reset(out, reason)
                return
            self.close()
        # The saved file is gone: whatever is at the path now is new to us.
        if self._open(self.path, out):
            self._reset(out, "replaced")

    def _open(self, path: Path, out: list[TailItem], reason: str | None = None) -> bool:
        try:
            fd = os.open(path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            return False
        self._gen = _Generation(fd)
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
                self.bytes_read += len(data)
            if len(data) < self.chunk_size:
                return True
            self._budget -= 1
        return False

    def _reset(self, out: list[TailItem], reason: str) -> None:
        out.append(Reset(self.key, reason))
        if reason == "rotated":
            self.rotations += 1
        elif reason == "truncated":
            self.truncations += 1
        elif reason in ("replaced", "deleted"):
            self.replacements += 1


class GlobTail:
    """Follow every file matching `pattern`, discovering new ones on each read.

    One FileTail per matching path, keyed by the path as glob returns it. Files present at the first
    read start as `start_at` says (or at their saved position); files found later start at 0 after a
    Reset("created"). A tail is dropped once its file is gone and no longer matches.
    """

    def __init__(
        self,
        pattern: str,
        positions: Mapping[str, Position] | None = None,
        start_at: str = "beginning",
        chunk_size: int = CHUNK_SIZE,
        max_chunks: int = MAX_CHUNKS,
    ) -> None:
        if start_at not in START_AT:
            raise ValueError(f"start_at: expected 'beginning' or 'end', got {start_at!r}")
        self.pattern = pattern
        self.tails: dict[str, FileTail] = {}
        self.pending = False
        self._positions = dict(positions or {})
        self._start_at = start_at
        self._chunk_size = chunk_size
        self._max_chunks = max_chunks
        self._first = True

    def read(self) -> list[TailItem]:
        out: list[TailItem] = []
        matched = sorted(glob.glob(self.pattern))
        for path in matched:
            if path not in self.tails:
                start_at = self._start_at if self._first else "beginning"
                position = self._positions.pop(path, None)
                self.tails[path] = FileTail(path, path, position, start_at, self._chunk_size, self._max_chunks)
                if not self._first:
                    out.append(Reset(path, "created"))
        self._first = False
        for key, tail in list(self.tails.items()):
            out.extend(tail.read())
            if tail.position() is None and key not in matched:
                tail.close()
                del self.tails[key]
        self.pending = any(tail.pending for tail in self.tails.values())
        return out

    def position_at(self, key: str, offset: int) -> Position | None:
        tail = self.tails.get(key)
        return None if tail is None else tail.position_at(offset)

    def close(self) -> None:
        for tail in self.tails.values():
            tail.close()
        self.tails.clear()

    def __enter__(self) -> GlobTail:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
