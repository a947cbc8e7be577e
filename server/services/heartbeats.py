"""Connections and heartbeats written behind: a screen's connect (online, its connection, its
address) and what each player reports every protocol.HEARTBEAT_SECONDS are kept in this
process's memory and written for all of them in one pass every FLUSH_SECONDS.

At 10,000 screens on one process a commit per heartbeat is 333 commits a second, and a restart
brings 10,000 connects at once: most of the process's CPU. A pass writes them all with a few
statements (the screens' connection, state and last-seen time, the day rows of the boot rate,
the pairing tokens now delivered) and one commit, then tells the dashboard which screens came
online — so its counts, read from the database, agree with the announcement. Connects are
written within CONNECT_SECONDS, gathered (a storm's hundreds a second in a few commits).

Without the background loop (tests, a shell) everything is written at once.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask
from sqlalchemy import bindparam, or_, update

from server.extensions import db
from server.loops import LoopGuard
from server.models import PairingRequest, Screen
from server.models.base import utcnow

log = logging.getLogger(__name__)

FLUSH_SECONDS = 2.0
CONNECT_SECONDS = 0.2


@dataclass
class Connect:
    sid: str
    ip: str | None
    at: datetime
    code: str
    chain: list[int]


class HeartbeatWriter:
    def __init__(self) -> None:
        self._pending: dict[int, tuple[dict[str, Any], str, datetime]] = {}
        self._connects: dict[int, Connect] = {}
        self._lock = threading.Lock()
        self._soon = threading.Event()
        self._running = False

    def connected(self, screen_id: int, sid: str, ip: str | None, code: str,
                  chain: list[int], now: datetime | None = None) -> None:
        """The screen connected on `sid`: online, seen today, its pairing token delivered —
        written (and announced to the dashboard) by the next pass."""
        with self._lock:
            self._connects[screen_id] = Connect(sid, ip, now or utcnow(), code, chain)
        if not self._running:
            self.flush()
        else:
            self._soon.set()  # connects go out within CONNECT_SECONDS, gathered

    def note(self, screen_id: int, state: dict[str, Any], sid: str,
             now: datetime | None = None) -> None:
        """A checked heartbeat of `screen_id` on connection `sid`: written by the next pass."""
        with self._lock:
            self._pending[screen_id] = (state, sid, now or utcnow())
        if not self._running:
            self.flush()

    def forget(self, screen_id: int) -> bool:
        """The screen's connection closed: a connect or heartbeat still pending must not mark
        it online. True when its connect had not been written yet (nobody heard of it)."""
        with self._lock:
            self._pending.pop(screen_id, None)
            return self._connects.pop(screen_id, None) is not None

    def pending(self) -> int:
        with self._lock:
            return len(self._pending) + len(self._connects)

    def flush(self) -> int:
        """Write what is pending (in an app context); returns how many. Commits."""
        with self._lock:
            batch, self._pending = self._pending, {}
            connects, self._connects = self._connects, {}
        if not batch and not connects:
            return 0
        try:
            _write(batch, connects)
        except Exception:
            db.session.rollback()
            with self._lock:  # keep them for the next pass, unless newer ones came meanwhile
                for screen_id, entry in batch.items():
                    self._pending.setdefault(screen_id, entry)
                for screen_id, connect in connects.items():
                    self._connects.setdefault(screen_id, connect)
            raise
        _announce(connects)
        return len(batch) + len(connects)

    def start(self, app: Flask, interval: float = FLUSH_SECONDS) -> Any:
        """The background loop of a serving process (a greenlet under gevent)."""
        from server.extensions import socketio

        self._running = True

        guard = LoopGuard("heartbeat writer", log)

        def loop() -> None:
            while True:
                guard.pause()  # after a failed pass: back-off (what failed is kept pending)
                # Heartbeats every `interval`; a connect within CONNECT_SECONDS (gathered with
                # the others of that moment): the revoke or move of a screen that has just
                # connected needs its connection in the database to find it.
                if self._soon.wait(interval):
                    self._soon.clear()
                    socketio.sleep(CONNECT_SECONDS)
                with guard.attempt(), app.app_context():
                    self.flush()

        return socketio.start_background_task(loop)

    def reset(self) -> None:
        with self._lock:
            self._pending.clear()


def _write(batch: dict[int, tuple[dict[str, Any], str, datetime]],
           connects: dict[int, Connect]) -> None:
    from server.services import presence

    table = Screen.__table__
    connection = db.session.connection()
    if connects:
        # A connect is the newest claim on the screen: it takes it from any older connection.
        connection.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.revoked_at.is_(None))
            .values(online=True, connected_sid=bindparam("b_sid"),
                    last_seen_at=bindparam("b_now"), last_ip=bindparam("b_ip")),
            [{"b_id": screen_id, "b_sid": c.sid, "b_now": c.at,
              "b_ip": (c.ip or "")[:64] or None} for screen_id, c in sorted(connects.items())],
        )
        # The plain token kept for a pairing is forgotten once the screen has used it.
        pairing = PairingRequest.__table__
        connection.execute(
            update(pairing)
            .where(pairing.c.screen_id.in_(sorted(connects)), pairing.c.token.is_not(None))
            .values(token=None)
        )
    if batch:
        # The connection the heartbeat came on marks the screen online again (after a
        # sweep), unless a newer connection — on this process or another — holds it now.
        connection.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.revoked_at.is_(None),
                   or_(table.c.connected_sid.is_(None),
                       table.c.connected_sid == bindparam("b_sid")))
            .values(state=bindparam("b_state", type_=table.c.state.type),
                    last_seen_at=bindparam("b_now"), online=True,
                    connected_sid=bindparam("b_sid")),
            [{"b_id": screen_id, "b_state": state, "b_sid": sid, "b_now": now}
             for screen_id, (state, sid, now) in sorted(batch.items())],
        )
    seen = {screen_id: now for screen_id, (_s, _sid, now) in batch.items()}
    seen.update({screen_id: c.at for screen_id, c in connects.items()})
    presence.seen_many(sorted(seen.items()))
    db.session.commit()


def _announce(connects: dict[int, Connect]) -> None:
    """The dashboard hears of the screens that came online (now that the database says so)."""
    from server.services import presence

    for screen_id, c in connects.items():
        presence.announce_ids(screen_id, c.code, c.chain, online=True)


writer = HeartbeatWriter()
