"""The players' namespace: authenticate, catch up, reconcile, heartbeats, pairing.

Rooms: every screen joins "region:<id>" for each region of its chain (its region and the
ancestors), so one emit to a town's room reaches every screen below it; "at:<id>" for its own
region only (for removals that must skip a subtree, see push.py); "screen:<id>" for itself. A
player pairing joins "pair:<hash of its secret>".
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from flask import current_app, request
from flask_socketio import ConnectionRefusedError, Namespace, emit, join_room

from player import protocol
from server import metrics
from server.extensions import db
from server.models import Region, Screen
from server.models.base import utcnow
from server.realtime.alert_dispatch import dispatcher
from server.services import heartbeats, playlist, presence, revisions
from server.services import screens as screen_service
from server.services.errors import ValidationError

log = logging.getLogger(__name__)

REFUSED_TOKEN = "unknown or revoked token"

# Handshakes that do their database work at once. The rest wait their turn up to
# CONNECT_WAIT_SECONDS, then are refused as busy (protocol.BUSY: the player retries after a
# short backoff) — rather than thousands of handlers in a reconnect storm queueing on the
# database pool past the players' 10 s connect timeout and doing work for players gone.
CONNECT_CONCURRENCY = 16
CONNECT_WAIT_SECONDS = 4.0
_gate = threading.BoundedSemaphore(CONNECT_CONCURRENCY)


def screen_rooms(screen: Screen, chain: list[int] | None = None) -> list[str]:
    chain = chain if chain is not None else revisions.chain_ids(screen.region)
    return [*(f"region:{rid}" for rid in chain), f"at:{screen.region_id}", f"screen:{screen.id}"]


NAMES_SECONDS = 60.0
_names: dict[int, tuple[float, str, str]] = {}


def region_names(region: Region) -> tuple[str, str]:
    """(full name, name of the root) of a region, kept a minute in this process: a storm of
    reconnecting screens must not walk every screen's ancestors again. A renamed region shows
    in WELCOME within the minute (and in the admin at once)."""
    now = time.monotonic()
    hit = _names.get(region.id)
    if hit is not None and now - hit[0] < NAMES_SECONDS:
        return hit[1], hit[2]
    chain = [*region.ancestors(), region]
    full, root = " · ".join(r.name for r in chain), chain[0].name
    _names[region.id] = (now, full, root)
    return full, root


def welcome(screen: Screen, revision: int) -> dict[str, Any]:
    full, root = region_names(screen.region)
    county = current_app.config.get("COUNTY_NAME") or root
    return {
        "screen": screen_service.describe(screen, region_name=full),
        "county_name": county,
        "server_time": utcnow().isoformat(timespec="seconds") + "Z",
        "revision": revision,
        "protocol": protocol.PROTOCOL_VERSION,
    }


def _iso(value: Any) -> str:
    return str(value.isoformat(timespec="seconds")) + "Z"


def client_ip() -> str | None:
    """The player's address; behind CUNPING_PROXY_COUNT proxies, from X-Forwarded-For (the
    Socket.IO middleware sees the request before ProxyFix does)."""
    hops = current_app.config.get("PROXY_COUNT") or 0
    if hops:
        forwarded = request.headers.get("X-Forwarded-For", "")
        chain = [part.strip() for part in forwarded.split(",") if part.strip()]
        if len(chain) >= hops:
            return chain[-hops]
    return request.remote_addr


def _reply(event: str, data: dict[str, Any]) -> None:
    """Send to the connection of this event, which this process holds: straight to it, not
    through the message queue (where every other server process would decode it for nothing,
    10,000 snapshots in a reconnect storm)."""
    emit(event, data, ignore_queue=True)


def _too_big(data: Any, limit: int) -> bool:
    try:
        return len(json.dumps(data)) > limit
    except (TypeError, ValueError):
        return True


class PlayerNamespace(Namespace):
    """One connection per player; `sid` → screen id for the connections of this process."""

    def __init__(self, namespace: str) -> None:
        super().__init__(namespace)
        self._screens: dict[str, int] = {}
        self._lock = threading.Lock()

    # --- helpers ---

    def _screen(self) -> Screen | None:
        with self._lock:
            screen_id = self._screens.get(request.sid)  # type: ignore[attr-defined]
        if screen_id is None:
            return None
        screen = db.session.get(Screen, screen_id)
        if screen is None or screen.revoked_at is not None:
            return None
        return screen

    def _send_snapshot(self, screen: Screen) -> None:
        _reply(protocol.SNAPSHOT, playlist.snapshot(screen).as_payload())

    # --- events ---

    def trigger_event(self, event: str, *args: Any) -> Any:
        metrics.event_received(event, hasattr(self, "on_" + (event or "")))
        return super().trigger_event(event, *args)

    def on_connect(self, auth: Any = None) -> None:
        if not _gate.acquire(timeout=CONNECT_WAIT_SECONDS):
            metrics.screen_busy()
            raise ConnectionRefusedError(protocol.BUSY)
        try:
            self._connect(auth)
        finally:
            _gate.release()

    def _connect(self, auth: Any) -> None:
        auth = auth if isinstance(auth, dict) else {}
        token = auth.get("token")
        if not token and isinstance(auth.get("pairing"), str):
            self._pair(auth)
            return
        screen = screen_service.authenticate(token) if isinstance(token, str) else None
        if screen is None:
            metrics.screen_refused()
            raise ConnectionRefusedError(REFUSED_TOKEN)
        sid = request.sid  # type: ignore[attr-defined]
        screen_id, code, chain = screen.id, screen.code, revisions.chain_ids(screen.region)
        with self._lock:
            self._screens[sid] = screen_id
        for room in screen_rooms(screen, chain):
            join_room(room)
        # Rooms first, then the snapshot: a change committed meanwhile is in one or the other.
        snap = playlist.snapshot(screen)
        hello = welcome(screen, snap.revision)  # before the commit below expires `screen`
        ip = client_ip()
        # Online, seen today, announced to the dashboard: written behind, with the others.
        heartbeats.writer.connected(screen_id, sid, ip, code, chain)
        metrics.screen_connected(code, sid, ip)
        # Alerts before anything else: a screen coming back shows any alert in force first.
        dispatcher.register(sid, screen_id, chain)
        _reply(protocol.WELCOME, hello)
        if auth.get("revision") != snap.revision or auth.get("digest") != snap.digest:
            _reply(protocol.SNAPSHOT, snap.as_payload())

    def _pair(self, auth: dict[str, Any]) -> None:
        try:
            req = screen_service.start_pairing(
                auth["pairing"], auth.get("width", 1920), auth.get("height", 1080)
            )
        except ValidationError as exc:
            raise ConnectionRefusedError(exc.message) from None
        join_room(f"pair:{req.secret_hash}")
        if req.screen_id is not None and req.token:
            _reply(protocol.PAIRED, {"token": req.token})
        else:
            _reply(protocol.PAIRING, {"code": req.code, "expires_at": _iso(req.expires_at)})

    def on_sync(self, data: Any = None) -> dict[str, Any]:
        """The player's periodic check: {"revision", "digest"} → ack current, or a snapshot."""
        screen = self._screen()
        if screen is None:
            return {"status": "refused"}
        data = data if isinstance(data, dict) and not _too_big(data, 1024) else {}
        snap = playlist.snapshot(screen)
        # The same notices (digest) is enough: the player adopts the server's revision.
        if data.get("digest") == snap.digest and data.get("revision") != -1:
            return {"status": "current", "revision": snap.revision}
        self._send_snapshot(screen)
        return {"status": "snapshot", "revision": snap.revision}

    def on_heartbeat(self, data: Any = None) -> dict[str, Any]:
        """What the player shows now: checked here, written behind (services.heartbeats) —
        no database work per heartbeat. A revoked screen's connection is closed by the revoke,
        and the write skips revoked screens."""
        sid = request.sid  # type: ignore[attr-defined]
        with self._lock:
            screen_id = self._screens.get(sid)
        if screen_id is None:
            return {"status": "refused"}
        state = None if _too_big(data, 4096) else screen_service.clean_state(data)
        if state is None:
            log.warning("screen %s sent a malformed heartbeat", screen_id)
            return {"status": "ignored"}
        heartbeats.writer.note(screen_id, state, sid)
        return {"status": "ok"}

    def on_plays(self, data: Any = None) -> dict[str, Any]:
        """Proof of play: a batch of slides shown (protocol.PLAYS)."""
        from server.services import plays

        screen = self._screen()
        if screen is None:
            return {"status": "refused"}
        return plays.record(screen, data)

    def on_frame(self, data: Any = None) -> dict[str, Any]:
        """The frame on screen, sent because an editor asked for a screenshot."""
        from server.services import screenshots

        screen = self._screen()
        if screen is None:
            return {"status": "refused"}
        return screenshots.receive(screen, data)

    def on_disconnect(self, reason: Any = None) -> None:
        sid = request.sid  # type: ignore[attr-defined]
        with self._lock:
            screen_id = self._screens.pop(sid, None)
        dispatcher.forget(sid)
        if screen_id is None:
            return
        # Gone before its connect was written: nothing to undo, nobody was told.
        unwritten = heartbeats.writer.forget(screen_id)
        screen = db.session.get(Screen, screen_id)
        metrics.screen_disconnected(screen.code if screen else screen_id, sid, reason)
        if screen is not None and not unwritten:
            screen_service.record_disconnect(screen, sid)
            if not screen.online:
                presence.announce(screen, online=False)
