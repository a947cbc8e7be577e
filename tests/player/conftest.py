"""Player test helpers: notice and alert payloads, a renderer that draws plain images fast, a
network side without network (FakeLink) and the player's loop running on a thread."""

from __future__ import annotations

import itertools
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from player.app import PlayerApp
from player.display import HeadlessDisplay
from player.store import Store

_codes = itertools.count(1)


def make_notice(code: str | None = None, *, version: int = 1, targets: list[int] | None = None,
                pinned: bool = False, published_at: datetime | None = None,
                expire_at: datetime | None = None, duration_s: int = 20,
                title: str = "关于村集体收入的公示", pages: int = 1,
                images: list[str] | None = None) -> dict[str, Any]:
    """A valid NoticePayload. `pages` is read by FakeRenderer only."""
    code = code or f"N{next(_codes):04d}"
    published = published_at or datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    return {
        "code": code,
        "version": version,
        "category": {"key": "finance", "name": "财务公开", "color": "#2e7d32"},
        "title": title,
        "blocks": [{"type": "paragraph", "runs": [{"text": "正文" * 10, "bold": False}]}],
        "regions": ["清源县 · 柳河镇 · 前王庄村"],
        "targets": targets if targets is not None else [3],
        "published_at": published.isoformat().replace("+00:00", "Z"),
        "expire_at": expire_at.isoformat().replace("+00:00", "Z") if expire_at else None,
        "duration_s": duration_s,
        "pinned": pinned,
        "url": f"http://cunping.test/n/{code}",
        "images": images or [],
        "_pages": pages,
    }


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def make_alert(code: str = "AL1", *, version: int = 1, level: int = 1,
               starts_at: datetime | None = None, expires_at: datetime | None = None,
               issued_at: datetime | None = None, event: str = "暴雨",
               text: str = "预计未来3小时内将出现强降水。",
               instruction: str = "立即停止户外活动。") -> dict[str, Any]:
    """A valid AlertPayload, in force from an hour ago for an hour unless told."""
    now = datetime.now(UTC)
    from player import protocol

    return {
        "code": code,
        "version": version,
        "level": level,
        "color": protocol.LEVEL_COLORS[level],
        "event": event,
        "title": f"清源县气象台发布{event}{protocol.LEVEL_NAMES[level]}预警",
        "text": text,
        "instruction": instruction,
        "sender_name": "清源县应急管理局",
        "starts_at": iso(starts_at or now - timedelta(hours=1)),
        "expires_at": iso(expires_at or now + timedelta(hours=1)),
        "issued_at": iso(issued_at or starts_at or now - timedelta(hours=1)),
        "targets": [3],
        "url": f"http://cunping.test/a/{code}",
    }


class FakeRenderer:
    """Renderer stand-in: one flat image per page with the code written on it; records calls."""

    def __init__(self, size: tuple[int, int] = (320, 180)) -> None:
        self.size = size
        self.calls: list[tuple[Any, ...]] = []

    def _image(self, color: tuple[int, int, int], text: str) -> Image.Image:
        image = Image.new("RGB", self.size, color)
        ImageDraw.Draw(image).text((10, 10), text, fill=(255, 255, 255))
        return image

    def notice_pages(self, notice: dict[str, Any], qr_url: str, *,
                     images: dict[str, Image.Image] | None = None) -> list[Image.Image]:
        self.calls.append(("notice", notice["code"], notice["version"], qr_url,
                           tuple(sorted(images or {}))))
        if notice.get("title") == "BOOM":
            raise RuntimeError("renderer bug")
        return [self._image((0, 80, 0), f"{notice['code']} v{notice['version']} p{i}")
                for i in range(notice.get("_pages", 1))]

    def notice_more_page(self, notice: dict[str, Any], qr_url: str, page: int, left: int, *,
                         images: dict[str, Image.Image] | None = None) -> Image.Image:
        self.calls.append(("more", notice["code"], page, left))
        return self._image((0, 80, 80), f"{notice['code']} p{page} more {left}")

    def standby(self, *, county_name: str, screen_name: str, qr_url: str | None,
                now: datetime) -> Image.Image:
        self.calls.append(("standby", county_name, screen_name, qr_url))
        return self._image((0, 0, 80), f"standby {county_name} {now:%H:%M}")

    def pairing(self, code: str, server: str) -> Image.Image:
        self.calls.append(("pairing", code, server))
        return self._image((80, 80, 0), f"pairing {code}")

    def message(self, title: str, text: str) -> Image.Image:
        self.calls.append(("message", title, text))
        return self._image((80, 0, 0), title)

    def alert(self, alert: dict[str, Any], qr_url: str, *, index: int = 0,
              total: int = 1) -> Image.Image:
        self.calls.append(("alert", alert["code"], alert["version"], qr_url, index, total))
        return self._image((200, 0, 0), f"alert {alert['code']} {index + 1}/{total}")


@pytest.fixture
def fake_renderer() -> FakeRenderer:
    return FakeRenderer()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


HOUR = timedelta(hours=1)


SCREEN = {"code": "S7", "name": "前王庄村村委会", "region_chain": [1, 2, 3],
          "public_url": "http://cunping.test/s/S7"}


class FakeLink:
    """The network side, minus the network: the test puts work in the queue itself."""

    def __init__(self, notices: list[dict[str, Any]] = (), *, token: str | None = "tok",  # type: ignore[assignment]
                 screen: dict[str, Any] | None = SCREEN, revision: int = 1) -> None:
        self.showing: str | None = None
        self.notices = {n["code"]: n for n in notices}
        self.revision = revision
        self.screen = screen
        self.county_name = "清源县" if screen else None
        self._token = token
        self.requested: list[str] = []
        self.started = self.stopped = False
        self.alerts: list[dict[str, Any]] = []
        self.clock_offset = 0.0
        self.alert: str | None = None
        self.plays: list[dict[str, Any]] = []
        self.frames: list[tuple[str, Image.Image | None, str | None]] = []

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def token(self) -> str | None:
        return self._token

    def request_image(self, url: str) -> None:
        self.requested.append(url)

    def record_play(self, play: dict[str, Any]) -> None:
        self.plays.append(play)

    def send_frame(self, request: str, image: Image.Image | None, showing: str | None) -> None:
        self.frames.append((request, image, showing))


class Running:
    """A PlayerApp running its loop on a thread, writing frames into a folder."""

    def __init__(self, tmp: Path, link: Any, work: queue.Queue[Any] | None = None,
                 renderer: FakeRenderer | None = None, store: Store | None = None,
                 audio: Any = None) -> None:
        self.frames_dir = tmp / "frames"
        self.display = HeadlessDisplay(self.frames_dir, (320, 180))
        self.renderer = renderer or FakeRenderer()
        self.work = work if work is not None else queue.Queue()
        self.link = link
        self.app = PlayerApp(self.display, self.renderer, link, self.work,
                             server="http://cunping.test", store=store, audio=audio)
        self.stop = threading.Event()
        self.result: list[int] = []
        self.thread = threading.Thread(target=lambda: self.result.append(self.app.run(self.stop)))
        self.started = time.monotonic()
        self.thread.start()

    def frames(self) -> list[dict[str, Any]]:
        path = self.frames_dir / "frames.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def wait_frame(self, want: Callable[[dict[str, Any]], bool], timeout: float = 2.0,
                   after: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for frame in self.frames():
                if frame["seq"] > after and want(frame):
                    return frame
            time.sleep(0.02)
        raise AssertionError(f"no such frame within {timeout} s: {self.frames()}")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()
        assert self.result == [0]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    made: list[Running] = []

    def start(link: Any, **kwargs: Any) -> Running:
        r = Running(tmp_path, link, **kwargs)
        made.append(r)
        return r

    yield start
    for r in made:
        r.close()


def showing(code: str) -> Callable[[dict[str, Any]], bool]:
    return lambda frame: frame["showing"] == code
