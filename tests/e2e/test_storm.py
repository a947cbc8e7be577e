"""A restart storm with real processes: 300 light clients (bench/lightclient.py: the player's
protocol over raw WebSocket frames) and two real players on one `cunping serve`, whose handshake
gate admits 60 a second. The server stops; a notice is published while it is down; the server
comes back and every screen knocks at once. The gate refuses what it cannot take with 503 and a
Retry-After, the clients come back when told, and every screen ends at the current revision
with the new notice — none missed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live import LivePlayer, LiveServer, wait_until

LIGHT = 300
ROOT = Path(__file__).resolve().parents[2]

SETUP = f"""
from server.models import Role
from server.services import regions, screens, users
county = regions.create(None, "S0", "风暴县")
town = regions.create(None, "S1", "风暴镇", county)
village = regions.create(None, "S11", "风暴村", town)
editor = users.create(None, "storm_editor", "storm-password", grants=[(Role.EDITOR, county)])
reviewer = users.create(None, "storm_reviewer", "storm-password",
                        grants=[(Role.REVIEWER, county)])
_, editor_token = users.create_token(editor, "storm")
_, reviewer_token = users.create_token(reviewer, "storm")
tokens = [screens.provision(None, village if n % 2 else town, f"屏{{n}}")[1]
          for n in range({LIGHT} + 2)]
import json
print(json.dumps({{"editor": editor_token, "reviewer": reviewer_token, "tokens": tokens}}))
"""

PUBLISH_OFFLINE = """
from server.models import User
from server.services import notices
from server.services.notices import NoticeInput
editor = User.query.filter_by(username="storm_editor").one()
reviewer = User.query.filter_by(username="storm_reviewer").one()
n = notices.create(editor, NoticeInput(title="停机期间发布的通知", body="服务器重启时发布。",
                                       category="notice", targets=["S0"]))
notices.submit(editor, n)
notices.approve(reviewer, n)
notices.publish(editor, n)
print(n.code)
"""


def api(base: str, token: str, method: str, path: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(base + "/api/v1" + path, data=json.dumps(body).encode(),
                                 method=method, headers={"Authorization": f"Bearer {token}",
                                                         "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:  # the API's reason, in the failure
        raise AssertionError(f"{method} {path}: {exc.code} {exc.read().decode()}") from None


class Swarm:
    """bench/lightclient.py as a child process, driven over its stdin/stdout."""

    def __init__(self, url: str, tokens: list[str], log: Path) -> None:
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "lightclient.py")], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._log, text=True)
        self.ask({"clients": [[i, t, url] for i, t in enumerate(tokens)], "concurrency": 50,
                  "heartbeat": True})

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, "the light clients' process ended"
        return json.loads(line)  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.ask({"cmd": "stop"})
            self.process.wait(timeout=30)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
        self._log.close()


@pytest.fixture
def storm(tmp_path: Path) -> Iterator[tuple[LiveServer, dict[str, Any]]]:
    server = LiveServer.create(tmp_path / "server", demo=False, extra_env={
        "CUNPING_HANDSHAKES_PER_SECOND": "60", "CUNPING_HANDSHAKE_BURST": "20"})
    secrets = json.loads(server.run_python(SETUP).strip().splitlines()[-1])
    server.start()
    try:
        yield server, secrets
    finally:
        server.stop()


def shows(player: LivePlayer, code: str) -> bool:
    return any(f.get("showing") == code for f in player.frames_log())


def test_a_restart_storm_drains_through_the_gate_and_misses_nothing(
    storm: tuple[LiveServer, dict[str, Any]], tmp_path: Path
) -> None:
    server, secrets = storm
    tokens: list[str] = secrets["tokens"]
    swarm = Swarm(server.url, tokens[:LIGHT], tmp_path / "swarm.log")
    players = [LivePlayer.create(tmp_path / f"player{n}", server.url, token)
               for n, token in enumerate(tokens[LIGHT:])]
    try:
        for player in players:
            player.start()
        wait_until(lambda: swarm.ask({"cmd": "status"})["connected"] == LIGHT, 60,
                   what=f"{LIGHT} light clients connected")
        draft = api(server.url, secrets["editor"], "POST", "/notices", {
            "title": "重启前的通知", "body": "请相互转告。", "category": "notice",
            "targets": ["S0"], "duration_s": 5})
        api(server.url, secrets["editor"], "POST", f"/notices/{draft['id']}/submit", {})
        api(server.url, secrets["reviewer"], "POST", f"/notices/{draft['id']}/approve", {})
        before = api(server.url, secrets["editor"], "POST",
                     f"/notices/{draft['id']}/publish", {})["code"]
        wait_until(lambda: swarm.ask({"cmd": "holds", "code": before})["missing"] == 0, 30,
                   what="every light client holds the first notice")
        for player in players:
            wait_until(lambda p=player: shows(p, before), 30, what="the players show it")
        refused_before = swarm.ask({"cmd": "status"})["busy"]

        server.stop()  # a deploy: every connection drops
        during = server.run_python(PUBLISH_OFFLINE).strip().splitlines()[-1]
        server.start()  # and every screen knocks at once

        def all_hold() -> dict[str, Any] | None:
            holds = swarm.ask({"cmd": "holds", "code": during})
            return holds if holds["missing"] == 0 and holds["connected"] == LIGHT else None

        holds = wait_until(all_hold, 90, interval=0.5,
                           what=f"all {LIGHT} light clients back with the notice")
        assert len(holds["revisions"]) == 1, holds["revisions"]  # all at one revision
        for player in players:
            wait_until(lambda p=player: shows(p, during), 60,
                       what="both players show the notice published while it was down")
        status = swarm.ask({"cmd": "status"})
        # The gate shed the storm (303 screens at 60 a second) instead of queueing it.
        assert status["busy"] > refused_before
        assert status["ever_connected"] == LIGHT
        metrics = urllib.request.urlopen(server.url + "/metrics", timeout=5).read().decode()
        busy = [line for line in metrics.splitlines()
                if line.startswith("cunping_screen_connections_busy_total")]
        assert busy and float(busy[0].split()[-1]) > 0
    finally:
        swarm.stop()
        for player in players:
            player.stop()
