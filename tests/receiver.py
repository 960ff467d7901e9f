"""A local HTTP receiver standing in for a notification service (Discord, ntfy, ...): Apprise's
`json://127.0.0.1:PORT/PATH` posts each message to it. It records what arrived, and can fail the first
N posts (HTTP 500) or hold every post until released, to show a bad channel delays nothing else."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self, fail_first: int = 0, hang: bool = False) -> None:
        self.messages: list[dict] = []  # {"path", "title", "message", ...}
        self.attempts = 0
        self.fail_first = fail_first
        self.release = threading.Event()  # a hanging receiver answers once this is set
        self.hang = hang
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.attempts += 1
                if receiver.hang:
                    receiver.release.wait(30)  # bounded: a test that forgets to release still ends
                if receiver.attempts <= receiver.fail_first:
                    status = 500
                else:
                    status = 200
                    receiver.messages.append({"path": self.path, **json.loads(body or b"{}")})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="test-receiver")

    def url(self, path: str = "hook/s3cr3t-token") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def of(self, event_title: str) -> list[dict]:
        return [m for m in self.messages if m.get("title") == event_title]

    def __enter__(self) -> "Receiver":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()
