"""Shared test helpers: fixture paths, condition waits with deadlines, HTTP calls, a daemon as a real
process, and daemons (`demo`, `run`) supervising the simulator: their arguments, config, status and
clean-up. Helpers for tests that need an outside tool (Chromium, promtool, openssl) are in helpers.py.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Callable, Iterable, Sequence

import psutil
import pytest
from hypothesis import settings as hypothesis_settings
from hypothesis.configuration import set_hypothesis_home_dir

# Hypothesis' files (its example database, the constants it caches from our source) hold this
# machine's paths: kept in the temp folder, never in the repo. A failing example is printed anyway.
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "twitchminert-hypothesis"))
hypothesis_settings.register_profile("twitchminert", database=None)
hypothesis_settings.load_profile("twitchminert")

from exporter.demo import DEMO_PRIORITY, SIMULATOR_MAIN

REPO = Path(__file__).resolve().parents[1]
# Files real TDM wrote (copied from ../shared/fixtures/tdm): data, so the suite runs on a plain clone.
FIXTURES = REPO / "tests" / "fixtures" / "tdm"
RUNS = FIXTURES / "runs"
# ../shared beside the repo, as in CI: TDM's real source, for the tests that run or import real TDM.
SHARED = REPO.parent / "shared"
TDM_SOURCE = SHARED / "tdm-src"
MOCK_TOKEN = "mockaccesstoken0123456789abcd"


def need_tdm_source() -> Path:
    """TDM's real source (../shared/tdm-src); skips the test when it is absent, fails it with CI=true."""
    from helpers import unavailable

    if not (TDM_SOURCE / "main.py").is_file():
        unavailable(f"TDM's real source is not at {TDM_SOURCE} (clone the repo beside ../shared)")
    return TDM_SOURCE


# -- waits, HTTP, /metrics -------------------------------------------------------------------------


def wait_until(
    condition: Callable[[], object],
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str | Callable[[], str] = "condition",
):
    """Poll `condition` until it is truthy; fail the test after `timeout` seconds. `what` can be a
    function: it then describes what was seen when the time ran out."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what() if callable(what) else what}")
        threading.Event().wait(interval)  # bounded poll step, not a synchronisation sleep


def pause(seconds: float) -> None:
    threading.Event().wait(seconds)  # spacing between polls or scrapes, not a synchronisation sleep


def twitchminert(*args: str, home: Path, text: bool = True) -> subprocess.CompletedProcess:
    """`python -m exporter ...` to completion (bounded), with our own files under `home` ($TWITCHMINERT_HOME);
    `text=False` keeps stdout as bytes, to compare files byte for byte."""
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        check=False,
        text=text,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "TWITCHMINERT_HOME": str(home)},
    )


def free_port() -> int:
    """A port nothing listens on now (for a server that must be started at a known address)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def http_post(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """An empty POST: (status, body), whatever the status."""
    request = urllib.request.Request(url, data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def sample(metrics_text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a /metrics exposition, or None."""
    for line in metrics_text.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{.*\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if found == labels:
            return float(match.group(3))
    return None


# -- a daemon as a real process --------------------------------------------------------------------


class DaemonProcess:
    """`python -m exporter ...` as a child; learns its port from the 'listening on' log line."""

    def __init__(self, args: Sequence[str], env: dict | None = None, cwd: Path | None = None) -> None:
        self.home = tempfile.mkdtemp(prefix="tm-home-")  # our own log file goes here, not to ~
        self.orphans: list[psutil.Process] = []
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "TWITCHMINERT_HOME": self.home, **(env or {})},
            cwd=cwd or REPO,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = ""

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line)

    def wait_listening(self, timeout: float = 20.0, scheme: str = "http") -> str:
        """The base URL from the 'listening on <scheme>://...' line, also kept as `self.url`;
        fails the test if the daemon exits first."""

        def find() -> str | None:
            for line in list(self.lines):
                match = re.search(rf"listening on ({scheme}://[\d.]+:\d+)/", line)
                if match:
                    return match.group(1)
            if self.proc.poll() is not None:
                pytest.fail(f"daemon exited {self.proc.returncode}:\n" + self.output())
            return None

        what = "the daemon to listen" if scheme == "http" else f"the daemon to listen on {scheme}"
        self.url = wait_until(find, timeout, what=what)
        return self.url

    def metrics(self) -> str:
        status, body = http_get(self.url + "/metrics")
        assert status == 200
        return body

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            # A daemon killed with SIGKILL cannot stop the miner it supervises: remember its
            # process tree so the test's teardown can end what is left of it.
            try:
                self.orphans += psutil.Process(self.proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                pass
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(5)
        self._reader.join(5)
        shutil.rmtree(self.home, ignore_errors=True)
        return code

    def output(self) -> str:
        return "\n".join(self.lines)


# -- daemons supervising the simulator -------------------------------------------------------------

SIMULATOR_SPEED = 60  # simulated seconds per real second: one drop minute per second


def demo_args(scenario: str, speed: float = SIMULATOR_SPEED) -> list[str]:
    """`twitchminert demo` with a simulator scenario, on a free port."""
    return ["demo", "--scenario", scenario, "--web.listen-address", "127.0.0.1:0", "--speed", f"{speed:g}"]


def run_args(config: Path) -> list[str]:
    """`twitchminert run` with a config file, on a free port."""
    return ["run", "--config.file", str(config), "--web.listen-address", "127.0.0.1:0"]


def simulator_config(
    workdir: Path, scenario: str, *, speed: float = SIMULATOR_SPEED, miner: str = "", command: bool = True
) -> Path:
    """workdir/twitchminert.yaml, a `run` config like the demo's, for settings the demo does not offer:
    the simulator in workdir/tdm as a source install, through the launcher (without `command`, only
    the miner's folder), plus `miner` lines."""
    tdm_dir = workdir / "tdm"
    tdm_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, str(SIMULATOR_MAIN), "--dir", str(tdm_dir), "--scenario", scenario, "--speed", f"{speed:g}"]
    lines = [
        "miner:",
        f"  dir: {json.dumps(str(tdm_dir))}",
        "  display: none",
        "  stop_timeout: 5s",
    ]
    if command:
        lines.append(f"  command: {json.dumps(argv)}")
    lines += [f"  {line}" for line in miner.strip().splitlines()]
    lines += [
        "settings:",
        f"  priority: {json.dumps(list(DEMO_PRIORITY))}",
        "  priority_mode: ending_soonest",
        "storage:",
        f"  path: {json.dumps(str(workdir / 'data'))}",
    ]
    config = workdir / "twitchminert.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


def status_json(daemon: DaemonProcess) -> dict:
    """/api/miner/status, asserting it answers 200."""
    code, body = http_get(daemon.url + "/api/miner/status")
    assert code == 200, body
    return json.loads(body)


def status_when(daemon: DaemonProcess, condition: Callable[[dict], object]) -> dict | None:
    """The status JSON if `condition(status)` holds, else None (for wait_until)."""
    answer = status_json(daemon)
    return answer if condition(answer) else None


def processes_mentioning(text: str) -> list[psutil.Process]:
    """Processes other than this one whose command line mentions `text` (a test's folder, say)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if process.pid != psutil.Process().pid and text in " ".join(process.info["cmdline"] or ()):
                found.append(process)
        except psutil.Error:
            pass
    return found


def stop_all(daemons: Iterable[DaemonProcess], workdir: Path) -> None:
    """Stop each daemon gracefully, then kill whatever still mentions `workdir` (a failed test must
    not leak a miner)."""
    for daemon in daemons:
        daemon.stop()  # SIGTERM: each stops its miner
    for process in processes_mentioning(str(workdir)):
        process.kill()


# -- the slow marker --------------------------------------------------------------------------------

# Modules whose tests start daemons, miners, browsers or Prometheus: `pytest -m "not slow"` leaves them
# out (the fast suite, well under a minute); CI runs everything. A single slow test elsewhere takes
# @pytest.mark.slow itself.
SLOW_MODULES = frozenset({
    "test_bridge_live",
    "test_config_cli",
    "test_console_live",
    "test_daemon_reload",
    "test_notify_live",
    "test_real_tdm",
    "test_real_tdm_bridge",
    "test_real_tdm_console",
    "test_real_tdm_notify",
    "test_real_tdm_secrets",
    "test_startup_checks",
    "test_daemon",
    "test_landing",
    "test_landing_live",
    "test_prometheus_live",
    "test_reload",
    "test_secrets",
    "test_simulator",
    "test_status_api",
    "test_supervised",
    "test_supervisor",
})


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if item.module is not None and item.module.__name__.rsplit(".", 1)[-1] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture
def daemon_factory():
    started: list[DaemonProcess] = []

    def start(*args: str, env: dict | None = None) -> DaemonProcess:
        daemon = DaemonProcess(args, env)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop(signal.SIGTERM)  # graceful: the daemon stops the miner it supervises
    leftovers = [p for daemon in started for p in daemon.orphans if p.is_running()]
    for process in leftovers:
        process.kill()
    psutil.wait_procs(leftovers, timeout=10)


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """A test must stop every thread it started, daemon threads too (watchdog's model): a daemon
    thread left running still holds files, sockets and CPU until the interpreter exits."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5

    def leaked() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t not in before and t.is_alive()]

    while leaked() and time.monotonic() < deadline:
        leaked()[0].join(0.1)
    assert not leaked(), f"threads left running: {[t.name for t in leaked()]}"
