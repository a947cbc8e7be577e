"""Two faults that used to leave a screen silently stale.

A data folder that cannot be written (disk full): the notice is shown from memory, the digest
the player reports is that of what it shows, the store error is reported, and the save is
retried until it works. The folder is a real full filesystem (a small tmpfs) where this
machine lets us mount one; see `full_disk`.

A box clock that is wrong (no RTC, NTP blocked): notices are published and expire by the
server's clock, measured from WELCOME's server_time and kept across reboots.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from player import protocol
from player import store as store_module
from player.client import PlayerClient, PlayerNamespace
from player.schedule import build_playlist
from player.store import Retrier, Store
from tests.player.conftest import FakeLink, Running, iso, make_notice, showing
from tests.player.test_client import WELCOME, drain

ENOSPC_TEXT = os.strerror(errno.ENOSPC)  # "No space left on device"


class FullDisk:
    """A data folder whose filesystem is full until `free()`.

    Real where possible: a 512 KiB tmpfs mounted on the folder (we run as root in CI), filled
    with a ballast file, so every write the player makes meets a real ENOSPC from the kernel.
    Where mounting is not allowed (not root, no CAP_SYS_ADMIN in a container) the same fault
    is made by patching the store's atomic_write to raise OSError(ENOSPC): the reason is in
    `how`, and the test says which it used if it fails."""

    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.folder = folder
        self.monkeypatch = monkeypatch
        self.mounted = False
        self.full = False
        folder.mkdir(parents=True, exist_ok=True)
        try:
            result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700",
                                     "tmpfs", str(folder)], capture_output=True, text=True,
                                    check=False)
            failure = result.stderr.strip() if result.returncode else ""
        except OSError as exc:  # no mount(8) at all
            failure = str(exc)
        if not failure:
            self.mounted = True
            self.how = "tmpfs"
        else:
            self.how = f"patched atomic_write (mount failed: {failure})"
            real = store_module.atomic_write

            def failing(path: Path, data: bytes, mode: int = 0o644, *,
                        durable: bool = True) -> None:
                if self.full and Path(path).is_relative_to(self.folder):
                    raise OSError(errno.ENOSPC, ENOSPC_TEXT, str(path))
                real(path, data, mode, durable=durable)

            monkeypatch.setattr(store_module, "atomic_write", failing)

    @property
    def ballast(self) -> Path:
        return self.folder / "ballast"

    def fill(self) -> None:
        self.full = True
        if not self.mounted:
            return
        # Write until the kernel says no: the filesystem is full for real.
        with open(self.ballast, "wb", buffering=0) as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 4096)

    def free(self) -> None:
        self.full = False
        if self.mounted:
            self.ballast.unlink(missing_ok=True)

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.folder)], check=False)


@pytest.fixture
def full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FullDisk]:
    disk = FullDisk(tmp_path / "data", monkeypatch)
    yield disk
    disk.close()


@pytest.fixture
def fast_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "RETRY_BASE", 0.05)
    monkeypatch.setattr(store_module, "RETRY_MAX", 0.2)


class Heartbeats:
    """A Socket.IO client stand-in that keeps what the player emits."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def emit(self, event: str, data: Any, namespace: str) -> None:
        assert event == protocol.HEARTBEAT
        self.sent.append(data)


def heartbeat(link: PlayerClient) -> dict[str, Any]:
    sio = Heartbeats()
    link.heartbeat(sio)  # type: ignore[arg-type]
    return sio.sent[-1]


def make_link(store: Store) -> PlayerClient:
    return PlayerClient("http://127.0.0.1:9", store, queue.Queue(), version="9.9",
                        size=(320, 180))


def wait(cond: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


# -- disk full ----------------------------------------------------------------------------


def test_a_notice_that_cannot_be_saved_is_shown_reported_and_saved_later(
        full_disk: FullDisk, fast_retry: None, caplog: pytest.LogCaptureFixture) -> None:
    store = Store(full_disk.folder)
    store.set_token("token-abcdefgh")
    link = make_link(store)
    ns = PlayerNamespace(link)
    old = make_notice("OLD")
    ns.on_snapshot({"revision": 5, "notices": [old]})
    drain(link.work)
    assert heartbeat(link)["store_error"] is None

    full_disk.fill()
    new = make_notice("NEW")
    ns.on_notice({"revision": 6, "op": "upsert", "notice": new})
    # Handed to the screen all the same (it used to be dropped here, silently).
    [(command, payload)] = drain(link.work)
    assert command == "notices", full_disk.how
    assert [n["code"] for n in payload["notices"]] == ["OLD", "NEW"]
    # What is reported is what the screen has, and that the store is failing.
    beat = heartbeat(link)
    assert beat["digest"] == protocol.digest([old, new]) == link.auth()["digest"]
    assert beat["revision"] == 6
    assert beat["store_error"] == ENOSPC_TEXT, full_disk.how
    # On disk: still the old set.
    assert [n["code"] for n in Store(full_disk.folder).load_notices() or []] == ["OLD"]

    # A reboot now (still full) starts from the disk, and says so: its digest is the old
    # set's, which differs from the server's, so connecting brings a snapshot.
    rebooted = make_link(Store(full_disk.folder))
    assert rebooted.auth()["digest"] == protocol.digest([old]) != protocol.digest([old, new])
    assert rebooted.auth()["revision"] == 5

    # Retried with backoff, logged once however many attempts fail meanwhile.
    time.sleep(0.6)
    failures = [r for r in caplog.records if "cannot save" in r.getMessage()
                and "notices.json" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in caplog.records]

    full_disk.free()
    wait(lambda: (Store(full_disk.folder).load_notices() or []) == [old, new])
    assert Store(full_disk.folder).state()["revision"] == 6
    wait(lambda: heartbeat(link)["store_error"] is None)
    assert any("saved" in r.getMessage() and "again" in r.getMessage()
               for r in caplog.records)
    assert drain(link.work) == []  # the retry only saves; the screen already had it


def test_the_screen_shows_the_notice_that_could_not_be_saved(
        full_disk: FullDisk, fast_retry: None, running: Callable[..., Running]) -> None:
    store = Store(full_disk.folder)
    store.set_token("token-abcdefgh")
    link = make_link(store)
    r = running(link, work=link.work, store=store)
    ns = PlayerNamespace(link)
    ns.on_welcome(WELCOME | {"server_time": iso(datetime.now(UTC))})
    ns.on_snapshot({"revision": 5, "notices": [make_notice("OLD", duration_s=3600)]})
    first = r.wait_frame(showing("OLD"), timeout=3)
    full_disk.fill()
    ns.on_notice({"revision": 6, "op": "upsert",
                  "notice": make_notice("NEW", duration_s=3600,
                                        published_at=datetime.now(UTC))})
    r.wait_frame(showing("NEW"), after=first["seq"], timeout=2)
    assert heartbeat(link)["store_error"] == ENOSPC_TEXT, full_disk.how
    full_disk.free()
    wait(lambda: heartbeat(link)["store_error"] is None)


def test_a_welcome_that_cannot_be_saved_still_reaches_the_screen(
        full_disk: FullDisk, fast_retry: None) -> None:
    store = Store(full_disk.folder)
    link = make_link(store)
    full_disk.fill()
    PlayerNamespace(link).on_welcome(WELCOME)
    [(command, payload)] = drain(link.work)
    assert command == "welcome" and payload["screen"]["code"] == "S7"
    assert store.problem() == ENOSPC_TEXT, full_disk.how
    full_disk.free()
    wait(lambda: Store(full_disk.folder).state()["screen"] is not None)
    assert store.problem() is None


def test_sync_current_with_a_failing_disk_does_not_stop_the_client(
        full_disk: FullDisk, fast_retry: None) -> None:
    """It used to raise out of sync() and end the network thread."""
    link = make_link(Store(full_disk.folder))
    PlayerNamespace(link).on_snapshot({"revision": 5, "notices": [make_notice("A")]})
    full_disk.fill()

    class Sio:
        def call(self, event: str, data: Any, namespace: str, timeout: float) -> Any:
            return {"status": "current", "revision": 9}

    link.sync(Sio())  # type: ignore[arg-type]
    assert link.revision == 9
    full_disk.free()
    wait(lambda: Store(full_disk.folder).state()["revision"] == 9)


def test_an_image_that_cannot_be_cached_is_still_shown(full_disk: FullDisk) -> None:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (255, 0, 0)).save(buffer, "PNG")
    store = Store(full_disk.folder)
    full_disk.fill()
    image = store.save_image("http://cunping.test/media/a.png", buffer.getvalue())
    assert image.size == (4, 4)
    if full_disk.mounted:  # the patched fallback never writes images at all
        assert not store.image_path("http://cunping.test/media/a.png").exists()


def test_retrier_backs_off_and_stops_when_the_write_works() -> None:
    calls: list[float] = []
    outcomes = [OSError(errno.EIO, "I/O error"), OSError(errno.EIO, "I/O error"), None]

    def write() -> None:
        calls.append(time.monotonic())
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    retrier = Retrier(write, base=0.05, cap=1.0)
    started = time.monotonic()
    retrier.failed()
    wait(lambda: not retrier.owed)
    assert len(calls) == 3
    gaps = [b - a for a, b in zip([started, *calls], calls, strict=False)]
    # jittered between half and all of 0.05, 0.1, 0.2 s
    assert gaps[0] >= 0.02 and gaps[2] >= 0.09
    wait(lambda: retrier._thread is None)  # no thread while nothing is owed


# -- a wrong clock ------------------------------------------------------------------------

SERVER_NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
JUST_PUBLISHED = make_notice("PUB", published_at=SERVER_NOW - timedelta(minutes=5))
EXPIRES_TOMORROW = make_notice("EXP", published_at=SERVER_NOW - timedelta(days=3),
                               expire_at=SERVER_NOW + timedelta(days=1))


@pytest.mark.parametrize(("skew", "label"), [(-timedelta(hours=2), "2 h behind"),
                                            (timedelta(days=2), "2 days ahead")])
def test_the_schedule_goes_by_the_servers_clock(skew: timedelta, label: str) -> None:
    box_now = SERVER_NOW + skew
    offset = SERVER_NOW - box_now  # what WELCOME measures
    notices = [JUST_PUBLISHED, EXPIRES_TOMORROW]
    by_box, _ = build_playlist(notices, box_now, [3])
    by_server, deadline = build_playlist(notices, box_now + offset, [3])
    assert {n["code"] for n in by_server} == {"PUB", "EXP"}, label
    assert {n["code"] for n in by_box} != {"PUB", "EXP"}, label  # the fault, for the record
    assert deadline == SERVER_NOW + timedelta(days=1)


def test_welcome_measures_the_clock_and_a_reboot_keeps_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    store.set_token("token-abcdefgh")
    link = make_link(store)
    server_now = datetime.now(UTC) + timedelta(hours=2)  # this box is 2 h behind
    PlayerNamespace(link).on_welcome(WELCOME | {"server_time": iso(server_now)})
    [(command, payload)] = drain(link.work)
    assert command == "welcome" and 7198 <= payload["offset"] <= 7201
    assert 7198 <= heartbeat(link)["clock_offset_s"] <= 7201
    # A reboot without network still goes by the server's clock.
    again = make_link(Store(tmp_path / "data"))
    assert 7198 <= again.clock_offset <= 7201
    assert 7198 <= heartbeat(again)["clock_offset_s"] <= 7201
    # Saving notices later keeps the offset on disk.
    PlayerNamespace(again).on_snapshot({"revision": 2, "notices": []})
    assert 7198 <= (Store(tmp_path / "data").clock_offset() or 0) <= 7201


def test_an_older_players_alert_offset_is_used_until_welcome(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    store.save_alerts([], 300.0)
    assert make_link(store).clock_offset == 300.0


@pytest.mark.parametrize("skew_s", [-2 * 3600, 2 * 86400])
def test_the_screen_shows_what_the_servers_clock_says(
        running: Callable[..., Running], skew_s: int) -> None:
    """Box clock 2 h behind: a notice published 5 minutes ago (server time) is in the box's
    future. 2 days ahead: a notice expiring tomorrow is already past. Both are on screen once
    WELCOME gives the offset, and only then."""
    server_now = datetime.now(UTC) - timedelta(seconds=skew_s)
    published = make_notice("PUB", duration_s=1, published_at=server_now - timedelta(minutes=5))
    tomorrow = make_notice("EXP", duration_s=1, published_at=server_now - timedelta(days=3),
                           expire_at=server_now + timedelta(days=1))
    link = FakeLink([published, tomorrow])
    r = running(link)
    shown = {"PUB", "EXP"}
    r.wait_frame(lambda f: True, timeout=2)
    time.sleep(0.3)
    before = {f["showing"] for f in r.frames()}
    assert not shown <= before  # by the box's own clock one of them is missing
    mark = r.frames()[-1]["seq"]
    r.work.put(("welcome", {"screen": link.screen, "county_name": "清源县",
                            "offset": -float(skew_s)}))
    r.wait_frame(showing("PUB"), after=mark, timeout=3)
    r.wait_frame(showing("EXP"), after=mark, timeout=3)


def test_plays_are_stamped_with_the_servers_time(running: Callable[..., Running]) -> None:
    link = FakeLink([make_notice("A", duration_s=1), make_notice("B", duration_s=1)])
    link.clock_offset = 2 * 86400.0  # this box is 2 days behind
    running(link)
    wait(lambda: bool(link.plays), timeout=4)
    started = datetime.fromisoformat(link.plays[0]["started_at"].replace("Z", "+00:00"))
    assert abs((started - datetime.now(UTC)).total_seconds() - 2 * 86400) < 10
