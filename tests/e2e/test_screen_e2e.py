"""End to end: a real server process and a real headless player process over a socket.

A notice published through the API is in the player's frames within 2 s and its QR code decodes
to the notice's URL; withdrawing it takes it off within 2 s; nothing is missed across a gap
(player stopped, or server restarted); a player started with the server unreachable shows its
cached content at once.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from PIL import Image

from tests.live import LivePlayer, LiveServer, wait_until

PUBLISH_DEADLINE = 2.0

SETUP = """
from server.models import Role
from server.services import regions, screens, users
county = regions.create(None, "E0", "测试县")
town = regions.create(None, "E1", "测试镇", county)
village = regions.create(None, "E11", "测试村", town)
other = regions.create(None, "E12", "邻村", town)
editor = users.create(None, "e2e_editor", "e2e-password", grants=[(Role.EDITOR, village)])
reviewer = users.create(None, "e2e_reviewer", "e2e-password", grants=[(Role.REVIEWER, village)])
_, editor_token = users.create_token(editor, "e2e")
_, reviewer_token = users.create_token(reviewer, "e2e")
screen, screen_token = screens.provision(None, village, "测试村广场屏", width=1280, height=720)
import json
print(json.dumps({"editor": editor_token, "reviewer": reviewer_token,
                  "screen_token": screen_token, "screen_code": screen.code}))
"""


class Api:
    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base, token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + "/api/v1" + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")


class County:
    """The e2e world: one server, an editor's and a reviewer's API, one screen."""

    def __init__(self, server: LiveServer, secrets: dict[str, str]) -> None:
        self.server = server
        self.editor = Api(server.url, secrets["editor"])
        self.reviewer = Api(server.url, secrets["reviewer"])
        self.screen_token = secrets["screen_token"]
        self.screen_code = secrets["screen_code"]

    def draft(self, title: str, body: str = "请村民相互转告。") -> dict[str, Any]:
        return self.editor.call("POST", "/notices", {
            "title": title, "body": body, "category": "notice", "targets": ["E11"],
            "duration_s": 5})

    def approve(self, notice_id: int) -> None:
        self.editor.call("POST", f"/notices/{notice_id}/submit", {})
        self.reviewer.call("POST", f"/notices/{notice_id}/approve", {})

    def publish_new(self, title: str) -> dict[str, Any]:
        notice = self.draft(title)
        self.approve(notice["id"])
        return self.editor.call("POST", f"/notices/{notice['id']}/publish", {})

    def withdraw(self, notice_id: int) -> None:
        self.editor.call("POST", f"/notices/{notice_id}/withdraw", {"reason": "测试撤回"})


@pytest.fixture
def county(tmp_path: Path) -> Iterator[County]:
    server = LiveServer.create(tmp_path / "server", demo=False)
    secrets = json.loads(server.run_python(SETUP).strip().splitlines()[-1])
    server.start()
    try:
        yield County(server, secrets)
    finally:
        server.stop()


@pytest.fixture
def player_factory(tmp_path: Path, county: County) -> Iterator[Any]:
    players: list[LivePlayer] = []

    def make(name: str = "player") -> LivePlayer:
        player = LivePlayer.create(tmp_path / name, county.server.url, county.screen_token)
        players.append(player)
        return player

    yield make
    for player in players:
        player.stop()


def frames_since(player: LivePlayer, seq: int) -> list[dict[str, Any]]:
    return [f for f in player.frames_log() if f["seq"] > seq]


def last_seq(player: LivePlayer) -> int:
    frames = player.frames_log()
    return frames[-1]["seq"] if frames else 0


def showing(player: LivePlayer, code: str, after: int = 0) -> dict[str, Any] | None:
    for frame in frames_since(player, after):
        if frame.get("showing") == code:
            return frame
    return None


def test_published_notice_reaches_the_screen_within_2s_and_its_qr_decodes(
    county: County, player_factory: Any
) -> None:
    player = player_factory()
    player.start()
    wait_until(lambda: any(f.get("showing") == "standby" for f in player.frames_log()), 30,
               what="the player connected and showing standby")

    draft = county.draft("关于冬季防火的通知")
    county.approve(draft["id"])
    before = last_seq(player)
    started = time.monotonic()
    notice = county.editor.call("POST", f"/notices/{draft['id']}/publish", {})
    code = notice["code"]
    frame = wait_until(lambda: showing(player, code, before), PUBLISH_DEADLINE,
                       interval=0.02, what="the notice in the player's frames")
    assert time.monotonic() - started <= PUBLISH_DEADLINE

    image = Image.open(player.frames / frame["file"])
    decoded = [b.text for b in zxingcpp.read_barcodes(image)]
    expected = f"{county.server.url}/n/{code}?s={county.screen_code}"
    assert expected in decoded
    with urllib.request.urlopen(expected, timeout=5) as resp:
        assert resp.status == 200
        assert "关于冬季防火的通知" in resp.read().decode()

    before = last_seq(player)
    withdrawn_at = time.monotonic()
    county.withdraw(notice["id"])

    def gone() -> bool:
        later = frames_since(player, before)
        return bool(later) and later[-1].get("showing") != code

    wait_until(gone, PUBLISH_DEADLINE, interval=0.02, what="the withdrawn notice off the screen")
    assert time.monotonic() - withdrawn_at <= PUBLISH_DEADLINE
    mark = last_seq(player)
    time.sleep(1.0)
    assert showing(player, code, mark) is None


def rotation_codes(player: LivePlayer, after: int, seconds: float) -> set[str]:
    """Codes shown in frames after `after`, watched for `seconds` (one full rotation)."""
    time.sleep(seconds)
    return {f["showing"] for f in frames_since(player, after)}


def test_nothing_is_missed_while_the_player_is_stopped(
    county: County, player_factory: Any
) -> None:
    kept = county.publish_new("保留的公告")
    edited = county.publish_new("将被修改的公告")
    dropped = county.publish_new("将被撤回的公告")
    player = player_factory()
    player.start()
    wait_until(lambda: {kept["code"], edited["code"], dropped["code"]}
               <= {f.get("showing") for f in player.frames_log()}, 30,
               what="all three notices shown once")
    player.stop()

    added = county.publish_new("离线期间发布的公告")
    county.editor.call("PATCH", f"/notices/{edited['id']}", {"title": "已修改的公告（更正）"})
    county.approve(edited["id"])
    county.editor.call("POST", f"/notices/{edited['id']}/publish", {})
    county.withdraw(dropped["id"])

    before_stop = player.frames_log()[-1]["revision"]
    mark = last_seq(player)
    player.start()
    # It shows its cached playlist at once, then catches up: count from the first frame drawn
    # after the catch-up (a newer revision).
    caught_up = wait_until(
        lambda: next((f for f in frames_since(player, mark) if f["revision"] > before_stop),
                     None), 15, what="the player caught up")
    seen = rotation_codes(player, caught_up["seq"] - 1, 17)  # three notices of 5 s, plus margin
    assert seen == {kept["code"], edited["code"], added["code"]}
    versions = {f["showing"]: f.get("version") for f in frames_since(player, caught_up["seq"] - 1)}
    assert versions[edited["code"]] == 2


def test_catch_up_after_a_server_restart_and_cached_content_when_unreachable(
    county: County, player_factory: Any
) -> None:
    first = county.publish_new("重启前的公告")
    player = player_factory()
    player.start()
    wait_until(lambda: showing(player, first["code"]), 30, what="the first notice shown")

    county.server.stop()
    # While the server is down the county still works on its notices (here straight in the
    # database through the services, as a second server process would).
    county.server.run_python("""
from server.services import notices, users
from server.services.notices import NoticeInput
editor = users.by_username("e2e_editor")
reviewer = users.by_username("e2e_reviewer")
n = notices.create(editor, NoticeInput(title="服务器重启期间发布", body="内容", category="notice",
                                       targets=["E11"], duration_s=5))
notices.submit(editor, n)
notices.approve(reviewer, n)
notices.publish(editor, n)
print(n.code)
""")
    mark = last_seq(player)
    county.server.start()
    seen = rotation_codes(player, mark, 20)  # reconnect backoff, then a rotation of two
    assert first["code"] in seen and len(seen - {first["code"], "standby"}) == 1

    # The server goes away; the player restarts (a reboot) and shows its cache at once.
    county.server.stop()
    player.stop()
    mark = last_seq(player)
    player.start()
    frame = wait_until(lambda: frames_since(player, mark), 10, interval=0.05,
                       what="a first frame after restart")[0]
    assert frame["showing"] not in ("standby", "pairing", "message")
