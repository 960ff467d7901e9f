"""Where we are in each followed file, as plain data the store persists."""

from __future__ import annotations

from dataclasses import dataclass

HEAD_BYTES = 256  # how much of a file's start identifies it when an inode is reused


@dataclass(frozen=True, slots=True)
class Position:
    key: str  # the followed path, as configured (resolved)
    dev: int
    ino: int
    offset: int  # byte offset of the first byte not yet turned into a committed record
    head_hash: str  # hex digest of the first head_len bytes, to detect a replaced file
    head_len: int
