"""The HTTP server: plain stdlib threads serving a table of routes (the table is in web.py).

A route's handler is a small function of the request that returns a Response; handlers only read
snapshots, so a scrape never waits on I/O to TDM.
"""

from __future__ import annotations

import json
import selectors
import socket
import ssl
import sys
import threading
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Mapping
from urllib.parse import parse_qs, urlsplit

from loguru import logger

from .webconfig import Gate, WebConfigFile, ssl_context, tls_listener

MAX_BODY_BYTES = 64 * 1024
MAX_DRAIN_BYTES = 4 * 1024 * 1024  # of a refused body, read and dropped so the client sees the answer


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """A request header, whatever its case."""
        wanted = name.lower()
        return next((value for key, value in self.headers.items() if key.lower() == wanted), None)

    def json(self) -> Any:
        """The body as JSON; HTTPError 415 unless sent as application/json, 400 if it does not parse."""
        content_type = (self.header("Content-Type") or "").split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            raise HTTPError(415, "send JSON (Content-Type: application/json)")
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, ValueError) as error:  # JSONDecodeError is a ValueError
            raise HTTPError(400, f"the body is not JSON: {error}") from None


class HTTPError(Exception):
    """Raised by a handler (or Request.json()): the server answers `status` with `message` as text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


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


def json_response(status: int, value: Any) -> Response:
    """Strict JSON: NaN or Infinity is an error here, never an answer a JSON parser refuses."""
    return Response(status, json.dumps(value, allow_nan=False).encode(), "application/json")


def json_refusal(request: Request) -> Response | None:
    """Routes that change something take JSON only: an empty body or a JSON object, sent as
    application/json (a cross-site form cannot send that without a preflight). None: accepted."""
    content_type = next((v for k, v in request.headers.items() if k.lower() == "content-type"), "")
    if request.body and content_type.split(";", 1)[0].strip().lower() != "application/json":
        return json_response(415, {"error": "unsupported_media_type", "message": "send a JSON body (Content-Type: application/json)"})
    if request.body:
        try:
            body = json.loads(request.body)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return json_response(400, {"error": "bad_request", "message": "the body must be a JSON object"})
    return None


def get(handler: Handler) -> Route:
    return Route(frozenset({"GET", "HEAD"}), handler)


def post(handler: Handler) -> Route:
    return Route(frozenset({"POST"}), handler)


class _RequestHandler(BaseHTTPRequestHandler):
    routes: Mapping[str, Route] = {}
    gate: Gate = Gate()
    timeout = 30  # a silent (TLS) client holds its thread, but not forever
    # Headers and body go out in two writes: with Nagle on, the second waits for the client's
    # delayed ACK (40 ms on Linux) on every keep-alive request.
    disable_nagle_algorithm = True
    server_version = "twitchminert"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        self._body_read = False
        url = urlsplit(self.path)
        denial = self.gate.check(method, url.path, self.headers)
        route = self.routes.get(url.path)
        if denial is not None:
            # close: an unread POST body must not be parsed as the next request
            response = Response(denial.status, denial.body, headers={**denial.headers, "Connection": "close"})
        elif route is None:
            response = text(404, "not found")
        elif method not in route.methods:
            response = Response(405, b"method not allowed\n", headers={"Allow": ", ".join(sorted(route.methods))})
        else:
            response = self._call(route, method, url)
        declared = self.headers.get("Content-Length") not in (None, "0") or "Transfer-Encoding" in self.headers
        unread = declared and not self._body_read
        if unread:  # a body we did not read must not be parsed as the next request
            response = replace(response, headers={**response.headers, "Connection": "close"})
        self._send(response, with_body=method != "HEAD")
        if unread:
            self._discard_body()

    def _discard_body(self) -> None:
        """Read and drop (up to MAX_DRAIN_BYTES of) a body we refused before closing: a client still
        sending it would otherwise get a connection reset instead of our answer."""
        raw = (self.headers.get("Content-Length") or "").strip()
        left = min(int(raw), MAX_DRAIN_BYTES) if raw.isascii() and raw.isdigit() else 0
        try:
            while left > 0:
                chunk = self.rfile.read(min(left, 64 * 1024))
                if not chunk:
                    break
                left -= len(chunk)
        except (OSError, ValueError):  # the client went away or timed out: we close anyway
            pass

    def _call(self, route: Route, method: str, url) -> Response:
        if "Transfer-Encoding" in self.headers:
            return text(411, "send the body with a Content-Length")
        raw = (self.headers.get("Content-Length") or "0").strip()
        if not raw.isascii() or not raw.isdigit():  # int() would take "-1" (read to EOF), "1_0" or "+1"
            return text(400, "bad Content-Length")
        length = int(raw)
        if length > MAX_BODY_BYTES:
            return text(413, "request body too large")
        body = self.rfile.read(length) if length else b""
        self._body_read = True
        request = Request(method, url.path, parse_qs(url.query), dict(self.headers.items()), body)
        try:
            return route.handler(request)
        except HTTPError as error:
            return text(error.status, error.message)
        except Exception:
            logger.exception("HTTP {} {} failed", method, url.path)
            return text(500, "internal error")

    def _send(self, response: Response, with_body: bool) -> None:
        response = replace(response, headers={**self.gate.response_headers, **response.headers})
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if with_body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args) -> None:
        logger.debug("http: {}", format % args)  # loguru formats with {}, not %


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # listen backlog; socketserver's 5 drops SYNs (1 s retries) when scrapers connect at once

    def __init__(self, *args, **kwargs) -> None:
        # socketserver's serve_forever wakes every 0.5 s to look for shutdown(); ours sleeps until a
        # connection comes or shutdown() writes to this pair.
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._closing = False
        self._loop_done = threading.Event()
        try:
            super().__init__(*args, **kwargs)
        except BaseException:
            self._close_wake()
            raise

    def serve_forever(self, poll_interval: float | None = None) -> None:
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self, selectors.EVENT_READ)
                selector.register(self._wake_reader, selectors.EVENT_READ)
                while not self._closing:
                    ready = selector.select(poll_interval)
                    if self._closing:
                        break
                    if any(key.fileobj is self for key, _ in ready):
                        self._handle_request_noblock()
                    self.service_actions()
        finally:
            self._loop_done.set()

    def shutdown(self) -> None:
        """Stop serve_forever() (running on another thread) and wait for it."""
        self._closing = True
        try:
            self._wake_writer.send(b"x")
        except OSError:
            pass  # already closed: nothing is waiting
        self._loop_done.wait()

    def server_close(self) -> None:
        super().server_close()
        self._close_wake()

    def _close_wake(self) -> None:
        self._wake_reader.close()
        self._wake_writer.close()

    def handle_error(self, request, client_address) -> None:
        # Plain HTTP to the TLS port, or a client that went away: not worth a traceback.
        if isinstance(sys.exc_info()[1], (ssl.SSLError, ConnectionError, TimeoutError)):
            logger.debug("http: dropped connection from {}", client_address[0])
            return
        super().handle_error(request, client_address)


class Server:
    """A bound server; `port` is the bound one (useful with port 0); `start()` serves, `stop()` shuts it down.

    Binding happens here, so a busy address fails before anything else is started. `takeover()` builds
    a server on this one's listening socket (a reload that keeps the address: never unbound).
    """

    def __init__(
        self,
        host: str,
        port: int,
        routes: Mapping[str, Route],
        web: WebConfigFile | None = None,
        listener: socket.socket | None = None,
    ) -> None:
        handler = type("RouteHandler", (_RequestHandler,), {"routes": dict(routes), "gate": Gate.from_config(web)})
        if listener is None:
            self._httpd = _HTTPServer((host, port), handler)
        else:
            self._httpd = _HTTPServer((host, port), handler, bind_and_activate=False)
            self._httpd.socket.close()
            self._httpd.socket = listener
            self._httpd.server_address = listener.getsockname()
        try:
            context = ssl_context(web) if web is not None else None
        except BaseException:
            self._httpd.server_close()
            raise
        if context is not None:
            self._httpd.socket = tls_listener(self._httpd.socket, context)
        self.scheme = "https" if context is not None else "http"
        self.host, self.port = self._httpd.server_address[:2]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="twitchminert-http")

    def takeover(self, routes: Mapping[str, Route], web: WebConfigFile | None = None) -> "Server":
        """A new (not started) server on a copy of this one's listening socket; stop this one after starting it."""
        listening = self._httpd.socket
        listener = socket.fromfd(listening.fileno(), listening.family, listening.type)  # a plain dup, even of TLS
        try:
            return Server(self.host, self.port, routes, web, listener)
        except BaseException:
            listener.close()
            raise

    def start(self) -> "Server":
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()
