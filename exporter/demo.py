"""`twitchminert demo`: the daemon supervising the built-in simulated miner, in a temporary folder.

Everything a new user needs to see the exporter work, with no Twitch account: the simulator writes
TDM's exact log format, the supervisor runs it through the same launcher as a real source install,
and the config writer sets its priority list. Ctrl-C stops everything and removes the folder.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Callable

from .config import MIN_STALL_SECONDS, Config, MinerConfig, NotifyChannel, StorageConfig, WebConfig, load_config
from .lifecycle import BackoffPolicy

SIMULATOR_MAIN = Path(__file__).with_name("simulator") / "main.py"
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


def at_speed(demo: Config) -> Callable[[Config], Config]:
    """The demo's speed-scaled times, which no config file can hold (a stall limit under 30 minutes,
    the simulator's drop minute), set over a config read from its file: at start and at every reload."""

    def adjust(loaded: Config) -> Config:
        miner = replace(loaded.miner, restart_on_stall=demo.miner.restart_on_stall)
        return replace(loaded, miner=miner, drop_minute_seconds=demo.drop_minute_seconds)

    return adjust


def write_config_file(path: Path, config: Config) -> Config:
    """The demo's config as a YAML file, so the web console's settings editor has a file to edit; the
    config the daemon runs is read back from it, as `run --config.file` would."""
    miner, backoff = config.miner, config.miner.backoff
    lines = [
        "# Written by `twitchminert demo`; the web console's settings editor edits it.",
        "miner:",
        f"  dir: {json.dumps(str(miner.dir))}",
        f"  command: {json.dumps(list(miner.command))}",
        f"  display: {miner.display}",
        f"  stop_timeout: {miner.stop_timeout:g}s",
        f"  restart_on_terminated: {json.dumps(miner.restart_on_terminated)}",
        "  backoff:",
        *(f"    {key}: {getattr(backoff, key):g}s" for key in ("initial", "max", "healthy_after", "window")),
        f"    max_restarts: {backoff.max_restarts}",
        "settings:",
        "  # Mined in this order; edit it on the Settings tab.",
        f"  priority: {json.dumps(list(config.settings['priority']))}",
        f"  priority_mode: {config.settings['priority_mode']}",
        "storage:",
        f"  path: {json.dumps(str(config.storage.path))}",
        "web:",
        f"  listen_address: {json.dumps(config.web.listen_address)}",
    ]
    if config.notify:  # `demo --config.file`'s channels: in the file too, or the first reload would drop them
        lines.append("notify:")
        for channel in config.notify:
            lines += [f"  - urls: {json.dumps(list(channel.urls))}", f"    events: {json.dumps(list(channel.events))}",
                      f"    min_interval: {channel.min_interval:g}s"]
    path.touch(mode=0o600)  # Apprise URLs carry tokens
    path.write_text("\n".join(lines) + "\n")
    return at_speed(config)(load_config(path))


def run_demo(scenario: str, listen_address: str, speed: float, notify: tuple[NotifyChannel, ...] = ()) -> int:
    """`notify`: channels from the user's config (`demo --config.file`), to try notifications on the simulator."""
    from .service import run

    workdir = Path(tempfile.mkdtemp(prefix="twitchminert-demo-"))
    try:
        config_file = workdir / "twitchminert.yaml"
        demo = replace(demo_config(workdir, scenario, speed, listen_address), notify=tuple(notify))
        config = write_config_file(config_file, demo)

        def announce(daemon) -> None:
            base = f"{daemon.server.scheme}://{daemon.server.host}:{daemon.server.port}"
            # The one scenario that waits for the user: say how to answer it.
            login = (f"  log it in:    Log in on the status page, or: twitchminert login --web.url {base}\n"
                     if scenario == "login-required" else "")
            print(
                f"Twitchminert demo ({scenario} scenario, simulated miner in {workdir})\n"
                f"  status page:  {base}/\n"
                f"  metrics:      {base}/metrics\n"
                f"  status JSON:  {base}/api/miner/status\n"
                f"  events:       {base}/api/events\n"
                f"  config file:  {config_file} (the page's Settings tab edits it)\n"
                f"{login}"
                "Press Ctrl-C to stop.",
                flush=True,
            )

        return run(config, listen_address, config_file, on_started=announce, adjust=at_speed(demo))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
