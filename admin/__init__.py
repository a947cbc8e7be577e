"""The editors' UI: a blueprint the server registers. It calls server.services, never the
database directly."""

from flask import Blueprint

bp = Blueprint(
    "admin",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

from admin import views  # noqa: E402,F401  (routes register themselves on bp)
