"""The player's main loop. The main thread owns the display; the network side only queues work.

The loop waits on the work queue with a timeout (the current slide's end, the next expiry, the
next minute for the standby clock), so new content interrupts a slide at once. There is always
something on screen: the notices, the standby slide, the pairing code, or a message saying what
is wrong.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any, Protocol

from PIL import Image

from player.client import Work
from player.display import Display
from player.schedule import Rotation, Slide, build_playlist

log = logging.getLogger(__name__)

PUMP_SECONDS = 0.25  # how often window events are handled while nothing else happens
MAX_CACHED_PAGES = 16  # rendered pages kept in memory (a 1080p page is about 6 MB)
# The server's reasons, as a villager or a technician on site should read them.
REASONS = {
    "revoked": "本屏幕已被管理员停用",
    "refused": "服务器不再接受本屏幕",
    "unknown or revoked token": "本屏幕的令牌无效或已被停用",
}


class Renderer(Protocol):
    def notice_pages(self, notice: dict[str, Any], qr_url: str, *,
                     images: dict[str, Image.Image] | None = None) -> list[Image.Image]: ...

    def standby(self, *, county_name: str, screen_name: str, qr_url: str | None,
                now: datetime) -> Image.Image: ...

    def pairing(self, code: str, server: str) -> Image.Image: ...

    def message(self, title: str, text: str) -> Image.Image: ...


class Link(Protocol):
    """What the app needs from the network side (player.client.PlayerClient)."""

    showing: str | None
    notices: dict[str, dict[str, Any]]
    revision: int
    screen: dict[str, Any] | None
    county_name: str | None

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def token(self) -> str | None: ...

    def request_image(self, url: str) -> None: ...


def qr_url_for(notice: dict[str, Any], screen_code: str | None) -> str:
    """The notice's page, tagged with this screen (/n/<code>?s=<screen code>)."""
    url = notice["url"]
    if not screen_code:
        return url
    return f"{url}{'&' if '?' in url else '?'}s={screen_code}"


class PlayerApp:
    def __init__(self, display: Display, renderer: Renderer, link: Link,
                 work: queue.Queue[Work], *, server: str, store: Any = None) -> None:
        self.display = display
        self.renderer = renderer
        self.link = link
        self.work = work
        self.server = server
        self.store = store  # for cached images; optional

        self.notices: list[dict[str, Any]] = list(link.notices.values())
        self.revision = link.revision
        self.screen = link.screen
        self.county_name = link.county_name
        self.paired = bool(link.token())
        self.pairing: dict[str, Any] | None = None
        self.status: dict[str, str] = {"state": "connecting", "reason": ""}
        self.images: dict[str, Image.Image] = {}

        self.rotation = Rotation()
        self.playlist_deadline: datetime | None = None
        self.playlist_dirty = True
        self.mode = ""
        self.slide: Slide | None = None
        self.slide_ends = 0.0  # monotonic
        self.shown: tuple[Any, ...] | None = None
        self.minute: str | None = None
        self._pages: OrderedDict[tuple[Any, ...], list[Image.Image]] = OrderedDict()
        self._page_counts: dict[tuple[Any, ...], int] = {}
        self._render_failed: set[tuple[Any, ...]] = set()

    # -- the loop --------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> int:
        """Show what is cached at once, then connect; returns the exit status."""
        stop = stop or threading.Event()
        self._load_cached_images()
        self.step()
        self.link.start()
        try:
            while not stop.is_set():
                if not self.display.pump():
                    log.info("display closed")
                    return 0
                try:
                    item: Work | None = self.work.get(timeout=self._timeout())
                except queue.Empty:
                    item = None
                while item is not None:
                    self.apply(item)
                    try:
                        item = self.work.get_nowait()
                    except queue.Empty:
                        item = None
                self.step()
        finally:
            self.link.stop()
            self.display.close()
        return 0

    def _timeout(self) -> float:
        timeout = PUMP_SECONDS
        if self.mode == "notices":
            timeout = min(timeout, max(0.0, self.slide_ends - time.monotonic()))
        if self.playlist_deadline is not None:
            left = (self.playlist_deadline - datetime.now(UTC)).total_seconds()
            timeout = min(timeout, max(0.0, left))
        return timeout

    # -- work from the network side (the command table) -----------------------------------

    def apply(self, item: Work) -> None:
        command, payload = item
        handler = getattr(self, "_do_" + command, None)
        if handler is None:
            log.error("unknown work %r", command)
            return
        handler(payload)

    def _do_status(self, payload: dict[str, str]) -> None:
        if payload != self.status:
            log.info("connection: %s %s", payload.get("state"), payload.get("reason") or "")
        self.status = payload

    def _do_welcome(self, payload: dict[str, Any]) -> None:
        self.screen = payload["screen"]
        self.county_name = payload.get("county_name")
        self.paired = True
        self.pairing = None
        self.playlist_dirty = True  # the region chain may have changed
        self.shown = None if self.mode == "standby" else self.shown

    def _do_notices(self, payload: dict[str, Any]) -> None:
        self.notices = list(payload["notices"])
        self.revision = payload["revision"]
        self.playlist_dirty = True
        wanted = {u for n in self.notices for u in n.get("images") or ()}
        self.images = {u: img for u, img in self.images.items() if u in wanted}
        self._load_cached_images()
        live = {n["code"] for n in self.notices}
        for key in [k for k in self._page_counts if k[0] not in live]:
            del self._page_counts[key]

    def _do_pairing(self, payload: dict[str, Any]) -> None:
        self.pairing = payload
        self.paired = False

    def _do_images(self, payload: dict[str, Image.Image]) -> None:
        self.images.update(payload)
        if self.slide is not None and self.mode == "notices":
            notice = self._notice(self.slide.code)
            if notice is not None and set(payload) & set(notice.get("images") or ()):
                self._show_slide(self.slide)  # same page, now with its picture

    def _load_cached_images(self) -> None:
        for notice in self.notices:
            for url in notice.get("images") or ():
                if not isinstance(url, str) or url in self.images:
                    continue
                image = self.store.load_image(url) if self.store is not None else None
                if image is not None:
                    self.images[url] = image
                else:
                    self.link.request_image(url)

    # -- what to show ------------------------------------------------------------------------

    def decide_mode(self) -> str:
        if self.status.get("state") == "refused":
            return "refused"
        if not self.paired:
            return "pairing" if self.pairing else "message"
        if self.rotation.playlist:
            return "notices"
        if self.screen is not None:
            return "standby"
        return "message"

    def step(self) -> None:
        """Bring the screen up to date; cheap when nothing changed."""
        now = datetime.now(UTC)
        interrupt = False
        if self.playlist_dirty or (self.playlist_deadline is not None
                                   and now >= self.playlist_deadline):
            chain = self.screen.get("region_chain") if self.screen else None
            playlist, self.playlist_deadline = build_playlist(self.notices, now, chain)
            interrupt = self.rotation.update(playlist)
            self.playlist_dirty = False
        mode = self.decide_mode()
        if mode != self.mode:
            log.info("screen: %s", mode)
            self.mode = mode
            interrupt = True
            self.shown = None
        if mode == "notices":
            if interrupt or time.monotonic() >= self.slide_ends:
                slide = self.rotation.next(self._page_count)
                if slide is not None:
                    self._show_slide(slide)
                    self.slide_ends = time.monotonic() + slide.duration_s
            return
        self.slide = None
        self.rotation.current = None
        self.link.showing = None
        if mode == "standby":
            minute = datetime.now().strftime("%Y%m%d%H%M")
            key = ("standby", minute, self.county_name, repr(self.screen))
            if key != self.shown:
                screen = self.screen or {}
                image = self.renderer.standby(
                    county_name=self.county_name or "", screen_name=screen.get("name") or "",
                    qr_url=screen.get("public_url"), now=datetime.now().astimezone())
                self._put(image, key, "standby")
        elif mode == "pairing":
            assert self.pairing is not None
            key = ("pairing", self.pairing["code"])
            if key != self.shown:
                self._put(self.renderer.pairing(self.pairing["code"], self.server), key,
                          "pairing")
        else:
            title, text = self._message()
            key = ("message", title, text)
            if key != self.shown:
                self._put(self.renderer.message(title, text), key, "message")

    def _message(self) -> tuple[str, str]:
        reason = self.status.get("reason") or ""
        reason = REASONS.get(reason, reason)
        state = self.status.get("state")
        if state == "refused":
            return ("此屏幕未授权或已停用",
                    f"原因：{reason or '服务器拒绝连接'}\n"
                    f"请联系管理员重新配对或配置本机。\n服务器：{self.server}")
        if state == "offline":
            return ("暂时无法连接服务器",
                    f"服务器：{self.server}\n原因：{reason}\n正在自动重试……")
        return ("正在连接服务器……", f"服务器：{self.server}")

    # -- notices ----------------------------------------------------------------------------

    def _notice(self, code: str) -> dict[str, Any] | None:
        for notice in self.rotation.playlist:
            if notice["code"] == code:
                return notice
        return None

    def _image_key(self, notice: dict[str, Any]) -> tuple[Any, ...]:
        urls = [u for u in notice.get("images") or () if u in self.images]
        return (notice["code"], notice["version"], tuple(urls), self.display.size)

    def pages(self, notice: dict[str, Any]) -> list[Image.Image]:
        """The notice's rendered pages, cached by (code, version, images, size)."""
        key = self._image_key(notice)
        pages = self._pages.get(key)
        if pages is not None:
            self._pages.move_to_end(key)
            return pages
        started = time.monotonic()
        screen_code = self.screen.get("code") if self.screen else None
        images = {u: self.images[u] for u in key[2]}
        try:
            pages = self.renderer.notice_pages(notice, qr_url_for(notice, screen_code),
                                               images=images or None)
            if not pages:
                raise ValueError("the renderer returned no page")
        except Exception:  # a renderer bug on one notice must not take the screen down
            if key not in self._render_failed:
                log.exception("cannot render notice %s", notice["code"])
                self._render_failed.add(key)
            pages = [self.renderer.message(notice.get("title") or "公告", "此公告暂时无法显示。")]
        log.debug("rendered %s v%s: %d page(s) in %.0f ms", notice["code"], notice["version"],
                  len(pages), (time.monotonic() - started) * 1000)
        self._pages[key] = pages
        self._page_counts[key] = len(pages)
        while sum(len(p) for p in self._pages.values()) > MAX_CACHED_PAGES \
                and len(self._pages) > 1:
            self._pages.popitem(last=False)
        return pages

    def _page_count(self, notice: dict[str, Any]) -> int:
        count = self._page_counts.get(self._image_key(notice))
        return count if count is not None else len(self.pages(notice))

    def _show_slide(self, slide: Slide) -> None:
        notice = self._notice(slide.code)
        if notice is None:
            return
        pages = self.pages(notice)
        page = min(slide.page, len(pages) - 1)
        key = ("notice", *self._image_key(notice), page)
        self.slide = slide
        self.link.showing = slide.code
        if key == self.shown:
            return  # one notice with one page: nothing changes on screen
        log.debug("showing %s page %d/%d", slide.code, page + 1, len(pages))
        self._put(pages[page], key, slide.code, page, version=notice.get("version"))

    def _put(self, image: Image.Image, key: tuple[Any, ...], showing: str,
             page: int = 0, version: int | None = None) -> None:
        self.display.show(image, {"showing": showing, "page": page, "revision": self.revision,
                                  "version": version})
        self.shown = key
