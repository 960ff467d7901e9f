"""What the bridge costs: inside TDM (per hooked GUI call), on disk (STATE bytes a day) and in the daemon
(folding records, saving the picture, answering /api/campaigns).

A TDM-shaped inventory of `--campaigns` campaigns with `--drops` drops each is hooked exactly as the
launcher hooks TDM's gui module, records go to a real captured-output file, and the daemon's model
folds them back.

    .venv/bin/python benchmarks/bridge_cost.py [--campaigns 100] [--drops 3] [--calls 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import types
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exporter.bridge import STATE_LEVEL  # noqa: E402
from exporter.bridge_web import campaigns as campaigns_route  # noqa: E402
from exporter.capture import OutputCapture  # noqa: E402
from exporter.framing import Framer  # noqa: E402
from exporter.gui_bridge import GuiBridge  # noqa: E402
from exporter.inventory import InventoryState  # noqa: E402
from exporter.state import MinerState  # noqa: E402

NOW = datetime.now(timezone.utc)


class Game:
    def __init__(self, n: int) -> None:
        self.id, self.name = n, f"Game {n}"


class Benefit:
    def __init__(self, name: str) -> None:
        self.name = name


class Drop:
    def __init__(self, campaign, n: int) -> None:
        self.id, self.name, self.campaign = f"{campaign.id}-d{n}", f"Drop {n}", campaign
        self.benefits = [Benefit(f"Reward {n}")]
        self.required_minutes, self.real_current_minutes, self.extra_current_minutes = 60 * (n + 1), 0, 0
        self.is_claimed, self.can_claim = False, False
        self.starts_at, self.ends_at = NOW - timedelta(days=1), NOW + timedelta(days=7)

    @property
    def current_minutes(self) -> int:
        return self.real_current_minutes + self.extra_current_minutes


class Campaign:
    def __init__(self, n: int, drops: int) -> None:
        self.id, self.name, self.game = f"campaign-{n:04d}", f"Campaign number {n}", Game(n)
        self.linked, self.eligible, self.link_url = True, True, f"https://www.twitch.tv/drops/link/{n}"
        self.starts_at, self.ends_at = NOW - timedelta(days=1), NOW + timedelta(days=7)
        self.active, self.upcoming, self.expired, self.allowed_channels = True, False, False, []
        self.drops = [Drop(self, i) for i in range(drops)]


def gui_module() -> types.ModuleType:
    """The methods the bridge hooks, doing nothing (TDM's own work is not what we measure)."""
    gui = types.ModuleType("gui")

    class InventoryOverview:
        def clear(self): pass
        async def add_campaign(self, campaign): pass
        def update_drop(self, drop): pass

    class GUIManager:
        def __init__(self, twitch=None): self._twitch = twitch
        def display_drop(self, drop, *, countdown=True, subone=False): pass
        def clear_drop(self): pass
        def set_games(self, games): pass

    gui.InventoryOverview, gui.GUIManager = InventoryOverview, GUIManager
    return gui


def per_call(function, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=100)
    parser.add_argument("--drops", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tm-bridge-bench-"))
    output = folder / "miner_output.log"
    capture = OutputCapture(output)
    campaigns = [Campaign(n, args.drops) for n in range(args.campaigns)]
    drop = campaigns[0].drops[0]

    plain = gui_module()
    inventory, manager = plain.InventoryOverview(), plain.GUIManager()
    bare = per_call(lambda: (inventory.update_drop(drop), manager.display_drop(drop)), args.calls)

    hooked = gui_module()
    GuiBridge(lambda text: capture.write(STATE_LEVEL, text)).install(hooked)
    inventory, manager = hooked.InventoryOverview(), hooked.GUIManager()

    def minute() -> None:  # what one minute of mining makes TDM call: a drop's progress, the current drop
        drop.real_current_minutes += 1
        inventory.update_drop(drop)
        manager.display_drop(drop)

    with_bridge = per_call(minute, args.calls)
    print(f"in TDM: a minute's GUI calls (update_drop + display_drop) {bare:.2f} us bare, {with_bridge:.1f} us hooked "
          f"(JSON + one write each)")

    size_before = output.stat().st_size
    inventory.clear()

    async def fetch() -> None:
        for campaign in campaigns:
            await inventory.add_campaign(campaign)

    start = time.perf_counter()
    asyncio.run(fetch())
    fetch_ms = (time.perf_counter() - start) * 1e3
    fetch_bytes = output.stat().st_size - size_before
    minute_bytes = size_before / args.calls
    day = 24 * fetch_bytes + 1440 * minute_bytes  # an inventory fetch an hour, progress every minute
    print(f"on disk: an inventory of {args.campaigns} campaigns x {args.drops} drops = {fetch_bytes / 1024:.1f} KiB "
          f"({fetch_ms:.1f} ms to hook); a minute of progress = {minute_bytes:.0f} B; "
          f"about {day / 2**20:.1f} MiB a day (24 fetches, 1440 minutes)")
    capture.close()

    framer = Framer("captured")
    records = [r for r in framer.feed(output.read_bytes(), 0.0).records + framer.flush().records if r.level == STATE_LEVEL]
    state = InventoryState()
    start = time.perf_counter()
    for record in records:
        state.apply(record.message, 0.0)
    fold = (time.perf_counter() - start) / len(records) * 1e6
    start = time.perf_counter()
    saved = state.to_json()
    save_ms = (time.perf_counter() - start) * 1e3
    start = time.perf_counter()
    InventoryState().restore(saved)
    restore_ms = (time.perf_counter() - start) * 1e3
    miner = MinerState()
    miner.inventory = state

    class Context:
        snapshot = staticmethod(lambda: miner.snapshot(time.time()))
        bridge = staticmethod(lambda: types.SimpleNamespace(expected=True))

    start = time.perf_counter()
    for _ in range(100):
        answer = campaigns_route(Context, None)
    api_ms = (time.perf_counter() - start) * 10
    print(f"in the daemon: {fold:.1f} us a record ({len(records)} records), picture saved {len(saved) / 1024:.0f} KiB in "
          f"{save_ms:.1f} ms (only when it changed), restored in {restore_ms:.1f} ms; "
          f"GET /api/campaigns {api_ms:.2f} ms for {len(answer.body) / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
