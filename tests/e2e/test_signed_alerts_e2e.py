"""End to end: a forged alert injected into the channel never reaches a screen.

A real server process with the county alert key and the Redis message queue, a real headless
player holding the county's public key. Alert sets pushed into the message queue as if by the
server — unsigned, and signed with another key — reach the player (it says so, and answers
ALERTS_REFUSED, which the server logs), and never show; a real alert issued through the API
right after is on the screen within 2 s and acknowledged.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import socketio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from player import protocol
from server.services.alert_keys import Signer
from tests.e2e.test_alert_e2e import alert_frame, last_seq, ready
from tests.e2e.test_screen_e2e import Api
from tests.live import LivePlayer, LiveServer, Process, free_port, wait_until

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"

SETUP = """
from server.models import Role
from server.services import regions, screens, users
county = regions.create(None, "S0", "验签县")
village = regions.create(None, "S01", "验签村", county)
alerter = users.create(None, "sig_alert", "sig-e2e-password", grants=[(Role.ALERT, county)])
_, alert_token = users.create_token(alerter, "e2e")
screen, token = screens.provision(None, village, "村委会", width=1280, height=720)
import json
print(json.dumps({"alert": alert_token, "token": token, "screen_id": screen.id}))
"""


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fake_alert(code: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "code": code, "version": 1, "level": 1, "color": protocol.LEVEL_COLORS[1],
        "event": "地震", "title": "验签县地震红色预警（伪造）", "text": "立即撤离。",
        "instruction": "", "sender_name": "冒充者", "starts_at": iso(now - timedelta(minutes=1)),
        "expires_at": iso(now + timedelta(hours=1)), "issued_at": iso(now), "targets": [1],
        "url": "http://attacker.invalid/a/" + code,
    }


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    (tmp_path / "redis").mkdir()
    redis = Process(args=[REDIS, "--port", str(port), "--bind", "127.0.0.1", "--dir",
                          str(tmp_path / "redis"), "--save", "", "--appendonly", "no"],
                    env=dict(os.environ), log=tmp_path / "redis.log")
    redis.start()
    import redis as redis_client

    def answering() -> bool:
        try:
            return bool(redis_client.Redis(port=port, socket_timeout=2).ping())
        except redis_client.exceptions.ConnectionError:
            return False

    try:
        wait_until(answering, 30, interval=0.1, what="redis-server answering PING")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        redis.stop()


def test_a_forged_alert_through_the_message_queue_never_reaches_a_screen(
    tmp_path: Path, redis_url: str
) -> None:
    server = LiveServer.create(tmp_path / "server", demo=False,
                               extra_env={"REDIS_URL": redis_url})
    made = json.loads(server.run_python(SETUP).strip().splitlines()[-1])
    output = server.run_cli("alert-key", "create")
    match = re.search(r'alert_keys = \["([^"]+)"\]', output)
    assert match, output
    public = match.group(1)
    server.start()
    player = LivePlayer.create(tmp_path / "player", server.url, made["token"])
    player.env["CUNPING_PLAYER_ALERT_KEYS"] = public
    try:
        player.start()
        ready(player)
        wait_until(lambda: "alerts: none" in player.log.read_text(), 10,
                   what="the player taking the county's signed (empty) set")

        queue = socketio.RedisManager(redis_url, channel="cunping", write_only=True)
        room = f"screen:{made['screen_id']}"
        now = iso(datetime.now(UTC))
        attacker = Signer(Ed25519PrivateKey.generate())
        forgeries = {
            "FAKE01": {"alerts": [fake_alert("FAKE01")], "server_time": now},
            "FAKE02": attacker.sign({"alerts": [fake_alert("FAKE02")], "server_time": now}),
        }
        mark = last_seq(player)
        for message in forgeries.values():
            queue.emit(protocol.ALERTS, message, namespace=protocol.NAMESPACE, room=room)

        # Both reached the player through the server, were refused and reported …
        def refusals(text: str) -> list[str]:
            return re.findall(r"refus\w* (?:an|its) alert set:? \(?(unsigned|unknown key)",
                              text)

        wait_until(lambda: sorted(refusals(player.log.read_text())) == ["unknown key",
                                                                        "unsigned"],
                   10, what="the player refusing both forged sets")
        wait_until(lambda: len(refusals(server.log.read_text())) == 2, 10,
                   what="the server logging both refusals")
        # … and never showed.
        alerter = Api(server.url, made["alert"])
        started = time.monotonic()
        real = alerter.call("POST", "/alerts", {
            "level": "II", "event": "暴雨", "title": "验签县暴雨橙色预警",
            "text": "请注意防范。", "sender_name": "验签县应急管理局", "targets": ["S0"]})
        frame = wait_until(lambda: alert_frame(player, real["code"], mark), 2.0,
                           interval=0.02, what="the county's real alert on the screen")
        assert time.monotonic() - started <= 2.0 and frame["level"] == 2
        assert all(alert_frame(player, code) is None for code in forgeries)
        assert not any(f.get("alert", "") in forgeries for f in player.frames_log())

        def acknowledged() -> bool:
            report = alerter.call("GET", f"/alerts/{real['code']}")["delivery"]
            return bool(report["acknowledged"] == 1)

        wait_until(acknowledged, 10, interval=0.1, what="the real alert acknowledged")
    finally:
        player.stop()
        server.stop()
