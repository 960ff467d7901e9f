"""The status API's answer, composed from snapshots. Pure: no I/O, `now` is passed in.

`miner_status` is what the log and the supervisor say; `status_fields` and `current_mining_fields` what the
bridge adds (`login`, the current campaign and its confirmed and estimated minutes, `channels_monitored`,
`pending_drops`, `claimed_drops`, and `bridge`: connected, capabilities, `live` and `as_of`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from . import __version__
from .state import Snapshot

if TYPE_CHECKING:
    from .bridge_link import BridgeLink
    from .cookies import JarInfo
    from .housekeeping import Seen
    from .inventory import InventoryView
    from .supervisor import SupervisorStatus

# What the launcher can hook in TDM (its hello says which it did), and why there is no bridge at all.
BRIDGE_CAPABILITIES = ("campaigns", "channels", "games", "login", "reload")
NO_LAUNCHER = "TDM does not run through twitchminert's launcher (an AppImage or exe, attach mode, or mirror_gui_output: off)"
_SESSION_LOGIN = {"authenticated": "logged_in", "login_required": "login_required"}


@dataclass(frozen=True)
class ConfigState:
    last_reload_successful: bool = True
    last_success_time: float | None = None
    error: str | None = None


def effective(snapshot: Snapshot, supervisor: SupervisorStatus | None) -> Snapshot:
    """What the logs and the bridge say, unless the process is gone: then nothing they said it was
    doing is true any more. The bridge's picture is also the last known one (not live) while a new
    process has not reported yet: until its hello, it is the previous process's."""
    if supervisor is None:
        return snapshot
    inventory = snapshot.inventory
    if inventory is not None and not (supervisor.up and (supervisor.pid is None or inventory.reported_by(supervisor.pid))):
        inventory = inventory.stale()
    if supervisor.up:
        return snapshot if inventory is snapshot.inventory else replace(snapshot, inventory=inventory)
    return replace(snapshot, status="stopped", channel=None, drop=None, websocket_shards=frozenset(), inventory=inventory)


def status_answer(
    snapshot: Snapshot,
    supervisor: SupervisorStatus | None,
    config: ConfigState,
    seen: Seen,
    link: BridgeLink,
    now: float,
    drop_minute_seconds: float,
) -> dict[str, Any]:
    """The status API's whole answer: miner_status with what the bridge adds (from the effective
    snapshot too: a gone TDM's picture is last known, never live)."""
    snapshot = effective(snapshot, supervisor)
    result = miner_status(snapshot, supervisor, config, seen.jar, seen.cpu_percent, now, seen.token_expiry, drop_minute_seconds)
    result["current_mining"].update(current_mining_fields(snapshot, result["current_mining"]["drop"] is not None))
    result.update(status_fields(snapshot, link, supervisor.up if supervisor is not None else None, now))
    return result


def miner_status(
    snapshot: Snapshot,
    supervisor: SupervisorStatus | None,
    config: ConfigState,
    jar: JarInfo | None,
    cpu_percent: float | None,
    now: float,
    token_expiry: float | None = None,
    drop_minute_seconds: float = 60.0,  # real seconds per drop minute (the demo's simulator is faster)
) -> dict[str, Any]:
    """`token_expiry`: the best known expiry of TDM's token (the token check's answer, else the jar's)."""
    snap = effective(snapshot, supervisor)
    drop = snap.drop
    current = {"channel": snap.channel, "game": snap.game, "drop": None, "progress_minutes": None,
               "required_minutes": None, "percent": None, "eta": None, "last_progress": None}
    if drop is not None and snap.status != "stopped":
        remaining = max(0, drop.required - drop.current)
        current.update(
            game=drop.game,
            drop=drop.name,
            progress_minutes=drop.current,
            required_minutes=drop.required,
            percent=round(drop.percent, 1),
            eta=drop.last_progress_time + remaining * drop_minute_seconds,
            last_progress=drop.last_progress_time,
        )
    running = supervisor.up if supervisor is not None else None
    resources = supervisor.resources if supervisor is not None else None
    start_time = supervisor.start_time if supervisor is not None and supervisor.up else None
    claimed = sum(v for (name, _), v in snap.counters.items() if name == "tdm_drops_claimed_total")
    completed = sum(v for (name, _), v in snap.counters.items() if name == "tdm_drops_completed_total")
    return {
        "running": running,
        "pid": supervisor.pid if supervisor is not None and supervisor.up else None,
        "memory_mb": round(resources.resident_memory_bytes / 2**20, 1) if resources else None,
        "cpu_percent": None if cpu_percent is None else round(cpu_percent, 2),
        "uptime_seconds": round(now - start_time, 1) if start_time is not None else None,
        "last_activity": snap.last_record_time,
        "status": snap.status,
        "session": snap.session,
        "current_mining": current,
        "supervisor": _supervisor(supervisor),
        "config": {"last_reload_successful": config.last_reload_successful, "error": config.error},
        "drops": {
            "claimed_today": snap.claims_today,
            "claimed_total": int(claimed),
            "completed_total": int(completed),
            "per_hour": round(snap.drops_per_hour, 3),
        },
        "websocket_connections": len(snap.websocket_shards),
        "last_error": _last_error(snap, supervisor),
        "display": supervisor.display if supervisor is not None else None,
        "cookies": _cookies(jar, token_expiry),
        "version": __version__,
    }


def _supervisor(status: SupervisorStatus | None) -> dict[str, Any] | None:
    if status is None:
        return None
    return {
        "state": status.state.value,
        "mode": status.mode,
        "attached": status.attached,
        "restarts": sum(status.restarts.values()),
        "last_exit_code": status.last_exit_code,
        "last_exit_meaning": status.last_exit_meaning,
        "failure": status.failure,
        "next_start_time": status.next_start_time,
        "last_exit_cause": status.last_exit_cause[1] if status.last_exit_cause else None,
        "adopted": status.adopted,
        "notice": status.notice,
    }


def _last_error(snap: Snapshot, supervisor: SupervisorStatus | None) -> dict[str, Any] | None:
    """The newer of what TDM logged last as an error and why its process last died (a traceback's
    last line: "Fatal error encountered:" alone says nothing)."""
    candidates = [snap.last_error, supervisor.last_exit_cause if supervisor is not None else None]
    known = [error for error in candidates if error is not None]
    if not known:
        return None
    time, message = max(known, key=lambda error: error[0])
    return {"time": time, "message": message}


def _cookies(jar: JarInfo | None, token_expiry: float | None) -> dict[str, Any] | None:
    if jar is None:
        return None
    return {
        "present": jar.present,
        "modified": jar.modified_time,
        "format": jar.format,
        "has_auth_token": jar.has_auth_token,
        "token_expiry": token_expiry if token_expiry is not None else jar.auth_token_expiry,
        "error": jar.error,  # why an unreadable jar cannot be read (never a cookie value)
    }


# -- what the bridge adds ------------------------------------------------------------------------------------


def capability_states(view: InventoryView | None, expected: bool) -> dict[str, str]:
    """{capability: "supported"|"unsupported"} as the launcher reported them."""
    if view is None or not view.known:
        if expected:
            return {}  # not reported yet: TDM is starting
        return dict.fromkeys(BRIDGE_CAPABILITIES, "unsupported")
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
