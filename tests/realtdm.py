"""The real TDM under test: its own source, its own interpreter, a local Twitch mock, our daemon.

Everything a user would have, run as a user runs it: `twitchminert run --config.file FILE` with a YAML
config naming TDM's folder (a fresh copy of ../shared/tdm-src per test) and TDM's `proxy` setting
pointed at ../shared/tdm/offline/mock_twitch.py, which answers for every Twitch host. TDM trusts the
mock through a throw-away CA (`SSL_CERT_FILE` in `miner.env`); the daemon starts it through our
launcher in TDM's interpreter, on our own Xvfb. See ../shared/tdm/real_tdm_offline.md.

TDM's interpreter is a venv of Debian's python3 made with --system-site-packages (Tk and gi come from
Debian) holding TDM's requirements.txt, not ours. `.ci/run` makes it and names it in
TWITCHMINERT_TDM_VENV; the default is in the user's cache, outside the repository (a venv holds this
machine's absolute paths):

    /usr/bin/python3 -m venv --system-site-packages ~/.cache/twitchminert/tdm-venv
    ~/.cache/twitchminert/tdm-venv/bin/pip install -r ../shared/tdm-src/requirements.txt

Use in a test module (pytest finds fixtures imported into it):

    from realtdm import real_tdm, tdm_runtime  # noqa: F401  (fixtures)

    def test_something(real_tdm):
        tdm = real_tdm()                                 # restored session, MOCK_SCENARIO=happy
        status = tdm.wait_status(lambda s: s["status"] == "mining", what="mining")
        tdm.metrics(), tdm.events(kind="supervisor"), tdm.get_json("/api/campaigns")
        tdm.post_json("/api/miner/login"), tdm.supervisor_events("exited"), tdm.wait_log("Watching:")

`real_tdm(...)` starts one TDM (see `RealTdm.__init__` for the knobs: scenario, fresh login, a 407
proxy, priority, extra `miner:` lines, `start=False` to edit the folder first). Everything started is
stopped at the end of the test, and whatever still mentions the test's folder is killed.

Skips: without ../shared (a plain clone), without TDM's venv or without Xvfb a real-TDM test skips
with the reason; with CI=true it fails instead (CI must have them all).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import psutil
import pytest
from conftest import (
    FIXTURES,
    SHARED,
    DaemonProcess,
    free_port,
    http_get,
    processes_mentioning,
    run_args,
    wait_until,
)
from helpers import unavailable

REPO = Path(__file__).resolve().parents[1]
TDM_SRC = SHARED / "tdm-src"
OFFLINE = SHARED / "tdm" / "offline"
MOCK_TWITCH = OFFLINE / "mock_twitch.py"
PROXY_407 = OFFLINE / "proxy407.py"
MKPKI = OFFLINE / "mkpki.sh"
# A cookies.jar TDM wrote after logging in to the mock: with it, TDM restores the session.
RESTORED_JAR = FIXTURES / "cookies" / "cookies-3.14.5-written-by-TDM-run.jar"
TDM_VENV_VARIABLE = "TWITCHMINERT_TDM_VENV"
DEFAULT_TDM_VENV = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "twitchminert" / "tdm-venv"
MOCK_GAME = "Mock Game"  # the one game with an active campaign in the mock
TDM_IMPORTS = "import aiohttp, PIL, pystray, truststore, tkinter, gi"
START_TIMEOUT = 30.0  # mock or proxy up
STATUS_TIMEOUT = 60.0  # default bound of wait_status


# -- what the machine must have -------------------------------------------------------------------


def tdm_venv() -> Path:
    return Path(os.environ.get(TDM_VENV_VARIABLE) or DEFAULT_TDM_VENV)


def real_tdm_unavailable() -> str:
    """Why the real TDM cannot run here, or "" when it can."""
    if not (TDM_SRC / "main.py").is_file():
        return f"no TDM source at {TDM_SRC} (a plain clone without ../shared)"
    python = tdm_venv() / "bin" / "python"
    if not python.exists():
        return (
            f"no TDM interpreter at {python}: /usr/bin/python3 -m venv --system-site-packages {tdm_venv()}"
            f" && {tdm_venv()}/bin/pip install -r {TDM_SRC}/requirements.txt (or set {TDM_VENV_VARIABLE})"
        )
    check = subprocess.run([str(python), "-c", TDM_IMPORTS.replace("pystray, ", "")], capture_output=True, text=True, timeout=60)
    if check.returncode != 0:
        last = (check.stderr.strip().splitlines() or ["?"])[-1]
        return f"TDM's interpreter {python} lacks TDM's runtime ({last}): install {TDM_SRC}/requirements.txt into it"
    if shutil.which("Xvfb") is None:
        return "no Xvfb (Debian: apt-get install xvfb xauth)"
    return ""


@dataclass(frozen=True)
class TdmRuntime:
    """What every real-TDM test shares: TDM's interpreter and a CA the mock's certificate is signed with."""

    venv: Path
    pki: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def ca_file(self) -> Path:
        return self.pki / "ca.crt"


@pytest.fixture(scope="session")
def tdm_runtime(tmp_path_factory) -> TdmRuntime:
    reason = real_tdm_unavailable()
    if reason:
        unavailable(reason, f"the real-TDM tests must run in CI: {reason}")
    pki = tmp_path_factory.mktemp("tdm-pki")
    subprocess.run(["bash", str(MKPKI), str(pki)], check=True, capture_output=True, timeout=120)
    return TdmRuntime(tdm_venv(), pki)


# -- Twitch, offline ---------------------------------------------------------------------------------


class Background:
    """A helper server run with TDM's interpreter, writing to `log`; `stop()` is idempotent."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._output = open(log.with_suffix(".out"), "wb")
        self.proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=self._output, stderr=subprocess.STDOUT)

    def wait_ready(self, ready: Callable[[], bool], what: str) -> None:
        def check() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"{what} exited with {self.proc.returncode}:\n{self.log.with_suffix('.out').read_text()}")
            return ready()

        wait_until(check, START_TIMEOUT, interval=0.05, what=what)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._output.close()


class MockTwitch(Background):
    """../shared/tdm/offline/mock_twitch.py: a CONNECT proxy (`proxy_url`) in front of a Twitch mock.
    `scenario`: happy, errors or critical (see the mock's header for its scripted timeline)."""

    def __init__(self, runtime: TdmRuntime, folder: Path, scenario: str = "happy") -> None:
        self.proxy_port, tls_port = free_port(), free_port()
        env = {
            "MOCK_PKI": str(runtime.pki),
            "MOCK_PROXY_PORT": str(self.proxy_port),
            "MOCK_TLS_PORT": str(tls_port),
            "MOCK_SCENARIO": scenario,
        }
        log = folder / "mock_twitch.log"
        super().__init__([str(runtime.python), str(MOCK_TWITCH), str(log)], env, log)
        self.wait_ready(lambda: "mock up" in self.text(), "the Twitch mock to start")

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


class Proxy407(Background):
    """../shared/tdm/offline/proxy407.py: refuses every request with 407, a fatal error for TDM."""

    def __init__(self, runtime: TdmRuntime, folder: Path) -> None:
        self.port = free_port()
        super().__init__([str(runtime.python), str(PROXY_407), str(self.port)], {}, folder / "proxy407.log")
        self.wait_ready(self._listening, "the 407 proxy to listen")

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# -- one TDM under `twitchminert run` -----------------------------------------------------------


def copy_tdm(destination: Path) -> Path:
    """A writable copy of TDM's source (TDM writes beside main.py; ../shared is read-only)."""
    shutil.copytree(TDM_SRC, destination, ignore=shutil.ignore_patterns("__pycache__"))
    for path in [destination, *destination.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    return destination


class RealTdm:
    """One TDM folder, the mock it talks to and the `twitchminert run` daemon that supervises it.

    scenario: the mock's MOCK_SCENARIO; session: "restored" (a cookies.jar with the mock's token) or
    "fresh" (TDM asks for a device-code login); proxy: "mock" or "407" (every request refused: a fatal
    error); priority: settings.priority; python: `miner.python` (default TDM's venv, as a source
    install with its own venv has it; None: not set, the supervisor finds one); miner: extra lines of
    the `miner:` section; settings: extra lines of the `settings:` section.
    """

    def __init__(
        self,
        runtime: TdmRuntime,
        workdir: Path,
        *,
        scenario: str = "happy",
        session: str = "restored",
        proxy: str = "mock",
        priority: tuple[str, ...] = (MOCK_GAME,),
        python: str | Path | None = "venv",
        miner: str = "",
        settings: str = "",
    ) -> None:
        self.runtime = runtime
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.tdm_dir = copy_tdm(workdir / "tdm")
        self.data_dir = workdir / "data"
        self.config_file = workdir / "twitchminert.yaml"
        self.daemon: DaemonProcess | None = None
        self.servers: list[Background] = []
        if session == "restored":
            shutil.copyfile(RESTORED_JAR, self.tdm_dir / "cookies.jar")
        elif session != "fresh":
            raise ValueError(f"session: restored or fresh, got {session!r}")
        if proxy == "mock":
            self.mock: MockTwitch | None = MockTwitch(runtime, workdir, scenario)
            self.servers.append(self.mock)
            proxy_url = self.mock.proxy_url
        elif proxy == "407":
            self.mock = None
            server = Proxy407(runtime, workdir)
            self.servers.append(server)
            proxy_url = server.proxy_url
        else:
            raise ValueError(f"proxy: mock or 407, got {proxy!r}")
        self.proxy_url = proxy_url
        self.python = runtime.python if python == "venv" else python
        self.write_config(priority, miner, settings)

    def write_config(self, priority: tuple[str, ...] = (MOCK_GAME,), miner: str = "", settings: str = "") -> None:
        """The YAML config (again: a running daemon reloads it when it changes)."""
        python = [f"  python: {json.dumps(str(self.python))}"] if self.python is not None else []
        lines = [
            "miner:",
            f"  dir: {json.dumps(str(self.tdm_dir))}",
            *python,
            f"  env: {{SSL_CERT_FILE: {json.dumps(str(self.runtime.ca_file))}}}",
            "  stop_timeout: 10s",
            *(f"  {line}" for line in miner.strip().splitlines()),
            "settings:",
            f"  priority: {json.dumps(list(priority))}",
            f"  proxy: {json.dumps(self.proxy_url)}",
            *(f"  {line}" for line in settings.strip().splitlines()),
            "storage:",
            f"  path: {json.dumps(str(self.data_dir))}",
        ]
        self.config_file.write_text("\n".join(lines) + "\n")

    # -- the daemon ----------------------------------------------------------------------------

    def start(self) -> RealTdm:
        """`twitchminert run` as a user runs it, without a DISPLAY: the supervisor starts its own Xvfb."""
        assert self.daemon is None, "started already"
        self.daemon = DaemonProcess(run_args(self.config_file), env={"DISPLAY": ""})
        self.daemon.wait_listening()
        return self

    @property
    def url(self) -> str:
        assert self.daemon is not None and self.daemon.url, "start() first"
        return self.daemon.url

    def get_json(self, path: str):
        code, body = http_get(self.url + path)
        assert code == 200, f"GET {path}: {code} {body}"
        return json.loads(body)

    def post_json(self, path: str, body: dict | None = None) -> tuple[int, dict | str]:
        """POST a JSON object (an empty one by default), as the page does: (status, JSON answer or text)."""
        request = urllib.request.Request(
            self.url + path, data=json.dumps(body or {}).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                code, text = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            code, text = error.code, error.read().decode()
        try:
            return code, json.loads(text)
        except ValueError:
            return code, text

    def status(self) -> dict:
        return self.get_json("/api/miner/status")

    def metrics(self) -> str:
        code, body = http_get(self.url + "/metrics")
        assert code == 200, body
        return body

    def events(self, **query: str) -> list[dict]:
        """/api/events, oldest first (the API answers newest first)."""
        search = "&".join(f"{key}={value}" for key, value in query.items())
        return list(reversed(self.get_json("/api/events" + (f"?{search}" if search else ""))))

    def supervisor_events(self, action: str | None = None) -> list[dict]:
        """The supervisor's events (fields: action, pid, code, meaning, cause, reason, delay...), oldest first."""
        found = [event["fields"] for event in self.events(kind="supervisor", limit="1000")]
        return [fields for fields in found if action is None or fields.get("action") == f"miner_{action}"]

    def wait_status(self, condition: Callable[[dict], object], timeout: float = STATUS_TIMEOUT, what: str = "status") -> dict:
        """The first /api/miner/status answer for which `condition` holds (bounded by `timeout`)."""

        last: list[dict] = []

        def check():
            if self.daemon is not None and self.daemon.proc.poll() is not None:
                pytest.fail(f"the daemon exited with {self.daemon.proc.returncode}:\n{self.output()}")
            last[:] = [self.status()]
            return last[0] if condition(last[0]) else None

        def seen() -> str:  # at the deadline: what the daemon answered and logged last
            answer = {key: last[0].get(key) for key in ("status", "session", "supervisor", "login")} if last else None
            return f"{what}; last answer: {json.dumps(answer)} (daemon log:\n{self.tail()})"

        return wait_until(check, timeout, interval=0.1, what=seen)

    def wait_log(self, text: str, timeout: float = STATUS_TIMEOUT) -> None:
        """Until TDM's log.txt or the captured GUI output contains `text`."""

        def found() -> bool:
            files = [self.tdm_dir / "log.txt", self.data_dir / "logs" / "miner_output.log"]
            return any(text in (f.read_text(errors="replace") if f.exists() else "") for f in files)

        wait_until(found, timeout, interval=0.1, what=f"{text!r} from TDM")

    def miner_pid(self) -> int | None:
        return self.status()["pid"]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """Stop the daemon (SIGTERM: it stops TDM and Xvfb); its exit code."""
        if self.daemon is None:
            return None
        return self.daemon.stop(sig, timeout)

    def output(self) -> str:
        return self.daemon.output() if self.daemon is not None else ""

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def close(self) -> None:
        """Stop everything this run started, then kill whatever still mentions its folder."""
        if self.daemon is not None:
            self.daemon.stop(signal.SIGTERM)
            leftovers = [p for p in self.daemon.orphans if p.is_running()]
            for process in leftovers:
                process.kill()
            psutil.wait_procs(leftovers, timeout=10)
        for server in self.servers:
            server.stop()
        for process in processes_mentioning(str(self.workdir)):
            process.kill()


@pytest.fixture
def real_tdm(tdm_runtime: TdmRuntime, tmp_path: Path) -> Iterator[Callable[..., RealTdm]]:
    """Factory: `real_tdm(**options)` -> a started RealTdm (options: see RealTdm; `start=False` to
    start it yourself). Each call gets its own folder; all are closed after the test."""
    runs: list[RealTdm] = []

    def make(start: bool = True, **options) -> RealTdm:
        run = RealTdm(tdm_runtime, tmp_path / f"run{len(runs)}", **options)
        runs.append(run)
        return run.start() if start else run

    yield make
    for run in reversed(runs):
        run.close()
