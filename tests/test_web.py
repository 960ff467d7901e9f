"""The route table API other modules plug into: a handler of (ctx, request), bound by web.routes(),
served by a real http.Server on 127.0.0.1. JSON bodies, errors as answers, PUT behind the Gate."""

from __future__ import annotations

import http.client

import pytest

from exporter.http import HTTPError, Request, Response, Server, json_response
from exporter.web import GET, POST, PUT, ROUTES, Endpoint, WebContext, routes


def context(**changes) -> WebContext:
    def nothing(*args):
        raise AssertionError("not used by these routes")

    fields = dict(registry=None, status=nothing, store=nothing, config=nothing, supervisor=nothing, reload=nothing)
    return WebContext(**{**fields, **changes})


def echo(ctx: WebContext, request: Request) -> Response:
    body = request.json()
    if not isinstance(body, dict):
        raise HTTPError(422, "expected a JSON object")
    return json_response(200, {"method": request.method, "got": body, "stopping": ctx.stopping()})


@pytest.fixture
def server():
    table = {**ROUTES, "/api/echo": Endpoint(POST | PUT, echo), "/api/ping": Endpoint(GET, lambda ctx, request: json_response(200, "pong"))}
    running = Server("127.0.0.1", 0, routes(context(), table)).start()
    yield running
    running.stop()


def call(server: Server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


JSON = {"Content-Type": "application/json"}


def test_a_route_added_to_the_table_is_served(server: Server) -> None:
    assert call(server, "GET", "/api/ping") == (200, '"pong"')
    assert call(server, "POST", "/api/echo", b'{"a": 1}', JSON) == (200, '{"method": "POST", "got": {"a": 1}, "stopping": false}')
    assert call(server, "PUT", "/api/echo", b'{"a": 2}', {"content-type": "application/json; charset=utf-8"})[0] == 200
    assert call(server, "DELETE", "/api/echo")[0] == 405
    assert call(server, "GET", "/-/healthy") == (200, "OK\n")  # the table's own routes are still there


@pytest.mark.parametrize(
    "body, headers, answer",
    [
        (b'{"a": 1}', {"Content-Type": "text/plain"}, (415, "send JSON (Content-Type: application/json)\n")),
        (b"{nope", JSON, (400, "the body is not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)\n")),
        (b"\xff", JSON, (400, None)),
        (b"[1]", JSON, (422, "expected a JSON object\n")),
    ],
)
def test_bad_bodies_are_answered_not_crashed(server: Server, body: bytes, headers: dict, answer) -> None:
    status, text = call(server, "POST", "/api/echo", body, headers)
    assert status == answer[0]
    if answer[1] is not None:
        assert text == answer[1]


def test_a_cross_site_put_is_refused(server: Server) -> None:
    headers = {**JSON, "Origin": "https://evil.example"}
    assert call(server, "PUT", "/api/echo", b"{}", headers)[0] == 403


def test_strict_json_never_answers_nan() -> None:
    with pytest.raises(ValueError):
        json_response(200, {"expiry": float("inf")})
