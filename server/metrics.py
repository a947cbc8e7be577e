"""Prometheus metrics of this server process, at `/metrics` (the text exposition format).

Each process (one gunicorn gevent worker on its own port, see deploy/) counts what it does
itself: Prometheus scrapes every process's port directly, and the `instance` label it adds
(host:port) tells them apart; sums over instances give the whole deployment. The list of
metrics and how to read them is in docs/operations.md ("Monitoring").

Every hook here costs O(1) per event, or O(rooms) per emit: a publish to the 10,000 screens of
one process must not get slower because it is counted. Deliveries are counted from the sizes of
the rooms an emit goes to, not by visiting the screens.

Access: from loopback (not through a proxy), or with `Authorization: Bearer <METRICS_TOKEN>`
when METRICS_TOKEN is set. The endpoint has no CSRF, login or rate limit, and is not counted in
its own HTTP histogram.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

from flask import Flask, Response, abort, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from player import protocol

# Screens connecting and disconnecting (INFO), next to the access log's "cunping.access".
screens_log = logging.getLogger("cunping.screens")

# --- the metrics ----------------------------------------------------------------------------

SCREEN_CONNECTS = Counter(
    "cunping_screen_connections",
    "Screens that connected to this process and were accepted (token valid).",
)
SCREEN_REFUSALS = Counter(
    "cunping_screen_connections_refused",
    "Connections to the players' namespace refused (unknown or revoked token).",
)
SCREEN_BUSY = Counter(
    "cunping_screen_connections_busy",
    "Handshakes refused as busy before any Socket.IO work (HTTP 503 with Retry-After: more "
    "than this process takes a second, or in flight, or its event loop late), and connects "
    "that failed on the server's side; the players come back when told.",
)
DISCONNECT_REASONS = ("client disconnect", "server disconnect", "ping timeout",
                      "transport close", "transport error")
SCREEN_DISCONNECTS = Counter(
    "cunping_screen_disconnections",
    "Screens that disconnected from this process, by Socket.IO's reason.",
    ["reason"],
)
PUBLISHES = Counter(
    "cunping_notice_pushes",
    "Notice changes pushed to the screens' rooms by this process (op: upsert or remove).",
    ["op"],
)
DELIVERIES = Counter(
    "cunping_messages_delivered",
    "Socket.IO messages this process wrote to the screens connected to it, by event. One per "
    "screen reached: a publish to a room of 500 screens counts 500.",
    ["event"],
)
EVENTS = Counter(
    "cunping_socketio_events_received",
    "Socket.IO events received from players by this process, by event name.",
    ["event"],
)
ALERT_SENDS = Counter(
    "cunping_alert_sends",
    "ALERTS messages (a screen's whole alert set) sent by this process, first sends and "
    "retries.",
)
ALERT_ACKS = Counter(
    "cunping_alert_acks",
    "Acknowledgements of ALERTS received by this process.",
)
PLAYS_REFUSED = Counter(
    "cunping_plays_refused",
    "Plays reported by players and not counted, by reason (malformed, too old, in the future, "
    "unknown notice, not live then, not for this screen).",
    ["reason"],
)
ALERT_REFUSALS = Counter(
    "cunping_alert_refusals",
    "Alert sets a player refused to show because their signature did not verify (ALERTS_REFUSED"
    "), by the player's reason.",
    ["reason"],
)
ALERT_ACK_SECONDS = Histogram(
    "cunping_alert_ack_seconds",
    "Seconds from this process sending a screen its alert set to the screen's acknowledgement.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
)
HTTP_SECONDS = Histogram(
    "cunping_http_request_seconds",
    "HTTP requests served by this process: seconds to the response, by method, route rule "
    "(Flask's URL rule, not the raw path) and status class.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0),
)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_STATUS = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}

# Children resolved once: `.labels()` takes a lock and builds a key on every call.
_PUBLISH_OPS = {op: PUBLISHES.labels(op=op) for op in ("upsert", "remove")}
_DISCONNECT = {r: SCREEN_DISCONNECTS.labels(reason=r) for r in (*DISCONNECT_REASONS, "other")}
_delivered: dict[str, Any] = {}
_received: dict[str, Any] = {}


class _Connections(Collector):
    """Gauges read when scraped, so connecting costs nothing extra: screens connected now
    (the app's realtime state knows each authenticated one) and the namespaces' connections
    (python-socketio's manager keeps every connection in its namespace's `None` room)."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The names, without reading anything."""
        yield GaugeMetricFamily("cunping_screens_connected", "", labels=["state"])
        yield GaugeMetricFamily("cunping_socketio_connections", "", labels=["namespace"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from flask import has_app_context

        from server.extensions import socketio

        realtime = current_app.extensions.get("cunping_realtime") if has_app_context() else None
        screens = len(realtime.connections) if realtime is not None else 0
        rooms: dict[str, dict[Any, Any]] = {}
        server = getattr(socketio, "server", None)
        if server is not None:
            rooms = server.manager.rooms
        players = len(rooms.get(protocol.NAMESPACE, {}).get(None, ()))
        state = GaugeMetricFamily(
            "cunping_screens_connected",
            "Players connected to this process now: state=screen (authenticated with its "
            "token) or pairing (waiting for an editor to pair it).",
            labels=["state"],
        )
        state.add_metric(["screen"], screens)
        state.add_metric(["pairing"], max(0, players - screens))
        yield state
        per_ns = GaugeMetricFamily(
            "cunping_socketio_connections",
            "Socket.IO connections to this process now, by namespace.",
            labels=["namespace"],
        )
        for namespace in sorted({protocol.NAMESPACE, *rooms}):
            per_ns.add_metric([namespace], len(rooms.get(namespace, {}).get(None, ())))
        yield per_ns


_collector = _Connections()
REGISTRY.register(_collector)


# --- hooks (one call each from the code they observe) ---------------------------------------


def screen_connected(code: str, sid: str, ip: str | None) -> None:
    SCREEN_CONNECTS.inc()
    screens_log.info("screen %s connected", code, extra={"screen": code, "sid": sid, "ip": ip})


def screen_refused() -> None:
    SCREEN_REFUSALS.inc()


def screen_busy() -> None:
    SCREEN_BUSY.inc()


def screen_disconnected(screen: str | int, sid: str, reason: Any) -> None:
    text = reason if isinstance(reason, str) and reason in _DISCONNECT else "other"
    _DISCONNECT[text].inc()
    screens_log.info("screen %s disconnected (%s)", screen,
             reason if isinstance(reason, str) else text,
             extra={"screen": screen, "sid": sid})


def notice_pushed(op: str) -> None:
    child = _PUBLISH_OPS.get(op)
    if child is not None:
        child.inc()


def event_received(event: str, known: bool) -> None:
    """An event from a player; names without a handler count as "unknown" (a player may send
    any name: the label set stays bounded)."""
    name = event if known else "unknown"
    child = _received.get(name)
    if child is None:
        child = _received[name] = EVENTS.labels(event=name)
    child.inc()


def alerts_sent(count: int) -> None:
    if count:
        ALERT_SENDS.inc(count)


def alert_acked(peer: Any, fingerprint: str) -> None:
    """An acknowledgement in the dispatcher's callback; `peer` is its record of the screen (it
    remembers what it sent last and when)."""
    ALERT_ACKS.inc()
    if peer is not None and peer.sent == fingerprint and peer.sent_at:
        ALERT_ACK_SECONDS.observe(max(0.0, time.monotonic() - peer.sent_at))


def plays_refused(reason: str, count: int = 1) -> None:
    PLAYS_REFUSED.labels(reason).inc(count)


def alert_refused(reason: str) -> None:
    ALERT_REFUSALS.labels(reason).inc()


def delivered(event: str, reached: int = 1) -> None:
    """`reached` connections were sent `event` without an emit (a message encoded once and
    written to each: server/realtime/rooms.py, send_encoded)."""
    child = _delivered.get(event)
    if child is None:
        child = _delivered[event] = DELIVERIES.labels(event=event)
    child.inc(reached)


def _reached(rooms: dict[Any, Any], room: Any, skip: Any) -> int:
    """Local members an emit to `room` reaches: O(rooms), no visit of the members unless the
    emit names several rooms (then their union, built in C like python-socketio does)."""
    if room is None:
        count = len(rooms.get(None, ()))
    elif isinstance(room, str):
        count = len(rooms.get(room, ()))
    else:
        # bidicts: their forward dict (python-socketio merges the same ones to send)
        present = [getattr(rooms[r], "_fwdm", rooms[r]) for r in room if r in rooms]
        if len(present) == 1:
            count = len(present[0])
        elif present:
            merged = dict(present[0])
            for members in present[1:]:
                merged.update(members)
            count = len(merged)
        else:
            count = 0
    if skip:
        count -= len(skip) if isinstance(skip, list) else 1
    return max(0, count)


def _count(event: str, namespace: str | None, room: Any, skip: Any, rooms: Any) -> None:
    if namespace != protocol.NAMESPACE:
        return
    ns = rooms.get(namespace)
    if ns is None:
        return
    if skip is None and room.__class__ is str:  # one connection (alerts, replies): fast path
        members = ns.get(room)
        reached = len(members) if members is not None else 0
    else:
        reached = _reached(ns, room, skip)
    if reached:
        delivered(event, reached)


def count_deliveries(manager: Any) -> None:
    """Count what `manager` (python-socketio's client manager) writes to local connections.

    Without a message queue every emit goes through `manager.emit`. With one (Redis), an emit
    from any process — this one, another, the scheduler, the CLI — reaches this process's
    screens through `manager._handle_emit`, so every process counts its own deliveries of every
    publish, wherever it was made; an emit with `ignore_queue` (a reply to a connection this
    process holds) skips the queue and is counted in `manager.emit`."""
    if getattr(manager, "_cunping_counted", False):
        return
    manager._cunping_counted = True
    rooms = manager.rooms
    queued = hasattr(manager, "_handle_emit")
    if queued:
        handle = manager._handle_emit

        def handle_emit(message: dict[str, Any]) -> Any:
            _count(message.get("event", ""), message.get("namespace"), message.get("room"),
                   message.get("skip_sid"), rooms)
            return handle(message)

        manager._handle_emit = handle_emit
    emit = manager.emit

    def counted_emit(event: str, data: Any, namespace: str | None = None, room: Any = None,
                     skip_sid: Any = None, callback: Any = None, to: Any = None,
                     **kwargs: Any) -> Any:
        if not queued or kwargs.get("ignore_queue"):
            _count(event, namespace, to or room, skip_sid, rooms)
        return emit(event, data, namespace=namespace, room=room, skip_sid=skip_sid,
                    callback=callback, to=to, **kwargs)

    manager.emit = counted_emit


# --- HTTP -----------------------------------------------------------------------------------


def _observe(response: Response) -> Response:
    if request.endpoint == "metrics":
        return response
    started = g.get("started")
    if started is None:
        return response
    rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
    method = request.method if request.method in _METHODS else "other"
    status = _STATUS.get(response.status_code // 100, "other")
    HTTP_SECONDS.labels(method=method, route=rule, status=status).observe(
        time.perf_counter() - started
    )
    return response


_FORWARDED = ("X-Forwarded-For", "X-Real-IP", "Forwarded")


def _loopback_direct() -> bool:
    """The request came from this machine and not through a proxy (a request relayed by nginx
    carries X-Forwarded-For: from loopback too, but not from the operator)."""
    if any(h in request.headers for h in _FORWARDED):
        return False
    peer = request.environ.get("werkzeug.proxy_fix.orig", {}).get("REMOTE_ADDR") \
        or request.remote_addr or ""
    try:
        return ipaddress.ip_address(peer.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def allowed(token: str) -> bool:
    """May this request read the metrics? With a token configured, the right bearer token is
    enough; without it (or without the header) only a direct loopback request is."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if token and scheme.lower() == "bearer":
        return hmac.compare_digest(value.strip().encode(), token.encode())
    return _loopback_direct()


def exposition(token: str) -> Response:
    if not allowed(token):
        abort(403)
    return Response(generate_latest(REGISTRY), mimetype=None,
                    headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})


def init_app(app: Flask) -> None:
    """The endpoint, the HTTP histogram, and delivery counting on the Socket.IO manager (call
    after `realtime.init_app`)."""
    from server.extensions import csrf, limiter, socketio

    def endpoint() -> Response:
        token = current_app.config.get("METRICS_TOKEN") or os.environ.get("METRICS_TOKEN", "")
        return exposition(str(token))

    app.add_url_rule("/metrics", endpoint="metrics", view_func=endpoint, methods=["GET"])
    csrf.exempt(endpoint)
    limiter.exempt(endpoint)
    app.after_request(_observe)
    server = getattr(socketio, "server", None)
    if server is not None:
        count_deliveries(server.manager)


def families(text: str) -> Iterable[Any]:
    """Parse the exposition text (for tests and tools)."""
    from prometheus_client.parser import text_string_to_metric_families

    return text_string_to_metric_families(text)
