"""Captured output: lines from the miner's pipes and GUI, appended to one file in TDM's log format.

Each record is `{YYYY-mm-dd HH:MM:SS}.{msecs:03d}:\t{level:>7}:\t{text}` in local time, exactly
TDM's `FILE_FORMATTER`, so the pipeline frames this file like log.txt. Levels are ours: `STDOUT`,
`STDERR` (the supervisor's pumps), `GUI` and `STATE` (the launcher, inside TDM's process: the Output
box, and the bridge's JSON records of TDM's state).

- A multi-line text is ONE record: its first line goes on the header, the others follow as
  continuation lines. A text starting with "\n" keeps its empty first line. One trailing newline
  is dropped.
- A continuation line that would itself parse as a record header gets ONE leading space, so the
  framer cannot take it for a new record. Nothing else in a text is changed.
- Each record is ONE `os.write` on an O_APPEND descriptor: records never interleave, even with
  several writers (the daemon's pumps and the launcher inside TDM's process share the file), and a
  follower sees a record whole (a reader racing a write of several pages may briefly see its start,
  which the framer holds until the line is complete).
- `pump` copies a child's pipe: one record per line, decoded as UTF-8 with replacement, "\r\n"
  endings dropped, lines longer than MAX_LINE_BYTES split into several records (a character cut at
  the split is kept whole in the next piece), a last line without "\n" written at EOF.

This module and `launcher` use only the standard library: the launcher runs in TDM's interpreter.
"""

from __future__ import annotations

import codecs
import os
import re
import select
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Callable

CAPTURED_OUTPUT = Path("logs") / "miner_output.log"  # the capture's file, under the data dir
MAX_LINE_BYTES = 64 * 1024  # a longer line from a pipe is split into records of at most this size
_READ_SIZE = 64 * 1024
_LEVEL = re.compile(r"[A-Z]+")
# framing.HEADER as text; kept here so the launcher does not import the pipeline.
_HEADER = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3,4}:\t *[A-Z]+:\t", re.ASCII)


def format_record(level: str, text: str, now: float) -> bytes:
    """One record, ready to append: header, text, continuation lines escaped, final newline."""
    stamp = datetime.fromtimestamp(now)
    header = f"{stamp:%Y-%m-%d %H:%M:%S}.{stamp.microsecond // 1000:03d}:\t{level:>7}:\t"
    if text.endswith("\n"):
        text = text[:-1]
    if "\n" in text:
        first, *rest = text.split("\n")
        text = "\n".join([first, *(" " + line if _HEADER.match(line) else line for line in rest)])
    return (header + text + "\n").encode("utf-8", "replace")


class OutputCapture:
    """Appends records to the captured-output file. Thread-safe; `close()` is idempotent."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(self._fd, 0o600)  # GUI output can hold a device-activation code
        except OSError:
            pass  # not our file: keep its mode
        self._lock = threading.Lock()
        self._pumps: list[threading.Thread] = []
        self._wake: tuple[int, int] | None = None  # a pipe that close() makes readable to stop pumps
        self._closing = False

    def write(self, level: str, text: str) -> None:
        """Append one record. Raises ValueError once closed or for a level that is not [A-Z]+."""
        if not _LEVEL.fullmatch(level):
            raise ValueError(f"level must be upper-case letters, got {level!r}")
        data = format_record(level, text, self._clock())
        with self._lock:
            if self._fd is None:
                raise ValueError("write to a closed OutputCapture")
            view = memoryview(data)
            while view:  # one write() in practice; a short write (disk full) is retried
                view = view[os.write(self._fd, view) :]

    def pump(self, stream: BinaryIO, level: str) -> threading.Thread:
        """Copy `stream` (a child's binary pipe) line by line as `level` records until EOF.

        Returns the started (non-daemon) thread; join it after the child exits. The pump owns the
        stream and closes it when done. `close()` stops a pump that is still waiting (e.g. a
        grandchild keeps the pipe open): bytes not read by then are left in the pipe.
        """
        if not _LEVEL.fullmatch(level):
            raise ValueError(f"level must be upper-case letters, got {level!r}")
        with self._lock:
            if self._closing:
                raise ValueError("pump on a closed OutputCapture")
            if self._wake is None:
                self._wake = os.pipe()
            thread = threading.Thread(target=self._pump, args=(stream, level, self._wake[0]), name=f"capture-{level}")
            self._pumps = [*(t for t in self._pumps if t.is_alive()), thread]  # one capture, many restarts
        thread.start()
        return thread

    def close(self) -> None:
        """Stop and join the pumps, then close the file. Idempotent."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            if self._wake is not None:
                os.write(self._wake[1], b"x")  # never read: stays readable for every pump
            pumps = list(self._pumps)
        for thread in reversed(pumps):
            thread.join()
        with self._lock:
            if self._wake is not None:
                os.close(self._wake[0])
                os.close(self._wake[1])
                self._wake = None
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    # -- pumping -----------------------------------------------------------------------------

    def _pump(self, stream: BinaryIO, level: str, wake: int) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        pending = bytearray()
        try:
            fd = stream.fileno()
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            poller.register(wake, select.POLLIN)
            while True:
                if any(ready == wake for ready, _ in poller.poll()):
                    return  # close(): stop now
                try:
                    chunk = os.read(fd, _READ_SIZE)
                except OSError:  # e.g. EIO from a pty whose other side is gone: the end
                    chunk = b""
                pending += chunk
                for line, complete in _take_lines(pending, eof=not chunk):
                    # A piece of an over-long line may end inside a character: the decoder keeps
                    # those bytes for the next piece. A complete line resets it.
                    self._emit(level, decoder.decode(line, final=complete))
                if not chunk:
                    return
        finally:
            stream.close()

    def _emit(self, level: str, text: str) -> None:
        if text.endswith("\r"):  # a "\r\n" line ending
            text = text[:-1]
        try:
            self.write(level, text)
        except (OSError, ValueError):
            pass  # keep draining the pipe, or the child blocks on a full pipe


def _take_lines(buffer: bytearray, eof: bool) -> list[tuple[bytes, bool]]:
    """Remove from `buffer` and return its lines (without "\n"), each with whether it is complete.

    A line longer than MAX_LINE_BYTES comes out in pieces (complete=False but for the last one).
    At EOF a last line without "\n" is complete too.
    """
    lines = []
    start = 0
    while True:
        newline = buffer.find(b"\n", start, start + MAX_LINE_BYTES + 1)
        if newline >= 0:
            lines.append((bytes(buffer[start:newline]), True))
            start = newline + 1
        elif len(buffer) - start > MAX_LINE_BYTES:
            lines.append((bytes(buffer[start : start + MAX_LINE_BYTES]), False))
            start += MAX_LINE_BYTES
        else:
            break
    if eof and start < len(buffer):
        lines.append((bytes(buffer[start:]), True))
        start = len(buffer)
    del buffer[:start]
    return lines
