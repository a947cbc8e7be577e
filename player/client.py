"""The network side: a Socket.IO client for the "/player" namespace, in its own thread.

It never touches the display. It validates what the server sends (player.protocol.check_*),
keeps the notice set and revision on disk (player.store), and hands work to the main thread
through a queue, as (command, payload) pairs (Anthias' command table):

    ("status",   {"state": "connecting"|"online"|"offline"|"refused", "reason": str})
    ("welcome",  {"screen": {...}, "county_name": str|None, "offset": float})
    ("notices",  {"notices": [...], "revision": int})   the whole current set
    ("pairing",  {"code": str, "expires_at": str|None})
    ("images",   {url: PIL.Image})                       downloaded images
    ("alerts",   {"alerts": [...], "offset": float, "done": threading.Event|None})
                 the whole alert set (offset: the server's clock minus ours, in seconds);
                 the main thread sets `done` once the screen shows it
    ("screenshot", {"request": str})                     send the frame on screen (FRAME)

A malformed or oversized notice payload is logged and ignored, and a full resync is requested
(SYNC with revision -1); a malformed ALERTS is logged, ignored and not acknowledged, so the
server sends it again. Reconnects forever with jittered exponential backoff.

A notice set that cannot be saved (disk full, read-only or failing storage) is handed to the
screen all the same and shown from memory, so the digest this client reports (auth, SYNC,
HEARTBEAT) is always that of the set the screen has; the save is retried with backoff
(store.Retrier) and heartbeats say "store_error" until it works.

The server's clock, not the box's, decides times: every WELCOME and ALERTS carries
"server_time", and `clock_offset` (server minus ours, kept in state.json across reboots) is
handed to the screen, which judges publication, expiry and alerts by our clock plus it.

It also sends what the main thread hands it: proof of play (player.plays, PLAYS batches every
protocol.PLAYS_SECONDS) and screenshots (FRAME, a JPEG of the frame on screen).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import queue
import random
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any
from urllib.error import URLError

import socketio
from PIL import Image

from player import protocol, signing
from player.plays import PlayQueue
from player.schedule import parse_time
from player.signing import AlertKeys
from player.store import Retrier, Store

log = logging.getLogger(__name__)

Work = tuple[str, Any]

BACKOFF_BASE = 1.0
# A server that is down costs nothing to knock at, and one that is up but saturated says when
# to come back (protocol.BUSY): so the wait stays short, and a restart finds its screens back
# within seconds of coming up (with 60 s, a screen that began waiting just before could take a
# minute, the tail of a 10,000-screen storm).
BACKOFF_MAX = 20.0
REFUSED_BACKOFF_MIN = 15.0  # a refused screen waits for a person; do not hammer the server
REFUSED_BACKOFF_MAX = 300.0
BUSY_JITTER = 0.25  # a busy server's Retry-After, plus up to this share of it at random
CONNECT_TIMEOUT = 10
SYNC_TIMEOUT = 15
IMAGE_MAX_BYTES = 5 * 1024 * 1024
IMAGE_TIMEOUT = 10
IMAGE_RETRY_SECONDS = 300
ALERT_SHOWN_TIMEOUT = 2.0  # how long an ALERTS acknowledgement waits for the screen
PLAYS_TIMEOUT = 15
PLAYS_FIRST_SECONDS = 5.0  # after connecting, send the plays queued offline this soon
PLAYS_BATCHES_AT_ONCE = 10  # a backlog goes out 10 batches a round
FRAME_WIDTH = 960
FRAME_QUALITY = 70
MAX_REQUEST_ID = 64
CLOCK_LOG_SECONDS = 60.0  # the clock offset is logged when it moves this much


def backoff(attempt: int, base: float = BACKOFF_BASE, cap: float = BACKOFF_MAX) -> float:
    """Exponential backoff with jitter (between half and all of the step), so a town's boxes
    coming back after a power cut do not all knock at once."""
    step = min(cap, base * (2 ** min(attempt, 20)))
    return random.uniform(step / 2, step)


def busy_delay(retry_after: float) -> float:
    """How long to wait after a busy server said Retry-After: never sooner, and spread at
    random over a quarter more, so the screens it gave one slot do not all come back in it."""
    hint = min(float(protocol.MAX_RETRY_AFTER), max(1.0, retry_after))
    return random.uniform(hint, hint * (1 + BUSY_JITTER))


def retry_ticket(exc: BaseException | None, last_error: Any) -> str | None:
    """The ticket a busy server handed out with its Retry-After (protocol.TICKET_HEADER), to
    bring back on the next handshake; None when there is none."""
    if isinstance(last_error, dict) and last_error.get("message") == protocol.BUSY:
        ticket = last_error.get("ticket")
        return ticket if isinstance(ticket, str) and len(ticket) <= 40 else None
    seen = 0
    while exc is not None and seen < 8:
        if getattr(exc, "status_code", None) == 503:
            headers = getattr(exc, "resp_headers", None) or {}
            for name, value in dict(headers).items():
                if str(name).lower() == protocol.TICKET_HEADER.lower():
                    return str(value) if len(str(value)) <= 40 else None
            return None
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def with_ticket(url: str, ticket: str | None) -> str:
    """The server's URL with the ticket for the next handshake (engine.io keeps the query)."""
    if not ticket:
        return url
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query)
    query = [(k, v) for k, v in query if k != protocol.TICKET_PARAM]
    query.append((protocol.TICKET_PARAM, ticket))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def retry_hint(exc: BaseException | None, last_error: Any) -> float | None:
    """The Retry-After of a handshake the server refused as busy (HTTP 503, see
    server/realtime/admission.py), or None. Over WebSocket, python-engineio keeps the refused
    upgrade's response as the cause of its ConnectionError; over long-polling the 503's JSON
    body reaches connect_error."""
    if isinstance(last_error, dict) and last_error.get("message") == protocol.BUSY:
        # The 503's body (long-polling), or a connect the server could not finish
        # (ConnectionRefusedError(BUSY, {"retry_after": s}) puts it under "data").
        extra = last_error.get("data")
        for value in (last_error.get("retry_after"),
                      extra.get("retry_after") if isinstance(extra, dict) else None):
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
        return 1.0
    seen = 0
    while exc is not None and seen < 8:
        if getattr(exc, "status_code", None) == 503:
            headers = getattr(exc, "resp_headers", None) or {}
            value = headers.get("retry-after") or headers.get("Retry-After")
            try:
                return float(value) if value is not None else 1.0
            except ValueError:
                return 1.0
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def payload_size(payload: Any) -> int:
    try:
        return len(json.dumps(payload, ensure_ascii=False).encode())
    except (TypeError, ValueError):
        return protocol.MAX_MESSAGE_BYTES + 1


def refusal_reason(data: Any) -> str:
    """The reason in a connect_error: {"message": ...} from ConnectionRefusedError, or text."""
    if isinstance(data, dict):
        message = data.get("message")
        extra = data.get("data")
        if isinstance(extra, dict) and isinstance(extra.get("reason"), str):
            return extra["reason"]
        if isinstance(message, str):
            return message
    if isinstance(data, str):
        return data
    return "连接被拒绝"


class PlayerNamespace(socketio.ClientNamespace):
    """Handlers for "/player". They run on the Socket.IO thread: validate, save, queue."""

    def __init__(self, link: PlayerClient) -> None:
        super().__init__(protocol.NAMESPACE)
        self.link = link

    def on_connect(self) -> None:
        self.link.connected()

    def on_connect_error(self, data: Any = None) -> None:
        self.link.last_error = data

    def on_disconnect(self, reason: Any = None) -> None:
        self.link.disconnected(str(reason) if reason else "断开")

    def on_welcome(self, data: Any = None) -> None:
        self.link.handle(protocol.WELCOME, data)

    def on_snapshot(self, data: Any = None) -> None:
        self.link.handle(protocol.SNAPSHOT, data)

    def on_notice(self, data: Any = None) -> None:
        self.link.handle(protocol.NOTICE, data)

    def on_pairing(self, data: Any = None) -> None:
        self.link.handle(protocol.PAIRING, data)

    def on_paired(self, data: Any = None) -> None:
        self.link.handle(protocol.PAIRED, data)

    def on_revoked(self, data: Any = None) -> None:
        self.link.handle(protocol.REVOKED, data)

    def on_rejoin(self, data: Any = None) -> None:
        self.link.handle(protocol.REJOIN, data)

    def on_alerts(self, data: Any = None) -> None:
        # Acknowledged with an ALERTS_ACK event once saved; a set whose signature does not
        # verify is answered ALERTS_REFUSED; nothing sent when it was malformed or could not be
        # kept: the server sends it again.
        answer = self.link.handle_alerts(data)
        if answer is None:
            return
        event, body = answer
        # A connecting screen gets its alerts first, before the server's connect answer:
        # the acknowledgement waits for it (handlers run on threads of their own).
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while self.namespace not in (self.client.namespaces or {}) \
                and time.monotonic() < deadline and self.client.eio.state == "connected":
            time.sleep(0.01)
        try:
            self.emit(event, body)
        except socketio.exceptions.SocketIOError as exc:  # gone: the server sends it again
            log.warning("alerts answer not sent (%s)", exc)

    def on_screenshot(self, data: Any = None) -> None:
        self.link.handle(protocol.SCREENSHOT, data)


def encode_frame(image: Image.Image, *, max_width: int = FRAME_WIDTH,
                 quality: int = FRAME_QUALITY,
                 limit: int = protocol.MAX_FRAME_BYTES) -> tuple[bytes, int, int]:
    """`image` as a JPEG at most `max_width` wide and `limit` bytes: (data, width, height).
    Lowers the quality, then the size, until it fits."""
    img = image.convert("RGB")
    if img.width > max_width:
        img = img.resize((max_width, max(1, round(img.height * max_width / img.width))),
                         Image.Resampling.LANCZOS)
    while True:
        q = quality
        while True:
            buffer = io.BytesIO()
            img.save(buffer, "JPEG", quality=q, optimize=True)
            data = buffer.getvalue()
            if len(data) <= limit or q <= 25:
                break
            q -= 15
        if len(data) <= limit or img.width <= 16:
            return data, img.width, img.height
        img = img.resize((max(1, img.width * 3 // 4), max(1, img.height * 3 // 4)),
                         Image.Resampling.LANCZOS)


def check_welcome(data: Any) -> dict[str, Any]:
    def require(cond: bool, message: str) -> None:
        if not cond:
            raise protocol.ProtocolError(message)

    require(isinstance(data, dict), "welcome must be an object")
    screen = data.get("screen")
    require(isinstance(screen, dict), "welcome: bad screen")
    require(isinstance(screen.get("code"), str), "welcome: bad screen code")
    chain = screen.get("region_chain")  # absent: the player trusts the server's selection
    require(chain is None or (isinstance(chain, list) and all(isinstance(i, int) for i in chain)),
            "welcome: bad region_chain")
    require(screen.get("public_url") is None or isinstance(screen.get("public_url"), str),
            "welcome: bad public_url")
    require(data.get("county_name") is None or isinstance(data.get("county_name"), str),
            "welcome: bad county_name")
    return data


class PlayerClient:
    """Owns the connection, the notice set and its revision. Start with `start()`."""

    def __init__(self, server: str, store: Store, work: queue.Queue[Work], *,
                 version: str, size: tuple[int, int], config_token: str | None = None,
                 alert_keys: Iterable[str] = (),
                 client_factory: Callable[[], socketio.Client] | None = None) -> None:
        self.server = server
        self.store = store
        self.work = work
        self.version = version
        self.size = size
        self.config_token = config_token
        # The county's alert keys: the config's win, else those pinned at pairing.
        self.config_alert_keys = tuple(alert_keys)
        self.keys = AlertKeys(self.config_alert_keys or self._pinned_keys(store))
        self.client_factory = client_factory or self._make_client
        self.showing: str | None = None  # set by the main thread, read for heartbeats
        self.started = time.monotonic()
        self.last_error: Any = None
        self.sio: socketio.Client | None = None
        self.images = ImageFetcher(store, work)

        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()  # something for the client thread to do
        self._sync_full = False  # request a full snapshot (revision -1)
        self._sync_soon = False
        self._reconnect = False
        self._revoked: str | None = None
        self._pairing_expires: float | None = None
        self._thread: threading.Thread | None = None
        self._online = False

        state = store.state()
        cached = store.load_notices()
        self.notices: dict[str, dict[str, Any]] = {n["code"]: n for n in cached or ()}
        # A missing or corrupt cache must not claim a revision: -1 asks for a full snapshot.
        self.revision: int = state["revision"] if cached is not None else -1
        self._last_problem: tuple[str, str] | None = None
        self.screen: dict[str, Any] | None = state["screen"]
        self.county_name: str | None = state["county_name"]

        # Alerts: the set last received (kept on disk, shown first on boot), and the server's
        # clock minus ours in seconds (a box without a real-time clock may be far off), as
        # last measured: state.json's, else alerts.json's (kept there by older players).
        self.alerts, alerts_offset = store.load_alerts()
        # The server_time of the set shown: a signed set older than it is a replay.
        self._alerts_time = signing.signed_time({"server_time": store.alerts_server_time()})
        saved_offset = store.clock_offset()
        self.clock_offset: float = saved_offset if saved_offset is not None else alerts_offset
        self._saves = Retrier(self._save_again)  # what could not be saved, tried again
        self.alert: str | None = None  # the alert on screen (set by the main thread)
        self._alerts_lock = threading.Lock()  # one ALERTS at a time, in order
        self.plays = PlayQueue(store.dir)
        self._frames: list[tuple[str, Image.Image, str | None]] = []

    # -- identity ---------------------------------------------------------------------------

    def token(self) -> str | None:
        """The config file's token wins (re-provisioning), then the one received by pairing."""
        return self.config_token or self.store.token()

    def auth(self) -> dict[str, Any]:
        """Called by Socket.IO on every (re)connect, so a new token is picked up."""
        base = {"version": self.version, "width": self.size[0], "height": self.size[1]}
        token = self.token()
        if token:
            with self._lock:
                digest = protocol.digest(self.notices.values()) if self.revision >= 0 else ""
                return {"token": token, "revision": self.revision, "digest": digest, **base}
        return {"pairing": self.store.pairing_secret(), **base}

    # -- thread -------------------------------------------------------------------------------

    def _make_client(self) -> socketio.Client:
        # Reconnection is ours (run()): one loop for the first connect, drops, refusals and
        # server-side disconnects, with transport fallback, instead of two loops racing.
        return socketio.Client(reconnection=False, logger=False, engineio_logger=False)

    def start(self) -> None:
        self.images.start()
        self._thread = threading.Thread(target=self.run, name="cunping-client", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.images.stop()
        self._saves.stop()
        sio = self.sio
        if sio is not None:
            with contextlib.suppress(Exception):
                sio.disconnect()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def request_image(self, url: str) -> None:
        self.images.request(url)

    def post(self, command: str, payload: Any) -> None:
        self.work.put((command, payload))

    def run(self) -> None:
        attempt = 0
        ticket: str | None = None  # a busy server's ticket for our slot, for the next try
        while not self._stop.is_set():
            # websocket first; every third failure in a row tries long-polling (a proxy that
            # does not pass websockets), which upgrades to websocket when it can.
            transports = ["polling", "websocket"] if attempt % 3 == 2 else ["websocket"]
            self.sio = sio = self.client_factory()
            sio.register_namespace(PlayerNamespace(self))
            self.last_error = None
            self._reconnect = False
            try:
                sio.connect(with_ticket(self.server, ticket), namespaces=[protocol.NAMESPACE],
                            auth=self.auth, transports=transports,
                            wait_timeout=CONNECT_TIMEOUT)
            except (socketio.exceptions.ConnectionError, ValueError, OSError) as exc:
                refused = bool(getattr(sio, "failed_namespaces", None))
                with contextlib.suppress(Exception):
                    sio.disconnect()
                attempt += 1
                hint = retry_hint(exc, self.last_error)
                ticket = retry_ticket(exc, self.last_error) if hint is not None else None
                if hint is not None:
                    # A saturated server: it said when to come back. Not counted against the
                    # websocket-first rule (the server, not the network, said no).
                    attempt -= 1
                    delay = busy_delay(hint)
                    self._set_offline("offline", protocol.BUSY, delay)
                elif refused:
                    reason = refusal_reason(self.last_error)
                    delay = backoff(attempt, REFUSED_BACKOFF_MIN, REFUSED_BACKOFF_MAX)
                    self._set_offline("refused", reason, delay)
                else:
                    reason = refusal_reason(self.last_error) if self.last_error else str(exc)
                    delay = backoff(attempt)
                    self._set_offline("offline", reason, delay)
                self._stop.wait(delay)
                continue
            attempt = 0
            ticket = None
            self._serve(sio)
            if self._revoked is not None:
                # Told we are revoked: keep saying so and try again slowly (an admin may
                # re-provision the box or restore the screen).
                self._stop.wait(backoff(1, REFUSED_BACKOFF_MIN, REFUSED_BACKOFF_MAX))
            elif not self._reconnect:
                self._stop.wait(backoff(0))

    def _set_offline(self, state: str, reason: str, delay: float) -> None:
        if self._last_problem != (state, reason):  # log changes, not every retry
            self._last_problem = (state, reason)
            log.warning("server %s: %s (%s); retrying in %.0f s", self.server, state, reason,
                        delay)
        self._online = False
        self.post("status", {"state": state, "reason": reason})

    def _serve(self, sio: socketio.Client) -> None:
        """While connected: heartbeats, reconcile, requested resyncs, reconnect requests."""
        next_heartbeat = time.monotonic()
        # The first reconcile somewhere in the second half of the period: after a server
        # restart every screen reconnects within a minute, and their reconciles must not all
        # come due in the same minute three minutes later.
        next_sync = time.monotonic() + protocol.RECONCILE_SECONDS * random.uniform(0.5, 1.0)
        next_plays = time.monotonic() + PLAYS_FIRST_SECONDS
        while not self._stop.is_set() and sio.connected:
            if self._reconnect:
                log.info("reconnecting to the server")
                with contextlib.suppress(Exception):
                    sio.disconnect()
                return
            now = time.monotonic()
            if self._pairing_expires is not None and now >= self._pairing_expires \
                    and not self.token():
                log.info("pairing code expired; asking for a new one")
                self._pairing_expires = None
                with contextlib.suppress(Exception):
                    sio.disconnect()
                self._reconnect = True
                return
            if self._sync_soon or self._sync_full or now >= next_sync:
                if self.token():
                    self.sync(sio)
                else:
                    self._sync_soon = self._sync_full = False
                next_sync = time.monotonic() + protocol.RECONCILE_SECONDS
            if now >= next_heartbeat:
                if self.token():
                    self.heartbeat(sio)
                next_heartbeat = now + protocol.HEARTBEAT_SECONDS
            self.send_frames(sio)
            if now >= next_plays:
                if self.token():
                    self.send_plays(sio)
                next_plays = time.monotonic() + protocol.PLAYS_SECONDS
            self._wake.wait(max(0.05, min(next_heartbeat, next_sync, next_plays)
                                - time.monotonic()))
            self._wake.clear()

    def sync(self, sio: socketio.Client) -> None:
        with self._lock:
            full, self._sync_full, self._sync_soon = self._sync_full, False, False
            data = {"revision": -1 if full else self.revision,
                    "digest": protocol.digest(self.notices.values())}
        try:
            ack = sio.call(protocol.SYNC, data, namespace=protocol.NAMESPACE,
                           timeout=SYNC_TIMEOUT)
        except (socketio.exceptions.TimeoutError, socketio.exceptions.SocketIOError) as exc:
            log.warning("sync got no answer: %s", exc or type(exc).__name__)
            return
        status = ack.get("status") if isinstance(ack, dict) else None
        log.debug("sync %s -> %s", data, status)
        if not isinstance(ack, dict):
            return
        if isinstance(ack.get("notices"), list):
            self.handle(protocol.SNAPSHOT, ack)
        elif status == "current" and isinstance(ack.get("revision"), int):
            # Same content: adopt the server's revision (revisions are global, so a screen
            # sees gaps), unless a delta changed our set meanwhile.
            with self._lock:
                if protocol.digest(self.notices.values()) == data["digest"] \
                        and ack["revision"] > self.revision:
                    self.revision = ack["revision"]
                    self._save_or_retry(notices=False)
        elif status == "refused":
            self._on_revoked({"reason": "refused"})
            self._reconnect = True

    def heartbeat(self, sio: socketio.Client) -> None:
        with self._lock:
            data = {"showing": self.showing, "revision": self.revision,
                    "digest": protocol.digest(self.notices.values()), "version": self.version,
                    "uptime_s": int(time.monotonic() - self.started), "alert": self.alert,
                    "store_error": self.store.problem(),
                    "clock_offset_s": round(self.clock_offset)}
        try:
            sio.emit(protocol.HEARTBEAT, data, namespace=protocol.NAMESPACE)
        except socketio.exceptions.SocketIOError as exc:
            log.debug("heartbeat not sent: %s", exc)

    def send_plays(self, sio: socketio.Client) -> None:
        """Send the queued plays, a batch at a time; a batch leaves the queue only when the
        server says "ok" (no answer: the same batch, same id, next round)."""
        for _ in range(PLAYS_BATCHES_AT_ONCE):
            try:
                batch = self.plays.next_batch()
            except OSError as exc:
                log.error("cannot prepare plays: %s", exc)
                return
            if batch is None:
                return
            try:
                ack = sio.call(protocol.PLAYS, batch, namespace=protocol.NAMESPACE,
                               timeout=PLAYS_TIMEOUT)
            except (socketio.exceptions.TimeoutError, socketio.exceptions.SocketIOError) as exc:
                log.warning("plays batch %s got no answer: %s; sending it again later",
                            batch["batch"], exc or type(exc).__name__)
                return
            if isinstance(ack, dict) and ack.get("status") == "ok":
                self.plays.acknowledged(batch["batch"])
                log.info("reported %d plays (batch %s)", len(batch["plays"]), batch["batch"])
            elif isinstance(ack, dict) and ack.get("status") == "invalid":
                # Not a batch to the server: resending cannot help, and it would block
                # every later play. Dropped, loudly.
                log.error("plays batch %s refused as invalid (%s); dropping its %d plays",
                          batch["batch"], ack.get("reason"), len(batch["plays"]))
                self.plays.acknowledged(batch["batch"])
            else:
                log.warning("plays batch %s not accepted: %r", batch["batch"], ack)
                return

    def record_play(self, play: dict[str, Any]) -> None:
        """A notice left the screen (main thread): queue it for the next PLAYS."""
        self.plays.record(play)

    def send_frame(self, request: str, image: Image.Image | None, showing: str | None) -> None:
        """The frame on screen for a SCREENSHOT request (main thread): sent by this thread."""
        if image is None:
            log.warning("screenshot %s: nothing on screen yet", request)
            return
        with self._lock:
            self._frames.append((request, image, showing))
        self._wake.set()

    def send_frames(self, sio: socketio.Client) -> None:
        with self._lock:
            frames, self._frames = self._frames, []
        for request, image, showing in frames:
            data, width, height = encode_frame(image)
            if len(data) > protocol.MAX_FRAME_BYTES:
                log.error("screenshot %s: %d bytes even at the lowest quality; not sent",
                          request, len(data))
                continue
            payload = {"request": request, "image": base64.b64encode(data).decode("ascii"),
                       "width": width, "height": height, "showing": showing}

            def answered(*ack: Any, request: str = request) -> None:
                log.info("screenshot %s answered: %r", request, ack[0] if ack else None)

            try:
                sio.emit(protocol.FRAME, payload, namespace=protocol.NAMESPACE,
                         callback=answered)
            except socketio.exceptions.SocketIOError as exc:
                log.warning("screenshot %s not sent: %s", request, exc)
                continue
            log.info("screenshot %s sent (%dx%d, %d bytes)", request, width, height, len(data))

    def request_sync(self, *, full: bool = False) -> None:
        with self._lock:
            if full:
                self._sync_full = True
            else:
                self._sync_soon = True
        self._wake.set()

    # -- events (Socket.IO thread) ---------------------------------------------------------

    def connected(self) -> None:
        self._online = True
        self._revoked = None
        self._last_problem = None
        log.info("connected to %s", self.server)
        self.post("status", {"state": "online", "reason": ""})

    def disconnected(self, reason: str) -> None:
        if self._online:
            expected = self._stop.is_set() or self._reconnect
            log.log(logging.INFO if expected else logging.WARNING,
                    "disconnected from %s: %s", self.server, reason)
            self._online = False
            if self._revoked is None:
                self.post("status", {"state": "offline", "reason": reason})
        self._wake.set()

    def handle(self, event: str, data: Any) -> None:
        """Validate and apply one server event; bad input never escapes this method."""
        if payload_size(data) > protocol.MAX_MESSAGE_BYTES:
            log.error("ignoring oversized %s event; asking for a full snapshot", event)
            self.request_sync(full=True)
            return
        try:
            getattr(self, "_on_" + event)(data)
        except protocol.ProtocolError as exc:
            if event == protocol.SCREENSHOT:  # nothing to do with the notices
                log.error("ignoring malformed %s event (%s)", event, exc)
                return
            log.error("ignoring malformed %s event (%s); asking for a full snapshot", event, exc)
            self.request_sync(full=True)
        except OSError as exc:  # the disk is full or gone: keep showing what we have
            log.error("could not save %s event: %s", event, exc)

    def _on_welcome(self, data: Any) -> None:
        check_welcome(data)
        screen = dict(data["screen"])
        with self._lock:
            if not screen.get("public_url"):
                screen["public_url"] = f"{self._public_base()}/s/{screen['code']}"
            self.screen = screen
            self.county_name = data.get("county_name")
            self._measure_clock(data.get("server_time"))
            self._save_or_retry(notices=False)
        log.info("screen %s (%s)", self.screen.get("code"), self.screen.get("name"))
        self.post("welcome", {"screen": self.screen, "county_name": self.county_name,
                              "offset": self.clock_offset})

    def _measure_clock(self, server_time: Any) -> None:
        """The server's clock minus ours, from a `server_time` just received (WELCOME, ALERTS);
        kept as it was when there is none. Logged when it moves by a minute or more."""
        when = parse_time(server_time)
        if when is None:
            return
        offset = when.timestamp() - time.time()
        if abs(offset - self.clock_offset) >= CLOCK_LOG_SECONDS:
            log.warning("this box's clock is %.0f s %s the server's; going by the server's",
                        abs(offset), "behind" if offset > 0 else "ahead of")
        self.clock_offset = offset

    def _public_base(self) -> str:
        """The residents' base URL when WELCOME does not say: the one in the notices' URLs
        (the server's PUBLIC_BASE_URL), else the address this player connects to."""
        for notice in self.notices.values():
            base, sep, _code = notice["url"].rpartition("/n/")
            if sep and base.startswith(("http://", "https://")):
                return base
        return self.server

    def _on_snapshot(self, data: Any) -> None:
        protocol.check_snapshot(data)
        with self._lock:
            self.notices = {n["code"]: n for n in data["notices"]}
            self.revision = data["revision"]
            self._commit()
        log.info("snapshot: revision %s, %d notices", data["revision"], len(data["notices"]))

    def _on_notice(self, data: Any) -> None:
        protocol.check_delta(data)
        code = data["notice"]["code"]
        with self._lock:
            if data["op"] == "upsert":
                old = self.notices.get(code)
                if old is not None and old["version"] > data["notice"]["version"]:
                    log.info("ignoring stale upsert of %s", code)
                    return
                self.notices[code] = data["notice"]
            else:
                self.notices.pop(code, None)
            self.revision = max(self.revision, data["revision"])
            self._commit()
        # Revisions are global, so gaps are normal; a missed delta is caught by the digest
        # on the next connect or reconcile.
        log.info("notice %s %s (revision %s)", data["op"], code, data["revision"])

    def _commit(self) -> None:
        """Save and hand over the whole set (the caller holds the lock). Handed over even when
        it cannot be saved: the screen shows what the digest we report describes."""
        notices = list(self.notices.values())
        self._save_or_retry()
        self.post("notices", {"notices": notices, "revision": self.revision})

    def _save(self, *, notices: bool = True) -> None:
        """Notices (unless told not to and none are owed), revision, screen and clock offset:
        what a reboot without network shows from. Raises OSError. The caller holds the lock."""
        owed = notices or self._saves.owed
        self.store.save_all(list(self.notices.values()) if owed else None,
                            revision=self.revision, screen=self.screen,
                            county_name=self.county_name, clock_offset=self.clock_offset)

    def _save_or_retry(self, *, notices: bool = True) -> None:
        """Save now; when that fails (the store logs and reports it), the Retrier saves again
        later. The caller holds the lock."""
        try:
            self._save(notices=notices)
        except OSError:
            self._saves.failed()
        else:
            self._saves.succeeded()

    def _save_again(self) -> None:
        with self._lock:
            self._save()

    @staticmethod
    def _pinned_keys(store: Store) -> list[str]:
        keys = store.alert_keys()
        try:
            AlertKeys(keys)
        except signing.BadKey as exc:
            log.error("ignoring the alert keys pinned at pairing: %s", exc)
            return []
        return keys

    def _follow_keys(self, announced: Any) -> None:
        """The keys announced in a verified set replace those pinned at pairing (a rotation).
        The caller holds the alerts lock."""
        if not isinstance(announced, list) or not announced \
                or sorted(announced) == sorted(self.store.alert_keys()):
            return
        try:
            keys = AlertKeys(announced)
        except (signing.BadKey, AttributeError) as exc:
            log.error("ignoring the alert keys announced: %s", exc)
            return
        try:
            self.store.set_alert_keys(list(announced))
        except OSError:
            return  # kept as they are; announced again with the next set
        self.keys = keys
        log.info("alert keys now %s", ", ".join(keys.ids()))

    def handle_alerts(self, data: Any) -> tuple[str, dict[str, Any]] | None:
        """ALERTS: validate, check its signature, save, hand to the screen, and return the
        answer: (ALERTS_ACK, {"have": [code:version, ...]}) of the saved set once the screen
        shows it (or after ALERT_SHOWN_TIMEOUT); (ALERTS_REFUSED, {"reason", "key"}) for a set
        whose signature does not verify (nothing shown or saved). None (no answer: the server
        sends it again) for a malformed or unsaved set."""
        if payload_size(data) > protocol.MAX_MESSAGE_BYTES:
            log.error("ignoring an oversized alerts event (not acknowledged)")
            return None
        try:
            protocol.check_alerts(data)
        except protocol.ProtocolError as exc:
            log.error("ignoring a malformed alerts event (%s); not acknowledged", exc)
            return None
        with self._alerts_lock:
            refusal = self.keys.refusal(data, self._alerts_time)
        if refusal is not None:
            signature = data.get("signature")
            key = signature.get("key") if isinstance(signature, dict) else None
            log.error("refusing an alert set (%s, key %s): not shown, reported", refusal, key)
            return protocol.ALERTS_REFUSED, {"reason": refusal,
                                             "key": key if isinstance(key, str) else None}
        alerts = list(data["alerts"])
        with self._alerts_lock:
            with self._lock:
                self._measure_clock(data.get("server_time"))
                offset = self.clock_offset
                self._save_or_retry(notices=False)  # the offset, for a reboot offline
            if self.keys and not self.config_alert_keys:
                self._follow_keys(data.get("keys"))
            saved = True
            sent = signing.signed_time(data)
            if sent is not None and (self._alerts_time is None or sent > self._alerts_time):
                self._alerts_time = sent
            try:
                newest = self._alerts_time  # the newest set's time, not this one's
                self.store.save_alerts(alerts, offset, newest.isoformat() + "Z"
                                       if newest is not None else None)
            except OSError:  # shown all the same; unacknowledged, so sent again (the store
                saved = False  # logged it and reports it in heartbeats)
            self.alerts = alerts
            done = threading.Event()
            self.post("alerts", {"alerts": alerts, "offset": offset, "done": done})
            keys = [protocol.alert_key(a) for a in alerts]
            log.info("alerts: %s", ", ".join(keys) or "none")
            if not done.wait(ALERT_SHOWN_TIMEOUT):
                log.warning("the screen did not confirm alerts %s within %.0f s; "
                            "acknowledging what is saved", keys, ALERT_SHOWN_TIMEOUT)
        return (protocol.ALERTS_ACK, {"have": keys}) if saved else None

    def _on_screenshot(self, data: Any) -> None:
        if not (isinstance(data, dict) and isinstance(data.get("request"), str)
                and 0 < len(data["request"]) <= MAX_REQUEST_ID):
            raise protocol.ProtocolError("screenshot: bad request id")
        self.post("screenshot", {"request": data["request"]})

    def _on_pairing(self, data: Any) -> None:
        if not (isinstance(data, dict) and isinstance(data.get("code"), str)
                and 0 < len(data["code"]) <= 16):
            raise protocol.ProtocolError("pairing: bad code")
        expires = data.get("expires_at")
        when = parse_time(expires)
        if when is not None:
            left = when.timestamp() - (time.time() + self.clock_offset)
            self._pairing_expires = time.monotonic() + max(5.0, left)
        log.info("pairing code %s", data["code"])
        self.post("pairing", {"code": data["code"], "expires_at": expires})

    def _on_paired(self, data: Any) -> None:
        if not (isinstance(data, dict) and isinstance(data.get("token"), str)
                and 8 <= len(data["token"]) <= 512):
            raise protocol.ProtocolError("paired: bad token")
        keys = data.get("alert_keys")
        if keys is not None:  # the county's alert keys, pinned with the token
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise protocol.ProtocolError("paired: bad alert_keys")
            try:
                pinned = AlertKeys(keys)
            except signing.BadKey as exc:
                raise protocol.ProtocolError(f"paired: {exc}") from None
            self.store.set_alert_keys(keys)
            if not self.config_alert_keys:
                with self._alerts_lock:
                    self.keys = pinned
            log.info("alert keys pinned: %s", ", ".join(pinned.ids()) or "none")
        self.store.set_token(data["token"])
        self._pairing_expires = None
        log.info("paired; reconnecting with the new token")
        self._reconnect = True
        self._wake.set()

    def _on_rejoin(self, data: Any) -> None:
        reason = data.get("reason") if isinstance(data, dict) else None
        log.info("the server asks for a new connection (%s)", reason or "no reason given")
        self._reconnect = True

    def _on_revoked(self, data: Any) -> None:
        reason = data.get("reason") if isinstance(data, dict) else None
        self._revoked = reason if isinstance(reason, str) else ""
        log.warning("this screen's token was revoked: %s", self._revoked)
        if not self.config_token and self.store.token():
            # A revoked token never comes back (docs/protocol.md): forget it, so the next
            # connect asks for pairing and an editor can pair the screen again.
            self.store.clear_token()
        with self._lock:  # a revoked screen shows nothing of the county's any more
            self.notices = {}
            self.revision = -1
            self._commit()
        with self._alerts_lock:
            self.alerts = []
            try:
                self.store.save_alerts([], self.clock_offset)
            finally:
                self.post("alerts", {"alerts": [], "offset": self.clock_offset, "done": None})
        self.post("status", {"state": "refused", "reason": self._revoked})


class ImageFetcher:
    """Downloads the images notices refer to, on its own thread, into the store's cache."""

    def __init__(self, store: Store, work: queue.Queue[Work]) -> None:
        self.store = store
        self.work = work
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._pending: set[str] = set()
        self._failed: dict[str, float] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cunping-images", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)

    def request(self, url: str) -> None:
        """Ask for an image (the main thread calls this for images not in the cache)."""
        with self._lock:
            if url in self._pending:
                return
            if time.monotonic() < self._failed.get(url, 0.0):
                return
            self._pending.add(url)
        self._queue.put(url)

    def _run(self) -> None:
        while (url := self._queue.get()) is not None:
            try:
                image = self.fetch(url)
            except Exception as exc:  # any failure: the notice renders without this image
                log.warning("image %s not available: %s", url, exc)
                with self._lock:
                    self._failed[url] = time.monotonic() + IMAGE_RETRY_SECONDS
            else:
                self.work.put(("images", {url: image}))
            finally:
                with self._lock:
                    self._pending.discard(url)

    def fetch(self, url: str) -> Image.Image:
        if not url.startswith(("http://", "https://")):
            raise ValueError("not an http(s) URL")
        request = urllib.request.Request(url, headers={"User-Agent": "cunping-player"})
        try:
            with urllib.request.urlopen(request, timeout=IMAGE_TIMEOUT) as response:
                length = response.headers.get("Content-Length")
                if length and length.isdigit() and int(length) > IMAGE_MAX_BYTES:
                    raise ValueError(f"too large ({length} bytes)")
                data = response.read(IMAGE_MAX_BYTES + 1)
        except URLError as exc:
            raise OSError(str(exc.reason)) from exc
        if len(data) > IMAGE_MAX_BYTES:
            raise ValueError("too large")
        return self.store.save_image(url, data)
