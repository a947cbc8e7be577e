"""The live dashboard's namespace: logged-in admin users hear when screens come and go.

Only a user logged in to the admin (the Flask-Login session cookie of the handshake) with the
dashboard of some region may join; anyone else is refused. A user joins "dash:<region id>" for
the top of each subtree it sees. A screen's connect or disconnect (signals.screen_presence) is
sent to the rooms of its region chain, so each user hears about the screens below its regions
and nothing else. The event is small ({"screen", "online"}); the page fetches its own counts.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, g
from flask_login import current_user
from flask_socketio import ConnectionRefusedError, Namespace, join_room

from server import signals
from server.extensions import db, socketio
from server.models import Screen, User
from server.services import presence

log = logging.getLogger(__name__)

NAMESPACE = "/dashboard"
PRESENCE = "presence"  # {"screen": code, "online": bool}
REFUSED = "login required"


def room(region_id: int) -> str:
    return f"dash:{region_id}"


class DashboardNamespace(Namespace):
    """Listen-only: the browser never sends anything but the handshake."""

    def on_connect(self, auth: Any = None) -> None:
        # The user of this handshake's session cookie: never one Flask-Login cached in `g` of
        # an app context that outlives the request (the tests', a shell's).
        g.pop("_login_user", None)
        user = current_user._get_current_object()  # type: ignore[attr-defined]
        if not isinstance(user, User) or not user.is_authenticated:
            raise ConnectionRefusedError(REFUSED)
        roots = presence.dashboard_roots(user)
        if not roots:
            raise ConnectionRefusedError(REFUSED)
        for region in roots:
            join_room(room(region.id))


def on_screen_presence(
    sender: Flask, screen_id: int, online: bool, region_ids: list[int] | None = None,
    code: str | None = None, **kwargs: Any,
) -> None:
    rooms = sorted({room(rid) for rid in region_ids or []})
    if not rooms:  # never an empty `to`: python-socketio would send it to everyone
        return
    if code is None:
        screen = db.session.get(Screen, screen_id)
        if screen is None:
            return
        code = screen.code
    try:
        socketio.emit(PRESENCE, {"screen": code, "online": bool(online)}, to=rooms,
                      namespace=NAMESPACE)
    except Exception:  # the dashboard is a view; a failed emit must not break a connect
        log.exception("telling the dashboard about screen %s failed", code)


def register() -> None:
    """The namespace on this app's Socket.IO server, and its signal receiver (blinker keeps a
    receiver once however often it is connected)."""
    socketio.on_namespace(DashboardNamespace(NAMESPACE))
    signals.screen_presence.connect(on_screen_presence)
