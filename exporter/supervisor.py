"""The I/O shell around `Lifecycle`: runs TDM (or attaches to it), stops it, restarts it, samples it.

One thread ("supervisor") owns the miner: it reaps it, asks `lifecycle.tick(now)` what to do and does
it, follows an attached process and samples resources, waiting on an Event with a bounded timeout.
The public methods change the lifecycle under the same lock and wake the thread; `status()` returns
the snapshot the thread published last.

The miner runs in its own session (its own process group): TERMINATE and KILL go to the whole
group, and once the miner is gone whatever is left of its group is killed, so no grandchild
outlives it. A process we attached to (another TDM holding lock.file) is never signalled.
"""

from __future__ import annotations

import os
import random
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import psutil
from loguru import logger

from .capture import CAPTURED_OUTPUT, OutputCapture
from .launcher import launcher_argv
from .lifecycle import (
    DELIBERATE_REASONS,
    RESTART_REASONS,
    Action,
    BackoffPolicy,
    Lifecycle,
    State,
    TransitionError,
    exit_meaning,
)
from .lockfile import lock_holder
from .resources import ProcessTreeSampler, ResourceSample
from .xvfb import Xvfb

LOG_FLAGS = ("--log", "-vvv")
DISPLAYS = re.compile(r"auto|none|:\d+(\.\d+)?")
VERBOSITY_FLAG = re.compile(r"-v+")
MIRROR_MODES = ("auto", "on", "off")
MODES = ("run", "attach")
MIN_STALL_SECONDS = 1800.0
PERIOD = 1.0  # the thread wakes at least this often: sampling, attach polling
REAP_GRACE = 5.0  # after KILL, how long we wait for the group to go before giving up
JOIN_TIMEOUT = 5.0  # pumps and waiters of a dead miner


class SupervisorError(RuntimeError):
    """A request the supervisor cannot do, in words a user can act on."""


@dataclass(frozen=True)
class SupervisorSettings:
    dir: Path  # TDM's folder: main.py / exe / AppImage, settings.json, lock.file, log.txt
    command: tuple[str, ...] = ()  # empty: `<current python> <dir>/main.py`
    env: Mapping[str, str] = field(default_factory=dict)  # added to our environment
    display: str = "auto"  # "auto": a private Xvfb when we have no DISPLAY; ":N"; "none"
    mirror_gui_output: str = "auto"  # main.py through the launcher: "auto"/"on" (source installs), "off"
    stop_timeout: float = 10.0
    mode: str = "run"  # "attach": start nothing, follow the lock holder (or pid_file)
    pid_file: Path | None = None
    restart_on_terminated: bool = True
    restart_on_stall_seconds: float | None = None
    policy: BackoffPolicy = field(default_factory=BackoffPolicy)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dir", Path(self.dir))
        object.__setattr__(self, "command", tuple(self.command))
        object.__setattr__(self, "env", dict(self.env))
        if self.pid_file is not None:
            object.__setattr__(self, "pid_file", Path(self.pid_file))
        checks = (
            ("display", DISPLAYS.fullmatch(self.display) is not None),
            ("mirror_gui_output", self.mirror_gui_output in MIRROR_MODES),
            ("mode", self.mode in MODES),
            ("stop_timeout", self.stop_timeout > 0),
            ("restart_on_stall_seconds", _at_least(self.restart_on_stall_seconds, MIN_STALL_SECONDS)),
        )
        for name, ok in checks:
            if not ok:
                raise ValueError(f"{name}: invalid value {getattr(self, name)!r}")


def _at_least(value: float | None, minimum: float) -> bool:
    return value is None or value >= minimum


@dataclass(frozen=True)
class SupervisorStatus:
    state: State
    mode: str
    pid: int | None  # the miner's (or the attached process's) PID
    attached: bool  # the miner was not started by us
    start_time: float | None  # wall clock, for tdm_miner_start_time_seconds
    restarts: Mapping[str, int]
    exits: Mapping[tuple[int, str], int]
    last_exit_code: int | None
    last_exit_meaning: str | None
    failure: str | None  # why FAILED
    last_error: str | None  # why the last start failed
    resources: ResourceSample | None
    next_start_time: float | None = None  # wall clock; BACKOFF: when the miner is started again

    @property
    def up(self) -> bool:
        return self.state is State.RUNNING


# -- the command line ---------------------------------------------------------------------------


def default_command(miner_dir: Path) -> tuple[str, ...]:
    main_py = miner_dir / "main.py"
    if not main_py.is_file():
        raise SupervisorError(f"miner.command is empty and {main_py} does not exist: set miner.command")
    return (sys.executable, str(main_py))


def with_log_flags(argv: tuple[str, ...]) -> tuple[str, ...]:
    """Append `--log -vvv` unless the user already chose: `--log` or any `-v...` flag."""
    if any(arg == "--log" or VERBOSITY_FLAG.fullmatch(arg) for arg in argv[1:]):
        return argv
    return (*argv, *LOG_FLAGS)


def source_main_py(argv: tuple[str, ...], miner_dir: Path) -> Path | None:
    """main.py when the command is `PYTHON main.py ...` (a source install), else None."""
    if len(argv) >= 2 and Path(argv[1]).name == "main.py":
        return miner_dir / argv[1]  # an absolute argv[1] stays as it is
    return None


def miner_argv(settings: SupervisorSettings, output: Path) -> list[str]:
    argv = with_log_flags(settings.command or default_command(settings.dir))
    main_py = source_main_py(argv, settings.dir)
    if settings.mirror_gui_output == "off":
        return list(argv)
    if main_py is None:
        if settings.mirror_gui_output == "on":
            logger.warning("miner.mirror_gui_output: on needs `PYTHON main.py ...` as the command; not mirroring")
        return list(argv)
    return launcher_argv(argv[0], main_py, list(argv[2:]), output)


# -- the supervisor -----------------------------------------------------------------------------


@dataclass
class _Child:
    proc: subprocess.Popen
    threads: list[threading.Thread]  # the output pumps and the waiter


class Supervisor:
    def __init__(
        self,
        settings: SupervisorSettings,
        data_dir: Path,
        before_start: Callable[[], None] | None = None,
        on_state: Callable[[SupervisorStatus], None] | None = None,
    ) -> None:
        self.settings = settings
        self.output_path = Path(data_dir) / CAPTURED_OUTPUT
        self.lock_file = settings.dir / "lock.file"
        self._before_start = before_start
        self._on_state = on_state
        self._argv = miner_argv(settings, self.output_path) if settings.mode == "run" else []
        self._lifecycle = Lifecycle(settings.policy, random.Random(), settings.stop_timeout)
        self._lock = threading.RLock()  # the lifecycle and everything below
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._capture: OutputCapture | None = None
        self._xvfb: Xvfb | None = None
        self._child: _Child | None = None
        self._leftovers: list[threading.Thread] = []  # pumps of earlier miners, still draining
        self._followed: psutil.Process | None = None  # a process we attached to
        self._start_time: float | None = None
        self._sampler: ProcessTreeSampler | None = None
        self._sample: ResourceSample | None = None
        self._sampled_at = float("-inf")
        self._looked_at = float("-inf")  # attach mode: last search for a lock holder
        self._killed_at: float | None = None
        self._status = self._snapshot()
        self._notified = self._status.state

    # -- public ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the supervisor thread (and the miner, in run mode). Once."""
        with self._lock:
            if self._thread is not None:
                raise SupervisorError("the supervisor was started already")
            if self.settings.mode == "run":
                self._capture = OutputCapture(self.output_path)
                self._lifecycle.start_requested(time.monotonic())
            self._thread = threading.Thread(target=self._run, name="supervisor")
            self._thread.start()

    def stop(self) -> None:
        """Stop the miner (TERM to its group, KILL after stop_timeout), Xvfb and every thread. Idempotent."""
        with self._lock:
            thread = self._thread
            if thread is None:
                return
            if thread is threading.current_thread():
                raise SupervisorError("stop() from the supervisor thread (an on_state callback) would wait for itself")
            if not self._stop.is_set():
                self._stop.set()
                self._lifecycle.stop_requested(time.monotonic())
        self._wake.set()
        thread.join(self.settings.stop_timeout + REAP_GRACE + 2 * JOIN_TIMEOUT)
        if thread.is_alive():
            logger.error("supervisor thread did not stop")

    def restart(self, reason: str) -> bool:
        """Stop the miner (if alive) and start it again: at once for "config"/"manual" (which also leave
        FAILED), through the backoff and the crash-loop cap for "terminated"/"stall"/"crash".
        False when ignored (disabled by the settings, nothing to restart, stopping)."""
        if reason not in RESTART_REASONS:
            raise ValueError(f"restart reason: expected one of {RESTART_REASONS}, got {reason!r}")
        if self.settings.mode == "attach":
            raise SupervisorError("miner.mode is attach: twitchminert does not start or signal the miner")
        if reason == "terminated" and not self.settings.restart_on_terminated:
            return False
        if reason == "stall" and self.settings.restart_on_stall_seconds is None:
            return False
        with self._lock:
            if self._stop.is_set() or self._thread is None:
                return False
            lifecycle, now = self._lifecycle, time.monotonic()
            try:
                if lifecycle.state is State.FAILED and reason in DELIBERATE_REASONS:
                    lifecycle.reset(now, reason)
                else:
                    lifecycle.restart_requested(now, reason)
            except TransitionError as error:
                logger.info("restart ({}) ignored: {}", reason, error)
                return False
            logger.info("restarting the miner ({})", reason)
            self._publish()
        self._wake.set()
        return True

    def reset(self) -> None:
        """Forget the backoff and crash-loop history; leaves FAILED (starts the miner again)."""
        with self._lock:
            if self.settings.mode == "run" and not self._stop.is_set():
                self._lifecycle.reset(time.monotonic())
                self._publish()
        self._wake.set()

    def status(self) -> SupervisorStatus:
        return self._status

    def pids(self) -> dict[str, int]:
        """The processes we watch: "miner" (started or attached) and "xvfb"."""
        with self._lock:
            pids = {"miner": self._lifecycle.pid, "xvfb": self._xvfb.pid if self._xvfb else None}
        return {name: pid for name, pid in pids.items() if pid is not None}

    # -- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    now = time.monotonic()
                    self._reap(now)
                    if self._stop.is_set() and self._stopped(now):
                        break
                    self._act(now)
                    self._follow(now)
                    self._sample_resources(now)
                    timeout = self._timeout(now)
                    self._publish()
                self._notify()
                self._wake.wait(timeout)
                self._wake.clear()
        except Exception:
            logger.exception("supervisor thread failed")
        finally:
            with self._lock:
                self._teardown()
                self._publish()
            self._notify()

    def _act(self, now: float) -> None:
        action = self._lifecycle.tick(now)
        if action is None:
            return
        if action is Action.START:
            self._launch(now)
        elif action is Action.TERMINATE:
            self._signal_group(signal.SIGTERM)
        else:
            logger.warning("the miner did not stop within {:g} s: killing it", self.settings.stop_timeout)
            self._killed_at = now
            self._signal_group(signal.SIGKILL)

    def _launch(self, now: float) -> None:
        lifecycle = self._lifecycle
        try:
            if self._before_start is not None:
                self._before_start()
            holder = self._lock_holder()
            if holder is not None:
                logger.warning(
                    "{} is held by pid {}: TDM runs already, attaching to it instead of starting another",
                    self.lock_file,
                    holder.pid,
                )
                self._attach(now, holder)
                return
            env = self._child_env()
            proc = subprocess.Popen(
                self._argv,
                cwd=self.settings.dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: we signal the whole tree
            )
        except Exception as error:
            logger.error("cannot start the miner: {}", error)
            lifecycle.start_failed(now, str(error))
            return
        assert self._capture is not None and proc.stdout is not None and proc.stderr is not None
        threads = [self._capture.pump(proc.stdout, "STDOUT"), self._capture.pump(proc.stderr, "STDERR")]
        waiter = threading.Thread(target=self._await_exit, args=(proc,), name=f"miner-waiter-{proc.pid}")
        waiter.start()
        self._child = _Child(proc, [*threads, waiter])
        lifecycle.started(now, proc.pid)
        self._start_time = time.time()
        self._watch(proc.pid)
        logger.info("started the miner (pid {}): {}", proc.pid, shlex.join(self._argv))

    def _await_exit(self, proc: subprocess.Popen) -> None:
        proc.wait()  # ends when the miner is reaped; stop() always makes sure it is
        self._wake.set()

    def _reap(self, now: float) -> None:
        child = self._child
        if child is None or child.proc.poll() is None:
            return
        self._child, self._killed_at = None, None
        code = child.proc.returncode
        if code < 0:  # Popen's -N for "killed by signal N": report it as a shell would, 128+N
            code = 128 - code
        self._kill_group(child.proc.pid)  # whatever is left of its tree
        self._leftovers = [t for t in self._leftovers + child.threads if t.is_alive()]
        expected = self._lifecycle.state is State.STOPPING
        self._lifecycle.exited(now, code, expected)
        self._unwatch()
        log = logger.info if expected or code == 0 else logger.warning
        log("the miner (pid {}) exited with code {} ({})", child.proc.pid, code, exit_meaning(code))
        if self._lifecycle.state is State.FAILED:
            logger.error("not restarting the miner: {}", self._lifecycle.failure)

    def _stopped(self, now: float) -> bool:
        """Whether the thread may end: nothing left to wait for, or KILL did not help in time."""
        if self._lifecycle.state is not State.STOPPING:
            return True
        if self._killed_at is not None and now - self._killed_at > REAP_GRACE:
            logger.error("the miner (pid {}) survived SIGKILL for {:g} s; giving up", self._lifecycle.pid, REAP_GRACE)
            return True
        return False

    def _teardown(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            self._kill_group(child.proc.pid)
            try:
                child.proc.wait(REAP_GRACE)
            except subprocess.TimeoutExpired:
                logger.error("the miner (pid {}) could not be reaped", child.proc.pid)
            self._leftovers += child.threads
        self._followed = None
        self._unwatch()
        for thread in reversed(self._leftovers):
            thread.join(JOIN_TIMEOUT)  # drain the pipes before close() cuts the pumps short
        self._leftovers = []
        if self._capture is not None:
            self._capture.close()
        if self._xvfb is not None:
            self._xvfb.stop()

    # -- signals --------------------------------------------------------------------------------

    def _signal_group(self, sig: int) -> None:
        if self._child is not None:  # never a process we attached to
            self._kill_group(self._child.proc.pid, sig)

    @staticmethod
    def _kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass  # the group is empty
        except PermissionError as error:
            logger.error("cannot signal the miner's process group {}: {}", pgid, error)

    # -- attaching ------------------------------------------------------------------------------

    def _lock_holder(self) -> psutil.Process | None:
        try:
            return self._live(lock_holder(self.lock_file))  # None when there is no lock.file yet
        except OSError as error:
            logger.warning("cannot tell whether TDM runs already ({}: {}); starting it", self.lock_file, error)
            return None

    def _pid_file_process(self) -> psutil.Process | None:
        if self.settings.pid_file is None:
            return None
        try:
            return self._live(int(self.settings.pid_file.read_text().strip()))
        except (OSError, ValueError):
            return None

    @classmethod
    def _live(cls, pid: int | None) -> psutil.Process | None:
        if not pid or pid == os.getpid():
            return None
        try:
            process = psutil.Process(pid)
        except psutil.Error:
            return None
        return process if cls._alive(process) else None

    @staticmethod
    def _alive(process: psutil.Process) -> bool:
        try:
            return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def _attach(self, now: float, process: psutil.Process) -> None:
        self._lifecycle.attached_to(now, process.pid)
        self._followed = process
        try:
            self._start_time = process.create_time()
        except psutil.Error:
            self._start_time = None
        self._watch(process.pid)

    def _follow(self, now: float) -> None:
        """Every PERIOD: is the attached process still there; in attach mode, is there one to attach to."""
        if now - self._looked_at < PERIOD:
            return
        self._looked_at = now
        followed = self._followed
        if followed is not None:
            if self._alive(followed):
                return
            self._followed = None
            self._unwatch()
            attach_mode = self.settings.mode == "attach"
            if self._lifecycle.state is State.RUNNING:
                self._lifecycle.exited(now, None, expected=attach_mode or self._stop.is_set())
            logger.info("the miner we attached to (pid {}) is gone", followed.pid)
        elif self.settings.mode == "attach" and self._lifecycle.state is State.STOPPED and not self._stop.is_set():
            process = self._lock_holder() or self._pid_file_process()
            if process is not None:
                logger.info("attached to the miner (pid {})", process.pid)
                self._attach(now, process)

    # -- display and environment ----------------------------------------------------------------

    def _child_env(self) -> dict[str, str]:
        env = {**os.environ, **self.settings.env}
        display = self.settings.display
        if display == "auto" and not env.get("DISPLAY"):
            if self._xvfb is None:
                self._xvfb = Xvfb()
            env["DISPLAY"] = self._xvfb.start()  # once; again only if it died
        elif display not in ("auto", "none"):
            env["DISPLAY"] = display
        return env

    # -- resources ------------------------------------------------------------------------------

    def _watch(self, pid: int) -> None:
        xvfb = self._xvfb
        self._sampler = ProcessTreeSampler(pid, exclude=lambda p: xvfb is not None and p == xvfb.pid)
        self._sampled_at = float("-inf")

    def _unwatch(self) -> None:
        self._sampler, self._sample = None, None

    def _sample_resources(self, now: float) -> None:
        if self._sampler is None or now - self._sampled_at < PERIOD:
            return
        self._sampled_at = now
        try:
            self._sample = self._sampler.sample()
        except psutil.Error:
            self._sample = None

    # -- status ---------------------------------------------------------------------------------

    def _timeout(self, now: float) -> float:
        due = self._lifecycle.next_due()
        if due is None:
            return PERIOD
        return min(PERIOD, max(0.0, due - now))

    def _snapshot(self) -> SupervisorStatus:
        lc = self._lifecycle
        return SupervisorStatus(
            state=lc.state,
            mode=self.settings.mode,
            pid=lc.pid,
            attached=lc.attached,
            start_time=self._start_time if lc.pid is not None else None,
            restarts=dict(lc.restarts),
            exits=dict(lc.exits),
            last_exit_code=lc.last_exit_code,
            last_exit_meaning=lc.last_exit_meaning,
            failure=lc.failure,
            last_error=lc.last_error,
            resources=self._sample,
            next_start_time=(
                time.time() + max(0.0, lc.start_at - time.monotonic())
                if lc.state is State.BACKOFF and lc.start_at is not None else None
            ),
        )

    def _publish(self) -> None:
        self._status = self._snapshot()

    def _notify(self) -> None:
        """From the thread, outside the lock: tell `on_state` about a new state."""
        status = self._status
        if status.state is self._notified:
            return
        self._notified = status.state
        if self._on_state is not None:
            try:
                self._on_state(status)
            except Exception:
                logger.exception("on_state callback failed")
