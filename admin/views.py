"""Admin routes (filled in by the admin UI work)."""

from __future__ import annotations

from admin import bp


@bp.get("/")
def index() -> str:
    return "admin"


@bp.get("/login")
def login() -> str:
    return "login"
