"""Alert delivery with proof: each server process sends the screens connected to it their
whole alert set (ALERTS) and sends it again until the screen acknowledges it (ALERTS_ACK, an
event naming every alert the screen now holds), backing off from ALERT_ACK_SECONDS to a minute.

Fanned out once: the screens due the same set share one encoded message (python-socketio
encodes an emit without a callback once for all its recipients), so an alert to 10,000 screens
is a few hundred encodings at most, not 10,000 — and no per-connection callback to register.

Per connection it remembers the set it must show (a fingerprint of code:version), the one the
screen last acknowledged, and when it last sent. A pass compares them; it runs
- at once in this process when an alert changes here (signals.alerts_changed),
- every second otherwise, re-reading the alerts when the "alerts" counter moved (a change made
  by another server process), and retrying unacknowledged sends that are due.
Sends and acknowledgements are written to the database in one batch per pass (10,000 screens
answering an alert must not mean 10,000 commits). Only screens that have not acknowledged the
set are sent it again; a duplicate or late acknowledgement is harmless (a delivery is written
once, for the alert's current version).

Without the background loop (tests with Flask-SocketIO's test client), a change runs a pass
synchronously.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask

from player import protocol
from server import metrics
from server.extensions import db, socketio
from server.loops import LoopGuard
from server.models.base import utcnow
from server.services import alert_keys, revisions
from server.services import alerts as alert_service

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
YIELD_EVERY = 250  # sends between letting the connections' writers run
MAX_BACKOFF = 60.0


@dataclass
class Peer:
    """One connected screen, as the dispatcher sees it."""

    screen_id: int
    chain: frozenset[int]
    acked: str | None = None  # the fingerprint the screen acknowledged last
    sent: str | None = None  # the fingerprint sent last
    sent_at: float = 0.0  # monotonic
    attempts: int = 0  # sends of `sent` so far


def fingerprint(alerts: list[dict[str, Any]]) -> str:
    return ",".join(sorted(protocol.alert_key(a) for a in alerts))


def retry_after(attempts: int) -> float:
    """Seconds to wait for an ack after the `attempts`-th send: 5, 10, 20, 40, 60, 60 …"""
    return float(min(MAX_BACKOFF, protocol.ALERT_ACK_SECONDS * 2 ** max(0, attempts - 1)))


class AlertDispatcher:
    """One per app (server/realtime/state.py)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._peers: dict[str, Peer] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._alerts: list[tuple[dict[str, Any], frozenset[int], int]] = []
        self._counter = -1
        self._loaded_at = 0.0  # when the alerts were last read
        self._acks: list[tuple[int, list[str], datetime]] = []
        self._sends: list[tuple[int, list[int]]] = []  # (screen id, alert ids) not recorded yet
        self._running = False
        self._force = False  # the next pass re-reads the alerts (they changed)
        # A pass visits every peer only when what they must show may have changed (the alerts
        # or a peer's regions); otherwise only those still waiting for an acknowledgement —
        # with everyone acknowledged, a pass over 10,000 screens visits none.
        self._everyone = True
        self._waiting: set[str] = set()  # sids sent a set they have not acknowledged
        self._emit: Callable[..., Any] = socketio.emit
        # Every set signed with the county alert key, when there is one (player/signing.py).
        self.signer = alert_keys.signer_for(app)

    # -- connections -----------------------------------------------------------------------

    def register(self, sid: str, screen_id: int, chain: tuple[int, ...] | list[int]) -> None:
        """A screen connected: send its alerts now, before anything else (in its connect)."""
        with self._lock:
            self._peers[sid] = Peer(screen_id, frozenset(chain))
        # The loop re-reads the alerts every POLL_SECONDS (and sends every screen what changed
        # since): a connect takes the alerts as last read and needs no query of its own — in a
        # storm, when the loop runs late, a query per connect emptied the database pool.
        if not self._running:
            with self.app.app_context():
                self._refresh(force=False)
        self._send_due(only=sid)

    def forget(self, sid: str) -> None:
        with self._lock:
            self._peers.pop(sid, None)
            self._waiting.discard(sid)

    def move(self, sid: str, chain: list[int]) -> None:
        with self._lock:
            peer = self._peers.get(sid)
            if peer is not None:
                peer.chain = frozenset(chain)
                self._everyone = True
        self.wake()

    def connected(self) -> int:
        with self._lock:
            return len(self._peers)

    def acknowledged(self, sid: str, have: Any) -> str | None:
        """ALERTS_ACK from the connection `sid`: the alerts it holds now ("code:version").
        None when taken; else why it was ignored (nothing recorded)."""
        if not isinstance(have, list) or len(have) > protocol.MAX_ALERTS or not all(
            isinstance(h, str) and len(h) <= 40 for h in have
        ):
            return "malformed acknowledgement"
        fp = fingerprint_of_keys(have)
        with self._lock:
            peer = self._peers.get(sid)
            if peer is None:  # its connect failed or it is closing: sent again when back
                return "not connected"
            metrics.alert_acked(peer, fp)
            # The screen holds what it says; when that is the set we sent, it is done.
            if fp == peer.sent:
                peer.acked = fp
                self._waiting.discard(sid)
            self._acks.append((peer.screen_id, have, utcnow()))
        self.wake_soon()
        return None

    # -- passes ----------------------------------------------------------------------------

    def wake(self) -> None:
        """An alert changed in this process: a pass now (the loop's, or right here)."""
        if self._running:
            self._force = True
            self._wake.set()
            return
        with self.app.app_context():
            try:
                self.run_pass(force=True)
            except Exception:  # the change is saved; a later pass or reconnect delivers
                log.exception("alert dispatch pass failed")
                db.session.rollback()

    def start(self) -> Any:
        """The background loop of a serving process (a greenlet under gevent)."""
        self._running = True
        app = self.app
        if self.signer is None:
            log.warning("no alert key (%s): alert sets go unsigned, and players holding the "
                        "county's public key refuse them (cunping alert-key create)",
                        alert_keys.key_path(app))
        else:
            log.info("alert sets signed with key %s", self.signer.key_id)

        guard = LoopGuard("alert dispatcher", log)  # logs failures once, backs off

        def loop() -> None:
            last_pass = 0.0
            while True:
                guard.pause()
                self._wake.wait(POLL_SECONDS)
                self._wake.clear()
                forced, self._force = self._force, False
                with guard.attempt(), app.app_context():
                    try:
                        # Acknowledgements alone (a thousand a second when screens connect)
                        # are only written; a whole pass over every peer runs when alerts
                        # changed, or once a POLL_SECONDS.
                        if forced or time.monotonic() - last_pass >= POLL_SECONDS:
                            last_pass = time.monotonic()
                            self.run_pass(force=forced)
                        else:
                            self._flush()
                    except Exception:  # the next pass retries; deliveries stay unacknowledged
                        db.session.rollback()  # (inside the context: outside it, this raised
                        # and ended the loop for good — no alert left the process after)
                        raise  # to the guard

        return socketio.start_background_task(loop)

    def run_pass(self, *, force: bool = False) -> None:
        self._refresh(force=force)
        self._flush()
        self._send_due()

    def _refresh(self, *, force: bool) -> None:
        """Re-read the alerts in force when they changed (or, at least, every minute: an alert
        due to start or expire changes what a screen must show without any write)."""
        counter = revisions.current(alert_service.COUNTER)
        stale = time.monotonic() - self._loaded_at > 60
        if not force and counter == self._counter and not stale:
            return
        now = utcnow()
        rows = alert_service.in_force(now)
        alerts = [
            (alert_service.payload(a), frozenset(r.id for r in a.targets), a.id) for a in rows
        ]
        with self._lock:
            if alerts != self._alerts:
                self._everyone = True
            self._alerts = alerts
            self._counter = counter
            self._loaded_at = time.monotonic()

    def _set_for(self, chain: frozenset[int]) -> tuple[list[dict[str, Any]], str, list[int]]:
        chosen = [(p, a) for p, targets, a in self._alerts if targets & chain]
        payloads = [p for p, _a in chosen]
        return payloads, fingerprint(payloads), [a for _p, a in chosen]

    def _send_due(self, only: str | None = None) -> None:
        now = time.monotonic()
        # fingerprint -> (payloads, alert ids, [(sid, peer)])
        groups: dict[str, tuple[list[dict[str, Any]], list[int], list[tuple[str, Peer]]]] = {}
        with self._lock:
            if only is not None:
                peers = [(only, self._peers[only])] if only in self._peers else []
            elif self._everyone:
                peers = list(self._peers.items())
                self._everyone = False
            else:
                peers = [(sid, self._peers[sid]) for sid in self._waiting if sid in self._peers]
            # Screens of one village share a chain, so a pass over 10,000 screens works out a
            # few hundred sets, not 10,000.
            sets: dict[frozenset[int], tuple[list[dict[str, Any]], str, list[int]]] = {}
            for sid, peer in peers:
                found = sets.get(peer.chain)
                if found is None:
                    found = sets[peer.chain] = self._set_for(peer.chain)
                payloads, fp, alert_ids = found
                if only is None:
                    if fp == peer.acked:
                        continue
                    if fp == peer.sent and now - peer.sent_at < retry_after(peer.attempts):
                        continue
                peer.attempts = peer.attempts + 1 if fp == peer.sent else 1
                peer.sent, peer.sent_at = fp, now
                self._waiting.add(sid)
                groups.setdefault(fp, (payloads, alert_ids, []))[2].append((sid, peer))
        if not groups:
            return
        count = sum(len(members) for _p, _a, members in groups.values())
        metrics.alerts_sent(count)
        began = time.monotonic()
        server_time = alert_service.iso(utcnow())
        for payloads, _ids, members in groups.values():
            again = [peer.screen_id for _sid, peer in members if peer.attempts > 1]
            if again:
                log.info("alerts to %d screens again (%s…)", len(again), again[:5])
            message: dict[str, Any] = {"alerts": payloads, "server_time": server_time}
            if self.signer is not None:
                message = self.signer.sign(message)
            for first in range(0, len(members), YIELD_EVERY):
                if first:
                    socketio.sleep(0)  # the writers send what is queued: the first see it
                self._emit(
                    protocol.ALERTS, message,
                    to=[sid for sid, _peer in members[first:first + YIELD_EVERY]],
                    namespace=protocol.NAMESPACE,
                    # Every peer is a connection of this process: straight to it, not through
                    # the message queue (every other process would read it for nothing).
                    ignore_queue=True,
                )
        with self._lock:
            self._sends.extend((peer.screen_id, ids) for _p, ids, members in groups.values()
                               if ids for _sid, peer in members)
        if only is not None:
            # A connect: its send is recorded with the next acknowledgements (no query, no
            # app context in a connect — in a storm with an alert in force, one per screen).
            self.wake_soon()
            return
        # Let the connections' writers send before the database work (under gevent they run
        # only when this greenlet yields).
        emitted = time.monotonic()
        socketio.sleep(0)
        with self.app.app_context():
            self._flush()
        if count >= 100:
            log.info("alerts sent to %d screens in %d messages: emit %.0f ms, record %.0f ms",
                     count, len(groups), (emitted - began) * 1000,
                     (time.monotonic() - emitted) * 1000)

    def wake_soon(self) -> None:
        if self._running:
            self._wake.set()
        else:  # no loop (tests): record now
            with self.app.app_context():
                self._flush()

    def _flush(self) -> None:
        """Record the sends and acknowledgements gathered since the last flush: the sends
        first (an acknowledgement is of something sent before it)."""
        with self._lock:
            sends, self._sends = self._sends, []
            acks, self._acks = self._acks, []
        if sends:
            alert_service.record_sends(sends, utcnow())
        if acks:
            alert_service.record_acks(acks)


def fingerprint_of_keys(keys: list[str]) -> str:
    return ",".join(sorted(keys))
