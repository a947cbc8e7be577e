"""The API's one guard: every call carries `Authorization: Bearer cp_...` (a personal token).

The caller acts as the token's user: the services check that user's roles and regions, so a
token can do exactly what its owner can do in the admin. Session cookies are not accepted here.
"""

from __future__ import annotations

from flask import Response, g
from flask_babel import gettext as _

from server.api import bp
from server.auth import bearer_token
from server.errors import json_error
from server.models import User
from server.services import users

# Endpoints anyone may read: the description of the API itself.
PUBLIC_ENDPOINTS = {"api.openapi"}


def _unauthorized(message: str, error: str | None = None) -> Response:
    response, status = json_error(401, message)
    challenge = 'Bearer realm="cunping"'
    if error:
        challenge += f', error="{error}"'
    response.headers["WWW-Authenticate"] = challenge
    response.status_code = status
    return response


@bp.before_request
def _require_token() -> Response | None:
    from flask import request

    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    secret = bearer_token()
    if not secret:
        return _unauthorized(
            _(
                "An API token is required: send the header Authorization: Bearer <token>. "
                "Create a token in the admin under My account → API tokens."
            )
        )
    user = users.user_for_token(secret)
    if user is None:
        return _unauthorized(
            _("The API token is unknown or revoked, or its user is deactivated."),
            "invalid_token",
        )
    g.api_user = user
    return None


@bp.after_request
def _no_store(response: Response) -> Response:
    # Answers depend on the token's permissions: no shared cache may keep them.
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def api_user() -> User:
    """The user whose token authenticated this request."""
    user: User = g.api_user
    return user
