"""The player's loop with the headless display: what is on screen, and how fast it changes."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from player import protocol
from player.app import qr_url_for
from player.client import PlayerClient
from player.display import HeadlessDisplay
from player.store import Store
from tests.player.conftest import SCREEN, FakeLink, Running, make_notice, showing

ROOT = Path(__file__).resolve().parents[2]
def test_plays_notices_in_order_with_pages(running: Callable[..., Running]) -> None:
    a = make_notice("A", pages=2, duration_s=1, pinned=True)
    b = make_notice("B", duration_s=1)
    r = running(FakeLink([a, b], revision=3))
    first = r.wait_frame(lambda f: True, timeout=1)
    assert (first["showing"], first["page"], first["revision"]) == ("A", 0, 3)
    r.wait_frame(lambda f: f["showing"] == "A" and f["page"] == 1, timeout=3)
    r.wait_frame(showing("B"), timeout=3)
    assert r.link.showing in ("A", "B")
    with Image.open(r.frames_dir / first["file"]) as png:
        assert png.size == (320, 180)
    assert (r.frames_dir / "current.png").exists()
    # the notice's QR goes to its page, tagged with this screen
    assert ("notice", "A", 1, "http://cunping.test/n/A?s=S7", ()) in r.renderer.calls


def test_new_notice_interrupts_the_slide_at_once(running: Callable[..., Running]) -> None:
    old = make_notice("OLD", duration_s=3600)
    r = running(FakeLink([old]))
    first = r.wait_frame(showing("OLD"), timeout=1)
    fresh = make_notice("NEW", duration_s=3600, published_at=datetime.now(UTC))
    sent = time.monotonic()
    r.work.put(("notices", {"notices": [old, fresh], "revision": 2}))
    frame = r.wait_frame(showing("NEW"), timeout=1, after=first["seq"])
    assert time.monotonic() - sent < 1
    assert frame["revision"] == 2
    # withdrawn while on screen: replaced at once
    r.work.put(("notices", {"notices": [old], "revision": 3}))
    r.wait_frame(showing("OLD"), timeout=1, after=frame["seq"])
    # and an empty set means standby, at once
    r.work.put(("notices", {"notices": [], "revision": 4}))
    r.wait_frame(showing("standby"), timeout=1, after=frame["seq"])
    assert r.link.showing is None


def test_standby_when_there_is_nothing(running: Callable[..., Running]) -> None:
    r = running(FakeLink([make_notice("ELSEWHERE", targets=[99])]))
    r.wait_frame(showing("standby"), timeout=1)
    assert ("standby", "清源县", "前王庄村村委会", "http://cunping.test/s/S7") in r.renderer.calls
    time.sleep(0.6)
    assert [f["showing"] for f in r.frames()] == ["standby"]  # not redrawn every tick


def test_expired_notice_leaves_the_screen(running: Callable[..., Running]) -> None:
    soon = make_notice("SOON", duration_s=3600,
                       expire_at=datetime.now(UTC) + timedelta(seconds=0.8))
    r = running(FakeLink([soon]))
    r.wait_frame(showing("SOON"), timeout=1)
    r.wait_frame(showing("standby"), timeout=2)


def test_pairing_slide_when_there_is_no_token(running: Callable[..., Running]) -> None:
    r = running(FakeLink(token=None, screen=None))
    r.wait_frame(showing("message"), timeout=1)  # connecting...
    r.work.put(("pairing", {"code": "123456", "expires_at": None}))
    r.wait_frame(showing("pairing"), timeout=1)
    assert ("pairing", "123456", "http://cunping.test") in r.renderer.calls
    r.work.put(("welcome", {"screen": SCREEN, "county_name": "清源县"}))
    r.wait_frame(showing("standby"), timeout=1)


def test_refused_screen_says_so(running: Callable[..., Running]) -> None:
    r = running(FakeLink([make_notice("A", duration_s=3600)]))
    r.wait_frame(showing("A"), timeout=1)
    r.work.put(("status", {"state": "refused", "reason": "unknown or revoked token"}))
    r.wait_frame(showing("message"), timeout=1)
    title, text = next(c[1:] for c in r.renderer.calls if c[0] == "message")
    assert title == "此屏幕未授权或已停用"
    assert "令牌无效或已被停用" in text
    r.work.put(("status", {"state": "online", "reason": ""}))
    r.wait_frame(showing("A"), timeout=1, after=2)


@pytest.mark.parametrize(("state", "reason", "shown"), [
    ("refused", "unknown token", "本屏幕的令牌无效"),
    ("refused", "revoked", "本屏幕已被管理员停用"),
    ("offline", protocol.BUSY, "服务器繁忙"),
])
def test_the_servers_reasons_are_shown_in_chinese(
    running: Callable[..., Running], state: str, reason: str, shown: str
) -> None:
    r = running(FakeLink(screen=None))
    r.work.put(("status", {"state": state, "reason": reason}))
    r.wait_frame(lambda f: any(c[0] == "message" and shown in c[2] for c in r.renderer.calls),
                 timeout=2)


def test_nothing_cached_and_no_server_shows_a_message(running: Callable[..., Running]) -> None:
    r = running(FakeLink(screen=None))
    r.work.put(("status", {"state": "offline", "reason": "Connection refused"}))
    r.wait_frame(showing("message"), timeout=1)
    r.wait_frame(lambda f: f["seq"] == 2, timeout=1)  # "connecting" then "offline"
    assert any(c[0] == "message" and c[1] == "暂时无法连接服务器" for c in r.renderer.calls)


def test_renderer_failure_on_one_notice_keeps_the_rest(
        running: Callable[..., Running], caplog: pytest.LogCaptureFixture) -> None:
    bad = make_notice("BAD", title="BOOM", duration_s=1, pinned=True)
    good = make_notice("GOOD", duration_s=1)
    r = running(FakeLink([bad, good]))
    r.wait_frame(showing("BAD"), timeout=1)  # shown as a message slide in its place
    r.wait_frame(showing("GOOD"), timeout=3)
    assert "cannot render notice BAD" in caplog.text


def test_images_arrive_later_and_the_slide_is_redrawn(tmp_path: Path,
                                                      running: Callable[..., Running]) -> None:
    url = "http://cunping.test/media/a.png"
    notice = make_notice("PIC", duration_s=3600, images=[url, "http://cunping.test/broken"])
    link = FakeLink([notice])
    r = running(link, store=Store(tmp_path / "data"))
    first = r.wait_frame(showing("PIC"), timeout=1)
    assert set(link.requested) == {url, "http://cunping.test/broken"}
    r.work.put(("images", {url: Image.new("RGB", (10, 10))}))
    r.wait_frame(showing("PIC"), timeout=1, after=first["seq"])
    assert r.renderer.calls[-1][-1] == (url,)  # rendered again, with the picture


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cached_playlist_is_shown_at_once_with_the_server_down(
        tmp_path: Path, running: Callable[..., Running]) -> None:
    store = Store(tmp_path / "data")
    store.set_token("token-abcdefgh")
    store.save_state(revision=0, screen=SCREEN, county_name="清源县")
    store.save_notices([make_notice("CACHED", duration_s=3600)], 7)
    work: queue.Queue[Any] = queue.Queue()
    link = PlayerClient(f"http://127.0.0.1:{closed_port()}", store, work, version="1",
                        size=(320, 180))
    r = running(link, work=work, store=store)
    frame = r.wait_frame(showing("CACHED"), timeout=1)
    assert frame["revision"] == 7
    assert frame["seq"] == 1  # the very first frame
    time.sleep(0.5)  # the connection fails meanwhile: the notice stays
    assert {f["showing"] for f in r.frames()} == {"CACHED"}


def test_headless_display_keeps_the_last_frames(tmp_path: Path) -> None:
    display = HeadlessDisplay(tmp_path, (64, 36), keep=5)
    for i in range(13):
        display.show(Image.new("RGB", (64, 36), (i, i, i)), {"showing": f"N{i}", "page": 0,
                                                             "revision": i})
    names = sorted(p.name for p in tmp_path.glob("frame-*.png"))
    assert names == [f"frame-{i:06d}.png" for i in range(9, 14)]
    lines = [json.loads(x) for x in (tmp_path / "frames.jsonl").read_text().splitlines()]
    assert lines[-1] == {**lines[-1], "seq": 13, "file": "frame-000013.png", "showing": "N12",
                         "revision": 12}
    assert len(lines) <= 10
    # a restart goes on numbering after the last frame
    assert HeadlessDisplay(tmp_path, (64, 36)).seq == 13


def test_pygame_display_with_the_dummy_driver(tmp_path: Path) -> None:
    code = """
import os
os.environ["SDL_VIDEODRIVER"] = "dummy"
from PIL import Image
from player.display import PygameDisplay
d = PygameDisplay((320, 180), fullscreen=False)
d.show(Image.new("RGB", (320, 180), (200, 0, 0)), {"showing": "A"})
d.show(Image.new("RGB", (640, 360), (0, 200, 0)), {"showing": "B"})  # scaled to fit
assert d.pump() is True
print(d.size, d.surface.get_at((5, 5))[:3])
d.close()
"""
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "(320, 180) (0, 200, 0)"


def test_player_imports_neither_flask_nor_server() -> None:
    code = """
import sys
import player.app, player.client, player.config, player.display, player.schedule
import player.store, player.__main__
from player.__main__ import parser
parser()
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("flask", "server", "sqlalchemy"))
print(bad)
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_qr_url_for() -> None:
    n = make_notice("Ab3xK9")
    assert qr_url_for(n, "S7") == "http://cunping.test/n/Ab3xK9?s=S7"
    assert qr_url_for({**n, "url": "http://h/n/X?a=1"}, "S7") == "http://h/n/X?a=1&s=S7"
    assert qr_url_for(n, None) == "http://cunping.test/n/Ab3xK9"


def test_cli_config_errors_are_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUNPING_PLAYER_")}
    out = subprocess.run([sys.executable, "-m", "player", "--display", "headless"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert out.stderr.strip().startswith("cunping player: no server URL")
    bad = tmp_path / "player.toml"
    bad.write_text('server = "ftp://x"\n')
    out = subprocess.run([sys.executable, "-m", "player", "--config", str(bad)], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=60)
    assert "server must be an http:// or https:// URL" in out.stderr
    assert "Traceback" not in out.stderr


def test_no_chinese_font_stops_with_a_clear_message(tmp_path: Path) -> None:
    latin = tmp_path / "latin.ttf"  # a file that is no font that draws Chinese
    latin.write_bytes(b"\0" * 64)
    out = subprocess.run([sys.executable, "-m", "player", "--server", "http://127.0.0.1:9",
                          "--display", "headless", "--data-dir", str(tmp_path / "d"),
                          "--font", str(latin)], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert "cannot draw Chinese" in out.stderr
    assert "Traceback" not in out.stderr


def test_the_last_page_of_a_budgeted_turn_is_the_renderers_more_page(tmp_path: Path) -> None:
    from player.app import PlayerApp
    from player.schedule import Slide
    from tests.player.conftest import FakeRenderer

    notice = make_notice("LONG", pages=10, duration_s=20)
    renderer = FakeRenderer()
    display = HeadlessDisplay(tmp_path / "frames", (320, 180))
    app = PlayerApp(display, renderer, FakeLink([notice]), queue.Queue(),
                    server="http://cunping.test")
    app.rotation.update([notice])
    app._show_slide(Slide("LONG", 1, 2, 10, 20.0))
    assert not [c for c in renderer.calls if c[0] == "more"]
    app._show_slide(Slide("LONG", 1, 5, 10, 20.0, more=4))
    assert ("more", "LONG", 5, 4) in renderer.calls
    frames = [json.loads(line) for line in
              (tmp_path / "frames" / "frames.jsonl").read_text().splitlines()]
    assert frames[-1]["page"] == 5 and frames[-1]["more"] == 4
    assert "more" not in frames[0]
