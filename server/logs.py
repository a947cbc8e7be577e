"""Structured logs: one configuration for `cunping serve` and gunicorn (deploy/gunicorn.conf.py),
a request id on every HTTP request, and an access line per request.

CUNPING_LOG_FORMAT=json writes one JSON object per line:

    {"time": "2026-05-01T08:00:00.123Z", "level": "INFO", "logger": "cunping.access",
     "message": "GET /admin/ 200 12.3 ms", "pid": 4711, "request_id": "…", "method": "GET",
     "path": "/admin/", "status": 200, "ms": 12.3, "remote": "10.0.0.7"}

Anything passed as `extra=` to a log call becomes a field; within an HTTP request every line
carries its `request_id`. Plain text (the default) is one line per record, with the same extras
appended as key=value. CUNPING_LOG_LEVEL sets the level (INFO by default).

Secrets never reach a log line: the access line has the path without its query string and no
headers or cookies, and a last filter masks anything shaped like a screen token (cps_…), an API
token (cp_…) or a bearer credential in every record, whoever logged it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from flask import Flask, Response

# No Flask import at module level: gunicorn's config calls `configure` in the worker before
# gevent patches the standard library, and Flask is imported only after that.

ACCESS = logging.getLogger("cunping.access")

# An incoming X-Request-ID (nginx's $request_id, a load balancer's) is kept when it is this.
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# Screen tokens (cps_<prefix>_<secret>), API tokens (cp_<prefix>_<secret>), bearer headers.
_SECRETS = re.compile(
    r"\b(cps?_[A-Za-z0-9]+_)[A-Za-z0-9_-]{8,}|(\b[Bb]earer\s+)[A-Za-z0-9._~+/=-]{8,}"
)

# LogRecord's own attributes: everything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName",
}


def mask(text: str) -> str:
    """`text` with every token-shaped secret cut to its public prefix."""
    return _SECRETS.sub(lambda m: (m.group(1) or m.group(2)) + "***", text)


class _Context(logging.Filter):
    """Adds the request id (inside an HTTP request) and masks secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        flask = sys.modules.get("flask")  # not loaded yet: no request either
        if flask is not None and not hasattr(record, "request_id") \
                and flask.has_request_context():
            rid = flask.g.get("request_id")
            if rid:
                record.request_id = rid
        if isinstance(record.msg, str) and ("_" in record.msg or "earer" in record.msg):
            record.msg = mask(record.msg)
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(mask(a) if isinstance(a, str) else a for a in record.args)
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO, UTC), level, logger, message, pid, the extras."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, Any] = {
            "time": stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for key, value in _extras(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exc"] = mask(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`time LEVEL [pid] logger: message key=value …`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _extras(record)
        if not extras:
            return line
        head, sep, tail = line.partition("\n")  # a traceback stays below the first line
        fields = " ".join(f"{k}={v}" for k, v in extras.items())
        return f"{head} {fields}{sep}{tail}"


def configure(
    level: str | None = None, fmt: str | None = None, stream: TextIO | None = None
) -> None:
    """Log to stderr at CUNPING_LOG_LEVEL (INFO), as JSON when CUNPING_LOG_FORMAT=json.

    Replaces whatever handlers the root logger had (Alembic's migration sets its own), so call
    it after migrating. gunicorn's own loggers keep their handlers; their records do not
    propagate here."""
    level = (level or os.environ.get("CUNPING_LOG_LEVEL") or "INFO").upper()
    fmt = (fmt or os.environ.get("CUNPING_LOG_FORMAT") or "text").lower()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_Context())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    # The libraries' chatter stays at WARNING unless debugging.
    quiet = logging.WARNING if level != "DEBUG" else logging.DEBUG
    for name in ("socketio", "engineio", "geventwebsocket", "werkzeug"):
        logging.getLogger(name).setLevel(quiet)


# --- per request ----------------------------------------------------------------------------


def request_id() -> str:
    """This request's id (an incoming sane X-Request-ID, or a new one)."""
    from flask import g

    return str(g.get("request_id") or "")


def _begin() -> None:
    from flask import g, request

    g.started = time.perf_counter()
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if _SANE_ID.fullmatch(incoming) else uuid.uuid4().hex


def _finish(response: Response) -> Response:
    from flask import g, request

    rid = g.get("request_id")
    if rid:
        response.headers["X-Request-ID"] = rid
    started = g.get("started")
    ms = round((time.perf_counter() - started) * 1000, 1) if started is not None else -1.0
    # Scrapes every few seconds would drown the log: at DEBUG only.
    level = logging.DEBUG if request.endpoint == "metrics" else logging.INFO
    if ACCESS.isEnabledFor(level):
        ACCESS.log(
            level,
            "%s %s %d %.1f ms",
            request.method, request.path, response.status_code, ms,
            extra={"method": request.method, "path": request.path,
                   "status": response.status_code, "ms": ms, "remote": request.remote_addr},
        )
    return response


def init_app(app: Flask) -> None:
    """A request id and a start time before anything else runs; the access line after."""
    app.before_request_funcs.setdefault(None, []).insert(0, _begin)
    app.after_request(_finish)
