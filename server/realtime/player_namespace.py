"""The players' namespace: authenticate, catch up, reconcile, heartbeats, alert acks, pairing.

Rooms: every screen joins "region:<id>" for each region of its chain (its region and the
ancestors), so one emit to a town's room reaches every screen below it; "at:<id>" for its own
region only (for removals that must skip a subtree, see push.py); "screen:<id>" for itself. A
player pairing joins "pair:<hash of its secret>".

A python-socketio namespace, not Flask-SocketIO's: its handlers run without a Flask request
context, and the common paths — a connect with a known token, a heartbeat, a reconcile whose
snapshot is cached, an alert acknowledgement — without an app context or a database connection
(server/realtime/directory.py). The rest (pairing, an unknown token, a snapshot not cached yet,
plays, frames) opens an app context for its database work.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import socketio
from flask import Flask

from player import protocol, signing
from server import metrics
from server.extensions import db
from server.models import Screen
from server.models.base import utcnow
from server.realtime import rooms
from server.realtime.directory import ScreenEntry
from server.realtime.state import Connection, Realtime
from server.services import playlist, plays, qr, screenshots
from server.services import screens as screen_service
from server.services.errors import ValidationError

log = logging.getLogger(__name__)

REFUSED_TOKEN = "unknown token"
REFUSED_REVOKED = "revoked"
RETRY_AFTER_ERROR = 10  # seconds: a connect that failed on our side (protocol.BUSY)


def screen_rooms(entry: ScreenEntry) -> list[str]:
    return [*(f"region:{rid}" for rid in entry.chain), f"at:{entry.region_id}",
            f"screen:{entry.id}"]


def welcome(app: Flask, rt: Realtime, entry: ScreenEntry, revision: int) -> dict[str, Any]:
    full, root = rt.directory.names(entry)
    base = app.config["PUBLIC_BASE_URL"]
    return {
        "screen": {
            "code": entry.code,
            "name": entry.name,
            "region": full,
            "region_id": entry.region_id,
            # Ancestors and itself: a notice aimed at any of these is for this screen.
            "region_chain": list(entry.chain),
            # The screen's own page for residents (the standby slide's QR code).
            "public_url": qr.screen_url(base, entry.code),
            "width": entry.width,
            "height": entry.height,
            "orientation": entry.orientation,
        },
        "county_name": app.config.get("COUNTY_NAME") or root,
        "server_time": utcnow().isoformat(timespec="seconds") + "Z",
        "revision": revision,
        "protocol": protocol.PROTOCOL_VERSION,
    }


def _iso(value: Any) -> str:
    return str(value.isoformat(timespec="seconds")) + "Z"


def client_ip(app: Flask, environ: dict[str, Any]) -> str | None:
    """The player's address; behind CUNPING_PROXY_COUNT proxies, from X-Forwarded-For (the
    Socket.IO middleware sees the request before ProxyFix does)."""
    hops = app.config.get("PROXY_COUNT") or 0
    if hops:
        forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
        chain = [part.strip() for part in forwarded.split(",") if part.strip()]
        if len(chain) >= hops:
            return chain[-hops]
    return environ.get("REMOTE_ADDR")


def _too_big(data: Any, limit: int) -> bool:
    try:
        return len(json.dumps(data)) > limit
    except (TypeError, ValueError):
        return True


class PlayerNamespace(socketio.Namespace):
    """One connection per player; the app's realtime state knows them (sid → screen)."""

    def __init__(self, rt: Realtime) -> None:
        super().__init__(protocol.NAMESPACE)
        self.rt = rt
        self.app = rt.app

    def _send_snapshot(self, sid: str, snap: playlist.Snapshot) -> None:
        """SNAPSHOT to `sid`, encoded once per snapshot: after a restart a village's screens
        all connect for the same one (bench/load.py --profile: encoding it for each was a third
        of a connect's own work)."""
        packets = snap.wire.get(protocol.SNAPSHOT)
        if packets is None:
            packets = snap.wire[protocol.SNAPSHOT] = rooms.encode(
                self.server, protocol.SNAPSHOT, snap.as_payload(), protocol.NAMESPACE)
        if rooms.send_encoded(self.server, sid, protocol.NAMESPACE, packets):
            metrics.delivered(protocol.SNAPSHOT)

    def _reply(self, sid: str, event: str, data: dict[str, Any]) -> None:
        """Send to a connection this process holds: straight to it, not through the message
        queue (where every other server process would decode it for nothing)."""
        self.emit(event, data, to=sid, ignore_queue=True)

    def trigger_event(self, event: str, *args: Any) -> Any:
        metrics.event_received(event, hasattr(self, "on_" + (event or "")))
        return super().trigger_event(event, *args)

    # --- connect ---

    def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        self.rt.gate.settled()  # through the gate's count of handshakes in flight, either way
        auth = auth if isinstance(auth, dict) else {}
        token = auth.get("token")
        try:
            if not token and isinstance(auth.get("pairing"), str):
                with self.app.app_context():
                    self._pair(sid, auth, client_ip(self.app, environ))
            else:
                self._accept(sid, environ, auth, self._authenticate(token))
        except socketio.exceptions.ConnectionRefusedError:
            raise
        except Exception as exc:  # the database, say, for a token or snapshot not in memory
            self.rt.connect_guard.failed(exc)  # logged once per outage, not once per screen
            self.rt.pop(sid)
            self.rt.dispatcher.forget(sid)
            raise socketio.exceptions.ConnectionRefusedError(
                protocol.BUSY, {"retry_after": RETRY_AFTER_ERROR}) from None
        if self.rt.connect_guard.failures:
            self.rt.connect_guard.succeeded()

    def _accept(self, sid: str, environ: dict[str, Any], auth: dict[str, Any],
                entry: ScreenEntry) -> None:
        rt = self.rt
        rt.add(Connection(sid, entry, client_ip(self.app, environ)))
        for room in screen_rooms(entry):
            self.enter_room(sid, room)
        # Rooms first, then the revision and snapshot: a change committed meanwhile is in one
        # or the other.
        revision = rt.directory.revision(entry.chain)
        reported = auth.get("revision")
        if isinstance(reported, int) and reported > revision:
            revision = self._catch_up(entry)  # a push from another process came first
        snap = self._snapshot(entry, revision)
        conn = rt.get(sid)
        ip = conn.ip if conn is not None else None
        # Online, seen today, announced to the dashboard: written behind, with the others.
        rt.heartbeats.connected(entry.id, sid, ip, entry.code, list(entry.chain))
        metrics.screen_connected(entry.code, sid, ip)
        # Alerts before anything else: a screen coming back shows any alert in force first.
        rt.dispatcher.register(sid, entry.id, entry.chain)
        self._reply(sid, protocol.WELCOME, welcome(self.app, rt, entry, snap.revision))
        if reported != snap.revision or auth.get("digest") != snap.digest:
            self._send_snapshot(sid, snap)

    def _authenticate(self, token: Any) -> ScreenEntry:
        """The screen of this token, from memory; the database for a token not known here.
        Refused: told why (unknown token, or revoked and by whom's reason)."""
        if not isinstance(token, str) or not token.startswith(screen_service.TOKEN_PREFIX) \
                or len(token) > 200:
            metrics.screen_refused()
            raise socketio.exceptions.ConnectionRefusedError(REFUSED_TOKEN)
        token_hash = screen_service.hash_secret(token)
        entry = self.rt.directory.screen(token_hash)
        if entry is not None:
            return entry
        with self.app.app_context():
            entry = self.rt.directory.lookup(token_hash)
            revoked = entry is None and db.session.scalar(
                db.select(Screen.id).where(Screen.token_hash == token_hash,
                                           Screen.revoked_at.is_not(None))
            ) is not None
        if entry is None:
            metrics.screen_refused()
            raise socketio.exceptions.ConnectionRefusedError(
                REFUSED_REVOKED if revoked else REFUSED_TOKEN)
        return entry

    def _catch_up(self, entry: ScreenEntry) -> int:
        with self.app.app_context():
            self.rt.directory.refresh()
        return self.rt.directory.revision(entry.chain)

    def _snapshot(self, entry: ScreenEntry, revision: int) -> playlist.Snapshot:
        snap = playlist.cached(self.app, entry.region_id, revision)
        if snap is None:
            with self.app.app_context():
                snap = playlist.snapshot_at(entry.region_id, revision)
        return snap

    def _pair(self, sid: str, auth: dict[str, Any], ip: str | None) -> None:
        try:
            req = screen_service.start_pairing(
                auth["pairing"], auth.get("width", 1920), auth.get("height", 1080), ip
            )
        except ValidationError as exc:
            raise socketio.exceptions.ConnectionRefusedError(exc.message) from None
        self.enter_room(sid, f"pair:{req.secret_hash}")
        if req.screen_id is not None and req.token:
            self._reply(sid, protocol.PAIRED, self.rt.paired(req.token))
        else:
            self._reply(sid, protocol.PAIRING,
                        {"code": req.code, "expires_at": _iso(req.expires_at)})

    # --- steady traffic: from memory ---

    def on_sync(self, sid: str, data: Any = None) -> dict[str, Any]:
        """The player's periodic check: {"revision", "digest"} → ack current, or a snapshot."""
        conn = self.rt.get(sid)
        if conn is None:
            return {"status": "refused"}
        data = data if isinstance(data, dict) and not _too_big(data, 1024) else {}
        entry = conn.screen
        revision = self.rt.directory.revision(entry.chain)
        reported = data.get("revision")
        if isinstance(reported, int) and reported > revision:
            revision = self._catch_up(entry)
        snap = self._snapshot(entry, revision)
        # The same notices (digest) is enough: the player adopts the server's revision.
        if data.get("digest") == snap.digest and reported != -1:
            return {"status": "current", "revision": snap.revision}
        self._send_snapshot(sid, snap)
        return {"status": "snapshot", "revision": snap.revision}

    def on_heartbeat(self, sid: str, data: Any = None) -> dict[str, Any]:
        """What the player shows now: checked here, written behind (services.heartbeats).
        A revoked screen's connection is closed by the revoke, and the write skips revoked
        screens."""
        conn = self.rt.get(sid)
        if conn is None:
            return {"status": "refused"}
        state = None if _too_big(data, 4096) else screen_service.clean_state(data)
        if state is None:
            log.warning("screen %s sent a malformed heartbeat", conn.screen.code)
            return {"status": "ignored", "reason": "malformed heartbeat"}
        self.rt.heartbeats.note(conn.screen.id, state, sid)
        return {"status": "ok"}

    def on_alerts_ack(self, sid: str, data: Any = None) -> dict[str, Any]:
        """protocol.ALERTS_ACK: {"have": ["code:version", ...]} — the alerts the player now
        holds (saved). Gathered and written by the dispatcher's next pass."""
        have = data.get("have") if isinstance(data, dict) else None
        ignored = self.rt.dispatcher.acknowledged(sid, have)
        if ignored is not None:
            if ignored.startswith("malformed"):
                log.warning("connection %s sent a %s", sid, ignored)
            return {"status": "ignored", "reason": ignored}
        return {"status": "ok"}

    def on_alerts_refused(self, sid: str, data: Any = None) -> dict[str, Any]:
        """protocol.ALERTS_REFUSED: {"reason", "key"} — the player would not show the set we
        sent (its signature did not verify: a key the player does not hold, say). Logged and
        counted; the screen stays unacknowledged and is sent the set again."""
        reason = data.get("reason") if isinstance(data, dict) else None
        key = data.get("key") if isinstance(data, dict) else None
        if reason not in signing.REASONS or not (key is None or (
                isinstance(key, str) and len(key) <= 40)):
            return {"status": "ignored", "reason": "malformed refusal"}
        conn = self.rt.get(sid)
        metrics.alert_refused(reason)
        log.warning("screen %s refused its alert set: %s (key %s; this server signs with %s)",
                    conn.screen.code if conn else sid, reason, key,
                    self.rt.dispatcher.signer.key_id if self.rt.dispatcher.signer else "none")
        return {"status": "ok"}

    # --- occasional: with the database ---

    def _screen(self, sid: str) -> Screen | None:
        conn = self.rt.get(sid)
        if conn is None:
            return None
        screen = db.session.get(Screen, conn.screen.id)
        if screen is None or screen.revoked_at is not None:
            return None
        return screen

    def _with_screen(self, sid: str, handle: Any, data: Any) -> dict[str, Any]:
        with self.app.app_context():
            screen = self._screen(sid)
            if screen is None:
                return {"status": "refused"}
            return handle(screen, data)  # type: ignore[no-any-return]

    def on_plays(self, sid: str, data: Any = None) -> dict[str, Any]:
        """Proof of play: a batch of slides shown (protocol.PLAYS)."""
        return self._with_screen(sid, plays.record, data)

    def on_frame(self, sid: str, data: Any = None) -> dict[str, Any]:
        """The frame on screen, sent because an editor asked for a screenshot."""
        return self._with_screen(sid, screenshots.receive, data)

    def on_disconnect(self, sid: str, reason: Any = None) -> None:
        conn = self.rt.pop(sid)
        self.rt.dispatcher.forget(sid)
        if conn is None:
            return
        entry = conn.screen
        metrics.screen_disconnected(entry.code, sid, reason)
        # Offline and announced with the next write (unless a newer connection holds it).
        self.rt.heartbeats.disconnected(entry.id, sid, entry.code, list(entry.chain))
