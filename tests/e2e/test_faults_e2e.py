"""End to end: the two faults that used to leave a screen silently stale, with a real server
process and real headless player processes.

A box whose data folder is full (a real filesystem: a small tmpfs mounted on the player's data
folder and filled) shows a notice published meanwhile, from memory; its heartbeats say the
store is failing while the digest is that of what it shows; restarted while still full it
starts from the older set on disk, its digest differs from the server's, and the snapshot that
follows is shown; once space is back the notice is saved and the error clears.

Boxes whose clocks are 2 h behind and 2 days ahead (libfaketime in the player process only)
show a notice just published and one expiring tomorrow, by the server's clock, and report
their offsets.
"""

from __future__ import annotations

import contextlib
import glob
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_screen_e2e import Api
from tests.live import LivePlayer, LiveServer, wait_until

DEADLINE = 2.0
HEARTBEAT_WAIT = 40.0  # heartbeats come every 30 s, then are written within 2 s
ENOSPC_TEXT = "No space left on device"

SETUP = """
from server.models import Role
from server.services import regions, screens, users
county = regions.create(None, "F0", "故障县")
town = regions.create(None, "F1", "故障镇", county)
village = regions.create(None, "F11", "故障村", town)
editor = users.create(None, "e2e_editor", "e2e-password", grants=[(Role.EDITOR, village)])
reviewer = users.create(None, "e2e_reviewer", "e2e-password", grants=[(Role.REVIEWER, village)])
_, editor_token = users.create_token(editor, "e2e")
_, reviewer_token = users.create_token(reviewer, "e2e")
out = {"editor": editor_token, "reviewer": reviewer_token, "screens": {}}
for name in ("full", "slow", "fast"):
    screen, token = screens.provision(None, village, name, width=1280, height=720)
    out["screens"][name] = {"token": token, "code": screen.code}
import json
print(json.dumps(out))
"""

# What the server knows of a screen: its stored heartbeat and the digest it would send now.
STATE = """
from server.models import Screen
from server.services import playlist
from server.extensions import db
import json
screen = db.session.scalar(db.select(Screen).where(Screen.code == {code!r}))
print(json.dumps({{"state": screen.state, "digest": playlist.snapshot(screen).digest}}))
"""


class County:
    def __init__(self, server: LiveServer, secrets: dict[str, Any], folder: Path) -> None:
        self.server = server
        self.folder = folder
        self.editor = Api(server.url, secrets["editor"])
        self.reviewer = Api(server.url, secrets["reviewer"])
        self.screens: dict[str, dict[str, str]] = secrets["screens"]
        self.players: list[LivePlayer] = []

    def player(self, name: str, env: dict[str, str] | None = None) -> LivePlayer:
        player = LivePlayer.create(self.folder / name, self.server.url,
                                   self.screens[name]["token"])
        player.env.update(env or {})
        self.players.append(player)
        return player

    def publish(self, title: str, expire_at: datetime | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"title": title, "body": "请村民相互转告。", "category": "notice",
                                "targets": ["F11"], "duration_s": 5}
        if expire_at is not None:
            body["expire_at"] = expire_at.isoformat()
        notice = self.editor.call("POST", "/notices", body)
        self.editor.call("POST", f"/notices/{notice['id']}/submit", {})
        self.reviewer.call("POST", f"/notices/{notice['id']}/approve", {})
        return self.editor.call("POST", f"/notices/{notice['id']}/publish", {})

    def screen(self, name: str) -> dict[str, Any]:
        """{"state": the stored heartbeat, "digest": the server's digest for the screen}."""
        out = self.server.run_python(STATE.format(code=self.screens[name]["code"]))
        return json.loads(out.strip().splitlines()[-1])


@pytest.fixture
def county(tmp_path: Path) -> Iterator[County]:
    server = LiveServer.create(tmp_path / "server", demo=False)
    secrets = json.loads(server.run_python(SETUP).strip().splitlines()[-1])
    server.start()
    world = County(server, secrets, tmp_path)
    try:
        yield world
    finally:
        for player in world.players:
            player.stop()
        server.stop()


def shown(player: LivePlayer, after: int = 0) -> set[str]:
    return {f.get("showing") for f in player.frames_log() if f["seq"] > after}


def last_seq(player: LivePlayer) -> int:
    frames = player.frames_log()
    return frames[-1]["seq"] if frames else 0


def saved_codes(player: LivePlayer) -> set[str]:
    try:
        return {n["code"] for n in json.loads((player.data / "notices.json").read_text())}
    except (OSError, ValueError):
        return set()


# -- disk full ----------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs for the player's data folder. The player is another process, so the
    fault cannot be patched in: without the right to mount (not root, or a container without
    CAP_SYS_ADMIN) this test cannot make a real full disk and is skipped, saying so; the
    player tests (tests/player/test_faults.py) cover the same rules in-process then."""
    folder = tmp_path / "full" / "data"
    folder.mkdir(parents=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs",
                               str(folder)], capture_output=True, text=True, check=False)
        failure = done.stderr.strip() if done.returncode else ""
    except OSError as exc:
        failure = str(exc)
    if failure:
        pytest.skip(f"cannot mount a small tmpfs for a real full disk: {failure}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> None:
    with open(folder / "ballast", "wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 4096)


def test_a_full_disk_shows_from_memory_reports_it_and_saves_when_space_is_back(
        county: County, small_disk: Path) -> None:
    player = county.player("full")
    assert player.data == small_disk
    player.start()
    before = county.publish("磁盘满之前的公告")
    wait_until(lambda: before["code"] in shown(player), 30, what="the first notice shown")
    wait_until(lambda: before["code"] in saved_codes(player), 5, what="the first notice saved")

    fill(small_disk)
    mark = last_seq(player)
    during = county.publish("磁盘满时发布的公告")
    wait_until(lambda: during["code"] in shown(player, mark), DEADLINE, interval=0.02,
               what="the notice published while the disk is full, shown from memory")
    assert during["code"] not in saved_codes(player)

    # The heartbeat says the store fails, and its digest is that of what the screen shows,
    # which is the server's: "up to date" in the admin is true.
    def reported_failing() -> dict[str, Any] | None:
        screen = county.screen("full")
        return screen if (screen["state"] or {}).get("store_error") else None

    screen = wait_until(reported_failing, HEARTBEAT_WAIT, interval=1,
                        what="a heartbeat with store_error")
    assert screen["state"]["store_error"] == ENOSPC_TEXT
    assert screen["state"]["digest"] == screen["digest"]

    # A restart while still full starts from the disk (the older set), says so on connect,
    # and the server answers with a snapshot, shown at once.
    player.stop()
    mark = last_seq(player)
    log_mark = len(player.log.read_text(errors="replace"))
    player.start()
    wait_until(lambda: during["code"] in shown(player, mark), 30,
               what="the notice shown again after a restart with the disk full")
    log = player.log.read_text(errors="replace")[log_mark:]
    assert "snapshot: revision" in log  # the digest from disk differed: a snapshot came
    assert during["code"] not in saved_codes(player)

    (small_disk / "ballast").unlink()
    wait_until(lambda: during["code"] in saved_codes(player), 30,
               what="the notice saved once space is back")

    def reported_healthy() -> dict[str, Any] | None:
        screen = county.screen("full")
        state = screen["state"] or {}
        return screen if "store_error" in state and state["store_error"] is None else None

    screen = wait_until(reported_healthy, HEARTBEAT_WAIT, interval=1,
                        what="a heartbeat without store_error")
    assert screen["state"]["digest"] == screen["digest"]


# -- wrong clocks -------------------------------------------------------------------------


def faketime_library() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        pytest.skip("libfaketime is not installed (Debian package libfaketime; scripts/test "
                    "installs it): a player process with a wrong clock needs it")
    return found[0]


def skewed(skew: str) -> dict[str, str]:
    """The environment for a player whose clock is `skew` off ("-2h", "+2d"): libfaketime
    in that process only; its monotonic clock stays true (timeouts, slide durations)."""
    return {"LD_PRELOAD": faketime_library(), "FAKETIME": skew,
            "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_NO_CACHE": "1"}


def test_boxes_with_wrong_clocks_show_what_the_servers_clock_says(county: County) -> None:
    slow = county.player("slow", skewed("-2h"))
    fast = county.player("fast", skewed("+2d"))
    slow.start()
    fast.start()
    # Published now: in the future of the slow box's clock.
    published = county.publish("刚刚发布的公告")
    # Expires tomorrow: already past by the fast box's clock.
    tomorrow = county.publish("明天到期的公告",
                              expire_at=datetime.now(UTC) + timedelta(days=1))
    want = {published["code"], tomorrow["code"]}
    for player in (slow, fast):
        wait_until(lambda p=player: want <= shown(p), 30,
                   what=f"both notices on the {player.data.parent.name} box")

    # The clocks really were off (the offsets measured from WELCOME, kept on disk) ...
    def offset(player: LivePlayer) -> float | None:
        try:
            value = json.loads((player.data / "state.json").read_text()).get("clock_offset")
        except (OSError, ValueError):
            return None
        return value if isinstance(value, int | float) else None

    assert 7190 <= (offset(slow) or 0) <= 7210
    assert -172810 <= (offset(fast) or 0) <= -172790

    # ... and the heartbeats report them to the server.
    def reported(name: str, low: int, high: int) -> bool:
        value = (county.screen(name)["state"] or {}).get("clock_offset_s")
        return isinstance(value, int) and low <= value <= high

    wait_until(lambda: reported("slow", 7190, 7210), HEARTBEAT_WAIT, interval=1,
               what="the slow box's offset in its heartbeat")
    wait_until(lambda: reported("fast", -172810, -172790), HEARTBEAT_WAIT, interval=1,
               what="the fast box's offset in its heartbeat")
