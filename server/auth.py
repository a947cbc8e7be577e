"""Sessions for the admin (Flask-Login) and bearer tokens for the API."""

from __future__ import annotations

from flask import Flask, g, request

from server.extensions import db, login_manager
from server.models import User
from server.services import sessions


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "admin.login"
    login_manager.login_message = None  # the login page says why on its own
    login_manager.session_protection = "strong"

    @login_manager.user_loader
    def _load(user_id: str) -> User | None:
        """From the session or the remember cookie: "<user id>:<session key>", good while that
        session lives (server/services/sessions.py)."""
        if g.get("database_unavailable"):  # the 503 page (server/errors.py): as for a visitor,
            return None  # since loading the user would wait on the database again
        uid, _sep, key = user_id.partition(":")
        if not uid.isdigit() or not key or len(key) > 64:
            return None
        user = db.session.get(User, int(uid))
        if user is None or not user.active or sessions.current(user.id, key) is None:
            return None
        user.session_key = key
        return user


def bearer_token() -> str:
    """The token from `Authorization: Bearer <token>` (or empty)."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""
