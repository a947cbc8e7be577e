"""End to end, on the embedded default (one process, no Redis): `cunping screen revoke` on the
command line — another process — disconnects a connected player within seconds, and the
player is told it is revoked (every process's directory follows the screens' counter)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.live import LivePlayer, LiveServer, wait_until

SETUP = """
from server.services import regions, screens
county = regions.create(None, "R0", "吊销县")
village = regions.create(None, "R01", "吊销村", county)
screen, token = screens.provision(None, village, "村口屏", width=1280, height=720)
import json
print(json.dumps({"token": token, "code": screen.code}))
"""


def test_a_revoke_on_the_command_line_reaches_the_player_without_a_message_queue(
    tmp_path: Path,
) -> None:
    server = LiveServer.create(tmp_path / "server", demo=False, extra_env={"REDIS_URL": ""})
    made = json.loads(server.run_python(SETUP).strip().splitlines()[-1])
    server.start()
    player = LivePlayer.create(tmp_path / "player", server.url, made["token"])
    try:
        player.start()
        wait_until(lambda: any(f.get("showing") == "standby" for f in player.frames_log()), 30,
                   what="the player connected and showing standby")
        began = time.monotonic()
        output = server.run_cli("screen", "revoke", made["code"])
        assert "Revoked" in output
        wait_until(lambda: "revoked" in player.log.read_text(), 10, interval=0.1,
                   what="the player told it is revoked")
        assert time.monotonic() - began < 10
        assert "closing connection" in server.log.read_text()
    finally:
        player.stop()
        server.stop()
