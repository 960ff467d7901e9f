"""Who holds TDM's `lock.file`: the PID from fcntl F_GETLK, without taking or disturbing the lock.

TDM opens lock.file with 'w' (truncating it), writes 'ツ' and holds `fcntl.lockf(LOCK_EX | LOCK_NB)`:
a POSIX record lock over the whole file, for the life of the process. The file is never deleted, so
its existence means nothing; the lock does. We open the file read-only (never 'w', which would
truncate it, never creating it) and ask F_GETLK whether a write lock over the whole file would
conflict; the kernel answers with the conflicting lock and its owner's PID.

`struct flock` on Linux x86_64 and aarch64 (and 32-bit builds with large-file support, where
Python's F_GETLK is F_GETLK64 and the struct is `flock64`):

    offset  size  field
    0       2     short l_type     F_RDLCK / F_WRLCK / F_UNLCK
    2       2     short l_whence   SEEK_SET
    4       4     (padding to align off_t)
    8       8     off_t l_start
    16      8     off_t l_len      0 = to the end of the file, however long
    24      4     pid_t l_pid      the holder, filled in by the kernel
    28      4     (padding to 32)

`struct` in native mode ("@hhqqi") inserts the same padding as the C compiler; the trailing pad is
written explicitly so the buffer is the full sizeof(struct flock).

Limits: POSIX locks belong to processes, and closing ANY descriptor of the file releases all of a
process's locks on it, so never call this from the process holding the lock (it would also get None:
a process's own lock never conflicts with itself). The PID is as seen from our PID namespace (0 when
the holder is in a namespace we cannot see). Open file description locks (F_OFD_SETLK) report -1.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from pathlib import Path

_FLOCK = struct.Struct("@hhqqi4x")
assert _FLOCK.size == 32, "struct flock layout: see the module docstring"


def lock_holder(path: Path) -> int | None:
    """PID of the process holding a lock on `path`, or None if the file is missing or not locked.

    Raises OSError for other failures (e.g. permission denied): "unknown" is not "free".
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as error:
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise
    try:
        query = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)  # the whole file
        l_type, _whence, _start, _len, l_pid = _FLOCK.unpack(fcntl.fcntl(fd, fcntl.F_GETLK, query))
    finally:
        os.close(fd)
    if l_type == fcntl.F_UNLCK:
        return None
    return l_pid
