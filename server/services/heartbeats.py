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

import json
import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask
from sqlalchemy import bindparam, or_, select, text, update

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


@dataclass
class Disconnect:
    sid: str
    code: str
    chain: list[int]


class HeartbeatWriter:
    """One per app (server/realtime/state.py): the app's database is where it writes."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._pending: dict[int, tuple[dict[str, Any], str, datetime]] = {}
        self._connects: dict[int, Connect] = {}
        self._disconnects: dict[int, Disconnect] = {}
        self._lock = threading.Lock()
        self._soon = threading.Event()
        self._running = False

    def connected(self, screen_id: int, sid: str, ip: str | None, code: str,
                  chain: list[int], now: datetime | None = None) -> None:
        """The screen connected on `sid`: online, seen today, its pairing token delivered —
        written (and announced to the dashboard) by the next pass."""
        with self._lock:
            self._disconnects.pop(screen_id, None)
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

    def disconnected(self, screen_id: int, sid: str, code: str, chain: list[int]) -> None:
        """The screen's connection `sid` closed: offline (unless a newer connection holds it)
        and announced, with the next pass. A connect or heartbeat still pending is dropped; a
        connect never written needs nothing written (nobody heard of it)."""
        with self._lock:
            # Only what this connection left: a newer connection's connect and heartbeat stay.
            pending = self._pending.get(screen_id)
            if pending is not None and pending[1] == sid:
                del self._pending[screen_id]
            connect = self._connects.get(screen_id)
            if connect is not None and connect.sid == sid:
                del self._connects[screen_id]
            else:  # written, or replaced: the write checks the connection still holds it
                self._disconnects[screen_id] = Disconnect(sid, code, chain)
        if not self._running:
            self.flush()
        else:
            self._soon.set()

    def pending(self) -> int:
        with self._lock:
            return len(self._pending) + len(self._connects) + len(self._disconnects)

    def flush(self) -> int:
        """Write what is pending; returns how many. Commits."""
        with self.app.app_context():
            return self._flush()

    def _flush(self) -> int:
        with self._lock:
            batch, self._pending = self._pending, {}
            connects, self._connects = self._connects, {}
            gone, self._disconnects = self._disconnects, {}
        if not batch and not connects and not gone:
            return 0
        try:
            offline = _write(batch, connects, gone)
        except Exception:
            db.session.rollback()
            with self._lock:  # keep them for the next pass, unless newer ones came meanwhile
                for screen_id, entry in batch.items():
                    self._pending.setdefault(screen_id, entry)
                for screen_id, connect in connects.items():
                    self._connects.setdefault(screen_id, connect)
                for screen_id, disconnect in gone.items():
                    if screen_id not in self._connects:
                        self._disconnects.setdefault(screen_id, disconnect)
            raise
        _announce(connects, {i: gone[i] for i in offline})
        return len(batch) + len(connects) + len(gone)

    def start(self, interval: float = FLUSH_SECONDS) -> Any:
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
                with guard.attempt():  # what failed is kept pending for the next pass
                    self.flush()

        return socketio.start_background_task(loop)


def _write(batch: dict[int, tuple[dict[str, Any], str, datetime]],
           connects: dict[int, Connect], gone: dict[int, Disconnect]) -> list[int]:
    """Write them all in a few statements and one commit; returns the screens now offline."""
    from server.services import presence

    table = Screen.__table__
    connection = db.session.connection()
    if connects:
        # A connect is the newest claim on the screen: it takes it from any older connection.
        rows = sorted(connects.items())
        if connection.dialect.name == "postgresql":
            connection.execute(_CONNECTS_PG, {
                "ids": [screen_id for screen_id, _ in rows],
                "sids": [c.sid for _, c in rows],
                "seen": [c.at for _, c in rows],
                "ips": [(c.ip or "")[:64] or None for _, c in rows],
            })
        else:
            connection.execute(
                update(table)
                .where(table.c.id == bindparam("b_id"), table.c.revoked_at.is_(None))
                .values(online=True, connected_sid=bindparam("b_sid"),
                        last_seen_at=bindparam("b_now"), last_ip=bindparam("b_ip")),
                [{"b_id": screen_id, "b_sid": c.sid, "b_now": c.at,
                  "b_ip": (c.ip or "")[:64] or None} for screen_id, c in rows],
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
        if connection.dialect.name == "postgresql":
            _write_heartbeats_pg(connection, batch)
        else:
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
    offline: list[int] = []
    if gone:
        # Offline, unless a newer connection of the same screen already replaced this one.
        connection.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"),
                   or_(table.c.connected_sid.is_(None),
                       table.c.connected_sid == bindparam("b_sid")))
            .values(online=False, connected_sid=None),
            [{"b_id": screen_id, "b_sid": d.sid} for screen_id, d in sorted(gone.items())],
        )
        offline = list(db.session.scalars(
            select(table.c.id).where(table.c.id.in_(sorted(gone)), table.c.online.is_(False))
        ))
    seen = {screen_id: now for screen_id, (_s, _sid, now) in batch.items()}
    seen.update({screen_id: c.at for screen_id, c in connects.items()})
    presence.seen_many(sorted(seen.items()))
    db.session.commit()
    return offline


# One statement for the whole batch on PostgreSQL: 10,000 screens' heartbeats (or a storm's
# connects) are one UPDATE joined to arrays, not 10,000 statements in a pipeline
# (bench/load.py --profile: the per-row statements were a quarter of the writer's time).
_CONNECTS_PG = text("""
    UPDATE screens AS s
    SET online = true, connected_sid = u.sid, last_seen_at = u.seen, last_ip = u.ip
    FROM unnest(CAST(:ids AS integer[]), CAST(:sids AS text[]), CAST(:seen AS timestamp[]),
                CAST(:ips AS text[])) AS u(id, sid, seen, ip)
    WHERE s.id = u.id AND s.revoked_at IS NULL
""")
_HEARTBEATS_PG = text("""
    UPDATE screens AS s
    SET state = CAST(u.state AS json), last_seen_at = u.seen, online = true,
        connected_sid = u.sid
    FROM unnest(CAST(:ids AS integer[]), CAST(:states AS text[]), CAST(:sids AS text[]),
                CAST(:seen AS timestamp[])) AS u(id, state, sid, seen)
    WHERE s.id = u.id AND s.revoked_at IS NULL
      AND (s.connected_sid IS NULL OR s.connected_sid = u.sid)
""")


def _write_heartbeats_pg(connection: Any,
                         batch: dict[int, tuple[dict[str, Any], str, datetime]]) -> None:
    rows = sorted(batch.items())  # in id order, as every writer of these rows locks them
    connection.execute(_HEARTBEATS_PG, {
        "ids": [screen_id for screen_id, _ in rows],
        "states": [json.dumps(state, separators=(",", ":")) for _, (state, _s, _n) in rows],
        "sids": [sid for _, (_state, sid, _n) in rows],
        "seen": [now for _, (_state, _sid, now) in rows],
    })


def _announce(connects: dict[int, Connect], offline: dict[int, Disconnect]) -> None:
    """The dashboard hears of the screens that came and went (now that the database says so)."""
    from server.services import presence

    for screen_id, c in connects.items():
        presence.announce_ids(screen_id, c.code, c.chain, online=True)
    for screen_id, d in offline.items():
        presence.announce_ids(screen_id, d.code, d.chain, online=False)
