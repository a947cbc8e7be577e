"""Error pages for people and JSON errors for the API."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from server.services.errors import ServiceError

log = logging.getLogger(__name__)


def wants_json() -> bool:
    return (
        request.path.startswith("/api/")
        or request.path.endswith(".json")
        or (request.accept_mimetypes.best == "application/json")
    )


def json_error(status: int, message: str, **extra: object):  # type: ignore[no-untyped-def]
    body = {"error": {"status": status, "message": message, **extra}}
    return jsonify(body), status


def init_app(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError):  # type: ignore[no-untyped-def]
        if wants_json():
            extra = {"fields": exc.errors} if hasattr(exc, "errors") else {}
            return json_error(exc.status, exc.message, **extra)
        return render_template("error.html", code=exc.status, message=exc.message), exc.status

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError):  # type: ignore[no-untyped-def]
        msg = _(
            "The form expired or was sent from elsewhere. Please go back, reload and try again."
        )
        if wants_json():
            return json_error(400, msg)
        return render_template("error.html", code=400, message=msg), 400

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):  # type: ignore[no-untyped-def]
        code = exc.code or 500
        messages = {
            404: _("There is nothing at this address."),
            405: _("This method is not allowed here."),
            413: _("What was sent is too large."),
            429: _("Too many attempts. Please wait a few minutes and try again."),
        }
        message = messages.get(code) or exc.description or exc.name
        if wants_json():
            return json_error(code, message)
        return render_template("error.html", code=code, message=message), code

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        log.exception("unhandled error on %s %s", request.method, request.path)
        message = _("Something went wrong on the server. Nothing you saved was lost.")
        if wants_json():
            return json_error(500, message)
        return render_template("error.html", code=500, message=message), 500

    @app.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        from sqlalchemy import text

        from server.extensions import db

        db.session.execute(text("SELECT 1"))
        return jsonify({"status": "ok", "database": db.engine.dialect.name})
