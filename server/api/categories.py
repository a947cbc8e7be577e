"""API: notice categories (党务公开, 财务公开...), read only."""

from __future__ import annotations

from flask import Response

from server.api import bp, serializers
from server.api.envelope import ok
from server.services import categories


@bp.get("/categories")
def list_categories() -> Response:
    """The categories a notice may have (inactive ones are left out)."""
    return ok({"items": [serializers.category(c) for c in categories.active()]})
