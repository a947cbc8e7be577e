"""JSON API under /api/v1 for county platforms (token-authenticated)."""

from flask import Blueprint

bp = Blueprint("api", __name__)

from server.api import notices, regions  # noqa: E402,F401
