"""The application factory."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask
from werkzeug.routing import IntegerConverter, Map

from server import auth, cli, database, errors, headers, i18n, logs, metrics, realtime, scheduler
from server.config import Config, finish_config
from server.extensions import csrf, db, limiter, migrate


class BoundedInt(IntegerConverter):
    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(map, *args, **kwargs)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults from `Config`, then `config` (tests), then the instance folder."""
    instance = (config or {}).get("INSTANCE_PATH") or os.environ.get("CUNPING_INSTANCE")
    app = Flask(
        "server",
        instance_path=os.path.abspath(instance) if instance else None,
        instance_relative_config=True,
    )
    app.config.from_object(Config)
    if config:
        app.config.update(config)
    finish_config(app.config, app.instance_path)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # Chinese as text, not \uXXXX
    # /things/<int:id> takes ids the database can hold: a larger one is a 404, not a 500.
    app.url_map.converters["int"] = BoundedInt
    if app.config["PROXY_COUNT"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]

    database.init_app(app)  # db.init_app, with the limits on waiting for the database
    migrate.init_app(
        app,
        db,
        directory=os.path.join(os.path.dirname(__file__), "migrations"),
        render_as_batch=True,
    )
    csrf.init_app(app)
    limiter.init_app(app)
    i18n.init_app(app)
    auth.init_app(app)
    errors.init_app(app)
    cli.init_app(app)
    scheduler.init_app(app)
    realtime.init_app(app)
    logs.init_app(app)  # request ids and the access log
    headers.init_app(app)  # security headers on every response
    metrics.init_app(app)  # /metrics; after realtime: it counts on the Socket.IO manager

    from admin import bp as admin_bp
    from server.api import bp as api_bp
    from server.public import bp as public_bp

    app.register_blueprint(public_bp)
    app.register_blueprint(admin_bp, url_prefix="/admin")
    app.register_blueprint(api_bp, url_prefix="/api/v1")
    csrf.exempt(api_bp)  # the API authenticates every call with a token, not a cookie
    return app

