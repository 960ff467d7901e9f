"""The miner's lifecycle: a small state machine with backoff and a crash-loop cap. Pure: no I/O, no clock.

The I/O shell (supervisor.py) reports what happened (`started`, `exited`, ...) and asks `tick(now)` what
to do next. Time is an argument: `now` is monotonic seconds, so the machine is tested without sleeping.

    STOPPED --start_requested--> STARTING --tick: START--> (spawn) --started/attached--> RUNNING
    RUNNING --exited (unexpected)--> BACKOFF --tick after the delay: START--> STARTING
    RUNNING --stop_requested / restart_requested--> STOPPING --tick: TERMINATE, later KILL--> exited
    BACKOFF/STARTING --too many restarts, exit 2/3/4--> FAILED --reset--> STARTING

An illegal transition raises TransitionError and changes nothing.

Restart reasons: "crash" (any exit we did not ask for), "terminated" (TDM alive but no longer mining),
"stall" (drop progress stopped) are *unexpected*: they wait out the backoff delay and count toward the
crash-loop cap. "config" and "manual" are deliberate: they start again at once and are not capped.

Stopping a terminated TDM: after a fatal error TDM runs its `except` block with its SIGTERM handler
still installed (a SIGTERM there is swallowed), removes the handler, saves cookies.jar and then waits
for its window to be closed, where SIGTERM's default action ends it (143). Nothing else is saved in
that state, so TERMINATE comes TERMINATED_GRACE after the request (cookies.jar is written by then) and
again every TERMINATED_GRACE until TDM is gone, instead of one TERMINATE and a KILL at stop_timeout.
"""

from __future__ import annotations

import enum
import random
import signal
from collections import deque
from dataclasses import dataclass

UNEXPECTED_REASONS = ("crash", "terminated", "stall")
DELIBERATE_REASONS = ("config", "manual")
RESTART_REASONS = UNEXPECTED_REASONS + DELIBERATE_REASONS

EXIT_MEANINGS = {
    0: "closed",
    1: "fatal error",
    2: "bad arguments",
    3: "already running",
    4: "unreadable settings",
}
# Exits that a restart cannot fix: TDM needs a human (2, 4: a dialog) or another instance runs (3).
NO_RESTART_CODES = frozenset({2, 3, 4})
TERMINATED_GRACE = 1.0  # seconds: see the module docstring


def exit_meaning(code: int | None) -> str:
    """TDM's exit code in words. Popen gives -N for signal N; shells and xvfb-run give 128+N."""
    if code is None:
        return "unknown"
    if code in EXIT_MEANINGS:
        return EXIT_MEANINGS[code]
    if code < 0:
        return f"killed by {_signal_name(-code)}"
    if 128 < code < 128 + signal.NSIG:
        return f"killed by {_signal_name(code - 128)}"
    return "unknown"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class State(str, enum.Enum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    BACKOFF = "backoff"
    FAILED = "failed"


class Action(str, enum.Enum):
    START = "start"  # spawn the miner (or attach to a lock holder), after before_start
    TERMINATE = "terminate"  # SIGTERM to the miner's process group
    KILL = "kill"  # SIGKILL to the miner's process group


class TransitionError(RuntimeError):
    """An event that is not legal in the current state."""


@dataclass(frozen=True)
class BackoffPolicy:
    initial: float = 10.0
    factor: float = 2.0
    max: float = 1800.0
    jitter: float = 0.1  # the delay is multiplied by a random factor in [1 - jitter, 1 + jitter]
    healthy_after: float = 600.0  # a run at least this long resets the delay to `initial`
    max_restarts: int = 5  # more unexpected restarts than this within `window` -> FAILED
    window: float = 3600.0

    def __post_init__(self) -> None:
        checks = (
            ("initial", self.initial > 0),
            ("factor", self.factor >= 1),
            ("max", self.max >= self.initial),
            ("jitter", 0 <= self.jitter < 1),
            ("healthy_after", self.healthy_after >= 0),
            ("max_restarts", self.max_restarts >= 0),
            ("window", self.window > 0),
        )
        for name, ok in checks:
            if not ok:
                raise ValueError(f"backoff {name}: invalid value {getattr(self, name)!r}")

    def next_delay(self, previous: float | None) -> float:
        """The un-jittered delay after `previous` (None: the first restart)."""
        if previous is None:
            return self.initial
        return min(previous * self.factor, self.max)


class Lifecycle:
    """One miner's lifecycle. Counters (`restarts`, `exits`, `last_exit_*`) are plain data for metrics."""

    def __init__(
        self,
        policy: BackoffPolicy | None = None,
        rng: random.Random | None = None,
        stop_timeout: float = 10.0,  # TERMINATE, then KILL after this long
    ) -> None:
        self.policy = policy or BackoffPolicy()
        self.rng = rng or random.Random()
        self.stop_timeout = stop_timeout

        self.state = State.STOPPED
        self.pid: int | None = None
        self.attached = False  # RUNNING a process we did not start: never signalled
        self.adopted = False  # RUNNING a process an earlier run of ours started: signalled like our own
        self.started_at: float | None = None  # monotonic `now` of the current run
        self.failure: str | None = None  # why we are FAILED
        self.delay: float | None = None  # current un-jittered backoff delay; None: next one is `initial`
        self.start_at: float | None = None  # BACKOFF: when to start again
        self.restarts: dict[str, int] = {}
        self.exits: dict[tuple[int, str], int] = {}
        self.last_exit_code: int | None = None
        self.last_exit_meaning: str | None = None
        self.last_error: str | None = None  # why the last spawn failed
        self.restart_reason: str | None = None  # why the miner is starting again (BACKOFF, STARTING)

        self._start_pending = False  # STARTING: START not yet handed out
        self._stop_signalled = False  # STOPPING: TERMINATE handed out
        self._terminate_at: float | None = None  # STOPPING: when to hand out (the next) TERMINATE
        self._kill_at: float | None = None  # STOPPING: when to hand out KILL (None once handed out)
        self._restart_after_stop: str | None = None  # STOPPING: restart with this reason once it exited
        self._recent: deque[float] = deque()  # times of unexpected restarts, for the crash-loop cap

    # -- events ---------------------------------------------------------------------------------

    def start_requested(self, now: float) -> None:
        self._expect("start", State.STOPPED)
        self._to_starting()

    def started(self, now: float, pid: int) -> None:
        self._expect("started", State.STARTING)
        if self._start_pending:
            raise TransitionError("started: START was not handed out yet")
        self._to_running(now, pid, attached=False)

    def attached_to(self, now: float, pid: int, adopted: bool = False) -> None:
        """A process we did not start runs TDM (it holds lock.file): follow it, never signal it.
        `adopted`: an earlier run of ours started it; it is then stopped and restarted like our own."""
        self._expect("attach", State.STOPPED, State.STARTING)
        if self.state is State.STARTING and self._start_pending:
            raise TransitionError("attach: START was not handed out yet")
        self._to_running(now, pid, attached=not adopted)
        self.adopted = adopted

    def start_failed(self, now: float, error: str) -> None:
        """The spawn itself failed (before_start raised, no such program, no display...)."""
        self._expect("start_failed", State.STARTING)
        if self._start_pending:
            raise TransitionError("start_failed: START was not handed out yet")
        self.last_error = error
        self._restart(now, "crash", run_time=None)

    def exited(self, now: float, code: int | None, expected: bool) -> None:
        """The miner is gone. `code` None: unknown (a process we did not start). `expected`: we asked it
        to stop, or the caller does not want a restart (attach mode). In STOPPING every exit is expected."""
        self._expect("exited", State.RUNNING, State.STOPPING)
        run_time = now - self.started_at if self.started_at is not None else None
        if code is not None:
            meaning = exit_meaning(code)
            self.exits[(code, meaning)] = self.exits.get((code, meaning), 0) + 1
            self.last_exit_code, self.last_exit_meaning = code, meaning
        reason, stopping = self._restart_after_stop, self.state is State.STOPPING
        self._clear_run()
        if stopping:
            if reason is None:
                self.state = State.STOPPED
            else:
                self._restart(now, reason, run_time)
        elif expected:
            self.state = State.STOPPED
        elif code in NO_RESTART_CODES:
            self._fail(f"exit code {code} ({exit_meaning(code)}): not restarting")
        else:
            self._restart(now, "crash", run_time)

    def stop_requested(self, now: float) -> None:
        """Idempotent. A process we attached to is left alone (STOPPED at once)."""
        if self.state in (State.STOPPED, State.FAILED):
            return
        if self.state is State.STOPPING:
            self._restart_after_stop = None
        elif self.state is State.RUNNING and not self.attached:
            self._to_stopping(now, None)
        else:  # STARTING before the spawn, BACKOFF, or attached
            self._clear_run()
            self.state = State.STOPPED

    def restart_requested(self, now: float, reason: str) -> None:
        if reason not in RESTART_REASONS:
            raise ValueError(f"restart reason: expected one of {RESTART_REASONS}, got {reason!r}")
        if self.state is State.RUNNING and self.attached:
            raise TransitionError("restart: the miner was not started by us; not signalling it")
        if self.state is State.RUNNING:
            self._to_stopping(now, reason)
        elif reason in DELIBERATE_REASONS and self.state in (State.STOPPED, State.BACKOFF):
            self._count_restart(reason)
            self._to_starting()
            self.restart_reason = reason
        else:
            raise TransitionError(f"restart ({reason}): not possible while {self.state.value}")

    def reset(self, now: float, reason: str | None = None) -> None:
        """Forget the backoff and the crash-loop history; from FAILED start again at once, counting
        `reason` ("config", "manual") as a restart. The only way out of FAILED."""
        if reason is not None and reason not in DELIBERATE_REASONS:
            raise ValueError(f"reset reason: expected one of {DELIBERATE_REASONS}, got {reason!r}")
        self.delay = None
        self._recent.clear()
        if self.state is State.FAILED:
            self.failure = None
            if reason is not None:
                self._count_restart(reason)
            self._to_starting()
            self.restart_reason = reason

    def tick(self, now: float) -> Action | None:
        """What the shell should do now. Each action is handed out once (TERMINATE to a terminated
        TDM: every TERMINATED_GRACE until it is gone)."""
        if self.state is State.STARTING and self._start_pending:
            self._start_pending = False
            return Action.START
        if self.state is State.BACKOFF and self.start_at is not None and now >= self.start_at:
            self._to_starting()
            self._start_pending = False
            return Action.START
        if self.state is State.STOPPING:
            if self._kill_at is not None and now >= self._kill_at:
                self._kill_at = self._terminate_at = None
                return Action.KILL
            if self._terminate_at is not None and now >= self._terminate_at:
                if not self._stop_signalled:
                    self._stop_signalled = True
                    self._kill_at = now + self.stop_timeout
                # Once only, but for a terminated TDM (its first SIGTERM may be swallowed).
                self._terminate_at = now + TERMINATED_GRACE if self._restart_after_stop == "terminated" else None
                return Action.TERMINATE
        return None

    def next_due(self) -> float | None:
        """The earliest `now` at which `tick` may have something to do (-inf: at once)."""
        if self.state is State.STARTING and self._start_pending:
            return float("-inf")
        if self.state is State.BACKOFF:
            return self.start_at
        if self.state is State.STOPPING:
            dues = [due for due in (self._terminate_at, self._kill_at) if due is not None]
            return min(dues) if dues else None
        return None

    def recent_restarts(self, now: float) -> int:
        """Unexpected restarts within the policy window."""
        self._forget_old(now)
        return len(self._recent)

    # -- transitions ----------------------------------------------------------------------------

    def _expect(self, event: str, *states: State) -> None:
        if self.state not in states:
            allowed = ", ".join(s.value for s in states)
            raise TransitionError(f"{event}: not possible while {self.state.value} (only while {allowed})")

    def _to_starting(self) -> None:
        self._clear_run()
        self.state = State.STARTING
        self._start_pending = True

    def _to_running(self, now: float, pid: int, attached: bool) -> None:
        self.state, self.pid, self.attached, self.started_at = State.RUNNING, pid, attached, now
        self.last_error = self.restart_reason = None

    def _to_stopping(self, now: float, restart_reason: str | None) -> None:
        self.state = State.STOPPING
        self._stop_signalled, self._kill_at = False, None
        self._restart_after_stop = restart_reason
        self._terminate_at = now + TERMINATED_GRACE if restart_reason == "terminated" else float("-inf")

    def _clear_run(self) -> None:
        self.pid, self.attached, self.adopted, self.started_at, self.start_at = None, False, False, None, None
        self._start_pending = self._stop_signalled = False
        self._kill_at = self._terminate_at = self._restart_after_stop = None

    def _fail(self, why: str) -> None:
        self._clear_run()
        self.state, self.failure = State.FAILED, why

    def _count_restart(self, reason: str) -> None:
        self.restarts[reason] = self.restarts.get(reason, 0) + 1

    def _restart(self, now: float, reason: str, run_time: float | None) -> None:
        """After the miner is gone: start again, at once (deliberate) or after the backoff delay."""
        if reason in DELIBERATE_REASONS:
            self._count_restart(reason)
            self._to_starting()
            self.restart_reason = reason
            return
        self._forget_old(now)
        if len(self._recent) >= self.policy.max_restarts:
            self._fail(
                f"crash loop: {len(self._recent)} restarts within {self.policy.window:g} s already"
                f" (limit {self.policy.max_restarts}); not restarting until reset"
            )
            return
        self._recent.append(now)
        self._count_restart(reason)
        healthy = run_time is not None and run_time >= self.policy.healthy_after
        self.delay = self.policy.next_delay(None if healthy else self.delay)
        jitter = self.policy.jitter
        self._clear_run()
        self.state = State.BACKOFF
        self.start_at = now + self.delay * (1 + self.rng.uniform(-jitter, jitter))
        self.restart_reason = reason

    def _forget_old(self, now: float) -> None:
        while self._recent and self._recent[0] <= now - self.policy.window:
            self._recent.popleft()
