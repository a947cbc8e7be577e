"""Screenshots: the frame on screen as a JPEG within the limits, asked for and sent as FRAME."""

from __future__ import annotations

import base64
import io
import queue
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from player import protocol
from player.client import PlayerClient, PlayerNamespace, encode_frame
from player.store import Store
from tests.player.conftest import FakeLink, Running, make_alert, make_notice, showing
from tests.player.test_client import drain


def noise(size: tuple[int, int]) -> Image.Image:
    """The worst case for JPEG: random pixels."""
    rng = random.Random(4)
    return Image.frombytes("RGB", size, bytes(rng.getrandbits(8) for _ in range(3 * size[0]
                                                                              * size[1])))


def test_frames_are_scaled_to_960_wide_and_fit_the_limit() -> None:
    data, w, h = encode_frame(Image.new("RGB", (1920, 1080), (200, 30, 30)))
    assert (w, h) == (960, 540)
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "JPEG" and img.size == (960, 540)
    _small, w, h = encode_frame(Image.new("RGB", (640, 360), (1, 2, 3)))
    assert (w, h) == (640, 360)  # never enlarged
    _portrait, w, h = encode_frame(Image.new("RGB", (1080, 1920)))
    assert (w, h) == (960, 1707)


def test_noise_is_squeezed_under_the_limit() -> None:
    img = noise((1920, 1080))
    data, w, h = encode_frame(img)
    assert len(data) <= protocol.MAX_FRAME_BYTES and w <= 960
    tight, w, h = encode_frame(img, limit=20_000)
    assert len(tight) <= 20_000
    assert w < 960  # quality alone was not enough: smaller too
    with Image.open(io.BytesIO(tight)) as out:
        assert out.size == (w, h)


@pytest.fixture
def link(tmp_path: Path) -> PlayerClient:
    store = Store(tmp_path / "data")
    store.set_token("token-abcdefgh")
    return PlayerClient("http://127.0.0.1:9", store, queue.Queue(), version="1", size=(1, 1))


@pytest.mark.parametrize("bad", [None, {}, {"request": 5}, {"request": ""},
                                 {"request": "x" * 65}])
def test_a_bad_screenshot_request_is_ignored(link: PlayerClient, bad: Any,
                                             caplog: pytest.LogCaptureFixture) -> None:
    PlayerNamespace(link).on_screenshot(bad)
    assert drain(link.work) == []
    assert not link._sync_full
    assert "ignoring malformed screenshot" in caplog.text


def test_the_request_goes_to_the_screen_and_the_frame_comes_back(link: PlayerClient) -> None:
    PlayerNamespace(link).on_screenshot({"request": "req-7"})
    assert drain(link.work) == [("screenshot", {"request": "req-7"})]
    sent: list[tuple[str, Any]] = []

    class FakeSio:
        def emit(self, event: str, data: Any, namespace: str, callback: Any) -> None:
            sent.append((event, data))
            callback({"status": "ok"})

    link.send_frame("req-7", noise((1920, 1080)), "alert:AL1")
    link.send_frame("req-8", None, None)  # nothing on screen yet: nothing to send
    link.send_frames(FakeSio())  # type: ignore[arg-type]
    [(event, data)] = sent
    assert event == protocol.FRAME
    assert set(data) == {"request", "image", "width", "height", "showing"}
    assert (data["request"], data["showing"], data["width"]) == ("req-7", "alert:AL1", 960)
    jpeg = base64.b64decode(data["image"])
    assert len(jpeg) <= protocol.MAX_FRAME_BYTES
    with Image.open(io.BytesIO(jpeg)) as img:
        assert img.size == (data["width"], data["height"])
    link.send_frames(FakeSio())  # type: ignore[arg-type]
    assert len(sent) == 1  # sent once


def test_the_loop_hands_over_the_frame_on_screen(running: Callable[..., Running]) -> None:
    link = FakeLink([make_notice("A", duration_s=3600)])
    r = running(link)
    r.wait_frame(showing("A"), timeout=1)
    r.work.put(("screenshot", {"request": "r1"}))
    deadline = time.monotonic() + 1
    while not link.frames and time.monotonic() < deadline:
        time.sleep(0.02)
    # asked in the same breath as an alert arrives: the answer shows the alert
    r.work.put(("alerts", {"alerts": [make_alert("AL1")], "offset": 0.0, "done": None}))
    r.work.put(("screenshot", {"request": "r2"}))
    r.wait_frame(lambda f: f["showing"] == "alert:AL1", timeout=1)


    deadline = time.monotonic() + 1
    while len(link.frames) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    (r1, img1, show1), (r2, img2, show2) = link.frames
    assert (r1, show1) == ("r1", "A")
    assert (r2, show2) == ("r2", "alert:AL1")  # the loop shows the alert before it answers
    assert img2 is r.display.last_image
    assert img1 is not None and img1.getpixel((300, 170)) == (0, 80, 0)
