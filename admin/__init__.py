"""The editors' UI: a blueprint the server registers. It calls server.services, never the
database directly. One module per concern; each registers its routes on `bp`."""

from flask import Blueprint

bp = Blueprint("admin", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static")

from admin import (  # noqa: E402,F401
    alerts,
    audit,
    auth,
    cadence,
    dashboard,
    notices,
    people,
    screens,
    stats,
)
