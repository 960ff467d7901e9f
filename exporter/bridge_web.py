"""What the bridge adds to the web API and /metrics, composed from snapshots (`InventoryView`).

- Handlers (web.ROUTES binds them): GET /api/campaigns, /api/channels, /api/games; POST
  /api/miner/login (202, 409 when no login is waiting, 501 unsupported), POST /api/miner/reload (202,
  501). POSTs take JSON only; auth and the cross-site check are the server's Gate, as for every route.
(Its status fields are in `status`, its metrics in `bridge_metrics`.)

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
from .http import Request, Response, json_refusal, json_response
from .inventory import InventoryView
from .state import Snapshot
from .status import BRIDGE_CAPABILITIES, NO_LAUNCHER

# Which capability each route needs (the launcher's hello names them).
ROUTE_CAPABILITY = {name: name for name in BRIDGE_CAPABILITIES}


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
