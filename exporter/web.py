"""The HTTP API: one route table (ROUTES) and the handlers behind it.

A handler is `handler(ctx, request) -> Response`. `ctx` is a WebContext: everything handlers may read
or ask of the daemon, as callables, so the parts a config reload replaces are always the current
ones. `routes(ctx)` binds the table for `http.Server`.

To add a route: write its handler in your own module, taking `(ctx, request)` and importing only
`http` (Request, Response, text, json_response) at run time, so that module never imports this one;
add what it needs to WebContext as a field with a default, and one line to ROUTES. The web config's
Gate (basic auth, cross-site refusal of POST/PUT/DELETE) applies to every route before its handler.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from loguru import logger

from . import __version__, bridge_web, console_web, notify_web
from .config import parse_listen_address
from .http import Request, Response, Route, Server, json_response, text
from .metrics import exposition

if TYPE_CHECKING:
    from .bridge_link import BridgeLink
    from .config import Config
    from .console_web import Console
    from .notify import Notifier
    from .state import Snapshot
    from .store import Store
    from .supervisor import Supervisor
    from .webconfig import WebConfigFile

LANDING_PAGE = Path(__file__).with_name("landing.html")
GET = frozenset({"GET", "HEAD"})
POST = frozenset({"POST"})
PUT = frozenset({"PUT"})
DEFAULT_EVENTS_LIMIT = 100


@dataclass(frozen=True)
class WebContext:
    """What route handlers get from the daemon. Each callable answers for the current parts."""

    registry: Collector  # /metrics
    status: Callable[[float], dict[str, Any]]  # the /api/miner/status answer at wall time `now`
    store: Callable[[], "Store"]
    config: Callable[[], "Config"]
    supervisor: Callable[[], "Supervisor | None"]  # None: no miner.dir, nobody supervised
    reload: Callable[[str], tuple[bool, str]]  # source ("http", "cli") -> (applied or unchanged, message)
    stopping: Callable[[], bool] = lambda: False
    config_file: Path | None = None  # the file reloads read; None: started without one
    console: "Console | None" = None  # the web console's settings editor and history
    snapshot: Callable[[], "Snapshot"] | None = None  # the bridge's handlers: TDM's own picture
    bridge: Callable[[], "BridgeLink"] | None = None  # the bridge's handlers: calls to TDM's launcher
    notifier: Callable[[], "Notifier | None"] = lambda: None  # None: notifications not wired


Handler = Callable[[WebContext, Request], Response]


@dataclass(frozen=True)
class Endpoint:
    methods: frozenset[str]
    handler: Handler


def routes(ctx: WebContext, table: Mapping[str, Endpoint] | None = None) -> dict[str, Route]:
    """The route table bound to `ctx`: what http.Server takes."""
    return {path: _bind(ctx, endpoint) for path, endpoint in (ROUTES if table is None else table).items()}


def _bind(ctx: WebContext, endpoint: Endpoint) -> Route:
    handler = endpoint.handler
    return Route(endpoint.methods, lambda request: handler(ctx, request))


def query_arg(request: Request, name: str) -> str | None:
    """The first value of a query parameter, or None."""
    values = request.query.get(name)
    return values[0] if values else None


# -- handlers ------------------------------------------------------------------------------------


def landing(ctx: WebContext, request: Request) -> Response:
    return Response(200, LANDING_PAGE.read_bytes(), "text/html; charset=utf-8")


def metrics(ctx: WebContext, request: Request) -> Response:
    return Response(200, exposition(ctx.registry), CONTENT_TYPE_LATEST)  # generate_latest's bytes, faster


def miner_status(ctx: WebContext, request: Request) -> Response:
    return json_response(200, ctx.status(time.time()))


def events(ctx: WebContext, request: Request) -> Response:
    """Stored events, newest first: ?kind= &level= &since= &until= (epoch seconds) &limit= (at least 1)."""
    try:
        since = float(query_arg(request, "since")) if query_arg(request, "since") else None
        until = float(query_arg(request, "until")) if query_arg(request, "until") else None
        limit = int(query_arg(request, "limit") or DEFAULT_EVENTS_LIMIT)
    except ValueError:
        return text(400, "since, until and limit must be numbers")
    if limit < 1:
        return text(400, f"limit must be at least 1, got {limit}")
    found = ctx.store().query_events(query_arg(request, "kind"), query_arg(request, "level"), since, until, limit)
    return json_response(200, [event.to_dict() for event in found])


def healthy(ctx: WebContext, request: Request) -> Response:
    return text(200, "OK")


def ready(ctx: WebContext, request: Request) -> Response:
    return text(503, "stopping") if ctx.stopping() else text(200, "ready")


def reload(ctx: WebContext, request: Request) -> Response:
    source = "cli" if query_arg(request, "source") == "cli" else "http"
    wanted = query_arg(request, "file")
    if wanted and ctx.config_file is not None and Path(wanted).resolve() != ctx.config_file.resolve():
        # `config apply OTHER.yaml`: the daemon only ever reads its own file.
        return text(409, f"this daemon reads {ctx.config_file}, not {wanted}: edit that file, or apply it there")
    ok, message = ctx.reload(source)
    return text(200 if ok else 400, message)


def restart(ctx: WebContext, request: Request) -> Response:
    supervisor = ctx.supervisor()
    if supervisor is None:
        return text(409, "no miner is supervised (set miner.dir)")
    if ctx.config().miner.mode != "run":
        return text(409, "miner.mode is attach: twitchminert does not restart a TDM it did not start")
    restarted = supervisor.restart("manual")
    return text(200 if restarted else 409, "restarting" if restarted else "not restarted (stopping?)")


ROUTES: dict[str, Endpoint] = {
    "/": Endpoint(GET, landing),
    "/metrics": Endpoint(GET, metrics),
    "/api/miner/status": Endpoint(GET, miner_status),
    "/api/events": Endpoint(GET, events),
    "/-/healthy": Endpoint(GET, healthy),
    "/-/ready": Endpoint(GET, ready),
    "/-/reload": Endpoint(POST, reload),
    "/-/restart": Endpoint(POST, restart),
    "/api/settings": Endpoint(GET | PUT, console_web.settings),
    "/api/history/events": Endpoint(GET, console_web.history_events),
    "/api/history/claims": Endpoint(GET, console_web.history_claims),
    "/api/history/stats": Endpoint(GET, console_web.history_stats),
    "/api/campaigns": Endpoint(GET, bridge_web.campaigns),
    "/api/channels": Endpoint(GET, bridge_web.channels),
    "/api/games": Endpoint(GET, bridge_web.games),
    "/api/miner/login": Endpoint(POST, bridge_web.press_login),
    "/api/miner/reload": Endpoint(POST, bridge_web.press_reload),
    "/api/notifications": Endpoint(GET, notify_web.notifications),
    "/api/notify/test": Endpoint(POST, notify_web.notify_test),
}


# -- the listener ----------------------------------------------------------------------------------


class Listener:
    """The daemon's HTTP server: bound at once, so a busy address fails before anything starts, and
    moved by reloads without a moment unbound (the new one is bound before the old one stops)."""

    def __init__(self, address: str, ctx: WebContext, web: WebConfigFile | None) -> None:
        self._ctx = ctx
        self.address = address
        self.server = self._bind(address, web)
        self._stoppers: list[threading.Thread] = []  # old servers, shutting down

    def _bind(self, address: str, web: WebConfigFile | None) -> Server:
        """Raises ValueError naming the address when it is bad, busy or not ours to bind."""
        try:
            host, port = parse_listen_address(address)
            return Server(host, port, routes(self._ctx), web)
        except (OSError, OverflowError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            raise ValueError(f"web.listen_address {address}: {reason}") from None
        except ValueError as error:
            raise ValueError(f"web.listen_address {address}: {error}") from None

    def prepare(self, address: str, web: WebConfigFile | None) -> Server:
        """A new server for a reload, not started: the same listening socket when the address stays."""
        if address == self.address:
            return self.server.takeover(routes(self._ctx), web)
        try:
            return self._bind(address, web)
        except ValueError as error:
            raise ValueError(f"{error}: keeping the server on {self.address}") from None

    def start(self) -> None:
        self._serve(self.server)

    def switch(self, server: Server, address: str) -> None:
        """Serve with `server` (from prepare(address, ...)) and stop the old one."""
        old, self.server, self.address = self.server, server, address
        self._serve(server)
        # Not on this thread, maybe one of the old server's requests: closing a server joins its requests.
        self._stoppers = [thread for thread in self._stoppers if thread.is_alive()]
        stopper = threading.Thread(target=old.stop, name="twitchminert-http-restart")
        self._stoppers.append(stopper)
        stopper.start()

    def stop(self) -> None:
        for stopper in self._stoppers:
            stopper.join()
        self.server.stop()

    @staticmethod
    def _serve(server: Server) -> None:
        server.start()
        logger.info("twitchminert {} listening on {}://{}:{}/", __version__, server.scheme, server.host, server.port)
