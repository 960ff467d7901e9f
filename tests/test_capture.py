"""OutputCapture: records in TDM's header format, read back through the pipeline's own framer."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from exporter.capture import MAX_LINE_BYTES, OutputCapture
from exporter.framing import Framer, Record

from conftest import REPO, wait_until

NOW = time.mktime((2026, 11, 23, 22, 23, 54, 0, 0, -1)) + 0.665  # local time, like TDM


def records(path: Path) -> list[Record]:
    framer = Framer("captured")
    out = framer.feed(path.read_bytes(), now=0.0).records
    out += framer.flush().records
    assert framer.orphan_lines == 0
    return out


@pytest.fixture
def capture(tmp_path):
    opened = OutputCapture(tmp_path / "logs" / "miner_output.log", clock=lambda: NOW)
    yield opened
    opened.close()


def test_header_is_tdms_format_in_local_time(capture):
    capture.write("GUI", "Watching: MockStreamer")
    capture.write("STDERR", "warning")
    assert capture.path.read_bytes() == (
        b"2026-11-23 22:23:54.665:\t    GUI:\tWatching: MockStreamer\n"
        b"2026-11-23 22:23:54.665:\t STDERR:\twarning\n"
    )
    assert stat.S_IMODE(capture.path.stat().st_mode) == 0o600


def test_multi_line_texts_are_one_record_each(capture):
    texts = [
        "Fatal error encountered:\n",  # TDM's own trailing newline is dropped
        'Traceback (most recent call last):\n  File "main.py", line 1\nKeyError: \'viewers\'\n',
        "\nApplication Terminated.\nClose the window to exit the application.",
        "",
        "emoji 🎁 ✔ and a tab\there",
    ]
    for text in texts:
        capture.write("GUI", text)
    got = records(capture.path)
    assert [r.message for r in got] == [
        "Fatal error encountered:",
        'Traceback (most recent call last):\n  File "main.py", line 1\nKeyError: \'viewers\'',
        "\nApplication Terminated.\nClose the window to exit the application.",
        "",
        "emoji 🎁 ✔ and a tab\there",
    ]
    assert {(r.timestamp, r.msecs, r.level) for r in got} == {("2026-11-23 22:23:54", 665, "GUI")}


def test_a_header_inside_a_text_is_escaped_not_a_new_record(capture):
    logged = "2026-11-23 22:23:54.665:\t   INFO:\tChecking login"
    capture.write("STDOUT", f"{logged}\n{logged}\nplain")
    (record,) = records(capture.path)
    assert record.message == f"{logged}\n {logged}\nplain"  # a continuation line gets one space


def test_level_must_be_upper_case_letters(capture):
    for level in ("gui", "GUI1", "", "GUI:"):
        with pytest.raises(ValueError):
            capture.write(level, "text")


def test_close_is_idempotent_and_final(capture):
    capture.close()
    capture.close()
    with pytest.raises(ValueError):
        capture.write("GUI", "late")
    with open(os.devnull, "rb") as stream, pytest.raises(ValueError):
        capture.pump(stream, "STDOUT")


def test_concurrent_writers_never_mix_records(tmp_path):
    capture = OutputCapture(tmp_path / "out.log")
    lines = 5

    def writer(n: int) -> None:
        for i in range(200):
            capture.write("GUI", "\n".join(f"writer {n} record {i} line {j}" for j in range(lines)))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    capture.close()
    got = records(tmp_path / "out.log")
    assert len(got) == 8 * 200
    for record in got:
        first = record.message.split("\n")[0]
        prefix = first.rsplit(" line ", 1)[0]
        assert record.message == "\n".join(f"{prefix} line {j}" for j in range(lines))


def test_pump_copies_a_childs_stdout_and_stderr(tmp_path):
    script = r"""
import sys
out, err = sys.stdout.buffer, sys.stderr.buffer
out.write(b"first line\n")
err.write(b"Traceback (most recent call last):\n")
out.write("caf\u00e9 \U0001f381\n".encode())
out.write(b"bad \xff byte\r\n")
out.write(b"x" * (2 * %(max)d + 10) + b"\n")
out.write(b"a" + "\u00e9".encode() * %(max)d + b"\n")   # 2-byte characters cut at the 64 KiB pieces
out.write(b"no newline at the end")
""" % {"max": MAX_LINE_BYTES}
    capture = OutputCapture(tmp_path / "out.log")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pumps = [capture.pump(proc.stdout, "STDOUT"), capture.pump(proc.stderr, "STDERR")]
    assert proc.wait(10) == 0
    for pump in pumps:
        pump.join(10)
        assert not pump.is_alive()
    assert proc.stdout.closed and proc.stderr.closed  # the pump owns its stream
    capture.close()
    got = records(tmp_path / "out.log")
    by_level = {level: [r.message for r in got if r.level == level] for level in ("STDOUT", "STDERR")}
    assert by_level["STDERR"] == ["Traceback (most recent call last):"]
    out = by_level["STDOUT"]
    assert out[:3] == ["first line", "café 🎁", "bad \ufffd byte"]
    assert out[3:6] == ["x" * MAX_LINE_BYTES, "x" * MAX_LINE_BYTES, "x" * 10]  # split, nothing lost
    pieces = out[6:-1]
    assert "".join(pieces) == "a" + "é" * MAX_LINE_BYTES  # no U+FFFD where a character was cut
    assert len(pieces) == 3 and all(len(piece.encode()) <= MAX_LINE_BYTES + 3 for piece in pieces)
    assert out[-1] == "no newline at the end"


def test_close_stops_a_pump_whose_pipe_stays_open(tmp_path):
    """A grandchild can keep the pipe open after the child is gone: close() must still end the pump."""
    read_end, write_end = os.pipe()
    capture = OutputCapture(tmp_path / "out.log")
    pump = capture.pump(os.fdopen(read_end, "rb"), "STDOUT")
    os.write(write_end, b"still open\n")
    wait_until(lambda: b"still open" in (tmp_path / "out.log").read_bytes(), what="the line")
    capture.close()
    assert not pump.is_alive()
    os.close(write_end)
    assert [r.message for r in records(tmp_path / "out.log")] == ["still open"]


def test_two_processes_append_to_one_file(tmp_path):
    """The launcher (in TDM's process) and the daemon's pumps share the file: O_APPEND keeps records whole."""
    path = tmp_path / "out.log"
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from pathlib import Path; from exporter.capture import OutputCapture;"
        "c = OutputCapture(Path(sys.argv[2]));"
        "[c.write('GUI', f'child {i}\\nsecond line') for i in range(500)]"
    )
    capture = OutputCapture(path)
    child = subprocess.Popen([sys.executable, "-c", script, str(REPO), str(path)])
    for i in range(500):
        capture.write("STDOUT", f"parent {i}\nsecond line")
    assert child.wait(20) == 0
    capture.close()
    got = records(path)
    assert len(got) == 1000
    assert all(r.message.endswith("\nsecond line") and r.message.count("\n") == 1 for r in got)
