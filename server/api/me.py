"""API: the token's own user — who the CMS is acting as, with which roles where."""

from __future__ import annotations

from flask import Response

from server.api import bp, serializers
from server.api.auth import api_user
from server.api.envelope import ok


@bp.get("/me")
def me() -> Response:
    return ok(serializers.me(api_user()))
