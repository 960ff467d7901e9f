"""The bridge protocol between TDM's process (the launcher) and the daemon. Standard library only.

Two directions, two channels:
- **Out, as records.** The launcher writes each change of TDM's window as one record of level
  `STATE` into the captured-output file: the message is compact JSON `{"v": 1, "type": ..., ...}`.
  The same framer, positions and store as every other record: the daemon resumes exactly, and
  `twitchminert replay` rebuilds the same picture from the file.
- **In, as calls.** A Unix socket in the data dir (mode 0600, the launcher's uid only): one JSON
  request line `{"v": 1, "op": ...}` in, one JSON answer line out, then the connection closes.
  Every call is bounded by a timeout; a dead or missing launcher raises `BridgeUnavailable` at once.

Answers are `{"ok": true, ...}` or `{"ok": false, "error": CODE, "message": text}` with CODE one of
ERRORS. The device code of TDM's login never crosses either channel; the user code and the
activation URL do (the captured file is 0600, the API serves them behind its auth).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path
from typing import Any, Iterator

STATE_LEVEL = "STATE"
SCHEMA_VERSION = 1
SOCKET_NAME = "bridge.sock"  # in the data dir
CALL_TIMEOUT = 5.0
MAX_REQUEST_BYTES = 64 * 1024
MAX_ANSWER_BYTES = 16 * 1024 * 1024  # a snapshot of a large inventory
# Control operations. `ping` answers from the launcher's thread; the others run on TDM's loop.
OPS = ("ping", "login", "reload", "state")
ERRORS = ("unsupported", "not_waiting", "not_ready", "timeout", "bad_request", "failed")
# sun_path holds 108 bytes; longer paths are reached through the folder's /proc/self/fd entry.
_SUN_PATH_MAX = 100


class BridgeUnavailable(Exception):
    """The launcher cannot be reached: no socket, nobody listening, a timeout, a garbled answer."""


def encode_record(kind: str, **fields: Any) -> str:
    """The message of one STATE record."""
    return json.dumps({"v": SCHEMA_VERSION, "type": kind, **fields}, ensure_ascii=False, separators=(",", ":"))


def decode_record(message: str) -> dict[str, Any] | None:
    """A STATE record's message as a dict with a `type`, or None if it is not one we can read
    (garbled, or a newer major schema version)."""
    try:
        data = json.loads(message)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("v") != SCHEMA_VERSION or not isinstance(data.get("type"), str):
        return None
    return data


@contextlib.contextmanager
def unix_address(path: Path) -> Iterator[str]:
    """An address for bind/connect that fits sun_path, however deep `path` lies."""
    text = os.fspath(path)
    if len(os.fsencode(text)) <= _SUN_PATH_MAX:
        yield text
        return
    folder = os.open(os.path.dirname(text) or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{folder}/{os.path.basename(text)}"
    finally:
        os.close(folder)


def call(path: Path, op: str, timeout: float = CALL_TIMEOUT, **arguments: Any) -> dict[str, Any]:
    """Send one request to the launcher and return its answer (a dict with `ok`).

    Raises BridgeUnavailable when there is no answer within `timeout` seconds in all."""
    request = json.dumps({"v": SCHEMA_VERSION, "op": op, **arguments}).encode() + b"\n"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            with unix_address(Path(path)) as address:
                sock.connect(address)
            sock.sendall(request)
            data = _read_line(sock, MAX_ANSWER_BYTES)
    except FileNotFoundError:
        raise BridgeUnavailable(f"no bridge socket at {path} (is TDM running through the launcher?)") from None
    except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError):
        raise BridgeUnavailable(f"nothing answers on {path} (TDM is not running)") from None
    except TimeoutError:
        raise BridgeUnavailable(f"no answer from TDM within {timeout:g} s") from None
    except OSError as error:
        raise BridgeUnavailable(f"cannot reach TDM through {path}: {error.strerror or error}") from None
    try:
        answer = json.loads(data)
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
        raise BridgeUnavailable("TDM's launcher gave an answer we cannot read")
    return answer


def _read_line(sock: socket.socket, limit: int) -> bytes:
    """Bytes up to the first newline (or EOF); raises ValueError-free: a too long line is cut."""
    chunks = bytearray()
    while b"\n" not in chunks and len(chunks) <= limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks += chunk
    return bytes(chunks.split(b"\n", 1)[0])


def read_request(sock: socket.socket) -> dict[str, Any] | None:
    """The server side: one request, or None if it is not a request we understand."""
    data = _read_line(sock, MAX_REQUEST_BYTES)
    try:
        request = json.loads(data)
    except ValueError:
        return None
    if not isinstance(request, dict) or request.get("v") != SCHEMA_VERSION or request.get("op") not in OPS:
        return None
    return request


def error(code: str, message: str) -> dict[str, Any]:
    assert code in ERRORS, code
    return {"ok": False, "error": code, "message": message}
