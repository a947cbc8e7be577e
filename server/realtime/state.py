"""The realtime layer's state in one server process, one object per app
(`app.extensions["cunping_realtime"]`): the screens' directory, the connections of this process,
the alert dispatcher, the heartbeat writer and the handshake gate. A new app (every test) gets
a new one; nothing is reset by hand.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app

from server.loops import LoopGuard
from server.realtime.admission import Gate
from server.realtime.alert_dispatch import AlertDispatcher
from server.realtime.directory import Directory, ScreenEntry
from server.services.heartbeats import HeartbeatWriter

log = logging.getLogger(__name__)

KEY = "cunping_realtime"
DIRECTORY_SECONDS = 1.0


@dataclass(slots=True)
class Connection:
    """A screen connected to this process."""

    sid: str
    screen: ScreenEntry
    ip: str | None


class Realtime:
    def __init__(self, app: Flask, *, gate: Gate) -> None:
        self.app = app
        self.directory = Directory()
        self.dispatcher = AlertDispatcher(app)
        self.heartbeats = HeartbeatWriter(app)
        self.gate = gate
        self.connections: dict[str, Connection] = {}  # sid -> connection
        self._lock = threading.Lock()
        self.started = False
        # Connects that failed on our side (the database, for a snapshot not cached): one
        # line when they start failing and one when they work again, not one per screen.
        self.connect_guard = LoopGuard("screen connects", log)

    # -- connections ----------------------------------------------------------------------

    def add(self, conn: Connection) -> None:
        with self._lock:
            self.connections[conn.sid] = conn

    def pop(self, sid: str) -> Connection | None:
        with self._lock:
            return self.connections.pop(sid, None)

    def get(self, sid: str) -> Connection | None:
        return self.connections.get(sid)

    def of_screen(self, screen_id: int) -> list[Connection]:
        with self._lock:
            return [c for c in self.connections.values() if c.screen.id == screen_id]

    # -- background work ------------------------------------------------------------------

    def start(self) -> list[Any]:
        """The loops of a serving process (greenlets under gevent): the alert dispatcher (it
        also keeps the directory current), the heartbeat writer, the event-loop lag probe."""
        from server.extensions import socketio

        self.started = True
        with self.app.app_context():
            self.directory.load()
            try:
                self.warm()
            except Exception as exc:  # only a head start: connects read what is missing
                log.warning("snapshots not read ahead (%s): connects will read them", exc)
        return [
            self.dispatcher.start(),
            self.heartbeats.start(),
            socketio.start_background_task(self._keep_directory, socketio.sleep),
            socketio.start_background_task(self.gate.watch_lag, socketio.sleep),
        ]

    def warm(self) -> int:
        """Read the snapshot of every region with screens, at its current revision, before the
        process takes connections: a restart's storm then finds them all cached, and no
        connect waits for the database (measured: 500 villages' first reads at once emptied
        the pool, and connects failed). Returns how many were read. In an app context."""
        from server.services import playlist

        began = time.monotonic()
        regions = self.directory.screen_regions()
        for region_id, chain in regions.items():
            playlist.snapshot_at(region_id, self.directory.revision(chain))
        log.info("snapshots of %d regions read in %.0f ms", len(regions),
                 (time.monotonic() - began) * 1000)
        return len(regions)

    def paired(self, token: str) -> dict[str, Any]:
        """PAIRED: the screen's token, and the county's alert keys for the player to pin."""
        message: dict[str, Any] = {"token": token}
        if self.dispatcher.signer is not None:
            message["alert_keys"] = list(self.dispatcher.signer.announce)
        return message

    def _keep_directory(self, sleep: Callable[[float], Any]) -> None:
        """Once a second: the regions changed since (one small query when the revision counter
        moved). Every RELOAD_SECONDS: everything again, and the connections it no longer
        vouches for are corrected — the reconcile behind every invalidation."""
        guard = LoopGuard("screens' directory", log)  # the screens keep what they have
        while True:
            guard.pause(sleep)
            sleep(DIRECTORY_SECONDS)
            with guard.attempt(), self.app.app_context():
                if self.directory.due():
                    self.directory.load()
                    self.reconcile()
                else:
                    self.directory.refresh()

    def reconcile(self) -> list[str]:
        """Close the connections whose screen the directory no longer has as it was connected
        (revoked, moved or given a new token where no invalidation reached this process):
        the player connects again and is answered from the database. Returns their sids."""
        from player import protocol
        from server.extensions import socketio

        stale = []
        with self._lock:
            for sid, conn in self.connections.items():
                now = self.directory.screen_by_id(conn.screen.id)
                if now is None or now.chain != conn.screen.chain:
                    stale.append(sid)
        for sid in stale:
            log.info("closing connection %s: its screen changed (found by the reconcile)", sid)
            socketio.emit(protocol.REJOIN, {"reason": "changed"}, to=sid,
                          namespace=protocol.NAMESPACE, ignore_queue=True)
            socketio.server.disconnect(sid, namespace=protocol.NAMESPACE)
        return stale


def state(app: Flask | None = None) -> Realtime:
    """This app's realtime state."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    return app.extensions[KEY]  # type: ignore[no-any-return]
