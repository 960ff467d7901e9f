"""The status API's answer, composed from snapshots. Pure: no I/O, `now` is passed in."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from . import __version__
from .bridge_web import current_mining_fields, status_fields
from .cookies import JarInfo
from .state import Snapshot
from .supervisor import SupervisorStatus

if TYPE_CHECKING:
    from .bridge_link import BridgeLink
    from .housekeeping import Seen


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
