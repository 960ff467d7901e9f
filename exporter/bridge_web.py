"""What the bridge adds to the web API and /metrics, composed from snapshots (`InventoryView`).

- Status fields: `login`, `current_mining.{campaign_id, campaign, confirmed_minutes,
  estimated_minutes}`, `channels_monitored`, `pending_drops`, `claimed_drops`, `bridge` (with `live`:
  whether the picture is the running TDM's, and `as_of`: when TDM last reported it).
- Handlers (web.ROUTES binds them): GET /api/campaigns, /api/channels, /api/games; POST
  /api/miner/login (202, 409 when no login is waiting, 501 unsupported), POST /api/miner/reload (202,
  501). POSTs take JSON only; auth and the cross-site check are the server's Gate, as for every route.
(Its metrics are in `bridge_metrics`.)

A capability the launcher reported as missing answers 501; so does every bridge route when TDM runs
without the launcher (an AppImage, attach mode): the logs still tell what they can.

The snapshot given here is the status module's `effective` one: once the TDM that reported the picture
is gone, its inventory is the last known one (`live` False on every campaign and channel, no channel
online or watched, no current drop), never what a stopped TDM would be doing.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Protocol

from .bridge import BridgeUnavailable
from .bridge_link import BridgeLink
from .http import Request, Response, json_refusal, json_response
from .inventory import InventoryView
from .state import Snapshot

# Which capability each route needs (the launcher's hello names them).
ROUTE_CAPABILITY = {"campaigns": "campaigns", "channels": "channels", "games": "games", "login": "login", "reload": "reload"}
NO_LAUNCHER = "TDM does not run through twitchminert's launcher (an AppImage or exe, attach mode, or mirror_gui_output: off)"
_SESSION_LOGIN = {"authenticated": "logged_in", "login_required": "login_required"}


# -- status ------------------------------------------------------------------------------------


def capability_states(view: InventoryView | None, expected: bool) -> dict[str, str]:
    """{capability: "supported"|"unsupported"} as the launcher reported them."""
    if view is None or not view.known:
        if expected:
            return {}  # not reported yet: TDM is starting
        return dict.fromkeys(ROUTE_CAPABILITY.values(), "unsupported")
    return {name: "supported" if ok else "unsupported" for name, ok in sorted(view.capabilities.items())}


def status_fields(snap: Snapshot, link: BridgeLink, running: bool | None, now: float) -> dict[str, Any]:
    """The status API's bridge fields (added beside the existing ones). `snap`: the effective snapshot."""
    view = snap.inventory
    connected = bool(link.connected and running is not False)
    alive = running is not False  # what the last TDM showed is void once its process is gone
    known = view is not None and view.known
    live = known and alive and view.live
    bridge: dict[str, Any] = {"connected": connected, "capabilities": capability_states(view, link.expected),
                              "live": live, "as_of": view.reported_at if known else None}
    if not link.expected and not known:
        bridge["reason"] = NO_LAUNCHER
    return {
        "login": _login(snap, view, connected, alive, now),
        "channels_monitored": len(view.channels) if live else None,
        "pending_drops": view.pending_drops(now) if known else None,
        "claimed_drops": view.claimed_drops() if known else None,
        "bridge": bridge,
    }


def _login(snap: Snapshot, view: InventoryView | None, connected: bool, alive: bool, now: float) -> dict[str, Any]:
    answer = {"state": "unknown", "user_id": None, "user_code": None, "activation_url": None,
              "code_expires_at": None, "can_press_login": False}
    if not alive:
        return answer
    if view is None or not view.known or not view.live:  # no bridge, or a new TDM not reported yet: the log
        answer["state"] = _SESSION_LOGIN.get(snap.session, "unknown")
        return answer
    answer["state"] = view.login(now)
    if answer["state"] == "unknown":  # the login form is not hooked, or says nothing yet: the log
        answer["state"] = _SESSION_LOGIN.get(snap.session, "unknown")
    answer["user_id"] = view.user_id
    if view.code_pending(now):
        code = view.code
        answer.update(user_code=code.user_code, activation_url=code.activation_url, code_expires_at=code.expires_at)
    answer["can_press_login"] = bool(connected and view.waiting_for_login and view.capabilities.get("login"))
    return answer


def current_mining_fields(snap: Snapshot, shown: bool) -> dict[str, Any]:
    """current_mining's campaign and minutes; confirmed and estimated minutes apart.
    `shown`: whether the status shows a current drop at all."""
    fields: dict[str, Any] = {"campaign_id": None, "campaign": None, "confirmed_minutes": None, "estimated_minutes": None}
    if not shown:
        return fields
    view = snap.inventory
    drop = view.current_drop if view is not None else None
    if drop is not None:
        campaign = view.campaign(drop.campaign_id)
        fields.update(campaign_id=drop.campaign_id, campaign=campaign.name if campaign is not None else None,
                      confirmed_minutes=drop.confirmed_minutes, estimated_minutes=drop.estimated_minutes)
    elif snap.drop is not None:  # no bridge: the log's progress lines
        fields.update(confirmed_minutes=snap.drop.confirmed, estimated_minutes=snap.drop.estimated)
    return fields


# -- routes -----------------------------------------------------------------------------------


class BridgeContext(Protocol):
    """What the bridge's handlers read from the daemon (web.WebContext has both)."""

    snapshot: Callable[[], Snapshot]  # the current Snapshot, its inventory included
    bridge: Callable[[], BridgeLink]  # the current link to TDM's launcher


def _view(ctx: BridgeContext, capability: str) -> tuple[InventoryView | None, Response | None]:
    """The inventory, or the refusal when this capability cannot be had (None, None: not yet known)."""
    view = ctx.snapshot().inventory
    if view is None or not view.known:
        if ctx.bridge().expected:
            return None, None  # TDM is starting: nothing to show yet
        return None, json_response(501, {"error": "unsupported", "message": NO_LAUNCHER})
    if not view.capabilities.get(capability):
        return None, json_response(501, {"error": "unsupported", "message": f"this TDM offers no {capability} hook the bridge knows"})
    return view, None


def campaigns(ctx: BridgeContext, request: Request) -> Response:
    """GET /api/campaigns: every campaign of TDM's inventory with its drops."""
    view, refusal = _view(ctx, "campaigns")
    if refusal is not None:
        return refusal
    now = time.time()
    return json_response(200, [campaign.to_api(now, view.live) for campaign in view.campaigns] if view is not None else [])


def channels(ctx: BridgeContext, request: Request) -> Response:
    """GET /api/channels: the channels TDM monitors, the watched one first."""
    view, refusal = _view(ctx, "channels")
    if refusal is not None:
        return refusal
    if view is None:
        return json_response(200, [])
    listed = sorted(view.channels, key=lambda channel: channel.id != view.watching)  # stable: TDM's order
    return json_response(200, [channel.to_api(channel.id == view.watching, view.live) for channel in listed])


def games(ctx: BridgeContext, request: Request) -> Response:
    """GET /api/games: the games TDM can mine (its priority and exclude choices)."""
    view, refusal = _view(ctx, "games")
    if refusal is not None:
        return refusal
    return json_response(200, list(view.games) if view is not None else [])


def press_login(ctx: BridgeContext, request: Request) -> Response:
    """POST /api/miner/login: TDM's Login button. 202 (with the code once TDM shows it), 409 when no
    login waits, 501 unsupported."""
    return _press(ctx, "login", request)


def press_reload(ctx: BridgeContext, request: Request) -> Response:
    """POST /api/miner/reload: TDM's Reload button (fetch the inventory again). 202, 501 unsupported."""
    return _press(ctx, "reload", request)


def _press(ctx: BridgeContext, op: str, request: Request) -> Response:
    refusal = json_refusal(request)
    if refusal is not None:
        return refusal
    view, refusal = _view(ctx, op)
    if refusal is not None:
        return refusal
    try:
        answer = ctx.bridge().request(op)
    except BridgeUnavailable as error:
        return json_response(503, {"error": "unavailable", "message": str(error)})
    if answer.get("ok"):
        accepted: dict[str, Any] = {"accepted": op}
        code = answer.get("code")
        if isinstance(code, dict):  # the device code's user code, as the status will show it
            accepted["login"] = {"user_code": code.get("user_code"), "activation_url": code.get("activation_url"),
                                 "code_expires_at": code.get("expires_at")}
        return json_response(202, accepted)
    status = {"unsupported": 501, "not_waiting": 409, "not_ready": 409, "timeout": 504}.get(answer.get("error"), 502)
    return json_response(status, {"error": answer.get("error"), "message": answer.get("message")})
