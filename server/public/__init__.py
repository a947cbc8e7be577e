"""Residents' pages: /n/<code> (a notice) and, later, /s/<code> (a screen)."""

from flask import Blueprint

bp = Blueprint("public", __name__, template_folder="templates", static_folder="static",
               static_url_path="/p/static")

from server.public import alerts, screen, views  # noqa: E402,F401
