"""Player test helpers: notice payloads and a renderer that draws plain images fast."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from PIL import Image, ImageDraw

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


@pytest.fixture
def fake_renderer() -> FakeRenderer:
    return FakeRenderer()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


HOUR = timedelta(hours=1)
