"""The player's main loop. The main thread owns the display; the network side only queues work.

The loop waits on the work queue with a timeout (the current slide's end, the next expiry, the
next minute for the standby clock), so new content interrupts a slide at once. There is always
something on screen: the notices, the standby slide, the pairing code, or a message saying what
is wrong.

An emergency alert in force outranks all of them (only a refused screen, which the server no
longer counts as its own, says so instead): it takes the whole screen, with tone and voice
where the box has them (player.sound). Several alerts in force take turns, level I first,
ALERT_SECONDS each; a new or updated alert is shown at once. When the last one ends
(cancelled, or past its expires_at by the server's clock) the playlist comes back.

Each notice that leaves the screen becomes a Play (proof of play), handed to the network side.

Times are judged by the server's clock: a set-top box often has no real-time clock and may run
hours or days off. `clock_offset` (the server's clock minus ours, measured by the network side
from WELCOME and ALERTS and kept across reboots) is added to our clock for publication and
expiry of notices, alerts, the standby clock and the start of each play; deadlines are turned
back into our clock for the loop's timeouts.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from PIL import Image

from player import protocol
from player.client import Work
from player.display import Display
from player.schedule import Rotation, Slide, alerts_in_force, build_playlist
from player.sound import AlertAudio

log = logging.getLogger(__name__)

PUMP_SECONDS = 0.25  # how often window events are handled while nothing else happens
MAX_CACHED_PAGES = 16  # rendered pages kept in memory (a 1080p page is about 6 MB)
ALERT_SECONDS = 15.0  # each of several alerts in force stays this long before the next
MAX_CACHED_ALERTS = 8
# The server's reasons, as a villager or a technician on site should read them.
REASONS = {
    "revoked": "本屏幕已被管理员停用",
    "refused": "服务器不再接受本屏幕",
    "unknown token": "本屏幕的令牌无效",
    "unknown or revoked token": "本屏幕的令牌无效或已被停用",  # servers before protocol 2
    protocol.BUSY: "服务器繁忙，稍后自动重新连接",
}


class Renderer(Protocol):
    def notice_pages(self, notice: dict[str, Any], qr_url: str, *,
                     images: dict[str, Image.Image] | None = None) -> list[Image.Image]: ...

    def notice_more_page(self, notice: dict[str, Any], qr_url: str, page: int, left: int, *,
                         images: dict[str, Image.Image] | None = None) -> Image.Image: ...

    def standby(self, *, county_name: str, screen_name: str, qr_url: str | None,
                now: datetime) -> Image.Image: ...

    def pairing(self, code: str, server: str) -> Image.Image: ...

    def message(self, title: str, text: str) -> Image.Image: ...

    def alert(self, alert: dict[str, Any], qr_url: str, *, index: int = 0,
              total: int = 1) -> Image.Image: ...


class Link(Protocol):
    """What the app needs from the network side (player.client.PlayerClient)."""

    showing: str | None
    notices: dict[str, dict[str, Any]]
    revision: int
    screen: dict[str, Any] | None
    county_name: str | None
    alerts: list[dict[str, Any]]  # the cached alert set, shown first on boot
    clock_offset: float  # the server's clock minus ours, seconds
    alert: str | None  # the alert on screen, for heartbeats

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def token(self) -> str | None: ...

    def request_image(self, url: str) -> None: ...

    def record_play(self, play: dict[str, Any]) -> None: ...

    def send_frame(self, request: str, image: Image.Image | None,
                   showing: str | None) -> None: ...


def qr_url_for(notice: dict[str, Any], screen_code: str | None) -> str:
    """The notice's (or alert's) page, tagged with this screen (/n/<code>?s=<screen code>)."""
    url = notice.get("url") or ""
    if not url or not screen_code:
        return url
    return f"{url}{'&' if '?' in url else '?'}s={screen_code}"


class PlayerApp:
    def __init__(self, display: Display, renderer: Renderer, link: Link,
                 work: queue.Queue[Work], *, server: str, store: Any = None,
                 audio: AlertAudio | None = None) -> None:
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
        self.playlist_deadline: datetime | None = None  # by our clock
        self.playlist_dirty = True
        self.mode = ""
        self.slide: Slide | None = None
        self.slide_ends = 0.0  # monotonic
        self.shown: tuple[Any, ...] | None = None
        self.minute: str | None = None
        self._pages: OrderedDict[tuple[Any, ...], list[Image.Image]] = OrderedDict()
        self._page_counts: dict[tuple[Any, ...], int] = {}
        self._more_pages: dict[tuple[Any, ...], Image.Image] = {}  # budget's last pages
        self._render_failed: set[tuple[Any, ...]] = set()
        self.showing_label: str | None = None  # the "showing" of the frame on screen

        # Alerts (the cached set first: a box that reboots shows them before anything else).
        self.audio = audio or AlertAudio()
        self.alerts: list[dict[str, Any]] = list(getattr(link, "alerts", None) or [])
        self.clock_offset = timedelta(seconds=float(getattr(link, "clock_offset", 0.0) or 0.0))
        self.alerts_dirty = True
        self.alert_deadline: datetime | None = None  # by our clock
        self.alert_order: list[dict[str, Any]] = []  # in force now, in rank order
        self.alert_key: str | None = None  # code:version on screen
        self.alert_index = 0
        self.alert_ends = 0.0  # monotonic; the next alert's turn (several in force)
        self._alert_new: list[str] = []  # keys that arrived and go on screen at once
        self._alert_images: OrderedDict[tuple[Any, ...], Image.Image] = OrderedDict()
        self._alerts_done: list[threading.Event] = []
        self._screenshots: list[str] = []  # requests waiting for the next frame

        # Proof of play: the notice on screen since when.
        self.play: dict[str, Any] | None = None

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
            self._end_play()
            self.audio.close()
            self.link.stop()
            self.display.close()
        return 0

    def _timeout(self) -> float:
        timeout = PUMP_SECONDS
        if self.mode == "notices":
            timeout = min(timeout, max(0.0, self.slide_ends - time.monotonic()))
        if self.mode == "alert" and len(self.alert_order) > 1:
            timeout = min(timeout, max(0.0, self.alert_ends - time.monotonic()))
        for deadline in (self.playlist_deadline, self.alert_deadline):
            if deadline is not None:
                left = (deadline - datetime.now(UTC)).total_seconds()
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
        self._set_clock_offset(payload.get("offset"))
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

    def _do_alerts(self, payload: dict[str, Any]) -> None:
        """The whole alert set (empty: no alert). New or updated alerts go on screen at once."""
        old = {protocol.alert_key(a) for a in self.alerts}
        self.alerts = list(payload.get("alerts") or [])
        self._set_clock_offset(payload.get("offset"))
        fresh = [protocol.alert_key(a) for a in self.alerts]
        self._alert_new = [k for k in self._alert_new if k in fresh]
        self._alert_new += [k for k in fresh if k not in old and k not in self._alert_new]
        self.alerts_dirty = True
        done = payload.get("done")
        if done is not None:
            self._alerts_done.append(done)

    def _set_clock_offset(self, offset: Any) -> None:
        """A new measure of the server's clock minus ours: everything timed is judged again."""
        if not isinstance(offset, int | float) or isinstance(offset, bool):
            return
        offset_td = timedelta(seconds=float(offset))
        if offset_td != self.clock_offset:
            self.clock_offset = offset_td
            self.playlist_dirty = self.alerts_dirty = True

    def server_now(self) -> datetime:
        """The server's time as best known: our clock plus the last measured offset."""
        return datetime.now(UTC) + self.clock_offset

    def _do_screenshot(self, payload: dict[str, Any]) -> None:
        """Answered after the next step, with the frame then on screen (the network side
        encodes and sends it as FRAME)."""
        self._screenshots.append(payload["request"])

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
        if self.alert_order:
            return "alert"
        if not self.paired:
            return "pairing" if self.pairing else "message"
        if self.rotation.playlist:
            return "notices"
        if self.screen is not None:
            return "standby"
        return "message"

    def step(self) -> None:
        """Bring the screen up to date; cheap when nothing changed."""
        try:
            self._step()
        finally:
            # Whoever waits to acknowledge an alert set: the screen now shows it.
            for done in self._alerts_done:
                done.set()
            self._alerts_done = []
            for request in self._screenshots:
                self.link.send_frame(request, getattr(self.display, "last_image", None),
                                     self.showing_label)
            self._screenshots = []

    def _step(self) -> None:
        now = datetime.now(UTC)
        interrupt = False
        if self.alerts_dirty or (self.alert_deadline is not None
                                 and now >= self.alert_deadline):
            order, deadline = alerts_in_force(self.alerts, now + self.clock_offset)
            self.alert_order = order
            self.alert_deadline = deadline - self.clock_offset if deadline else None
            self.alerts_dirty = False
        if self.playlist_dirty or (self.playlist_deadline is not None
                                   and now >= self.playlist_deadline):
            chain = self.screen.get("region_chain") if self.screen else None
            playlist, deadline = build_playlist(self.notices, now + self.clock_offset, chain)
            self.playlist_deadline = deadline - self.clock_offset if deadline else None
            interrupt = self.rotation.update(playlist)
            self.playlist_dirty = False
        mode = self.decide_mode()
        if mode != self.mode:
            log.info("screen: %s", mode)
            self.mode = mode
            interrupt = True
            self.shown = None
        if mode != "alert":
            self._leave_alert()
        if mode == "notices":
            if interrupt or time.monotonic() >= self.slide_ends:
                slide = self.rotation.next(self._page_count)
                if slide is not None:
                    self._begin_play(slide)
                    self._show_slide(slide)
                    self.slide_ends = time.monotonic() + slide.duration_s
            return
        self._end_play()
        self.slide = None
        self.rotation.current = None
        self.link.showing = None
        if mode == "alert":
            self._step_alert()
            return
        if mode == "standby":
            local = self.server_now().astimezone()  # the box's zone, the server's clock
            key = ("standby", local.strftime("%Y%m%d%H%M"), self.county_name,
                   repr(self.screen))
            if key != self.shown:
                screen = self.screen or {}
                image = self.renderer.standby(
                    county_name=self.county_name or "", screen_name=screen.get("name") or "",
                    qr_url=screen.get("public_url"), now=local)
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

    # -- alerts -----------------------------------------------------------------------------

    def _step_alert(self) -> None:
        keys = [protocol.alert_key(a) for a in self.alert_order]
        pick: int | None = None
        new = [k for k in keys if k in self._alert_new]  # rank order
        if new:
            pick = keys.index(new[0])
            self._alert_new.remove(new[0])
        elif self.alert_key not in keys:
            # Ended or replaced: its successor has moved into its place.
            pick = min(self.alert_index, len(keys) - 1) if self.alert_key else 0
        elif len(keys) > 1 and time.monotonic() >= self.alert_ends:
            pick = (keys.index(self.alert_key) + 1) % len(keys)
        if pick is not None:
            self.alert_key, self.alert_index = keys[pick], pick
            self.alert_ends = time.monotonic() + ALERT_SECONDS
        elif self.alert_key is not None:
            self.alert_index = keys.index(self.alert_key)
        alert = self.alert_order[self.alert_index]
        self.link.alert = alert["code"]
        self.audio.update(alert, frozenset(keys))
        key = ("alert", self.alert_key, self.alert_index, len(keys), self._screen_code())
        if key == self.shown:
            return
        image = self._alert_images.get(key)
        if image is None:
            image = self._render_alert(alert, len(keys))
            self._alert_images[key] = image
            while len(self._alert_images) > MAX_CACHED_ALERTS:
                self._alert_images.popitem(last=False)
        log.info("alert %s on screen (%d/%d)", self.alert_key, self.alert_index + 1, len(keys))
        self._put(image, key, f"alert:{alert['code']}", self.alert_index,
                  version=alert["version"], alert=alert["code"], level=alert["level"])

    def _render_alert(self, alert: dict[str, Any], total: int) -> Image.Image:
        try:
            return self.renderer.alert(alert, qr_url_for(alert, self._screen_code()),
                                       index=self.alert_index, total=total)
        except Exception:  # a renderer bug must not hide the alert: plain text instead
            log.exception("cannot render alert %s", alert.get("code"))
            return self.renderer.message(str(alert.get("title") or "紧急预警"),
                                         str(alert.get("text") or ""))

    def _leave_alert(self) -> None:
        if self.alert_key is not None:
            log.info("no alert in force any more")
        self.alert_key = None
        self.alert_index = 0
        self.link.alert = None
        self.audio.update(None, frozenset())

    def _screen_code(self) -> str | None:
        return self.screen.get("code") if self.screen else None

    # -- proof of play ----------------------------------------------------------------------

    def _begin_play(self, slide: Slide) -> None:
        """A slide goes on screen: the next page of the notice on screen continues its play;
        anything else (another notice, the first page again) ends it and starts one."""
        play = self.play
        if play is not None and slide.page > 0 and (play["code"], play["version"]) == (
                slide.code, slide.version):
            return
        self._end_play()
        self.play = {"code": slide.code, "version": slide.version,
                     "started_at": self.server_now().strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "t0": time.monotonic()}

    def _end_play(self) -> None:
        play, self.play = self.play, None
        if play is None:
            return
        seconds = int(time.monotonic() - play["t0"])
        if seconds < 1:
            return
        try:
            self.link.record_play({"code": play["code"], "version": play["version"],
                                   "started_at": play["started_at"], "seconds": seconds})
        except Exception:  # proof of play must never take the screen down
            log.exception("cannot record a play of %s", play["code"])

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
        key = ("notice", *self._image_key(notice), page, slide.more)
        self.slide = slide
        self.link.showing = slide.code
        if key == self.shown:
            return  # one notice with one page: nothing changes on screen
        log.debug("showing %s page %d/%d", slide.code, page + 1, len(pages))
        image = pages[page]
        if slide.more:
            image = self._more_page(notice, page, slide.more, key) or image
        extra = {"more": slide.more} if slide.more else {}
        self._put(image, key, slide.code, page, version=notice.get("version"), **extra)

    def _more_page(self, notice: dict[str, Any], page: int, left: int,
                   key: tuple[Any, ...]) -> Image.Image | None:
        """The last page of a turn cut short by the notice's time budget, saying how many
        pages are left (cached; None when the renderer cannot draw it: the plain page)."""
        cached = self._more_pages.get(key)
        if cached is not None:
            return cached
        draw = getattr(self.renderer, "notice_more_page", None)
        if draw is None:
            return None
        image_key = self._image_key(notice)
        try:
            image = draw(notice, qr_url_for(notice, self._screen_code()), page, left,
                         images={u: self.images[u] for u in image_key[2]} or None)
        except Exception:  # the plain page instead; the screen never goes down for this
            log.exception("cannot render the last page of %s's turn", notice["code"])
            return None
        self._more_pages[key] = image
        while len(self._more_pages) > 4:
            self._more_pages.pop(next(iter(self._more_pages)))
        return image

    def _put(self, image: Image.Image, key: tuple[Any, ...], showing: str,
             page: int = 0, version: int | None = None, **extra: Any) -> None:
        self.display.show(image, {"showing": showing, "page": page, "revision": self.revision,
                                  "version": version, **extra})
        self.shown = key
        self.showing_label = showing
