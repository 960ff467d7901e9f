"""The I/O shell around `Lifecycle`: runs TDM (or attaches to it), stops it, restarts it, samples it.

One thread ("supervisor") owns the miner: it reaps it, asks `lifecycle.tick(now)` what to do and does
it, follows an attached process and samples resources, waiting on an Event until the next of those is due.
An attached process's exit wakes it through a pidfd (exitwatch), where the kernel has them.
The public methods change the lifecycle under the same lock and wake the thread; `status()` returns
the snapshot the thread published last.

The miner runs in its own session (its own process group): TERMINATE and KILL go to the whole
group, and once the miner is gone whatever is left of its group is killed, so no grandchild
outlives it. It gets SIGTERM when the supervisor thread ends (PR_SET_PDEATHSIG), so even a daemon
killed with SIGKILL leaves no TDM behind: TDM closes as on any SIGTERM, and its Xvfb ends with it.

Another TDM holding lock.file is attached to, never signalled, and settings.json is not written
while it runs. A TDM that an earlier run of ours started (its environment names our data dir: the
daemon died and left it) is adopted instead: stopped and restarted like our own.

What happens to the miner (starts, exits with their code, meaning and cause, restarts with their
reason and delay, give-ups) is told to `record(action, fields)`, for the event store.
"""

from __future__ import annotations

import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import psutil
from loguru import logger

from . import safefile
from .bridge import SOCKET_NAME
from .capture import CAPTURED_OUTPUT, OutputCapture
from .config import MinerConfig
from .exit_cause import last_exception, missing_module
from .exitwatch import ExitWatch, watch_exit
from .launcher import launcher_argv, runs_launcher
from .lifecycle import (
    DELIBERATE_REASONS,
    RESTART_REASONS,
    Action,
    Lifecycle,
    State,
    TransitionError,
    exit_meaning,
)
from .lockfile import lock_holder
from .pdeathsig import RELAY_SIGNAL, die_with_parent
from .resources import ProcessTreeSampler, ResourceSample
from .xvfb import Xvfb

LOG_FLAGS = ("--log", "-vvv")
VERBOSITY_FLAG = re.compile(r"-v+")
VENV_FOLDERS = ("env", "venv", ".venv")  # TDM's setup_env.sh makes `env`
# TDM opens the device-code page with `webbrowser` 4 s after Login is pressed: headless, that would
# start a browser on our Xvfb, outside TDM's process group. `true URL` does nothing, successfully.
BROWSER = "true"
# In the miner's environment: the data dir of the daemon that started it, so a later daemon with
# the same data dir knows an orphan of its own (adopts it) from a TDM someone else started.
OWNER_VARIABLE = "TWITCHMINERT_DATA_DIR"
PERIOD = 1.0  # attach mode: how often a lock holder is looked for, or a followed process without a pidfd checked
SAMPLE_EVERY = 5.0  # resources: a walk of the whole process table (~2.5 ms); Prometheus scrapes every 15 s
MAX_SLEEP = 60.0  # with nothing due, the thread still looks around this often
REAP_GRACE = 5.0  # after KILL, how long we wait for the group to go before giving up
JOIN_TIMEOUT = 5.0  # pumps and waiters of a dead miner
DRAIN_TIMEOUT = 2.0  # at an exit: the pumps' last lines, for the exit cause
CAUSE_WINDOW = 256 * 1024  # bytes of captured output searched for a traceback at an exit

Record = Callable[[str, Mapping[str, Any]], None]


class SupervisorError(RuntimeError):
    """A request the supervisor cannot do, in words a user can act on."""


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
    display: str | None = None  # the miner's X display (our Xvfb's, or the configured one)
    adopted: bool = False  # a miner an earlier run of ours started
    # (wall clock, the traceback line that ended the last run, and what to do about it); None: no traceback
    last_exit_cause: tuple[float, str] | None = None
    notice: str | None = None  # something the user should know (settings.json held back, ...)

    @property
    def up(self) -> bool:
        return self.state is State.RUNNING


# -- the command line ---------------------------------------------------------------------------


def tdm_python(miner: MinerConfig) -> str:
    """TDM's interpreter for a source install: miner.python, else a venv inside TDM's folder (`env`,
    `venv`, `.venv`), else python3 on PATH. Never ours: TDM needs aiohttp, Tk and its other
    requirements, which our venv does not have."""
    if miner.python is not None:
        return str(miner.python)
    assert miner.dir is not None
    for folder in VENV_FOLDERS:
        candidate = miner.dir / folder / "bin" / "python"
        if candidate.exists():
            return str(candidate)
    return shutil.which("python3") or sys.executable


def default_command(miner: MinerConfig) -> tuple[str, ...]:
    assert miner.dir is not None
    main_py = miner.dir / "main.py"
    if not main_py.is_file():
        raise SupervisorError(f"miner.command is empty and {main_py} does not exist: set miner.command")
    return (tdm_python(miner), str(main_py))


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


def miner_argv(settings: MinerConfig, output: Path, control: Path | None = None) -> list[str]:
    assert settings.dir is not None
    argv = with_log_flags(settings.command or default_command(settings))
    main_py = source_main_py(argv, settings.dir)
    if settings.mirror_gui_output == "off":
        return list(argv)
    if main_py is None:
        if settings.mirror_gui_output == "on":
            logger.warning("miner.mirror_gui_output: on needs `PYTHON main.py ...` as the command; not mirroring")
        return list(argv)
    return launcher_argv(argv[0], main_py, list(argv[2:]), output, control)


# -- the supervisor -----------------------------------------------------------------------------


@dataclass
class _Child:
    proc: subprocess.Popen
    threads: list[threading.Thread]  # the output pumps and the waiter
    output_offset: int  # where its captured output starts: the exit cause is searched from here


class Supervisor:
    def __init__(
        self,
        settings: MinerConfig,
        data_dir: Path,
        before_start: Callable[[], None] | None = None,
        record: Record | None = None,
    ) -> None:
        if settings.dir is None:
            raise SupervisorError("miner.dir is not set: nothing to supervise")
        self.settings = settings
        self.dir: Path = settings.dir
        self.data_dir = Path(data_dir)
        self.output_path = self.data_dir / CAPTURED_OUTPUT
        self.lock_file = self.dir / "lock.file"
        self._before_start = before_start
        self._record = record
        self._argv = miner_argv(settings, self.output_path, self.data_dir / SOCKET_NAME) if settings.mode == "run" else []
        launched = runs_launcher(self._argv)
        # The bridge's control socket, when TDM runs through our launcher (else it takes no calls).
        self.control_path = self.data_dir / SOCKET_NAME if launched else None
        # Through the launcher, one SIGTERM however often the kernel sends it (see pdeathsig).
        self._death_signal = die_with_parent(RELAY_SIGNAL if launched else signal.SIGTERM)
        self._lifecycle = Lifecycle(settings.backoff, random.Random(), settings.stop_timeout)
        self._lock = threading.RLock()  # the lifecycle and everything below
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._capture: OutputCapture | None = None
        self._xvfb: Xvfb | None = None
        self._display: str | None = None
        self._child: _Child | None = None
        self._leftovers: list[threading.Thread] = []  # pumps of earlier miners, still draining
        self._followed: psutil.Process | None = None  # a process we attached to (or adopted)
        self._exit_watch: ExitWatch | None = None  # wakes us when _followed ends (None: poll it every PERIOD)
        self._start_time: float | None = None
        self._sampler: ProcessTreeSampler | None = None
        self._sample: ResourceSample | None = None
        self._sampled_at = float("-inf")
        self._looked_at = float("-inf")  # attach mode: last search for a lock holder
        self._killed_at: float | None = None
        self._exit_cause: tuple[float, str] | None = None  # (wall clock, cause) of the last exit
        self._notice: str | None = None
        self._status = self._snapshot()

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
                raise SupervisorError("stop() from the supervisor thread (a before_start or record callback) would wait for itself")
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
        if reason == "stall" and self.settings.restart_on_stall is None:
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
            self._tell("restart_requested", reason=reason, pid=lifecycle.pid)
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
                self._wake.wait(timeout)
                self._wake.clear()
        except Exception:
            logger.exception("supervisor thread failed")
        finally:
            with self._lock:
                self._teardown()
                self._publish()

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
            # Before anything is written: a running TDM would overwrite settings.json at its exit.
            holder = self._lock_holder()
            if holder is not None:
                self._attach(now, holder, adopted=self._ours(holder))
                return
            self._notice = None
            if self._before_start is not None:
                self._before_start()
            env = self._child_env()
            offset = self._output_size()
            proc = subprocess.Popen(
                self._argv,
                cwd=self.dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: we signal the whole tree
                preexec_fn=self._death_signal,  # TDM closes normally if we die
            )
        except Exception as error:
            logger.error("cannot start the miner: {}", error)
            self._stop_xvfb()
            lifecycle.start_failed(now, str(error))
            self._tell("start_failed", error=str(error))
            self._told_restart(now)
            return
        assert self._capture is not None and proc.stdout is not None and proc.stderr is not None
        threads = [self._capture.pump(proc.stdout, "STDOUT"), self._capture.pump(proc.stderr, "STDERR")]
        waiter = threading.Thread(target=self._await_exit, args=(proc,), name=f"miner-waiter-{proc.pid}")
        waiter.start()
        self._child = _Child(proc, [*threads, waiter], offset)
        lifecycle.started(now, proc.pid)
        self._start_time = time.time()
        self._watch(proc.pid)
        logger.info("started the miner (pid {}): {}", proc.pid, shlex.join(self._argv))
        self._tell("started", pid=proc.pid, display=self._display)

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
        self._stop_xvfb()  # a fresh one for the next start (this one ends with its last client anyway)
        drained_by = time.monotonic() + DRAIN_TIMEOUT  # one budget for all: a browser may hold a pipe open
        for thread in child.threads:
            thread.join(max(0.0, drained_by - time.monotonic()))  # the last lines on its pipes, for the cause
        self._leftovers = [t for t in self._leftovers + child.threads if t.is_alive()]
        expected = self._lifecycle.state is State.STOPPING
        cause = self._cause(child.output_offset) if code != 0 else None
        self._exit_cause = (time.time(), cause) if cause is not None else None
        self._lifecycle.exited(now, code, expected)
        self._unwatch()
        log = logger.info if expected or code == 0 else logger.warning
        log("the miner (pid {}) exited with code {} ({}){}", child.proc.pid, code, exit_meaning(code), f": {cause}" if cause else "")
        self._tell("exited", pid=child.proc.pid, code=code, meaning=exit_meaning(code), cause=cause, expected=expected)
        self._told_restart(now)

    def _told_restart(self, now: float) -> None:
        """After an exit or a failed start: the restart that follows, or the give-up."""
        lifecycle = self._lifecycle
        if lifecycle.state is State.FAILED:
            logger.error("not restarting the miner: {}", lifecycle.failure)
            self._tell("gave_up", failure=lifecycle.failure)
        elif lifecycle.state is State.BACKOFF and lifecycle.start_at is not None:
            delay = round(max(0.0, lifecycle.start_at - now), 3)
            logger.info("starting the miner again in {:g} s ({})", delay, lifecycle.restart_reason)
            self._tell("restart", reason=lifecycle.restart_reason, delay=delay)
        elif lifecycle.state is State.STARTING and lifecycle.restart_reason is not None:
            self._tell("restart", reason=lifecycle.restart_reason, delay=0.0)

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
        followed, self._followed = self._followed, None
        self._unwatch_exit()
        if followed is not None and self._lifecycle.adopted:
            self._kill_group(followed.pid)  # ours, and it outlived stop_timeout and SIGKILL's grace
        self._unwatch()
        for thread in reversed(self._leftovers):
            thread.join(JOIN_TIMEOUT)  # drain the pipes before close() cuts the pumps short
        self._leftovers = []
        if self._capture is not None:
            self._capture.close()
        self._stop_xvfb()

    # -- signals --------------------------------------------------------------------------------

    def _signal_group(self, sig: int) -> None:
        if self._child is not None:
            self._kill_group(self._child.proc.pid, sig)
        elif self._followed is not None and self._lifecycle.adopted:  # never a process we attached to
            self._kill_group(self._followed.pid, sig)

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
            return self._live(int(safefile.read_text(self.settings.pid_file, 4096).strip()))  # no FIFO to block on
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

    def _ours(self, process: psutil.Process) -> bool:
        """Started by a daemon with our data dir (one that died and left it running), in run mode,
        as its own process group leader (so that signalling its group reaches only its tree)."""
        if self.settings.mode != "run":
            return False
        try:
            owner = process.environ().get(OWNER_VARIABLE)
            leader = os.getpgid(process.pid) == process.pid
        except (psutil.Error, OSError):
            return False
        return leader and owner == str(self.data_dir.resolve())

    def _attach(self, now: float, process: psutil.Process, adopted: bool = False) -> None:
        if adopted:
            logger.warning(
                "{} is held by pid {}, a TDM an earlier run of twitchminert started: adopting it", self.lock_file, process.pid
            )
        elif self.settings.mode == "run":
            logger.warning(
                "{} is held by pid {}: TDM runs already, attaching to it instead of starting another;"
                " settings.json is left alone while it runs",
                self.lock_file,
                process.pid,
            )
            self._notice = (
                f"TDM (pid {process.pid}) was started outside twitchminert and holds lock.file: twitchminert follows it"
                " and does not write settings.json until it exits"
            )
        self._lifecycle.attached_to(now, process.pid, adopted=adopted)
        self._followed = process
        self._exit_watch = watch_exit(process, self._wake.set)
        try:
            self._start_time = process.create_time()
        except psutil.Error:
            self._start_time = None
        self._watch(process.pid)
        self._tell("attached", pid=process.pid, adopted=adopted)

    def _follow(self, now: float) -> None:
        """Is the attached process still there (once its pidfd says it ended, else every PERIOD); in
        attach mode, every PERIOD, is there one to attach to."""
        if now < self._follow_due():
            return
        self._looked_at = now
        followed = self._followed
        if followed is not None:
            if self._alive(followed):
                if self._exit_watch is not None and self._exit_watch.exited:
                    self._unwatch_exit()  # cannot be (an ended process is a zombie at least): poll rather than spin
                return
            self._gone(now, followed)
        elif self.settings.mode == "attach" and self._lifecycle.state is State.STOPPED and not self._stop.is_set():
            process = self._lock_holder() or self._pid_file_process()
            if process is not None:
                logger.info("attached to the miner (pid {})", process.pid)
                self._attach(now, process)

    def _gone(self, now: float, followed: psutil.Process) -> None:
        """The process we attached to (or adopted) ended; we cannot know its exit code."""
        lifecycle = self._lifecycle
        self._followed = None
        self._unwatch_exit()
        self._unwatch()
        adopted, stopping = lifecycle.adopted, lifecycle.state is State.STOPPING
        logger.info("the miner we {} (pid {}) is gone", "adopted" if adopted else "attached to", followed.pid)
        if lifecycle.state not in (State.RUNNING, State.STOPPING):
            return
        # A TDM someone else started and closed is not a crash: in run mode we start our own at once.
        lifecycle.exited(now, None, expected=stopping or not adopted)
        self._tell("exited", pid=followed.pid, code=None, meaning=exit_meaning(None), cause=None, expected=stopping or not adopted)
        self._notice = None
        if self.settings.mode == "run" and lifecycle.state is State.STOPPED and not self._stop.is_set():
            lifecycle.start_requested(now)
        else:
            self._told_restart(now)

    def _follow_due(self) -> float:
        watch = self._exit_watch
        if watch is None:
            return self._looked_at + PERIOD
        # The pidfd tells the exit at once; the slow look is only a second opinion.
        return float("-inf") if watch.exited else self._looked_at + MAX_SLEEP

    def _unwatch_exit(self) -> None:
        watch, self._exit_watch = self._exit_watch, None
        if watch is not None:
            watch.close()

    # -- display and environment ----------------------------------------------------------------

    def _child_env(self) -> dict[str, str]:
        env = {**os.environ, "BROWSER": BROWSER, **self.settings.env, OWNER_VARIABLE: str(self.data_dir.resolve())}
        display = self.settings.display
        if display == "auto" and not env.get("DISPLAY"):
            if self._xvfb is None:
                self._xvfb = Xvfb()
            self._xvfb.start()
            env.update(self._xvfb.environment())
        elif display not in ("auto", "none"):
            env["DISPLAY"] = display
        self._display = env.get("DISPLAY") or None
        return env

    def _stop_xvfb(self) -> None:
        if self._xvfb is not None:
            self._xvfb.stop()
            self._display = None

    # -- the exit cause -------------------------------------------------------------------------

    def _output_size(self) -> int:
        try:
            return self.output_path.stat().st_size
        except OSError:
            return 0

    def _cause(self, offset: int) -> str | None:
        """The last traceback's exception in what this run wrote to the captured output, with what
        to do when TDM's interpreter lacks one of TDM's modules."""
        try:
            with open(self.output_path, "rb") as file:
                file.seek(max(offset, self._output_size() - CAUSE_WINDOW))
                text = file.read(CAUSE_WINDOW).decode("utf-8", "replace")
        except OSError:
            return None
        cause = last_exception(text)
        module = missing_module(cause)
        if module is not None and self._argv:
            cause += (
                f" ({self._argv[0]} lacks TDM's requirements: set miner.python to TDM's own interpreter,"
                f" e.g. its venv's bin/python, or install {self.dir / 'requirements.txt'} into it)"
            )
        return cause

    # -- events ---------------------------------------------------------------------------------

    def _tell(self, action: str, **fields: Any) -> None:
        if self._record is None:
            return
        try:
            self._record(f"miner_{action}", fields)
        except Exception:
            logger.exception("recording the supervisor event {} failed", action)

    # -- resources ------------------------------------------------------------------------------

    def _watch(self, pid: int) -> None:
        xvfb = self._xvfb
        self._sampler = ProcessTreeSampler(pid, exclude=lambda p: xvfb is not None and p == xvfb.pid)
        self._sampled_at = float("-inf")

    def _unwatch(self) -> None:
        self._sampler, self._sample = None, None

    def _sample_resources(self, now: float) -> None:
        if self._sampler is None or now - self._sampled_at < SAMPLE_EVERY:
            return
        self._sampled_at = now
        try:
            self._sample = self._sampler.sample()
        except psutil.Error:
            self._sample = None

    # -- status ---------------------------------------------------------------------------------

    def _timeout(self, now: float) -> float:
        """Until the next thing due; exits, stop() and restart() wake the thread themselves."""
        dues = [now + MAX_SLEEP]
        if (due := self._lifecycle.next_due()) is not None:
            dues.append(due)
        if self._sampler is not None:
            dues.append(self._sampled_at + SAMPLE_EVERY)
        if self._killed_at is not None:
            dues.append(self._killed_at + REAP_GRACE + 0.001)  # _stopped() gives up then
        if self._followed is not None or self.settings.mode == "attach":
            dues.append(self._follow_due())
        return max(0.0, min(dues) - now)

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
            display=self._display if self._child is not None else None,
            adopted=lc.adopted,
            last_exit_cause=self._exit_cause,
            notice=self._notice,
        )

    def _publish(self) -> None:
        self._status = self._snapshot()
