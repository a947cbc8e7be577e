"""Error pages for people and JSON errors for the API."""

from __future__ import annotations

import logging

from flask import Flask, g, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DataError, SQLAlchemyError
from werkzeug.exceptions import HTTPException

from server import database
from server.extensions import db
from server.services.errors import ServiceError

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 10  # what a 503 for an unavailable database asks clients to wait


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

    def _out_of_range(exc: Exception):  # type: ignore[no-untyped-def]
        """The last line behind the parsers (server/api/envelope.py, the bounded <int:>): a
        value the database or the calendar cannot hold is the client's mistake, a 400, and
        nothing was saved."""
        db.session.rollback()
        log.warning("out-of-range input on %s %s: %s", request.method, request.path,
                    str(exc).splitlines()[0][:200])
        message = _("A value in the request is out of range.")
        if wants_json():
            return json_error(400, message)
        return render_template("error.html", code=400, message=message), 400

    app.register_error_handler(OverflowError, _out_of_range)

    @app.errorhandler(SQLAlchemyError)
    def _database(exc: SQLAlchemyError):  # type: ignore[no-untyped-def]
        if isinstance(exc, DataError):  # "integer out of range", "date/time field value …"
            return _out_of_range(exc)
        reason = database.unavailable_reason(exc)
        if reason is None:
            return _unexpected(exc)
        # One line, no traceback: while the database is down every request would add one.
        log.warning("database unavailable on %s %s: %s", request.method, request.path, reason)
        return database_unavailable()

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        log.exception("unhandled error on %s %s", request.method, request.path)
        message = _("Something went wrong on the server. Nothing you saved was lost.")
        if wants_json():
            return json_error(500, message)
        return render_template("error.html", code=500, message=message), 500

    @app.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        """200 when the database answers; 503 within about 2 s, naming what is down, when it
        does not (server/database.py: a probe of its own with short limits)."""
        health = database.probe()
        if health.ok:
            return jsonify({"status": "ok", "database": health.dialect})
        body = {"status": "unavailable", "database": health.dialect,
                "down": {"database": health.reason}, "ms": health.ms}
        return jsonify(body), 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}


def database_unavailable():  # type: ignore[no-untyped-def]
    """The 503 answer of a request the database could not serve: a page or JSON, and
    Retry-After. Rendering it must not touch the database again: with
    `g.database_unavailable` set the signed-in user is not loaded (server/auth.py)."""
    g.database_unavailable = True
    message = _("The database is unavailable at the moment. Nothing was changed: "
                "please try again in a minute.")
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if wants_json():
        response, status = json_error(503, message, unavailable="database")
        return response, status, headers
    return render_template("error.html", code=503, message=message), 503, headers
