"""The bridge inside a TDM-shaped program, run through the launcher as a real child process.

The fake TDM below has TDM's GUI classes and call order (shared/tdm/gui_hooks.md): its login waits
for the Login button's `_confirm` event, shows the code, then opens a browser through `gui.webopen`.
Tests talk to it through the control socket and read its STATE records back through our framer
and the daemon's model.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.bridge import STATE_LEVEL, BridgeUnavailable, call, decode_record
from exporter.framing import Framer
from exporter.inventory import InventoryState
from exporter.launcher import launcher_argv
from exporter.timestamps import LocalClock, zone

from conftest import wait_until

CONSTANTS_PY = """
from enum import Enum, auto

class State(Enum):
    IDLE = auto()
    INVENTORY_FETCH = auto()
"""
GUI_PY = """
import asyncio
from pathlib import Path
from constants import State

def webopen(url):
    (Path(__file__).parent / "browser.txt").write_text(str(url))

class ConsoleOutput:
    def print(self, message):
        pass

class StatusBar:
    def update(self, text): pass
    def clear(self): pass

class WebsocketStatus:
    def update(self, idx, status=None, topics=None): pass
    def remove(self, idx): pass

class LoginForm:
    def __init__(self, manager):
        self._manager = manager
        self._confirm = asyncio.Event()
        self.update("Logged out", None)

    async def wait_for_login_press(self):
        self._confirm.clear()
        await self._confirm.wait()

    async def ask_enter_code(self, page_url, user_code):
        self.update("Login required", None)
        self._manager.print("Please log in to continue.")
        await self.wait_for_login_press()
        self._manager.print(f"Enter this code on the Twitch's device activation page: {user_code}")
        await asyncio.sleep(0.2)
        webopen(page_url)

    def update(self, status, user_id): pass

class InventoryOverview:
    async def add_campaign(self, campaign): await asyncio.sleep(0)
    def clear(self): pass
    def update_drop(self, drop): pass

class ChannelList:
    def clear_watching(self): pass
    def set_watching(self, channel): pass
    def clear(self): pass
    def display(self, channel, *, add=False): pass
    def remove(self, channel): pass

class GUIManager:
    def __init__(self, twitch):
        self._twitch = twitch
        self.output = ConsoleOutput()
        self.status = StatusBar()
        self.websockets = WebsocketStatus()
        self.login = LoginForm(self)
        self.channels = ChannelList()
        self.inv = InventoryOverview()

    def print(self, message): self.output.print(message)
    def set_games(self, games): pass
    def display_drop(self, drop, *, countdown=True, subone=False): pass
    def clear_drop(self): pass
"""
MAIN_PY = """
import asyncio, os, signal, sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
import gui
from constants import State

HERE = Path(__file__).parent
NOW = datetime.now(timezone.utc)

class Game:
    def __init__(self, id, name): self.id, self.name = id, name

class Benefit:
    def __init__(self, name): self.name = name

class Drop:
    def __init__(self, campaign):
        self.id, self.name, self.campaign = "d1", "First Hat", campaign
        self.benefits = [Benefit("Hat")]
        self.required_minutes, self.real_current_minutes, self.extra_current_minutes = 10, 2, 0
        self.is_claimed = False
        self.starts_at, self.ends_at = NOW - timedelta(days=1), NOW + timedelta(days=1)
    @property
    def current_minutes(self): return self.real_current_minutes + self.extra_current_minutes
    @property
    def can_claim(self): return False

class Campaign:
    id, name, game, linked, link_url = "c1", "Season 1", Game(7, "Mock Game"), True, "https://example.invalid/link"
    starts_at, ends_at = NOW - timedelta(days=1), NOW + timedelta(days=3)
    active, upcoming, expired, eligible, allowed_channels = True, False, False, True, []
    def __init__(self): self.drops = [Drop(self)]

class BrokenCampaign(Campaign):
    id = "c2"
    @property
    def drops(self): return 5  # another shape in another TDM version
    @drops.setter
    def drops(self, value): pass

class Channel:
    def __init__(self, id, name, viewers):
        self.id, self.iid, self.name, self.viewers = id, str(id), name, viewers
        self.online, self.pending_online, self.game, self.drops_enabled, self.acl_based = True, False, Game(7, "Mock Game"), True, True

class Twitch:
    def __init__(self):
        self.states = []
        self.changed = asyncio.Event()
        self.gui = gui.GUIManager(self)
    def change_state(self, state):
        self.states.append(state)
        (HERE / "states.txt").write_text(" ".join(s.name for s in self.states))
        self.changed.set()

async def oauth_login(twitch):
    expires_at = NOW + timedelta(seconds=1234)  # TDM's _oauth_login has this local
    device_code = "D" * 40  # and this one, which must never leave
    await twitch.gui.login.ask_enter_code("https://www.twitch.tv/activate?device-code=ABCDEFGH", "ABCDEFGH")

async def main():
    twitch = Twitch()
    ui = twitch.gui
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    ui.login.update("Logging in...", None)
    ui.websockets.update(0, status="Connected", topics=2)
    ui.status.update("Fetching inventory...")
    ui.inv.clear()
    campaign = Campaign()
    await ui.inv.add_campaign(campaign)
    if "--broken" in sys.argv:
        await ui.inv.add_campaign(BrokenCampaign())
    ui.set_games({Game(7, "Mock Game"), Game(8, "Other Game")})
    ui.channels.clear()
    first, second = Channel(1001, "MockStreamer", 42), Channel(1002, "Other", 7)
    ui.channels.display(first, add=True)
    ui.channels.display(second, add=True)
    ui.channels.display(Channel(1003, "NotListed", 1))  # not on the list and not added: TDM ignores it
    ui.channels.set_watching(first)
    first.viewers = 43
    ui.channels.display(first)  # only the viewer count changed: not worth a record
    drop = campaign.drops[0]
    drop.extra_current_minutes = 1  # TDM's own estimate
    ui.inv.update_drop(drop)
    ui.display_drop(drop)
    (HERE / "ready").write_text("")
    await twitch.changed.wait()  # the test presses Reload first
    if "--local-press" in sys.argv:
        asyncio.get_running_loop().call_later(0.3, ui.login._confirm.set)  # someone at the window
    await oauth_login(twitch)
    ui.login.update("Logged in", 123456789)
    (HERE / "logged_in").write_text("")
    await asyncio.Event().wait()  # until SIGTERM

try:
    asyncio.run(main())
except asyncio.CancelledError:
    pass  # SIGTERM: a clean exit 0
"""


class FakeTdm:
    def __init__(self, root: Path, *args: str, gui: str = GUI_PY) -> None:
        self.folder = root / "tdm"
        self.folder.mkdir()
        (self.folder / "constants.py").write_text(CONSTANTS_PY)
        (self.folder / "gui.py").write_text(gui)
        (self.folder / "main.py").write_text(MAIN_PY)
        self.output = root / "data" / "logs" / "miner_output.log"
        self.socket = root / "data" / "bridge.sock"
        argv = launcher_argv(sys.executable, self.folder / "main.py", list(args), self.output, self.socket)
        self.proc = subprocess.Popen(argv, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: (self.folder / "ready").exists() or self.proc.poll() is not None, what="the fake TDM to be ready")
        assert self.proc.poll() is None, self.proc.communicate()

    def call(self, op: str) -> dict:
        return call(self.socket, op, timeout=5)

    def records(self) -> list[dict]:
        framer = Framer("captured")
        found = framer.feed(self.output.read_bytes(), 0.0).records + framer.flush().records
        return [decode_record(r.message) for r in found if r.level == STATE_LEVEL]

    def kinds(self) -> list[str]:
        return [record["type"] for record in self.records()]

    def state(self) -> InventoryState:
        """What the daemon makes of the records."""
        framer, clock, state = Framer("captured"), LocalClock(zone("local")), InventoryState()
        for record in framer.feed(self.output.read_bytes(), 0.0).records + framer.flush().records:
            if record.level == STATE_LEVEL:
                assert state.apply(record.message, clock.to_epoch(record.timestamp, record.msecs))
        return state

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, stderr = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, stderr = self.proc.communicate()
        return self.proc.returncode, stderr


@pytest.fixture
def fake_tdm(tmp_path):
    started: list[FakeTdm] = []

    def start(*args: str, **options) -> FakeTdm:
        tdm = FakeTdm(tmp_path, *args, **options)
        started.append(tdm)
        return tdm

    yield start
    for tdm in started:
        tdm.stop()


def test_state_records_carry_what_tdm_shows(fake_tdm):
    tdm = fake_tdm()
    hello = tdm.records()[0]
    assert hello["type"] == "hello" and hello["missing"] == [] and all(hello["capabilities"].values())
    view = tdm.state().view()
    (campaign,) = view.campaigns
    assert (campaign.id, campaign.name, campaign.game, campaign.recorded_status, campaign.linked) == ("c1", "Season 1", "Mock Game", "active", True)
    (drop,) = campaign.drops
    assert (drop.required_minutes, drop.current_minutes, drop.confirmed_minutes, drop.estimated_minutes) == (10, 3, 2, 1)
    assert drop.rewards == ("Hat",)
    assert view.current_drop == drop
    assert view.games == ("Mock Game", "Other Game")
    assert [(c.name, c.viewers) for c in view.channels] == [("MockStreamer", 42), ("Other", 7)]  # 43 coalesced away
    assert view.watching == "1001" and view.websockets == {0: ("Connected", 2)}
    assert view.status_text == "Fetching inventory..." and view.login_state == "logging_in"


def test_login_reload_and_state_through_the_socket(fake_tdm):
    tdm = fake_tdm()
    assert stat.S_IMODE(os.stat(tdm.socket).st_mode) == 0o600
    assert tdm.call("ping")["ok"]
    assert tdm.call("login") == {"ok": False, "error": "not_waiting", "message": "TDM is not waiting for the Login button"}
    assert tdm.call("reload") == {"ok": True}
    wait_until(lambda: (tdm.folder / "states.txt").exists(), what="change_state")
    assert (tdm.folder / "states.txt").read_text() == "INVENTORY_FETCH"  # Settings -> Reload
    wait_until(lambda: "login_wait" in tdm.kinds(), what="TDM waiting for the Login button")
    answer = tdm.call("login")
    assert answer["ok"]
    assert answer["code"]["user_code"] == "ABCDEFGH"
    assert answer["code"]["activation_url"] == "https://www.twitch.tv/activate?device-code=ABCDEFGH"
    wait_until(lambda: (tdm.folder / "logged_in").exists(), what="the login to go on")
    view = tdm.state().view()
    assert view.login(0) == "logged_in" and view.user_id == 123456789
    kinds = tdm.kinds()
    code_record = tdm.records()[kinds.index("login_code")]
    assert abs(code_record["expires_at"] - answer["code"]["expires_at"]) < 1e-6
    assert kinds.index("login_code") > kinds.index("login_wait")  # shown after the press, as TDM does
    assert not (tdm.folder / "browser.txt").exists()  # pressed through the bridge: no browser
    assert "D" * 40 not in tdm.output.read_text()  # the device code never leaves TDM
    snapshot = tdm.call("state")["snapshot"]
    assert snapshot["login"]["state"] == "logged_in" and [c["id"] for c in snapshot["campaigns"]] == ["c1"]
    assert tdm.kinds()[-1] == "snapshot"
    assert tdm.stop() == (0, "")
    assert not tdm.socket.exists()  # removed at exit


def test_a_press_at_the_window_still_opens_the_browser(fake_tdm):
    tdm = fake_tdm("--local-press")
    assert tdm.call("reload")["ok"]
    wait_until(lambda: (tdm.folder / "browser.txt").exists(), what="TDM to open the activation page")
    assert (tdm.folder / "browser.txt").read_text().endswith("device-code=ABCDEFGH")


def test_a_missing_hook_is_unsupported_and_tdm_runs_on(fake_tdm):
    renamed = GUI_PY.replace("class LoginForm:", "class LoginPanel:").replace("self.login = LoginForm(self)", "self.login = LoginPanel(self)")
    tdm = fake_tdm("--local-press", gui=renamed)
    hello = tdm.records()[0]
    assert hello["capabilities"]["login"] is False and hello["capabilities"]["login_status"] is False
    assert hello["capabilities"]["campaigns"] is True
    assert "LoginForm.ask_enter_code" in hello["missing"]
    assert tdm.call("login")["error"] == "unsupported"
    assert tdm.call("reload")["ok"]
    wait_until(lambda: (tdm.folder / "logged_in").exists(), 15, what="TDM to go on without the hook")
    assert tdm.stop() == (0, "")


def test_an_object_we_cannot_read_never_breaks_tdm(fake_tdm):
    tdm = fake_tdm("--broken")
    assert [c.id for c in tdm.state().view().campaigns] == ["c1"]  # the broken one is left out
    assert tdm.call("reload")["ok"]
    wait_until(lambda: "login_wait" in tdm.kinds(), what="TDM to go on")
    code, stderr = tdm.stop()
    assert code == 0
    assert stderr.count("bridge: add_campaign failed") == 1  # one warning, TDM ran on


def test_without_a_control_socket_nothing_listens(tmp_path):
    folder = tmp_path / "tdm"
    folder.mkdir()
    (folder / "constants.py").write_text(CONSTANTS_PY)
    (folder / "gui.py").write_text(GUI_PY)
    (folder / "main.py").write_text("import gui\nprint('ran')\n")
    argv = launcher_argv(sys.executable, folder / "main.py", [], tmp_path / "out.log")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout, result.stderr) == (0, "ran\n", "")
    with pytest.raises(BridgeUnavailable, match="no bridge socket"):
        call(tmp_path / "bridge.sock", "ping", timeout=1)


def test_a_socket_path_longer_than_sun_path_works(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    tdm = FakeTdm(deep)
    try:
        assert len(str(tdm.socket)) > 108
        assert tdm.call("ping")["ok"]
    finally:
        tdm.stop()
