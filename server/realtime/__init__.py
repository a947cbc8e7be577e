"""The realtime channel: Socket.IO for the screens' players (namespace protocol.NAMESPACE).

`init_app` binds `extensions.socketio` to the app: gevent when the process was monkey-patched
(`cunping serve`, gunicorn's gevent worker), threads otherwise (tests, the Flask dev server); a
message queue when SOCKETIO_MESSAGE_QUEUE (or REDIS_URL) is set, so several server processes
reach every screen.

With the queue, an emit to a room anywhere — a server process's API call or scheduler, or a
`cunping` command with no server at all (`cunping tick`, `cunping screen revoke`) — is
published to Redis and every server process sends it to its own connections in that room.
Disconnecting a connection held by another process goes the same way (push._disconnect). What
stays per process: the rooms (each process knows only its own connections') and the alert
dispatcher's peers (each process delivers alerts to the screens connected to it and learns of
alerts issued elsewhere from the "alerts" counter in the database), and the screens' directory
(server/realtime/directory.py: kept current by the revision counter, and by invalidations sent
through the queue to every process). Replies to the connection of the event being handled skip
the queue (PlayerNamespace._reply).

Per app, everything lives in one object: `state(app)` (server/realtime/state.py).

SOCKETIO_CHANNEL names the Redis channel (default "cunping"): two deployments sharing one Redis
need different channels.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

from player import protocol
from server import metrics
from server.extensions import socketio


def _async_mode(app: Flask) -> str:
    configured = app.config.get("SOCKETIO_ASYNC_MODE") or os.environ.get("CUNPING_ASYNC_MODE")
    if configured:
        return str(configured)
    try:
        from gevent import monkey

        if monkey.is_module_patched("socket"):
            return "gevent"
    except ImportError:  # pragma: no cover - gevent is in the server extra
        pass
    return "threading"


def _origins(app: Flask) -> list[str] | None:
    """Origins allowed to open a connection. By default only the server's own (the Host the
    request came to, as python-engineio checks it): players send that origin, and a browser
    page of another site cannot connect. SOCKETIO_CORS_ORIGINS lists others explicitly."""
    configured = app.config.get("SOCKETIO_CORS_ORIGINS") or os.environ.get(
        "SOCKETIO_CORS_ORIGINS"
    )
    if configured:
        return [o.strip() for o in str(configured).split(",") if o.strip()]
    return None


def init_app(app: Flask) -> None:
    from server.realtime import admission, dashboard_namespace, push, rooms
    from server.realtime.player_namespace import PlayerNamespace
    from server.realtime.state import KEY, Realtime

    queue = (
        app.config.get("SOCKETIO_MESSAGE_QUEUE")
        or os.environ.get("SOCKETIO_MESSAGE_QUEUE")
        or os.environ.get("REDIS_URL")
        or None
    )
    mode = _async_mode(app)
    options: dict[str, Any] = {
        "async_mode": mode,
        "max_http_buffer_size": protocol.MAX_MESSAGE_BYTES,
        "cors_allowed_origins": _origins(app),
        "ping_interval": 25,
        "ping_timeout": 20,
        # An event is handled in the greenlet that read it, not a new greenlet per event: a
        # connection's events are handled in order, and 10,000 screens' heartbeats and alert
        # acknowledgements do not each pay for a greenlet (bench/load.py --profile: spawning
        # was a quarter of an idle process's CPU). No handler waits long: the slow work is
        # written behind (heartbeats, acknowledgements) or is one short transaction.
        "async_handlers": False,
    }
    if mode == "gevent":
        # Greenlets without the spawning stack gevent records for debugging (walked on every
        # spawn: engine.io spawns one per ping).
        import gevent

        gevent.config.track_greenlet_tree = False
    channel = app.config.get("SOCKETIO_CHANNEL") or os.environ.get("SOCKETIO_CHANNEL") or "cunping"
    # python-socketio's managers (Redis when a queue is set), with an index from each connection
    # to its rooms: see server/realtime/rooms.py.
    manager = rooms.client_manager(queue, channel)
    options["client_manager"] = manager
    socketio.init_app(app, **options)
    gate = admission.Gate(
        rate=float(app.config.get("HANDSHAKES_PER_SECOND") or admission.RATE),
        burst=float(app.config.get("HANDSHAKE_BURST") or admission.BURST),
        in_flight=int(app.config.get("HANDSHAKES_IN_FLIGHT") or admission.IN_FLIGHT),
        on_refuse=metrics.screen_busy,
    )
    rt = app.extensions[KEY] = Realtime(app, gate=gate)
    manager.on_internal = push.internal_receiver(rt)
    # Handlers without Flask's per-event request context: a namespace of python-socketio's own
    # on this app's server (Flask-SocketIO makes a new server for every app).
    socketio.server.register_namespace(PlayerNamespace(rt))
    # Overload is refused before python-engineio spends anything on a handshake.
    app.wsgi_app = admission.Middleware(app.wsgi_app, gate)  # type: ignore[method-assign]
    dashboard_namespace.register()  # the live dashboard ("/dashboard")
    push.connect_signals()
