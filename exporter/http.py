"""The HTTP server: one route table, plain stdlib threads.

Handlers are small functions of the request that return a Response; they only read snapshots,
so a scrape never waits on I/O to TDM.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Mapping
from urllib.parse import parse_qs, urlsplit

from loguru import logger
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes = b""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    methods: frozenset[str]
    handler: Handler


def text(status: int, message: str) -> Response:
    return Response(status, (message + "\n").encode())


def metrics_route(registry: CollectorRegistry) -> Route:
    def handle(request: Request) -> Response:
        return Response(200, generate_latest(registry), CONTENT_TYPE_LATEST)

    return Route(frozenset({"GET", "HEAD"}), handle)


def get(handler: Handler) -> Route:
    return Route(frozenset({"GET", "HEAD"}), handler)


def post(handler: Handler) -> Route:
    return Route(frozenset({"POST"}), handler)


class _RequestHandler(BaseHTTPRequestHandler):
    routes: Mapping[str, Route] = {}
    server_version = "twitchminert"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        route = self.routes.get(url.path)
        if route is None:
            response = text(404, "not found")
        elif method not in route.methods:
            response = Response(405, b"method not allowed\n", headers={"Allow": ", ".join(sorted(route.methods))})
        else:
            response = self._call(route, method, url)
        self._send(response, with_body=method != "HEAD")

    def _call(self, route: Route, method: str, url) -> Response:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            return text(413, "request body too large")
        body = self.rfile.read(length) if length else b""
        request = Request(method, url.path, parse_qs(url.query), dict(self.headers.items()), body)
        try:
            return route.handler(request)
        except Exception:
            logger.exception("HTTP {} {} failed", method, url.path)
            return text(500, "internal error")

    def _send(self, response: Response, with_body: bool) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if with_body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args) -> None:
        logger.debug("http: " + format, *args)


class Server:
    """A running server; `port` is the bound one (useful with port 0); `stop()` shuts it down."""

    def __init__(self, host: str, port: int, routes: Mapping[str, Route]) -> None:
        handler = type("RouteHandler", (_RequestHandler,), {"routes": dict(routes)})
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self.host, self.port = self._httpd.server_address[:2]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="twitchminert-http")

    def start(self) -> "Server":
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()


def parse_listen_address(address: str) -> tuple[str, int]:
    """"127.0.0.1:9797", ":9797" (all interfaces) or "[::1]:9797"."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected host:port, got {address!r}")
    host = host.strip("[]")
    return host or "0.0.0.0", int(port)
