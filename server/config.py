"""Configuration read from the environment (12-factor), with safe defaults for development.

Secrets never have a default: in development a random key is generated once and kept in the
instance folder; in production (CUNPING_ENV=production) a missing SECRET_KEY stops the server.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

MB = 1024 * 1024


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


DEFAULT_BASE_URL = "http://localhost:5000"  # only right on the server itself: set PUBLIC_BASE_URL


class Config:
    """Settings for every environment; each may be overridden by an environment variable."""

    ENV = os.environ.get("CUNPING_ENV", "development")
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL", "")
    SQLALCHEMY_ENGINE_OPTIONS: ClassVar[dict[str, Any]] = {"pool_pre_ping": True}
    # Limits, in seconds, on waiting for the database (server/database.py, docs/operations.md):
    # a database that stops answering costs a request this long and a 503, not a hang.
    DB_CONNECT_TIMEOUT = _env_float("CUNPING_DB_CONNECT_TIMEOUT", 3)  # also a pooled ping's
    DB_STATEMENT_TIMEOUT = _env_float("CUNPING_DB_STATEMENT_TIMEOUT", 10)  # 0: no limit
    DB_POOL_TIMEOUT = _env_float("CUNPING_DB_POOL_TIMEOUT", 5)  # waiting for a free connection
    DB_BUSY_TIMEOUT = _env_float("CUNPING_DB_BUSY_TIMEOUT", 5)  # SQLite: another process's lock
    # The public base URL printed in QR codes. Keep it short: every character can raise the QR
    # version and shrink its modules (see docs/architecture.md).
    PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", DEFAULT_BASE_URL)
    COUNTY_NAME = os.environ.get("COUNTY_NAME", "")
    # The county's own app: shown on the residents' page as "open in the app" and a download.
    APP_NAME = os.environ.get("APP_NAME", "")
    APP_DEEPLINK_TEMPLATE = os.environ.get(
        "APP_DEEPLINK_TEMPLATE", ""
    )  # e.g. hedong://notice/{code}
    APP_DOWNLOAD_URL = os.environ.get("APP_DOWNLOAD_URL", "")

    BABEL_DEFAULT_LOCALE = "zh"
    BABEL_DEFAULT_TIMEZONE = os.environ.get("CUNPING_TIMEZONE", "Asia/Shanghai")
    LANGUAGES = ("zh", "en")

    MAX_CONTENT_LENGTH = _env_int("CUNPING_MAX_REQUEST_MB", 12) * MB
    MAX_IMAGE_BYTES = _env_int("CUNPING_MAX_IMAGE_MB", 5) * MB
    MAX_IMAGE_PIXELS = 40_000_000
    MAX_IMAGES_PER_NOTICE = 9

    # Emergency alerts (docs/alerts.md): one person issues, another confirms, when this is on.
    ALERT_TWO_PERSON = os.environ.get("CUNPING_ALERT_TWO_PERSON", "") == "1"
    # Who besides the county's own administrators may give or take the alert role (usernames
    # of administrators, comma-separated; server/services/users.py, may_grant_alert).
    ALERT_GRANTORS = tuple(
        n.strip() for n in os.environ.get("CUNPING_ALERT_GRANTORS", "").split(",") if n.strip())
    # The county alert key that signs every alert set (server/services/alert_keys.py), apart
    # from SECRET_KEY; default <instance>/alert-key.pem. During a rotation, the next key's
    # public part (base64), announced to the players in every signed set.
    ALERT_KEY_FILE = os.environ.get("CUNPING_ALERT_KEY_FILE") or None
    ALERT_NEXT_KEY = os.environ.get("CUNPING_ALERT_NEXT_KEY") or None
    # CAP <sender> of alerts issued here (an address that names this county's system).
    CAP_SENDER = os.environ.get("CUNPING_CAP_SENDER", "cunping@localhost")
    MAX_CAP_BYTES = 256 * 1024

    # Dashboard: a screen silent this long is listed as offline for long (and mailed daily).
    OFFLINE_ALERT_MINUTES = _env_int("CUNPING_OFFLINE_ALERT_MINUTES", 120)
    # Daily digest of screens offline for long; sent only where SMTP is configured.
    SMTP_HOST = os.environ.get("CUNPING_SMTP_HOST", "")
    SMTP_PORT = _env_int("CUNPING_SMTP_PORT", 25)
    SMTP_USER = os.environ.get("CUNPING_SMTP_USER", "")
    SMTP_PASSWORD = os.environ.get("CUNPING_SMTP_PASSWORD", "")
    SMTP_STARTTLS = os.environ.get("CUNPING_SMTP_STARTTLS", "") == "1"
    MAIL_FROM = os.environ.get("CUNPING_MAIL_FROM", "cunping@localhost")
    DIGEST_TO: ClassVar[list[str]] = [
        a.strip() for a in os.environ.get("CUNPING_DIGEST_TO", "").split(",") if a.strip()
    ]
    DIGEST_HOUR = _env_int("CUNPING_DIGEST_HOUR", 8)  # local hour the digest goes out

    # Proof of play is kept this many days (a disclosure must be provable: default 3 years).
    PLAY_RETENTION_DAYS = _env_int("CUNPING_PLAY_RETENTION_DAYS", 3 * 366)

    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "memory://")
    RATELIMIT_HEADERS_ENABLED = True
    LOGIN_RATE_LIMIT = os.environ.get("CUNPING_LOGIN_RATE_LIMIT", "10 per 5 minutes")
    FEEDBACK_RATE_LIMIT = os.environ.get("CUNPING_FEEDBACK_RATE_LIMIT", "5 per hour")

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = os.environ.get("CUNPING_SECURE_COOKIES", "") == "1"
    # "Keep me logged in" (Flask-Login's remember cookie): as guarded as the session cookie,
    # and like it worth nothing once its session ended (server/services/sessions.py).
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_DAYS = _env_int("CUNPING_REMEMBER_DAYS", 14)
    REMEMBER_COOKIE_DURATION = timedelta(days=REMEMBER_DAYS)
    SESSION_IDLE_HOURS = _env_int("CUNPING_SESSION_IDLE_HOURS", 12)
    WTF_CSRF_TIME_LIMIT = None  # tokens live as long as the session: editors write slowly.

    SECRET_KEY = os.environ.get("SECRET_KEY", "")
    # How many reverse proxies (nginx) stand in front: their X-Forwarded-* headers are trusted
    # so rate limits and counts see residents' addresses, not the proxy's.
    PROXY_COUNT = _env_int("CUNPING_PROXY_COUNT", 0)
    # Admission control (server/realtime/admission.py): new Socket.IO handshakes a second this
    # process takes before it answers 503 + Retry-After, and how many may come at once.
    HANDSHAKES_PER_SECOND = _env_int("CUNPING_HANDSHAKES_PER_SECOND", 600)
    HANDSHAKE_BURST = _env_int("CUNPING_HANDSHAKE_BURST", 300)
    HANDSHAKES_IN_FLIGHT = _env_int("CUNPING_HANDSHAKES_IN_FLIGHT", 64)


def finish_config(config: dict[str, Any], instance_path: str) -> None:
    """Fill what depends on the instance folder: the database path and the secret key. The
    folder is made for the service user alone (0700), the SQLite file too (0600): it holds the
    password hashes and the screens' token hashes."""
    _private_dir(Path(instance_path))
    if not config.get("SQLALCHEMY_DATABASE_URI"):
        config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + str(Path(instance_path) / "cunping.db")
    uri = config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("postgres://"):  # Heroku-style URLs
        uri = "postgresql://" + uri[len("postgres://") :]
    if uri.startswith("postgresql://"):
        uri = "postgresql+psycopg://" + uri[len("postgresql://") :]
    config["SQLALCHEMY_DATABASE_URI"] = uri
    if uri.startswith("postgresql"):
        # One gevent worker runs thousands of handlers at once: a pool sized for that (the
        # default 5 + 10 ran dry in a connect storm). Keep processes × (size + overflow) under
        # max_connections. The wait for a free connection is DB_POOL_TIMEOUT (server/database).
        options = dict(config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
        options.setdefault("pool_size", _env_int("CUNPING_DB_POOL", 20))
        options.setdefault("max_overflow", _env_int("CUNPING_DB_OVERFLOW", 10))
        config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    if not config.get("UPLOAD_FOLDER"):
        config["UPLOAD_FOLDER"] = str(Path(instance_path) / "uploads")
    Path(config["UPLOAD_FOLDER"]).mkdir(parents=True, exist_ok=True)
    if not config.get("SECRET_KEY"):
        if config.get("ENV") == "production":
            raise RuntimeError(
                "SECRET_KEY is not set. In production Cunping refuses to start without one: "
                "set SECRET_KEY to a long random value (python -c 'import secrets; "
                "print(secrets.token_hex(32))')."
            )
        config["SECRET_KEY"] = _instance_secret(Path(instance_path) / "secret_key")
    default_database = Path(instance_path) / "cunping.db"
    if config["SQLALCHEMY_DATABASE_URI"] == "sqlite:///" + str(default_database):
        _private_file(default_database)


def _private_dir(path: Path) -> None:
    if not path.exists():
        path.mkdir(mode=0o700, parents=True)


def _private_file(path: Path) -> None:
    """Create `path` empty, readable by this user only, unless it exists (SQLite then makes
    its -wal and -shm files with the same mode)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _instance_secret(path: Path) -> str:
    """A random key generated once per instance folder, readable only by its owner."""
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key
