"""Heartbeats written behind: what each player reports every protocol.HEARTBEAT_SECONDS is kept
in this process's memory and written for all of them in one pass every FLUSH_SECONDS.

At 10,000 screens on one process a commit per heartbeat is 333 commits a second, most of the
process's CPU. A pass writes every pending heartbeat with two statements (the screens' state
and last-seen time, and the day rows of the boot rate) and one commit. What a heartbeat says
reaches the dashboard at most FLUSH_SECONDS late; the screen's connection (online, its sid) is
written at connect, at once (screens.record_connect).

Without the background loop (tests, a shell) every heartbeat is written at once, as before.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

from flask import Flask
from sqlalchemy import bindparam, or_, update

from server.extensions import db
from server.models import Screen
from server.models.base import utcnow

log = logging.getLogger(__name__)

FLUSH_SECONDS = 2.0


class HeartbeatWriter:
    def __init__(self) -> None:
        self._pending: dict[int, tuple[dict[str, Any], str, datetime]] = {}
        self._lock = threading.Lock()
        self._running = False

    def note(self, screen_id: int, state: dict[str, Any], sid: str,
             now: datetime | None = None) -> None:
        """A checked heartbeat of `screen_id` on connection `sid`: written by the next pass."""
        with self._lock:
            self._pending[screen_id] = (state, sid, now or utcnow())
        if not self._running:
            self.flush()

    def forget(self, screen_id: int) -> None:
        """The screen's connection closed: a heartbeat still pending must not mark it online."""
        with self._lock:
            self._pending.pop(screen_id, None)

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def flush(self) -> int:
        """Write the pending heartbeats (in an app context); returns how many. Commits."""
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return 0
        try:
            _write(batch)
        except Exception:
            db.session.rollback()
            with self._lock:  # keep them for the next pass, unless newer ones came meanwhile
                for screen_id, entry in batch.items():
                    self._pending.setdefault(screen_id, entry)
            raise
        return len(batch)

    def start(self, app: Flask, interval: float = FLUSH_SECONDS) -> Any:
        """The background loop of a serving process (a greenlet under gevent)."""
        from server.extensions import socketio

        self._running = True

        def loop() -> None:
            while True:
                socketio.sleep(interval)
                try:
                    with app.app_context():
                        self.flush()
                except Exception:  # kept pending; the next pass retries
                    log.exception("writing heartbeats failed")

        return socketio.start_background_task(loop)

    def reset(self) -> None:
        with self._lock:
            self._pending.clear()


def _write(batch: dict[int, tuple[dict[str, Any], str, datetime]]) -> None:
    from server.services import presence

    table = Screen.__table__
    # The connection the heartbeat came on marks the screen online again (after a sweep), unless
    # a newer connection — on this process or another — holds it now.
    stmt = (
        update(table)
        .where(table.c.id == bindparam("b_id"), table.c.revoked_at.is_(None),
               or_(table.c.connected_sid.is_(None), table.c.connected_sid == bindparam("b_sid")))
        .values(state=bindparam("b_state", type_=table.c.state.type),
                last_seen_at=bindparam("b_now"), online=True, connected_sid=bindparam("b_sid"))
    )
    rows = [{"b_id": screen_id, "b_state": state, "b_sid": sid, "b_now": now}
            for screen_id, (state, sid, now) in sorted(batch.items())]
    db.session.connection().execute(stmt, rows)
    presence.seen_many([(screen_id, now) for screen_id, (_s, _sid, now) in batch.items()])
    db.session.commit()


writer = HeartbeatWriter()
