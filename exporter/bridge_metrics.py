"""The bridge's metrics, built from a Snapshot at scrape time (`replay` prints them too).

tdm_campaigns{status}, tdm_inventory_drops{state}, tdm_channels{status}, tdm_login_code_pending,
tdm_login_code_expiry_timestamp_seconds, the current drop's confirmed and estimated minutes (apart:
only confirmed minutes are progress), and tdm_bridge_up.

TDM's picture is exported only while the TDM that reported it runs (`InventoryView.live`). Once it is
gone the series are dropped, not repeated: Prometheus marks a series missing from a scrape stale at
once, so queries, alerts and panels stop at the last true value instead of carrying a count no
running TDM vouches for (tdm_miner_up and tdm_bridge_up say why). tdm_login_code_pending is 0 then:
no code waits for a TDM that is gone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable

from prometheus_client.core import GaugeMetricFamily, Metric

from .state import Snapshot

if TYPE_CHECKING:
    from .bridge_link import BridgeLink


def inventory_metrics(snap: Snapshot, now: float) -> Iterable[Metric]:
    """The inventory's metrics, from a Snapshot (also what `replay` prints)."""
    view = snap.inventory
    known = view is not None and view.known
    live = known and view.live
    campaigns = GaugeMetricFamily("tdm_campaigns", "Campaigns in TDM's inventory, by status.", labels=["status"])
    drops = GaugeMetricFamily("tdm_inventory_drops", "Drops in TDM's inventory, by state.", labels=["state"])
    channels = GaugeMetricFamily("tdm_channels", "Channels TDM monitors, by status.", labels=["status"])
    if live:
        for status, count in view.campaign_statuses(now).items():
            campaigns.add_metric([status], count)
        for state, count in view.drop_states().items():
            drops.add_metric([state], count)
        for status, count in view.channel_statuses().items():
            channels.add_metric([status], count)
    yield from (campaigns, drops, channels)
    pending = live and view.code_pending(now)
    yield GaugeMetricFamily("tdm_login_code_pending", "1 while a login code waits to be entered.", value=int(bool(pending)))
    expiry = GaugeMetricFamily("tdm_login_code_expiry_timestamp_seconds", "When the login code shown expires.")
    if pending and view.code.expires_at is not None:
        expiry.add_metric([], view.code.expires_at)
    yield expiry
    confirmed = GaugeMetricFamily(
        "tdm_drop_confirmed_minutes", "The current drop's minutes confirmed by Twitch.", labels=["drop", "game"]
    )
    estimated = GaugeMetricFamily(
        "tdm_drop_estimated_minutes", "Minutes TDM counted on its own for the current drop since Twitch last confirmed.",
        labels=["drop", "game"],
    )
    drop = view.current_drop if live else None
    if drop is not None and drop.confirmed_minutes is not None:
        campaign = view.campaign(drop.campaign_id)
        labels = [drop.name or "", (campaign.game if campaign is not None else None) or ""]
        confirmed.add_metric(labels, drop.confirmed_minutes)
        estimated.add_metric(labels, drop.estimated_minutes or 0)
    elif snap.drop is not None and snap.drop.confirmed is not None:
        labels = [snap.drop.name, snap.drop.game]
        confirmed.add_metric(labels, snap.drop.confirmed)
        estimated.add_metric(labels, snap.drop.estimated or 0)
    yield confirmed
    yield estimated


class BridgeCollector:
    """tdm_bridge_up: whether TDM answers on the control socket (only when it runs through the launcher)."""

    def __init__(self, link: Callable[[], BridgeLink], running: Callable[[], bool | None]) -> None:
        self._link = link
        self._running = running

    def collect(self) -> Iterable[Metric]:
        link = self._link()
        if not link.expected:
            return
        up = link.connected and self._running() is not False
        yield GaugeMetricFamily("tdm_bridge_up", "1 when TDM answers on the bridge's control socket.", value=int(up))
