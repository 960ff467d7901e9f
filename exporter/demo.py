"""`twitchminert demo`: the daemon supervising the built-in simulated miner, in a temporary folder.

Everything a new user needs to see the exporter work, with no Twitch account: the simulator writes
TDM's exact log format, the supervisor runs it through the same launcher as a real source install,
and the config writer sets its priority list. Ctrl-C stops everything and removes the folder.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from .config import MIN_STALL_SECONDS, Config, MinerConfig, NotifyChannel, StorageConfig, WebConfig
from .lifecycle import BackoffPolicy

SIMULATOR_MAIN = Path(__file__).with_name("simulator") / "main.py"
SCENARIOS = ("happy", "flaky", "crash", "terminated", "stall", "login-required")
DEMO_PRIORITY = ("Starfall Arena", "Pixel Kingdoms")


def demo_config(workdir: Path, scenario: str, speed: float, listen_address: str) -> Config:
    """The simulator runs `speed` times faster than real time (60: a drop minute a second); every time the
    daemon judges by (a drop's ETA, the stall restart) runs as fast, so each scenario shows itself in a minute."""
    tdm_dir = workdir / "tdm"
    tdm_dir.mkdir(parents=True, exist_ok=True)
    command = (sys.executable, str(SIMULATOR_MAIN), "--dir", str(tdm_dir), "--scenario", scenario, "--speed", f"{speed:g}")
    return Config(
        miner=MinerConfig(
            dir=tdm_dir,
            command=command,
            display="none",  # the simulator has no window
            stop_timeout=5.0,
            # The crash scenario exits 1 right after its fatal error (real TDM waits for its window to be
            # closed); let it, so the demo shows the crash restarts rather than a terminated restart.
            restart_on_terminated=scenario != "crash",
            # The shortest stall limit (30 minutes) of simulated time: 30 real seconds at --speed 60.
            restart_on_stall=MIN_STALL_SECONDS / speed,
            # Quick restarts so the crash scenario shows its whole story in a few minutes.
            backoff=BackoffPolicy(initial=2.0, max=60.0, healthy_after=120.0, max_restarts=5, window=3600.0),
        ),
        settings={"priority": DEMO_PRIORITY, "priority_mode": "ending_soonest"},
        storage=StorageConfig(path=workdir / "data"),
        web=WebConfig(listen_address=listen_address),
        drop_minute_seconds=60.0 / speed,
    )


def run_demo(scenario: str, listen_address: str, speed: float, notify: tuple[NotifyChannel, ...] = ()) -> int:
    """`notify`: channels from the user's config (`demo --config.file`), to try notifications on the simulator."""
    from .service import run

    workdir = Path(tempfile.mkdtemp(prefix="twitchminert-demo-"))
    try:
        config = replace(demo_config(workdir, scenario, speed, listen_address), notify=tuple(notify))

        def announce(daemon) -> None:
            base = f"{daemon.server.scheme}://{daemon.server.host}:{daemon.server.port}"
            print(
                f"Twitchminert demo ({scenario} scenario, simulated miner in {workdir})\n"
                f"  status page:  {base}/\n"
                f"  metrics:      {base}/metrics\n"
                f"  status JSON:  {base}/api/miner/status\n"
                f"  events:       {base}/api/events\n"
                "Press Ctrl-C to stop.",
                flush=True,
            )

        return run(config, listen_address, on_started=announce)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
