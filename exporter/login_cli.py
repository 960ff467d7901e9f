"""`twitchminert login`: press TDM's Login button through a running daemon, show the code, wait.

    twitchminert login [--config.file FILE] [--web.url URL] [--web.user USER] [--timeout SECONDS]

The daemon is found at `--web.url`, else at the config's web.listen_address. With basic auth on,
`--web.user` names the user and TWITCHMINERT_WEB_PASSWORD holds the password (never on the command
line). Prints the code and the activation URL, then waits until TDM is logged in (exit 0), the code
expires or the wait times out (exit 1). Usage errors exit 2.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable

from .config import parse_listen_address
from .environment import WEB_PASSWORD_VARIABLE

POLL_SECONDS = 1.0
DEFAULT_WAIT = 1800.0  # a device code's life at Twitch
EXIT_FAILED = 1


class DaemonError(Exception):
    """The daemon did not answer, or answered with a status we cannot go on from."""


def base_url(listen_address: str) -> str:
    host, port = parse_listen_address(listen_address)
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class DaemonClient:
    def __init__(self, url: str, user: str | None = None, password: str | None = None, timeout: float = 15.0) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Accept": "application/json"}
        if user is not None:
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        self._timeout = timeout

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self._headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as answer:
                return answer.status, _decoded(answer.read())
        except urllib.error.HTTPError as error:
            if error.code == 401:
                raise DaemonError(f"{self.url}: 401 unauthorized (set --web.user and ${WEB_PASSWORD_VARIABLE})") from None
            return error.code, _decoded(error.read())
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise DaemonError(f"no daemon answers at {self.url} ({reason})") from None


def _decoded(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace").strip()


def login(client: DaemonClient, out=sys.stdout, timeout: float | None = None,
          clock: Callable[[], float] = time.time, wait: Callable[[float], object] | None = None) -> int:
    """The command's work; returns its exit code."""
    wait = wait or threading.Event().wait
    status = _status(client)
    if status["login"]["state"] == "logged_in":
        print(f"TDM is logged in (user id {status['login']['user_id']}).", file=out)
        return 0
    code, answer = client.call("POST", "/api/miner/login", {})
    shown: dict[str, Any] | None = None
    if code == 202:
        print("Pressed Login.", file=out)
        shown = _show(answer.get("login") if isinstance(answer, dict) else None, out, shown)
    elif code == 409 and status["login"]["state"] == "code_shown":
        print("Login was pressed already.", file=out)
    elif code in (409, 501, 503):
        message = answer.get("message") if isinstance(answer, dict) else answer
        print(f"twitchminert: login: {message}", file=sys.stderr)
        return EXIT_FAILED
    else:
        raise DaemonError(f"POST /api/miner/login answered {code}: {answer}")
    deadline = clock() + (timeout if timeout is not None else DEFAULT_WAIT)
    seen_in_status = False
    while True:
        status = _status(client)
        state = status["login"]
        if state["state"] == "logged_in":
            print(f"Logged in (user id {state['user_id']}).", file=out)
            return 0
        shown = _show(state, out, shown)
        seen_in_status = seen_in_status or state["state"] == "code_shown"
        now = clock()
        expires = shown.get("code_expires_at") if shown else None
        asks_again = seen_in_status and state["state"] == "login_required"  # TDM wants a new press
        if asks_again or expires is not None and now >= expires:
            print("twitchminert: login: the code expired before it was entered; run `twitchminert login` again", file=sys.stderr)
            return EXIT_FAILED
        if now >= deadline:
            print("twitchminert: login: gave up waiting for the login", file=sys.stderr)
            return EXIT_FAILED
        wait(POLL_SECONDS)


def _status(client: DaemonClient) -> dict[str, Any]:
    code, status = client.call("GET", "/api/miner/status")
    if code != 200 or not isinstance(status, dict) or not isinstance(status.get("login"), dict):
        raise DaemonError(f"GET /api/miner/status answered {code}: the daemon has no login status (too old?)")
    return status


def _show(login: dict[str, Any] | None, out, shown: dict[str, Any] | None) -> dict[str, Any] | None:
    """Print a code not printed yet; returns the code shown last."""
    if not login or not login.get("user_code") or (shown and login["user_code"] == shown["user_code"]):
        return shown
    expires = login.get("code_expires_at")
    until = f" (expires {time.strftime('%H:%M:%S', time.localtime(expires))})" if expires else ""
    print(f"Enter this code on Twitch's activation page: {login['user_code']}{until}", file=out)
    print(f"Activation page: {login['activation_url']}", file=out)
    out.flush()
    return dict(login)


def run(args: argparse.Namespace, listen_address: Callable[[], str]) -> int:
    url = args.web_url or base_url(listen_address())
    client = DaemonClient(url, args.web_user, os.environ.get(WEB_PASSWORD_VARIABLE))
    try:
        return login(client, timeout=args.timeout)
    except DaemonError as error:
        print(f"twitchminert: login: {error}", file=sys.stderr)
        return EXIT_FAILED
