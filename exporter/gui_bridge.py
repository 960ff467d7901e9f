"""The in-process half of the bridge: runs inside TDM's interpreter, installed by the launcher.

Standard library only (TDM's venv does not have our dependencies). After TDM imports `gui`,
`GuiBridge.install(gui)` wraps the GUI methods TDM calls when its state changes
(`shared/tdm/gui_hooks.md`) and writes each change as a STATE record (see `bridge`). Each wrapper
calls TDM's method unchanged; what it observes is read in a `try` that never lets an error reach
TDM. A method that is not there leaves its capability unsupported (the `hello` record says which);
TDM runs on as if we were not there.

The control server (a thread, Unix socket) answers `ping`, `login`, `reload` and `state`. Anything
that touches TDM's objects runs on TDM's asyncio loop (`call_soon_threadsafe`), bounded by a timeout.
`login` sets the Login button's event, as the button does; TDM then shows the code and, 4 s later,
opens the activation page in a browser: after a press that came through the bridge that browser is
not started (nobody sits at this display; the code and URL are in the status).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import datetime
import functools
import inspect
import json
import os
import socket
import stat
import struct
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from exporter.bridge import CALL_TIMEOUT, encode_record, error, read_request, unix_address

CODE_LIFETIME = 1800.0  # Twitch's device codes: `expires_in` when TDM does not tell us
VIEWERS_EVERY = 60.0  # a channel whose viewer count alone changed is written at most this often
LOOP_TIMEOUT = 2.0  # a call's work on TDM's loop (it takes milliseconds); the client waits CALL_TIMEOUT
CONNECTION_TIMEOUT = 2.0  # a client that sends nothing
CODE_WAIT = 2.0  # after a press, how long `login` waits for TDM to show the code (it does at once)
# (capability, class, method): a capability is supported when all of its hooks are installed.
HOOKS = (
    ("login_status", "LoginForm", "update"),
    ("login", "LoginForm", "ask_enter_code"),
    ("login", "LoginForm", "wait_for_login_press"),
    ("campaigns", "InventoryOverview", "clear"),
    ("campaigns", "InventoryOverview", "add_campaign"),
    ("drop_progress", "InventoryOverview", "update_drop"),
    ("current_drop", "GUIManager", "display_drop"),
    ("current_drop", "GUIManager", "clear_drop"),
    ("games", "GUIManager", "set_games"),
    ("channels", "ChannelList", "clear"),
    ("channels", "ChannelList", "display"),
    ("channels", "ChannelList", "remove"),
    ("watching", "ChannelList", "set_watching"),
    ("watching", "ChannelList", "clear_watching"),
    ("websocket", "WebsocketStatus", "update"),
    ("websocket", "WebsocketStatus", "remove"),
    ("status_bar", "StatusBar", "update"),
    ("status_bar", "StatusBar", "clear"),
    ("reload", "GUIManager", "__init__"),
)
ASYNC_HOOKS = frozenset({"ask_enter_code", "wait_for_login_press", "add_campaign"})  # coroutine functions
CAPABILITIES = tuple(dict.fromkeys(capability for capability, _, _ in HOOKS))
# LoginForm.update's status is translated: these keys of TDM's translations name the states.
_LOGIN_TEXT_KEYS = {"logged_in": "logged_in", "logged_out": "logged_out", "logging_in": "logging_in", "required": "login_required"}
_LOGIN_ENGLISH = {"Logged in": "logged_in", "Logged out": "logged_out", "Logging in...": "logging_in", "Login required": "login_required"}


class GuiBridge:
    """Hooks on one `gui` module, the picture they saw, and the control server."""

    def __init__(self, write: Callable[[str], None], control_path: Path | None = None,
                 warn: Callable[[str], None] | None = None, clock: Callable[[], float] = time.time) -> None:
        self._write = write
        self._control_path = Path(control_path) if control_path is not None else None
        self._warn = warn or (lambda text: print(f"twitchminert launcher: {text}", file=sys.stderr, flush=True))
        self._clock = clock
        self._warned: set[str] = set()
        self.capabilities: dict[str, bool] = {}
        self._state_enum: Any = None  # TDM's constants.State
        self._login_texts: dict[str, str] = dict(_LOGIN_ENGLISH)
        # What the hooks saw. Written on TDM's loop thread only; the control thread reads flags.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._manager: Any = None
        self._login_form: Any = None
        self._waiting = False  # wait_for_login_press is waiting for the Login button
        self._remote_press = False  # the last press came through the bridge: no browser
        self._pending_code: dict[str, Any] | None = None
        self._code_shown = threading.Event()  # set when a code is shown (after a press)
        self._login: dict[str, Any] | None = None
        self._code: dict[str, Any] | None = None
        self._campaigns: dict[str, Any] = {}
        self._channels: dict[str, Any] = {}
        self._channel_written: dict[str, tuple[dict[str, Any], float]] = {}
        self._watching: str | None = None
        self._games: list[dict[str, Any]] = []
        self._websockets: dict[int, dict[str, Any]] = {}
        self._status = ""
        self._current_drop: Any = None
        self._current_written: dict[str, Any] | None = None
        self._server: ControlServer | None = None

    # -- installing -------------------------------------------------------------------------

    def install(self, gui: ModuleType) -> dict[str, bool]:
        """Wrap every hook `gui` has; write the `hello` record. Returns the capabilities."""
        installed: dict[str, list[bool]] = {}
        missing = []
        for capability, class_name, method in HOOKS:
            ok = self._wrap(getattr(gui, class_name, None), method)
            installed.setdefault(capability, []).append(ok)
            if not ok:
                missing.append(f"{class_name}.{method}")
        self._state_enum = _find_state_enum(gui)
        if self._state_enum is None:
            installed["reload"].append(False)
            missing.append("constants.State.INVENTORY_FETCH")
        self.capabilities = {name: all(found) for name, found in installed.items()}
        self._replace_webopen(gui)
        self._learn_login_texts()
        self._emit("hello", pid=os.getpid(), capabilities=self.capabilities, missing=missing,
                   control=self._control_path is not None)
        return self.capabilities

    def _wrap(self, cls: Any, method: str) -> bool:
        original = getattr(cls, method, None) if isinstance(cls, type) else None
        if not callable(original) or (method == "__init__" and original is object.__init__):
            return False
        observe = getattr(self, f"_on_{cls.__name__}_{method.strip('_')}")
        bridge = self
        if inspect.iscoroutinefunction(original) != (method in ASYNC_HOOKS):
            return False  # another shape than the one we know: leave it alone
        if method in ASYNC_HOOKS:
            @functools.wraps(original)
            async def wrapper(obj, *args, **kwargs):
                return await observe(original, obj, *args, **kwargs)
        else:
            @functools.wraps(original)
            def wrapper(obj, *args, **kwargs):
                result = original(obj, *args, **kwargs)
                bridge._guarded(observe, obj, *args, **kwargs)
                return result
        setattr(cls, method, wrapper)
        return True

    def _guarded(self, observe: Callable, *args, **kwargs) -> None:
        try:
            observe(*args, **kwargs)
        except Exception as exc:  # never break TDM for our picture of it
            self._warn_once(f"{getattr(observe, '__name__', observe)}", f"bridge: {observe.__name__} failed ({exc!r}); TDM runs on")

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self._warn(text)

    def _replace_webopen(self, gui: ModuleType) -> None:
        original = getattr(gui, "webopen", None)
        if not callable(original):
            return
        bridge = self

        @functools.wraps(original)
        def webopen(url, *args, **kwargs):
            if bridge._remote_press:  # pressed through the bridge: the code and URL are in the status
                bridge._remote_press = False
                return None
            return original(url, *args, **kwargs)

        gui.webopen = webopen

    def _learn_login_texts(self) -> None:
        translate = sys.modules.get("translate")
        lookup = getattr(translate, "_", None)
        if not callable(lookup):
            return
        for key, state in _LOGIN_TEXT_KEYS.items():
            try:
                text = lookup("gui", "login", key)
            except Exception:
                continue
            if isinstance(text, str):
                self._login_texts[text] = state

    # -- writing ----------------------------------------------------------------------------

    def _emit(self, kind: str, **fields: Any) -> None:
        try:
            self._write(encode_record(kind, **fields))
        except Exception as exc:
            self._warn_once("write", f"bridge: cannot write the captured output ({exc}); TDM's state will be missing from it")

    def _seen_loop(self) -> None:
        if self._loop is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                pass

    # -- hooks: the GUI manager --------------------------------------------------------------

    def _on_GUIManager_init(self, manager, *args, **kwargs) -> None:
        self._manager = manager
        self._seen_loop()
        if self._control_path is not None and self._server is None:
            self._server = ControlServer(self._control_path, self.handle, self._warn)
            self._server.start()

    def _on_GUIManager_set_games(self, manager, games, *args, **kwargs) -> None:
        self._games = sorted((_game(game) for game in games), key=lambda game: (game["name"] or "").casefold())
        self._emit("games", games=self._games)

    def _on_GUIManager_display_drop(self, manager, drop, *args, **kwargs) -> None:
        self._current_drop = drop
        serialised = _drop(drop)
        if serialised != self._current_written:
            self._current_written = serialised
            self._emit("current_drop", drop=serialised)

    def _on_GUIManager_clear_drop(self, manager, *args, **kwargs) -> None:
        self._current_drop = None
        if self._current_written is not None:
            self._current_written = None
            self._emit("current_drop", drop=None)

    # -- hooks: login ------------------------------------------------------------------------

    def _on_LoginForm_update(self, form, status, user_id=None, *args, **kwargs) -> None:
        self._login_form = form
        state = self._login_texts.get(str(status)) or ("logged_in" if user_id is not None else "unknown")
        self._login = {"state": state, "status": str(status), "user_id": user_id}
        if state == "logged_in":
            self._code = self._pending_code = None
        self._emit("login", **self._login)

    async def _on_LoginForm_ask_enter_code(self, original, form, page_url, user_code, *args, **kwargs):
        try:
            self._login_form = form
            self._seen_loop()
            now = self._clock()
            expires_at = _caller_expiry(inspect.currentframe()) or now + CODE_LIFETIME
            self._pending_code = {"user_code": str(user_code), "activation_url": str(page_url), "expires_at": expires_at}
        except Exception as exc:
            self._warn_once("ask_enter_code", f"bridge: ask_enter_code failed ({exc!r}); TDM runs on")
        result = await original(form, page_url, user_code, *args, **kwargs)
        self._guarded(self._show_code)  # if the press was not seen (no wait hook), TDM shows it by now
        return result

    async def _on_LoginForm_wait_for_login_press(self, original, form, *args, **kwargs):
        self._login_form = form
        self._seen_loop()
        self._set_waiting(True)
        try:
            result = await original(form, *args, **kwargs)
        except BaseException:
            self._set_waiting(False)
            raise
        self._set_waiting(False)
        self._guarded(self._show_code)  # TDM prints the code right after the press
        return result

    def _set_waiting(self, waiting: bool) -> None:
        self._waiting = waiting
        if not waiting and self._pending_code is None:
            self._remote_press = False
        self._emit("login_wait", waiting=waiting)

    def _show_code(self) -> None:
        if self._pending_code is not None:
            self._code, self._pending_code = self._pending_code, None
            self._emit("login_code", **self._code)
            self._code_shown.set()

    # -- hooks: inventory --------------------------------------------------------------------

    def _on_InventoryOverview_clear(self, inventory, *args, **kwargs) -> None:
        self._campaigns.clear()
        self._emit("inventory_clear")

    async def _on_InventoryOverview_add_campaign(self, original, inventory, campaign, *args, **kwargs):
        try:
            self._seen_loop()
            serialised = _campaign(campaign)
            self._campaigns[serialised["id"]] = campaign
            self._emit("campaign", campaign=serialised)
        except Exception as exc:
            self._warn_once("add_campaign", f"bridge: add_campaign failed ({exc!r}); TDM runs on")
        return await original(inventory, campaign, *args, **kwargs)

    def _on_InventoryOverview_update_drop(self, inventory, drop, *args, **kwargs) -> None:
        self._emit("drop", drop=_drop(drop))

    # -- hooks: channels ---------------------------------------------------------------------

    def _on_ChannelList_clear(self, channels, *args, **kwargs) -> None:
        self._channels.clear()
        self._channel_written.clear()
        self._watching = None
        self._emit("channels_clear")

    def _on_ChannelList_display(self, channels, channel, *args, add: bool = False, **kwargs) -> None:
        iid = str(_attr(channel, "iid", _attr(channel, "id")))
        if not add and iid not in self._channels:
            return  # TDM does not show it either
        self._channels[iid] = channel
        serialised = _channel(channel)
        now = self._clock()
        previous = self._channel_written.get(iid)
        if previous is not None:
            before, written_at = previous
            viewers_only = before["viewers"] is not None and _without_viewers(before) == _without_viewers(serialised)
            if before == serialised or (viewers_only and now - written_at < VIEWERS_EVERY):
                return  # viewer counts change every few seconds: not worth a record each
        self._channel_written[iid] = (serialised, now)
        self._emit("channel", channel=serialised)

    def _on_ChannelList_remove(self, channels, channel, *args, **kwargs) -> None:
        iid = str(_attr(channel, "iid", _attr(channel, "id")))
        self._channels.pop(iid, None)
        self._channel_written.pop(iid, None)
        self._emit("channel_remove", id=iid)

    def _on_ChannelList_set_watching(self, channels, channel, *args, **kwargs) -> None:
        self._watching = str(_attr(channel, "iid", _attr(channel, "id")))
        self._emit("watching", id=self._watching)

    def _on_ChannelList_clear_watching(self, channels, *args, **kwargs) -> None:
        if self._watching is not None:
            self._watching = None
            self._emit("watching", id=None)

    # -- hooks: websockets and the status bar -----------------------------------------------

    def _on_WebsocketStatus_update(self, websockets, idx, status=None, topics=None, *args, **kwargs) -> None:
        entry = self._websockets.setdefault(int(idx), {"status": None, "topics": 0})
        if status is not None:
            entry["status"] = str(status)
        if topics is not None:
            entry["topics"] = int(topics)
        self._emit("websocket", idx=int(idx), **entry)

    def _on_WebsocketStatus_remove(self, websockets, idx, *args, **kwargs) -> None:
        self._websockets.pop(int(idx), None)
        self._emit("websocket_remove", idx=int(idx))

    def _on_StatusBar_update(self, bar, text, *args, **kwargs) -> None:
        self._status = str(text)
        self._emit("status", text=self._status)

    def _on_StatusBar_clear(self, bar, *args, **kwargs) -> None:
        self._status = ""
        self._emit("status", text="")

    # -- control ------------------------------------------------------------------------------

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """One control request (on the server's thread); never raises."""
        op = request["op"]
        try:
            if op == "ping":
                return {"ok": True, "pid": os.getpid(), "capabilities": self.capabilities}
            if op == "login":
                return self._press_login()
            if op == "reload":
                return self._reload()
            return self._on_loop(self._snapshot)
        except concurrent.futures.TimeoutError:
            return error("timeout", f"TDM did not do it within {LOOP_TIMEOUT:g} s")
        except Exception as exc:
            return error("failed", f"{op} failed: {exc!r}")

    def _press_login(self) -> dict[str, Any]:
        if not self.capabilities.get("login"):
            return error("unsupported", "this TDM's login form has no hook point the bridge knows")
        form = self._login_form
        confirm = getattr(form, "_confirm", None)
        if form is not None and not callable(getattr(confirm, "set", None)):
            return error("unsupported", "this TDM's login form has no Login event the bridge knows")
        if not self._waiting:
            return error("not_waiting", "TDM is not waiting for the Login button")

        def press() -> dict[str, Any]:
            if not self._waiting:
                return error("not_waiting", "TDM is not waiting for the Login button")
            self._remote_press = True
            self._code_shown.clear()
            confirm.set()
            return {"ok": True}

        answer = self._on_loop(press)
        # The device-code flow shows its code right after the press: answer with it when it does
        # (a restored session or another login flow just goes on).
        if answer.get("ok") and self._code_shown.wait(CODE_WAIT) and self._code is not None:
            answer["code"] = dict(self._code)
        return answer

    def _reload(self) -> dict[str, Any]:
        if not self.capabilities.get("reload"):
            return error("unsupported", "this TDM has no Reload hook point the bridge knows")
        if self._manager is None:
            return error("not_ready", "TDM has not built its window yet")
        change_state = getattr(getattr(self._manager, "_twitch", None), "change_state", None)
        target = self._state_enum.INVENTORY_FETCH
        if not callable(change_state):
            return error("unsupported", "this TDM's window has no client with change_state")

        def reload() -> dict[str, Any]:
            change_state(target)  # what Settings → Reload does
            return {"ok": True}

        return self._on_loop(reload)

    def _on_loop(self, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        loop = self._loop
        if loop is None or loop.is_closed():
            return error("not_ready", "TDM's event loop is not running")
        future: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(work())
                except BaseException as exc:
                    future.set_exception(exc)

        try:
            loop.call_soon_threadsafe(run)
        except RuntimeError:
            return error("not_ready", "TDM's event loop is closed")
        try:
            return future.result(LOOP_TIMEOUT)
        finally:
            future.cancel()

    def _snapshot(self) -> dict[str, Any]:
        """Everything the hooks know, read fresh from TDM's objects (on TDM's loop); also written
        to the stream as a `snapshot` record, so the daemon's picture follows from the file alone."""
        fields = {
            "capabilities": self.capabilities,
            "login": self._login,
            "waiting": self._waiting,
            "code": self._code,
            "campaigns": [_campaign(campaign) for campaign in self._campaigns.values()],
            "channels": [_channel(channel) for channel in self._channels.values()],
            "watching": self._watching,
            "games": self._games,
            "websockets": {str(idx): entry for idx, entry in self._websockets.items()},
            "status": self._status,
            "current_drop": _drop(self._current_drop) if self._current_drop is not None else None,
        }
        self._emit("snapshot", **fields)
        return {"ok": True, "snapshot": fields}


class ControlServer:
    """The Unix socket: one request per connection, answered in turn on one thread.

    A daemon thread: it lives as long as TDM's process and must never keep it from exiting."""

    def __init__(self, path: Path, handle: Callable[[dict[str, Any]], dict[str, Any]], warn: Callable[[str], None]) -> None:
        self.path = path
        self._handle = handle
        self._warn = warn
        self._sock: socket.socket | None = None
        self._inode: tuple[int, int] | None = None

    def start(self) -> bool:
        try:
            self._sock = self._listen()
        except OSError as exc:
            self._warn(f"bridge: cannot listen on {self.path} ({exc.strerror or exc}); TDM cannot be controlled")
            return False
        threading.Thread(target=self._serve, name="twitchminert-bridge", daemon=True).start()
        atexit.register(self._remove)
        return True

    def _listen(self) -> socket.socket:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if stat.S_ISSOCK(os.lstat(self.path).st_mode):
                os.unlink(self.path)  # left by an earlier TDM; lock.file says none runs now
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            with unix_address(self.path) as address:
                sock.bind(address)
            os.chmod(self.path, 0o600)  # before listen(): nobody else can ever connect
            info = os.stat(self.path)
            self._inode = (info.st_dev, info.st_ino)
            sock.listen(8)
        except OSError:
            sock.close()
            raise
        return sock

    def _serve(self) -> None:
        assert self._sock is not None
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                try:
                    self._answer(conn)
                except OSError:
                    pass  # the client went away

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(CONNECTION_TIMEOUT)
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _, uid, _ = struct.unpack("3i", creds)
        if uid != os.getuid():
            return  # mode 0600 already keeps others out; this is belt and braces
        request = read_request(conn)
        answer = error("bad_request", "expected one JSON request line") if request is None else self._handle(request)
        conn.settimeout(CALL_TIMEOUT)
        conn.sendall(encode_answer(answer))

    def _remove(self) -> None:
        try:
            info = os.stat(self.path)
            if (info.st_dev, info.st_ino) == self._inode:
                os.unlink(self.path)
        except OSError:
            pass


def encode_answer(answer: dict[str, Any]) -> bytes:
    return json.dumps(answer, ensure_ascii=False, default=str).encode("utf-8") + b"\n"


# -- reading TDM's objects (every attribute may be missing in another version) -------------------


def _attr(obj: Any, name: str, default: Any = None) -> Any:
    try:
        return getattr(obj, name, default)
    except Exception:  # a property that fails
        return default


def _time(value: Any) -> float | None:
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _game(game: Any) -> dict[str, Any] | None:
    if game is None:
        return None
    game_id = _attr(game, "id")
    return {"id": str(game_id) if game_id is not None else None, "name": str(_attr(game, "name", game))}


def _drop(drop: Any) -> dict[str, Any]:
    campaign = _attr(drop, "campaign")
    return {
        "id": str(_attr(drop, "id")),
        "name": _attr(drop, "name"),
        "campaign_id": str(_attr(campaign, "id")) if campaign is not None else None,
        "required_minutes": _int(_attr(drop, "required_minutes")),
        "current_minutes": _int(_attr(drop, "current_minutes")),
        "confirmed_minutes": _int(_attr(drop, "real_current_minutes")),  # what Twitch confirmed
        "estimated_minutes": _int(_attr(drop, "extra_current_minutes")),  # TDM's own count since
        "claimed": bool(_attr(drop, "is_claimed", False)),
        "can_claim": bool(_attr(drop, "can_claim", False)),
        "rewards": [str(_attr(benefit, "name")) for benefit in (_attr(drop, "benefits") or ())],
        "starts_at": _time(_attr(drop, "starts_at")),
        "ends_at": _time(_attr(drop, "ends_at")),
    }


def _campaign(campaign: Any) -> dict[str, Any]:
    if _attr(campaign, "expired"):
        status = "expired"
    elif _attr(campaign, "upcoming"):
        status = "upcoming"
    elif _attr(campaign, "active"):
        status = "active"
    else:
        status = None
    return {
        "id": str(_attr(campaign, "id")),
        "name": _attr(campaign, "name"),
        "game": _game(_attr(campaign, "game")),
        "status": status,
        "linked": _attr(campaign, "linked"),
        "eligible": _attr(campaign, "eligible"),
        "link_url": _attr(campaign, "link_url"),
        "starts_at": _time(_attr(campaign, "starts_at")),
        "ends_at": _time(_attr(campaign, "ends_at")),
        "allowed_channels": [str(_attr(channel, "name")) for channel in (_attr(campaign, "allowed_channels") or ())],
        "drops": [_drop(drop) for drop in (_attr(campaign, "drops") or ())],
    }


def _channel(channel: Any) -> dict[str, Any]:
    game = _attr(channel, "game")
    return {
        "id": str(_attr(channel, "iid", _attr(channel, "id"))),
        "name": _attr(channel, "name"),
        "online": bool(_attr(channel, "online", False)),
        "pending_online": bool(_attr(channel, "pending_online", False)),
        "game": str(_attr(game, "name", game)) if game is not None else None,
        "drops_enabled": bool(_attr(channel, "drops_enabled", False)),
        "viewers": _int(_attr(channel, "viewers")),
        "acl_based": bool(_attr(channel, "acl_based", False)),
    }


def _without_viewers(channel: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in channel.items() if key != "viewers"}


def _find_state_enum(gui: ModuleType) -> Any:
    """TDM's State (constants.py); the Twitch client's module has it too."""
    for name in ("constants", "twitch"):
        module = sys.modules.get(name)
        state = getattr(module, "State", None)
        if getattr(state, "INVENTORY_FETCH", None) is not None:
            return state
    return None


def _caller_expiry(frame: Any) -> float | None:
    """The device code's expiry: `expires_at` in the frame that asked for the code (TDM's
    _oauth_login). Only that one local is read; the device code stays where it is."""
    for _ in range(4):
        frame = frame.f_back if frame is not None else None
        if frame is None:
            return None
        value = frame.f_locals.get("expires_at")
        if isinstance(value, datetime.datetime):
            return value.timestamp()
    return None
