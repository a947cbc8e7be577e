"""Alert delivery with proof: each server process sends the screens connected to it their
whole alert set (ALERTS, with a Socket.IO acknowledgement) and sends it again until the
screen acknowledges, backing off from ALERT_ACK_SECONDS to a minute.

Per connection it remembers the set it must show (a fingerprint of code:version), the one the
screen last acknowledged, and when it last sent. A pass compares them; it runs
- at once in this process when an alert changes here (signals.alerts_changed),
- every second otherwise, re-reading the alerts when the "alerts" counter moved (a change made
  by another server process), and retrying unacknowledged sends that are due.
Sends and acknowledgements are written to the database in one batch per pass (10,000 screens
answering an alert must not mean 10,000 commits).

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

from flask import Flask, current_app

from player import protocol
from server import metrics
from server.extensions import db, socketio
from server.loops import LoopGuard
from server.models.base import utcnow
from server.services import alerts as alert_service
from server.services import revisions

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
    def __init__(self) -> None:
        self._peers: dict[str, Peer] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._alerts: list[tuple[dict[str, Any], frozenset[int], int]] = []
        self._counter = -1
        self._loaded_at = 0.0
        self._acks: list[tuple[int, list[str], datetime, str, str]] = []
        self._running = False
        self._force = False  # the next pass re-reads the alerts (they changed)
        self._emit: Callable[..., Any] = socketio.emit
        self._app: Flask | None = None

    def reset(self) -> None:
        """Forget every connection (a new app in this process has none yet)."""
        with self._lock:
            self._peers.clear()
            self._acks.clear()
            self._alerts, self._counter, self._loaded_at = [], -1, 0.0

    # -- connections -----------------------------------------------------------------------

    def register(self, sid: str, screen_id: int, chain: list[int]) -> None:
        """A screen connected: send its alerts now, before anything else (in on_connect)."""
        self._app = current_app._get_current_object()  # type: ignore[attr-defined]
        with self._lock:
            self._peers[sid] = Peer(screen_id, frozenset(chain))
        # The loop re-reads the alerts every POLL_SECONDS and sends what a peer lacks: a
        # connect needs no query of its own while that reading is fresh.
        if not self._running or time.monotonic() - self._loaded_at > POLL_SECONDS:
            self._refresh(force=False)
        self._send_due(only=sid)

    def forget(self, sid: str) -> None:
        with self._lock:
            self._peers.pop(sid, None)

    def move(self, sid: str, chain: list[int]) -> None:
        with self._lock:
            peer = self._peers.get(sid)
            if peer is not None:
                peer.chain = frozenset(chain)
        self.wake()

    def connected(self) -> int:
        with self._lock:
            return len(self._peers)

    # -- passes ----------------------------------------------------------------------------

    def wake(self, app: Flask | None = None) -> None:
        """An alert changed in this process: a pass now (the loop's, or right here)."""
        if self._running:
            self._force = True
            self._wake.set()
        elif app is not None:
            with app.app_context():
                try:
                    self.run_pass(force=True)
                except Exception:  # the change is saved; a later pass or reconnect delivers
                    log.exception("alert dispatch pass failed")
                    db.session.rollback()

    def start(self, app: Flask) -> Any:
        """The background loop of `cunping serve` (a greenlet under gevent)."""
        self._running = True

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
                            self._flush_acks()
                    except Exception:  # the next pass retries; deliveries stay unacknowledged
                        db.session.rollback()  # (inside the context: outside it, this raised
                        # and ended the loop for good — no alert left the process after)
                        raise  # to the guard

        return socketio.start_background_task(loop)

    def run_pass(self, *, force: bool = False) -> None:
        self._refresh(force=force)
        self._flush_acks()
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
            self._alerts = alerts
            self._counter = counter
            self._loaded_at = time.monotonic()

    def _set_for(self, peer: Peer) -> list[tuple[dict[str, Any], int]]:
        return [(p, a) for p, targets, a in self._alerts if targets & peer.chain]

    def _send_due(self, only: str | None = None) -> None:
        now = time.monotonic()
        sends: list[tuple[str, Peer, str, list[dict[str, Any]], list[int]]] = []
        with self._lock:
            peers = [(only, self._peers[only])] if only in self._peers else []
            if only is None:
                peers = list(self._peers.items())
            # Screens of one village share a chain, so a pass over 10,000 screens works out a
            # few hundred sets, not 10,000.
            sets: dict[frozenset[int], tuple[list[dict[str, Any]], str, list[int]]] = {}
            for sid, peer in peers:
                found = sets.get(peer.chain)
                if found is None:
                    chosen = self._set_for(peer)
                    found = sets[peer.chain] = ([p for p, _a in chosen],
                                                fingerprint([p for p, _a in chosen]),
                                                [a for _p, a in chosen])
                payloads, fp, alert_ids = found
                if fp == peer.acked and only is None:
                    continue
                if fp == peer.sent and now - peer.sent_at < retry_after(peer.attempts) \
                        and only is None:
                    continue
                peer.attempts = peer.attempts + 1 if fp == peer.sent else 1
                peer.sent, peer.sent_at = fp, now
                sends.append((sid, peer, fp, payloads, alert_ids))
        if not sends:
            return
        metrics.alerts_sent(len(sends))
        stamp = utcnow()
        began = time.monotonic()
        server_time = alert_service.iso(stamp)
        for n, (sid, peer, fp, payloads, _alerts) in enumerate(sends, 1):
            if n % YIELD_EVERY == 0:
                socketio.sleep(0)  # the writers send what is queued: the first screens see it
            if peer.attempts > 1:
                log.info("alerts to screen %s again (attempt %d)", peer.screen_id, peer.attempts)
            self._emit(
                protocol.ALERTS,
                {"alerts": payloads, "server_time": server_time},
                to=sid,
                namespace=protocol.NAMESPACE,
                callback=self._callback(sid, peer.screen_id, fp),
                # Every peer is a connection of this process: straight to it, not through the
                # message queue (10,000 sends an alert would otherwise make every process read).
                ignore_queue=True,
            )
        # Let the connections' writers send before the database work (under gevent they run
        # only when this greenlet yields).
        emitted = time.monotonic()
        socketio.sleep(0)
        alert_service.record_sends(
            [(peer.screen_id, alerts) for _sid, peer, _fp, _p, alerts in sends if alerts], stamp
        )
        if len(sends) >= 100:
            log.info("alerts sent to %d screens: emit %.0f ms, record %.0f ms", len(sends),
                     (emitted - began) * 1000, (time.monotonic() - emitted) * 1000)

    def _callback(self, sid: str, screen_id: int, fp: str) -> Callable[..., None]:
        def acknowledged(answer: Any = None, *_rest: Any) -> None:
            have = answer.get("have") if isinstance(answer, dict) else None
            if not isinstance(have, list):
                log.warning("screen %s answered ALERTS with %r", screen_id, answer)
                return
            with self._lock:
                self._acks.append((screen_id, [h for h in have if isinstance(h, str)],
                                   utcnow(), sid, fp))
                metrics.alert_acked(self._peers.get(sid), fp)
            self.wake_soon()

        return acknowledged

    def wake_soon(self) -> None:
        if self._running:
            self._wake.set()
        elif self._app is not None:  # no loop (tests): record the acknowledgement now
            with self._app.app_context():
                self._flush_acks()

    def _flush_acks(self) -> None:
        with self._lock:
            acks, self._acks = self._acks, []
            for _screen_id, have, _when, sid, fp in acks:
                peer = self._peers.get(sid)
                # The screen holds what it says; when that is the set we sent, it is done.
                if peer is not None and fingerprint_of_keys(have) == fp:
                    peer.acked = fp
        if acks:
            alert_service.record_acks([(screen_id, have, when)
                                       for screen_id, have, when, _sid, _fp in acks])


def fingerprint_of_keys(keys: list[str]) -> str:
    return ",".join(sorted(keys))


dispatcher = AlertDispatcher()


def on_alerts_changed(sender: Flask, **kwargs: Any) -> None:
    dispatcher.wake(sender)
