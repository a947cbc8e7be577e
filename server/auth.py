"""Sessions for the admin (Flask-Login) and bearer tokens for the API."""

from __future__ import annotations

from flask import Flask, g, request

from server.extensions import db, login_manager
from server.models import User


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "admin.login"
    login_manager.login_message = None  # the login page says why on its own
    login_manager.session_protection = "strong"

    @login_manager.user_loader
    def _load(user_id: str) -> User | None:
        if g.get("database_unavailable"):  # the 503 page (server/errors.py): as for a visitor,
            return None  # since loading the user would wait on the database again
        user = db.session.get(User, int(user_id)) if user_id.isdigit() else None
        return user if user is not None and user.active else None


def bearer_token() -> str:
    """The token from `Authorization: Bearer <token>` (or empty)."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""
