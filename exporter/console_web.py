"""The web console's routes: the settings editor (`GET/PUT /api/settings`) and the history API.

Handlers only translate HTTP to the editor and history calls and back. They take `(ctx, request)`,
ctx being web.py's WebContext, whose `console` field holds the parts they need (a Console); web.py
lists them in its route table. Auth and the cross-site check happen before routing (the Gate), for
PUT as for POST.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable

from .history import EventQuery, History, HistoryError, known_zone, per_day
from .http import Request, Response
from .settings_editor import Answer, SettingsEditor
from .state import Drop
from .webconfig import parse_basic

STATS_DAYS = 14


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    """http.json_response plus headers (ETag) and no caching: these answers change under the page."""
    return Response(status, json.dumps(body).encode(), "application/json", {"Cache-Control": "no-store", **(headers or {})})


def _answer(answer: Answer) -> Response:
    return json_response(answer.status, answer.body, dict(answer.headers))


def _header(request: Request, name: str) -> str | None:
    wanted = name.lower()
    return next((value for key, value in request.headers.items() if key.lower() == wanted), None)


def authenticated_user(request: Request, auth_on: bool) -> str | None:
    """The basic-auth user of a request the Gate let through; None when auth is off (a header is then unchecked)."""
    if not auth_on:
        return None
    credentials = parse_basic(_header(request, "Authorization"))
    return credentials[0].decode("utf-8", "replace") if credentials else None


def _param(request: Request, name: str) -> str | None:
    values = request.query.get(name)
    return values[0] if values else None


@dataclass(frozen=True)
class Console:
    """What the console's routes need from the daemon. `current_drop` gives the drop being mined now;
    `known_games` the game names seen (to split a claim's text into game and rewards); `auth_on` whether
    basic auth is on (only then is the Authorization header's user a checked one)."""

    editor: SettingsEditor
    history: History
    current_drop: Callable[[], Drop | None]
    known_games: Callable[[], list[str]]
    auth_on: Callable[[], bool]


# Handlers take (ctx, request); ctx is web.WebContext (not imported: web.py imports this module).


def settings(ctx: Any, request: Request) -> Response:
    console: Console = ctx.console
    if request.method == "PUT":
        user = authenticated_user(request, console.auth_on())
        return _answer(console.editor.update(request.body, _header(request, "Content-Type"), _header(request, "If-Match"), user))
    return _answer(console.editor.read())


def history_events(ctx: Any, request: Request) -> Response:
    try:
        query = EventQuery.from_params(dict(request.query))
    except HistoryError as error:
        return json_response(400, {"error": str(error)})
    return json_response(200, ctx.console.history.events(query))


def history_claims(ctx: Any, request: Request) -> Response:
    try:
        limit = int(_param(request, "limit") or 100)
    except ValueError:
        return json_response(400, {"error": "limit must be a whole number"})
    console: Console = ctx.console
    return json_response(200, {"claims": console.history.claims(limit, console.known_games())})


def history_stats(ctx: Any, request: Request) -> Response:
    console: Console = ctx.console
    try:
        zone = known_zone(_param(request, "tz"))
        days = int(_param(request, "days") or STATS_DAYS)
    except HistoryError as error:
        return json_response(400, {"error": str(error)})
    except ValueError:
        return json_response(400, {"error": "days must be a whole number"})
    days = min(max(days, 1), 90)
    now = time.time()
    times = console.history.claim_times(now - (days + 1) * 86400.0)
    current = console.current_drop()
    drop, game = (current.name, current.game) if current is not None else (None, None)
    return json_response(200, {
        "zone": zone,
        "per_day": per_day(times, zone, days, now),
        "progress": {"drop": drop, "game": game, "points": console.history.progress(drop, game)},
    })
