"""JSON API under /api/v1 for county platforms that push content from their own CMS.

One module per resource; every call but /openapi.json carries a personal token (auth.py).
docs/api.md is the reference for CMS developers.
"""

from flask import Blueprint

bp = Blueprint("api", __name__)

from server.api import (  # noqa: E402,F401
    alerts,
    auth,
    categories,
    images,
    me,
    notices,
    openapi,
    regions,
)
