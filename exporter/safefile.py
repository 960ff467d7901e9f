"""Read a small file the user or TDM controls, refusing anything that is not a regular file; replace one atomically.

A FIFO, device or socket put where a config, pattern file, settings.json or cookies.jar belongs must not
block the thread that reads it (opening a FIFO for reading waits for a writer; reading /dev/zero never
ends): open with O_NONBLOCK, `fstat` the open descriptor (no race with a rename), and read at most
`limit` bytes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class NotARegularFile(OSError):
    """The path is a directory, FIFO, device or socket, or larger than the limit; `strerror` says which."""


def read_regular(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of the regular file at `path`, at most `limit` of them. Raises FileNotFoundError and the other
    OSErrors of open(), or NotARegularFile (an OSError) for anything else or a file larger than `limit`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as error:
        if error.errno == errno.ENXIO:  # a socket (or a FIFO opened for writing): not a file we read
            raise NotARegularFile(errno.ENXIO, "a socket, not a regular file", os.fspath(path)) from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "special file")
            code = errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL
            raise NotARegularFile(code, f"{kind}, not a regular file", os.fspath(path))
        os.set_blocking(fd, True)  # a regular file never blocks; plain reads from here
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise NotARegularFile(errno.EFBIG, f"larger than {limit} bytes", os.fspath(path))
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path: str | os.PathLike[str], limit: int) -> str:
    """`read_regular` decoded as UTF-8 (UnicodeDecodeError otherwise)."""
    return read_regular(path, limit).decode("utf-8")


def describe(error: OSError) -> str:
    """One line for a refused or unreadable file: `a FIFO, not a regular file`, `No such file or directory`."""
    return error.strerror or str(error)



def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename or unlink in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_atomically(path: str | os.PathLike[str], data: bytes, mode: int) -> None:
    """Replace `path` with `data`, permissions `mode`: a crash leaves the old or the new file, never a part.
    The temp file is `.<name>.<random>.tmp` beside it (a caller may sweep a killed writer's leftovers)."""
    directory, name = os.path.split(os.fspath(path))
    fd, temp = tempfile.mkstemp(dir=directory or ".", prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), mode)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    fsync_dir(directory or ".")
