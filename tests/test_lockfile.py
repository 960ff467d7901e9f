"""lock_holder against real processes holding lock.file the way TDM does."""

from __future__ import annotations

import fcntl
import signal
import struct
import subprocess
import sys

import pytest

from exporter.lockfile import _FLOCK, lock_holder

from conftest import REPO, wait_until

# TDM's utils.lock_file: open 'w' (truncates), write 'ツ', lockf(LOCK_EX | LOCK_NB), hold it.
HOLD_LOCK = """
import fcntl, sys
file = open(sys.argv[1], "w", encoding="utf8")
file.write("\\u30c4")
file.flush()
fcntl.lockf(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("locked", flush=True)
sys.stdin.read()
"""
TRY_LOCK = """
import fcntl, sys
file = open(sys.argv[1], "a")
try:
    fcntl.lockf(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    sys.exit(1)
"""


@pytest.fixture
def holder(tmp_path):
    path = tmp_path / "lock.file"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline() == "locked\n"
    yield proc, path
    proc.kill()
    proc.wait(10)
    proc.stdin.close()
    proc.stdout.close()


def test_holder_is_the_locking_process_and_nothing_is_disturbed(holder):
    proc, path = holder
    before = path.stat()
    assert lock_holder(path) == proc.pid
    assert lock_holder(path) == proc.pid
    after = path.stat()
    assert path.read_bytes() == "ツ".encode()  # not truncated
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    # The lock is still the child's: another process cannot take it.
    assert subprocess.run([sys.executable, "-c", TRY_LOCK, str(path)]).returncode == 1


def test_free_after_the_holder_exits(holder):
    proc, path = holder
    assert lock_holder(path) == proc.pid
    proc.stdin.close()
    proc.wait(10)
    assert lock_holder(path) is None
    assert path.exists()  # TDM never deletes it: the file alone means nothing
    assert subprocess.run([sys.executable, "-c", TRY_LOCK, str(path)]).returncode == 0


def test_missing_or_unlocked_file(tmp_path):
    assert lock_holder(tmp_path / "lock.file") is None
    assert lock_holder(tmp_path / "no-such-dir" / "lock.file") is None
    assert not (tmp_path / "lock.file").exists()  # never created
    (tmp_path / "lock.file").write_text("ツ")
    assert lock_holder(tmp_path / "lock.file") is None
    (tmp_path / "a-file").write_text("")
    assert lock_holder(tmp_path / "a-file" / "lock.file") is None


def test_flock_layout_is_linux_64_bit():
    assert _FLOCK.size == 32
    packed = _FLOCK.pack(fcntl.F_WRLCK, 0, 0x1122334455667788, 0x0102030405060708, 4242)
    assert struct.unpack_from("=h", packed, 0)[0] == fcntl.F_WRLCK
    assert struct.unpack_from("=q", packed, 8)[0] == 0x1122334455667788
    assert struct.unpack_from("=q", packed, 16)[0] == 0x0102030405060708
    assert struct.unpack_from("=i", packed, 24)[0] == 4242


def test_simulated_miner_holds_the_lock(tmp_path):
    """The simulator locks lock.file with TDM's own code; its PID is found while it runs."""
    simulator = REPO / "exporter" / "simulator" / "main.py"
    args = ["--dir", str(tmp_path), "--log", "-vv", "--speed", "600", "--exit-after", "60"]
    proc = subprocess.Popen(
        [sys.executable, str(simulator), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        lock = tmp_path / "lock.file"
        wait_until(lambda: lock_holder(lock) == proc.pid or proc.poll() is not None, what="the lock")
        assert lock_holder(tmp_path / "lock.file") == proc.pid, proc.stderr.read()
        # Its SIGTERM handler is installed before it logs anything: then SIGTERM is a clean stop.
        log = tmp_path / "log.txt"
        wait_until(lambda: log.exists() and "Checking login" in log.read_text(), what="the simulator to run")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert lock_holder(tmp_path / "lock.file") is None
    finally:
        proc.kill()
        proc.wait(10)
        proc.stderr.close()
