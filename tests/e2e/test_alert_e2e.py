"""End to end: emergency alerts over a real server process and several real headless players.

An alert issued through the API is in every targeted player's frames within 2 s and every
targeted screen acknowledges it (the API and the admin say so); a screen outside the targets
never shows it; cancelling it brings the playlist back; a player that was offline when the
alert was issued shows it as soon as it reconnects; a rebooting player shows a cached alert
still in force before anything else.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from PIL import Image

from tests.e2e.test_screen_e2e import Api
from tests.live import LivePlayer, LiveServer, wait_until

DEADLINE = 2.0

SETUP = """
from server.models import Role
from server.services import regions, screens, users
county = regions.create(None, "A0", "预警县")
town = regions.create(None, "A1", "河滩镇", county)
village = regions.create(None, "A11", "河滩村", town)
village2 = regions.create(None, "A12", "河湾村", town)
hill = regions.create(None, "A21", "山上村", county)
alerter = users.create(None, "e2e_alert", "e2e-password", grants=[(Role.ALERT, county)])
editor = users.create(None, "e2e_editor", "e2e-password", grants=[(Role.EDITOR, county)])
reviewer = users.create(None, "e2e_reviewer", "e2e-password", grants=[(Role.REVIEWER, county)])
_, alert_token = users.create_token(alerter, "e2e")
_, editor_token = users.create_token(editor, "e2e")
_, reviewer_token = users.create_token(reviewer, "e2e")
out = {"alert": alert_token, "editor": editor_token, "reviewer": reviewer_token, "screens": {}}
for name, region in (("river1", village), ("river2", village2), ("river3", village),
                     ("hill", hill)):
    screen, token = screens.provision(None, region, name, width=1280, height=720)
    out["screens"][name] = {"token": token, "code": screen.code}
import json
print(json.dumps(out))
"""


class County:
    def __init__(self, server: LiveServer, secrets: dict[str, Any], folder: Path) -> None:
        self.server = server
        self.folder = folder
        self.alerter = Api(server.url, secrets["alert"])
        self.editor = Api(server.url, secrets["editor"])
        self.reviewer = Api(server.url, secrets["reviewer"])
        self.screens: dict[str, dict[str, str]] = secrets["screens"]
        self.players: dict[str, LivePlayer] = {}

    def player(self, name: str) -> LivePlayer:
        if name not in self.players:
            self.players[name] = LivePlayer.create(self.folder / name, self.server.url,
                                                   self.screens[name]["token"])
        return self.players[name]

    def publish(self, title: str, target: str) -> dict[str, Any]:
        notice = self.editor.call("POST", "/notices", {
            "title": title, "body": "请村民相互转告。", "category": "notice",
            "targets": [target], "duration_s": 5})
        self.editor.call("POST", f"/notices/{notice['id']}/submit", {})
        self.reviewer.call("POST", f"/notices/{notice['id']}/approve", {})
        return self.editor.call("POST", f"/notices/{notice['id']}/publish", {})

    def issue(self, **fields: Any) -> dict[str, Any]:
        body = {"level": "I", "event": "洪水", "title": "河滩镇洪水红色预警",
                "text": "上游水库泄洪，河滩镇沿河村庄请立即向高处转移。",
                "instruction": "听从村干部指挥，不要涉水。", "sender_name": "预警县应急管理局",
                "targets": ["A1"], **fields}
        return self.alerter.call("POST", "/alerts", body)

    def alert(self, code: str) -> dict[str, Any]:
        return self.alerter.call("GET", f"/alerts/{code}")


@pytest.fixture
def county(tmp_path: Path) -> Iterator[County]:
    server = LiveServer.create(tmp_path / "server", demo=False)
    secrets = json.loads(server.run_python(SETUP).strip().splitlines()[-1])
    server.start()
    world = County(server, secrets, tmp_path)
    try:
        yield world
    finally:
        for player in world.players.values():
            player.stop()
        server.stop()


def last_seq(player: LivePlayer) -> int:
    frames = player.frames_log()
    return frames[-1]["seq"] if frames else 0


def frames_after(player: LivePlayer, seq: int) -> list[dict[str, Any]]:
    return [f for f in player.frames_log() if f["seq"] > seq]


def alert_frame(player: LivePlayer, code: str, after: int = 0) -> dict[str, Any] | None:
    return next((f for f in frames_after(player, after) if f.get("alert") == code), None)


def ready(player: LivePlayer, notice_code: str | None = None) -> None:
    """Started and showing its playlist (the notice) or standby."""
    want = notice_code or "standby"
    wait_until(lambda: any(f.get("showing") == want for f in player.frames_log()), 30,
               what=f"{player.log.parent.name} showing {want}")


def admin_session(server: LiveServer, username: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(server.url + "/admin/login", timeout=10).read().decode()
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert token is not None
    form = urllib.parse.urlencode({"username": username, "password": "e2e-password",
                                   "csrf_token": token.group(1)}).encode()
    opener.open(server.url + "/admin/login", data=form, timeout=10).read()
    return opener


def test_an_alert_takes_over_every_targeted_screen_within_2s_and_is_acknowledged(
    county: County,
) -> None:
    notice = county.publish("河滩镇冬季用水通知", "A1")
    river = [county.player(n) for n in ("river1", "river2", "river3")]
    hill = county.player("hill")
    for player in [*river, hill]:
        player.start()
    for player in river:
        ready(player, notice["code"])
    ready(hill)

    marks = {p.log.parent.name: last_seq(p) for p in [*river, hill]}
    started = time.monotonic()
    alert = county.issue()
    code = alert["code"]
    for player in river:
        frame = wait_until(lambda p=player: alert_frame(p, code, marks[p.log.parent.name]),
                           DEADLINE - (time.monotonic() - started), interval=0.02,
                           what=f"the alert on {player.log.parent.name}")
        assert frame["level"] == 1
    assert time.monotonic() - started <= DEADLINE

    # The frame is the alert, full screen in red, with a QR code to the alert's page.
    frame = alert_frame(river[0], code)
    assert frame is not None
    image = Image.open(river[0].frames / frame["file"]).convert("RGB")
    r, g, b = image.getpixel((5, image.height // 2))
    assert r > 150 and g < 90 and b < 90, "a level I alert is red"
    decoded = [x.text for x in zxingcpp.read_barcodes(image)]
    assert any(t.startswith(f"{county.server.url}/a/{code}") for t in decoded), decoded

    # Every targeted screen acknowledged it, and the API and the admin say so.
    def all_acknowledged() -> dict[str, Any] | None:
        data = county.alert(code)
        return data if data["delivery"]["acknowledged"] == 3 else None

    data = wait_until(all_acknowledged, 10, interval=0.1, what="three acknowledgements")
    assert data["delivery"]["targeted"] == 3
    assert all(s["acknowledged"] and s["latency_ms"] is not None
               for s in data["delivery"]["screens"])
    admin = admin_session(county.server, "e2e_alert")
    page = admin.open(f"{county.server.url}/admin/alerts/{code}", timeout=10).read().decode()
    assert re.search(r"3\s*/\s*3", page), "the admin shows 3 / 3 acknowledged"

    # The screen outside the targets never showed it.
    time.sleep(0.5)
    assert alert_frame(hill, code) is None

    # Cancelling brings the playlist back everywhere.
    marks = {p.log.parent.name: last_seq(p) for p in river}
    county.alerter.call("POST", f"/alerts/{code}/cancel", {"reason": "泄洪结束"})
    for player in river:
        wait_until(lambda p=player: any(f.get("showing") == notice["code"]
                                        for f in frames_after(p, marks[p.log.parent.name])),
                   DEADLINE + 0.5, interval=0.02, what="the playlist back after the cancel")
        mark = last_seq(player)
        time.sleep(0.3)
        assert all(f.get("alert") is None for f in frames_after(player, mark))


def test_an_offline_player_shows_the_alert_when_it_reconnects_and_first_after_a_reboot(
    county: County,
) -> None:
    notice = county.publish("河滩村通知", "A11")
    player = county.player("river1")
    player.start()
    ready(player, notice["code"])
    player.stop()

    alert = county.issue(level="II", title="河滩镇暴雨橙色预警", event="暴雨")
    mark = last_seq(player)
    player.start()
    frame = wait_until(lambda: alert_frame(player, alert["code"], mark), 15, interval=0.05,
                       what="the alert after reconnecting")
    assert frame["level"] == 2
    wait_until(lambda: county.alert(alert["code"])["delivery"]["acknowledged"] == 1, 10,
               what="the reconnected screen's acknowledgement")

    # A reboot with the server unreachable: the cached alert is the very first frame.
    county.server.stop()
    player.stop()
    mark = last_seq(player)
    player.start()
    first = wait_until(lambda: frames_after(player, mark), 10, interval=0.05,
                       what="a first frame after the reboot")[0]
    assert first.get("alert") == alert["code"]
