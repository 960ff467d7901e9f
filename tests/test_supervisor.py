"""The supervisor with real processes (tests/children/*): no mocks, no sleeps, every wait with a deadline."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from exporter.config import ConfigError, MinerConfig, parse_config
from exporter.lifecycle import BackoffPolicy, State
from exporter.supervisor import (
    LOG_FLAGS,
    OWNER_VARIABLE,
    Supervisor,
    SupervisorError,
    miner_argv,
    with_log_flags,
)

from conftest import wait_until

CHILDREN = Path(__file__).resolve().parent / "children"
sys.path.insert(0, str(CHILDREN))
from _common import reports  # noqa: E402

HEADER = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}:\t *([A-Z]+):\t(.*)$")
FAST = BackoffPolicy(initial=0.2, factor=2.0, max=1.0, jitter=0.0, max_restarts=3, window=60.0)


def child(name: str, *args: str) -> tuple[str, ...]:
    return (sys.executable, str(CHILDREN / name), *args)


@pytest.fixture
def miner_dir(tmp_path: Path) -> Path:
    path = tmp_path / "miner"
    path.mkdir()
    return path


@pytest.fixture(autouse=True)
def no_child_left():
    """After each test (and its supervisors' stop), the test process has no child left."""
    yield
    me = psutil.Process()

    def alive() -> list[psutil.Process]:
        found = []
        for process in me.children(recursive=True):
            try:
                if process.status() != psutil.STATUS_ZOMBIE:
                    found.append(process)
            except psutil.NoSuchProcess:
                pass
        return found

    wait_until(lambda: not alive(), 5.0, what="every child process to be gone")


@pytest.fixture
def supervise(tmp_path: Path, miner_dir: Path):
    """Build (and at teardown stop) supervisors over `miner_dir`, data in tmp_path/data."""
    made: list[Supervisor] = []

    def make(command=(), **options) -> Supervisor:
        options.setdefault("display", "none")
        options.setdefault("backoff", FAST)
        options.setdefault("stop_timeout", 5.0)
        record = options.pop("record", None)
        settings = MinerConfig(dir=miner_dir, command=command, **options)
        supervisor = Supervisor(settings, tmp_path / "data", record=record)
        made.append(supervisor)
        return supervisor

    yield make
    for supervisor in made:
        supervisor.stop()


@pytest.fixture
def lock_holder(miner_dir: Path):
    """A foreign TDM: a process holding miner_dir/lock.file. Returns a start function."""
    started: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(child("lock_holder.py"), cwd=miner_dir)
        started.append(proc)
        wait_until(lambda: any(r["pid"] == proc.pid for r in reports(miner_dir)), what="the lock holder")
        return proc

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(10)


def running(supervisor: Supervisor, timeout: float = 10.0) -> int:
    """Wait until the miner runs and has written its report; return its pid."""
    status = wait_until(
        lambda: (s := supervisor.status()).state is State.RUNNING and s.pid and s,
        timeout,
        what="the miner to run",
    )
    directory = supervisor.settings.dir
    wait_until(lambda: any(r["pid"] == status.pid for r in reports(directory)), timeout, what="the miner's report")
    return status.pid


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# -- command line -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, appended",
    [
        (("tdm",), True),
        (("tdm", "--tray"), True),
        (("tdm", "--log"), False),
        (("tdm", "-v"), False),
        (("tdm", "-vvvv", "--debug-gql"), False),
        (("python", "main.py", "--log", "-vv"), False),
        (("-v",), True),  # argv[0] is the program, not a flag
    ],
)
def test_log_flags_are_appended_unless_the_user_chose(argv, appended):
    assert with_log_flags(argv) == ((*argv, *LOG_FLAGS) if appended else argv)


def test_a_source_install_runs_through_the_launcher(miner_dir: Path, tmp_path: Path):
    (miner_dir / "main.py").write_text("")
    output = tmp_path / "out.log"
    python = tmp_path / "tdm-venv" / "bin" / "python"
    settings = MinerConfig(dir=miner_dir, python=python)
    argv = miner_argv(settings, output)
    assert argv[0] == str(python) and argv[1].endswith("launcher.py")
    assert argv[argv.index("--") + 1 :] == [str(miner_dir / "main.py"), "--log", "-vvv"]
    assert str(output) in argv
    off = MinerConfig(dir=miner_dir, python=python, mirror_gui_output="off")
    assert miner_argv(off, output) == [str(python), str(miner_dir / "main.py"), "--log", "-vvv"]
    exe = MinerConfig(dir=miner_dir, command=("./TwitchDropsMiner.AppImage", "-vv"))
    assert miner_argv(exe, output) == ["./TwitchDropsMiner.AppImage", "-vv"]


def test_no_command_and_no_main_py_fails_early(miner_dir: Path, tmp_path: Path):
    with pytest.raises(SupervisorError, match="main.py does not exist"):
        Supervisor(MinerConfig(dir=miner_dir), tmp_path / "data")


@pytest.mark.parametrize(
    "option, value",
    [
        ("display", "auto:1"),
        ("mirror_gui_output", "sometimes"),
        ("mode", "watch"),
        ("stop_timeout", 0),
        ("restart_on_stall", "1m"),
    ],
)
def test_miner_settings_are_checked_once_where_they_are_read(option, value):
    # One type (MinerConfig), checked by the config's converters: the supervisor takes it as it is.
    with pytest.raises(ConfigError, match=rf"twitchminert.yaml:3: miner.{option}: .*{re.escape(repr(value))}"):
        parse_config(f"miner:\n  dir: /tdm\n  {option}: {value}\n")


def test_python_and_command_are_one_choice():
    with pytest.raises(ConfigError, match="miner: python and command: set one"):
        parse_config("miner:\n  dir: /tdm\n  python: /tdm/env/bin/python\n  command: [./tdm]\n")


def test_source_install_python_is_tdms_venv_then_python3(miner_dir: Path, tmp_path: Path):
    (miner_dir / "main.py").write_text("")
    output = tmp_path / "out.log"
    found = miner_argv(MinerConfig(dir=miner_dir), output)[0]
    assert found != sys.executable or found == shutil.which("python3")  # never our venv's by default
    venv_python = miner_dir / "env" / "bin" / "python"  # what TDM's setup_env.sh makes
    venv_python.parent.mkdir(parents=True)
    venv_python.symlink_to(sys.executable)
    assert miner_argv(MinerConfig(dir=miner_dir), output)[0] == str(venv_python)


def test_the_child_gets_log_flags_cwd_and_its_own_process_group(supervise, miner_dir: Path):
    supervisor = supervise(child("graceful.py"), env={"TWITCHMINERT_TEST": "1"})
    supervisor.start()
    pid = running(supervisor)
    (report,) = reports(miner_dir)
    assert report["argv"] == ["--log", "-vvv"]
    assert report["pgid"] == pid  # its own group, so the group signals reach its whole tree
    supervisor.stop()
    supervised = supervise(child("graceful.py", "-vv"))
    supervised.start()
    second = running(supervised)
    assert [r["argv"] for r in reports(miner_dir) if r["pid"] == second] == [["-vv"]]


# -- stopping -----------------------------------------------------------------------------------


def test_graceful_stop_exits_0_within_the_timeout(supervise):
    supervisor = supervise(child("graceful.py"), stop_timeout=5.0)
    supervisor.start()
    pid = running(supervisor)
    began = time.monotonic()
    supervisor.stop()
    took = time.monotonic() - began
    status = supervisor.status()
    assert 0.3 <= took < 5.0
    assert (status.state, status.last_exit_code, status.last_exit_meaning) == (State.STOPPED, 0, "closed")
    assert status.exits == {(0, "closed"): 1} and status.restarts == {}
    assert status.pid is None and gone(pid)
    supervisor.stop()  # idempotent


def test_a_child_that_ignores_sigterm_is_killed_after_the_timeout(supervise):
    supervisor = supervise(child("ignore_term.py"), stop_timeout=1.0)
    supervisor.start()
    pid = running(supervisor)
    began = time.monotonic()
    supervisor.stop()
    took = time.monotonic() - began
    assert 1.0 <= took < 3.0  # after the timeout, not before
    status = supervisor.status()
    assert (status.last_exit_code, status.last_exit_meaning) == (137, "killed by SIGKILL")
    assert gone(pid)


def test_the_grandchild_is_gone_after_stop(supervise, miner_dir: Path):
    supervisor = supervise(child("forker.py"))
    supervisor.start()
    pid = running(supervisor)
    grandchild = wait_until(
        lambda: [r["pid"] for r in reports(miner_dir) if r.get("role") == "grandchild"], what="the grandchild"
    )[0]
    assert psutil.Process(grandchild).ppid() == pid
    supervisor.stop()
    assert supervisor.status().last_exit_code == 0  # the child itself stopped gracefully
    wait_until(lambda: gone(grandchild), 5.0, what="the grandchild (ignores SIGTERM) to be killed")


def test_stop_before_start_and_twice_is_harmless(supervise):
    supervisor = supervise(child("graceful.py"))
    supervisor.stop()
    supervisor.start()
    running(supervisor)
    supervisor.stop()
    supervisor.stop()
    with pytest.raises(SupervisorError):
        supervisor.start()


def test_no_thread_and_no_child_left_after_stop(supervise):
    threads_before = set(threading.enumerate())
    supervisor = supervise(child("forker.py"))
    supervisor.start()
    running(supervisor)
    assert psutil.Process().children(recursive=True)
    supervisor.stop()
    assert set(threading.enumerate()) <= threads_before
    assert [p for p in psutil.Process().children(recursive=True) if not gone(p.pid)] == []


# -- restarting ---------------------------------------------------------------------------------


def test_crash_restarts_with_backoff_until_the_crash_loop_cap(supervise, miner_dir: Path):
    events: list[tuple[str, dict]] = []
    supervisor = supervise(child("exit_code.py", "1"), record=lambda action, fields: events.append((action, dict(fields))))
    supervisor.start()
    status = wait_until(lambda: (s := supervisor.status()).state is State.FAILED and s, 15.0, what="FAILED")
    assert status.restarts == {"crash": 3}  # FAST: 3 restarts allowed, the 4th exit fails
    assert status.exits == {(1, "fatal error"): 4}
    assert "crash loop" in status.failure
    starts = [r["monotonic"] for r in reports(miner_dir)]
    assert len(starts) == 4
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    for gap, delay in zip(gaps, (0.2, 0.4, 0.8)):
        assert delay <= gap < delay + 1.0
    # Each start, exit (code, meaning), restart (reason, delay) and the give-up is told, in order.
    actions = [action for action, _ in events]
    assert actions == ["miner_started", "miner_exited", "miner_restart"] * 3 + ["miner_started", "miner_exited", "miner_gave_up"]
    exited = [fields for action, fields in events if action == "miner_exited"]
    assert all(e["code"] == 1 and e["meaning"] == "fatal error" and not e["expected"] for e in exited)
    delays = [fields["delay"] for action, fields in events if action == "miner_restart"]
    assert delays == pytest.approx([0.2, 0.4, 0.8], abs=0.05)
    assert {fields["reason"] for action, fields in events if action == "miner_restart"} == {"crash"}
    assert "crash loop" in events[-1][1]["failure"]
    # FAILED stays FAILED: no further start
    assert supervisor.status().state is State.FAILED
    # a manual restart (the daemon's /-/restart) leaves FAILED
    assert supervisor.restart("manual")
    wait_until(lambda: len(reports(miner_dir)) == 5, what="a fifth start")
    assert supervisor.status().restarts["manual"] == 1


@pytest.mark.parametrize("code", [2, 3, 4])
def test_exit_2_3_4_fail_without_a_loop(supervise, miner_dir: Path, code):
    supervisor = supervise(child("exit_code.py", str(code)))
    supervisor.start()
    status = wait_until(lambda: (s := supervisor.status()).state is State.FAILED and s, what="FAILED")
    assert f"exit code {code}" in status.failure
    assert status.restarts == {} and status.exits == {(code, status.last_exit_meaning): 1}
    assert len(reports(miner_dir)) == 1
    supervisor.reset()  # leaves FAILED: one more try
    wait_until(lambda: len(reports(miner_dir)) == 2, what="a start after reset")
    wait_until(lambda: supervisor.status().state is State.FAILED, what="FAILED again")


def test_terminated_but_alive_is_stopped_and_restarted_through_the_backoff(supervise, miner_dir: Path):
    supervisor = supervise(child("graceful.py"))
    supervisor.start()
    first = running(supervisor)
    assert supervisor.restart("terminated")
    wait_until(lambda: len(reports(miner_dir)) == 2, what="a second start")
    second = running(supervisor)
    assert second != first and gone(first)
    first_report, second_report = reports(miner_dir)
    assert second_report["monotonic"] - first_report["monotonic"] >= 0.3 + 0.2  # graceful stop + backoff
    status = supervisor.status()
    assert status.restarts == {"terminated": 1} and status.exits == {(0, "closed"): 1}


def test_disabled_restarts_are_ignored(supervise):
    supervisor = supervise(child("graceful.py"), restart_on_terminated=False)
    supervisor.start()
    pid = running(supervisor)
    assert not supervisor.restart("terminated")
    assert not supervisor.restart("stall")  # restart_on_stall is None
    assert supervisor.status().pid == pid and supervisor.status().restarts == {}


def test_a_command_that_cannot_start_backs_off_then_fails(supervise, miner_dir: Path):
    supervisor = supervise((str(miner_dir / "no-such-program"),))
    supervisor.start()
    status = wait_until(lambda: (s := supervisor.status()).state is State.FAILED and s, 15.0, what="FAILED")
    assert "no-such-program" in status.last_error
    assert status.restarts == {"crash": 3}


def test_before_start_runs_before_every_start(tmp_path: Path, miner_dir: Path):
    calls: list[float] = []
    settings = MinerConfig(dir=miner_dir, command=child("exit_code.py", "1"), display="none", backoff=FAST)
    supervisor = Supervisor(settings, tmp_path / "data", before_start=lambda: calls.append(time.monotonic()))
    try:
        supervisor.start()
        wait_until(lambda: supervisor.status().state is State.FAILED, 15.0, what="FAILED")
    finally:
        supervisor.stop()
    assert len(calls) == 4
    assert all(call <= r["monotonic"] for call, r in zip(calls, reports(miner_dir)))


# -- captured output ----------------------------------------------------------------------------


def test_stdout_and_stderr_land_in_the_captured_output(supervise, tmp_path: Path):
    supervisor = supervise(child("spew.py", "50"))
    supervisor.start()
    running(supervisor)
    supervisor.stop()
    lines = (tmp_path / "data" / "logs" / "miner_output.log").read_text().splitlines()
    records = [HEADER.match(line) for line in lines]
    assert all(records), lines
    out = [m.group(2) for m in records if m.group(1) == "STDOUT"]
    err = [m.group(2) for m in records if m.group(1) == "STDERR"]
    assert out == [f"out line {i}" for i in range(50)] + ["no newline at the end"]
    assert err == [f"err line {i}" for i in range(50)]
    assert lines[0].split("\t")[1] == " STDOUT:" or lines[0].split("\t")[1] == " STDERR:"


MAIN_PY = """
import json, os, signal, sys, time
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
with open("report-%d.json" % os.getpid(), "w") as f:
    json.dump({"pid": os.getpid(), "argv": sys.argv, "monotonic": time.monotonic()}, f)
print("hello from main.py", flush=True)
time.sleep(60)
"""


def test_default_command_runs_main_py_through_the_gui_mirror(supervise, miner_dir: Path, tmp_path: Path):
    (miner_dir / "main.py").write_text(MAIN_PY)
    supervisor = supervise(python=Path(sys.executable))  # no command: miner.python runs main.py
    supervisor.start()
    pid = running(supervisor)
    (report,) = reports(miner_dir)
    assert report["argv"] == [str(miner_dir / "main.py"), "--log", "-vvv"]  # main.py sees its usual argv
    output = tmp_path / "data" / "logs" / "miner_output.log"
    wait_until(lambda: "hello from main.py" in output.read_text(), what="main.py's stdout")
    wait_until(lambda: "gui.ConsoleOutput.print not found" in output.read_text(), what="the launcher's warning")
    supervisor.stop()
    assert supervisor.status().last_exit_code == 0 and gone(pid)


# -- lock file and attach -----------------------------------------------------------------------


def test_a_live_lock_holder_is_attached_instead_of_starting_a_second_tdm(supervise, lock_holder, miner_dir: Path):
    holder = lock_holder()
    supervisor = supervise(child("graceful.py"))
    supervisor.start()
    status = wait_until(lambda: (s := supervisor.status()).state is State.RUNNING and s, what="RUNNING")
    assert (status.pid, status.attached) == (holder.pid, True)
    assert [r["pid"] for r in reports(miner_dir)] == [holder.pid]  # nothing else started
    assert not supervisor.restart("terminated")  # never signal a process we did not start
    assert supervisor.pids()["miner"] == holder.pid
    wait_until(lambda: supervisor.status().resources is not None, what="a resource sample")
    supervisor.stop()
    assert holder.poll() is None  # left alone
    assert supervisor.status().state is State.STOPPED


def test_run_mode_starts_its_own_miner_once_the_holder_is_gone(supervise, lock_holder, miner_dir: Path):
    holder = lock_holder()
    supervisor = supervise(child("graceful.py"))
    supervisor.start()
    wait_until(lambda: supervisor.status().pid == holder.pid, what="attached")
    holder.terminate()
    holder.wait(10)
    wait_until(lambda: supervisor.status().pid not in (None, holder.pid), what="our own miner")
    running(supervisor)
    assert not supervisor.status().attached
    assert supervisor.status().restarts == {}  # a user closing their own TDM is not a crash
    assert supervisor.status().exits == {}


def test_settings_are_not_written_while_another_tdm_holds_the_lock(tmp_path: Path, lock_holder, miner_dir: Path):
    # TDM overwrites settings.json at its exit: writing it under a running TDM loses the change.
    holder = lock_holder()
    writes: list[float] = []
    settings = MinerConfig(dir=miner_dir, command=child("graceful.py"), display="none", backoff=FAST)
    supervisor = Supervisor(settings, tmp_path / "data", before_start=lambda: writes.append(time.monotonic()))
    try:
        supervisor.start()
        status = wait_until(lambda: (s := supervisor.status()).pid == holder.pid and s, what="attached")
        assert writes == [] and status.attached
        assert f"pid {holder.pid}" in status.notice and "settings.json" in status.notice
        holder.terminate()
        holder.wait(10)
        wait_until(lambda: supervisor.status().pid not in (None, holder.pid), what="our own miner")
        running(supervisor)
        assert len(writes) == 1  # once the lock is free, before our own start
        assert supervisor.status().notice is None
    finally:
        supervisor.stop()


def test_an_orphan_of_an_earlier_run_is_adopted_restarted_and_stopped(supervise, miner_dir: Path, tmp_path: Path):
    # A TDM our daemon started, left running when the daemon died: same folder, same data dir.
    orphan = subprocess.Popen(
        child("lock_holder.py"),
        cwd=miner_dir,
        env={**os.environ, OWNER_VARIABLE: str((tmp_path / "data").resolve())},
        start_new_session=True,
    )
    try:
        wait_until(lambda: any(r["pid"] == orphan.pid for r in reports(miner_dir)), what="the orphan")
        events: list[tuple[str, dict]] = []
        supervisor = supervise(child("graceful.py"), record=lambda action, fields: events.append((action, dict(fields))))
        supervisor.start()
        status = wait_until(lambda: (s := supervisor.status()).pid == orphan.pid and s, what="adopted")
        assert status.adopted and not status.attached and status.notice is None
        assert ("miner_attached", {"pid": orphan.pid, "adopted": True}) in events
        assert supervisor.restart("manual")  # "not started by us" before: restartable now
        assert orphan.wait(10) == 0  # SIGTERM: the lock holder exits 0
        own = running(supervisor)
        assert own != orphan.pid and supervisor.status().restarts == {"manual": 1}
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait(5)


def test_a_foreign_lock_holder_is_never_adopted(supervise, lock_holder, miner_dir: Path):
    holder = lock_holder()  # no OWNER_VARIABLE: someone else's TDM
    supervisor = supervise(child("graceful.py"))
    supervisor.start()
    status = wait_until(lambda: (s := supervisor.status()).pid == holder.pid and s, what="attached")
    assert status.attached and not status.adopted
    assert not supervisor.restart("manual")


def test_attach_mode_follows_the_lock_holder(supervise, lock_holder, miner_dir: Path):
    supervisor = supervise(mode="attach")
    supervisor.start()
    assert supervisor.status().state is State.STOPPED
    holder = lock_holder()
    status = wait_until(lambda: (s := supervisor.status()).state is State.RUNNING and s, what="RUNNING")
    assert (status.pid, status.attached, status.mode) == (holder.pid, True, "attach")
    assert status.start_time == pytest.approx(psutil.Process(holder.pid).create_time())
    with pytest.raises(SupervisorError, match="attach"):
        supervisor.restart("manual")
    holder.terminate()
    holder.wait(10)
    status = wait_until(lambda: (s := supervisor.status()).state is State.STOPPED and s, what="STOPPED")
    assert status.pid is None and status.restarts == {} and status.exits == {}


def test_attach_mode_is_woken_by_the_exit_not_a_poll(supervise, lock_holder, miner_dir: Path, monkeypatch):
    # With the poll made hourly, only the pidfd can tell the exit; the holder is a zombie (ended,
    # not reaped by us, its parent) until holder.wait() below, and a zombie has ended.
    monkeypatch.setattr("exporter.supervisor.PERIOD", 3600.0)
    monkeypatch.setattr("exporter.supervisor.MAX_SLEEP", 3600.0)
    holder = lock_holder()
    supervisor = supervise(mode="attach")
    supervisor.start()  # the first look finds the holder
    wait_until(lambda: supervisor.status().pid == holder.pid, what="attached")
    holder.send_signal(signal.SIGKILL)
    status = wait_until(lambda: (s := supervisor.status()).state is State.STOPPED and s, what="the exit noticed")
    assert status.pid is None and psutil.Process(holder.pid).status() == psutil.STATUS_ZOMBIE
    holder.wait(10)


def test_attach_mode_via_pid_file(supervise, lock_holder, miner_dir: Path, tmp_path: Path):
    holder = lock_holder()
    (miner_dir / "lock.file").unlink()  # the lock is on the inode; a new path has no holder
    (miner_dir / "lock.file").write_text("")
    pid_file = tmp_path / "tdm.pid"
    pid_file.write_text(f"{holder.pid}\n")
    supervisor = supervise(mode="attach", pid_file=pid_file)
    supervisor.start()
    wait_until(lambda: supervisor.status().pid == holder.pid, what="attached through the pid file")


# -- display and resources ----------------------------------------------------------------------


def test_a_private_xvfb_when_there_is_no_display(supervise, miner_dir: Path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    supervisor = supervise(child("graceful.py"), display="auto")
    supervisor.start()
    pid = running(supervisor)
    (report,) = reports(miner_dir)
    assert re.fullmatch(r":\d+", report["display"])
    xvfb = supervisor.pids()["xvfb"]
    assert psutil.Process(xvfb).name() == "Xvfb"
    assert Path(f"/tmp/.X11-unix/X{report['display'][1:]}").exists()
    sample = wait_until(lambda: supervisor.status().resources, what="a resource sample")
    assert sample.processes == 1  # Xvfb is not in the miner's tree
    assert sample.resident_memory_bytes > 0 and sample.threads >= 1 and sample.open_fds >= 3
    assert psutil.Process(pid).ppid() == os.getpid()
    supervisor.stop()
    assert gone(xvfb)


def test_an_explicit_display_is_passed_and_none_sets_nothing(supervise, miner_dir: Path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    supervisor = supervise(child("graceful.py"), display=":42")
    supervisor.start()
    running(supervisor)
    assert reports(miner_dir)[0]["display"] == ":42" and "xvfb" not in supervisor.pids()
    supervisor.stop()
    monkeypatch.setenv("DISPLAY", ":7")
    other = supervise(child("graceful.py"), display="auto")
    other.start()
    pid = running(other)
    assert [r["display"] for r in reports(miner_dir) if r["pid"] == pid] == [":7"]
    assert "xvfb" not in other.pids()
