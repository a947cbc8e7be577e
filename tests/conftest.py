"""Fixtures: an app on a fresh database per test, on SQLite and on a real PostgreSQL.

The PostgreSQL server is started by the tests from Debian's packages (initdb into a temporary
folder). Where it cannot be found the PostgreSQL half of the suite fails with the reason, unless
CUNPING_TEST_DATABASES=sqlite says to run on SQLite only (for a quick local loop).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from server import create_app, database
from server.extensions import db
from server.models import Region, Role, User
from server.services import regions as region_service
from server.services import users as user_service
from tests.pg import PostgresServer

PASSWORD = "test-password-1"
BACKENDS = [b for b in os.environ.get("CUNPING_TEST_DATABASES", "sqlite,postgres").split(",") if b]


@pytest.fixture(autouse=True)
def _fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hash test passwords cheaply: scrypt costs ~0.1 s a user and the tests create hundreds.
    Checking still goes through werkzeug's `check_password_hash`, which reads the method."""
    from werkzeug.security import generate_password_hash

    def fast(password: str) -> str:
        return generate_password_hash(password, method="pbkdf2:sha256:1")

    monkeypatch.setattr("server.services.users.generate_password_hash", fast)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated once to head; each test gets a copy."""
    folder = tmp_path_factory.mktemp("template")
    app = create_app({"TESTING": True, "INSTANCE_PATH": str(folder), "SECRET_KEY": "t" * 32})
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        db.engine.dispose()
    return folder / "cunping.db"


def _config(tmp_path: Path, uri: str) -> dict[str, Any]:
    return {
        "TESTING": True,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "SECRET_KEY": "test-secret-key-" + "x" * 32,
        "SQLALCHEMY_DATABASE_URI": uri,
        "PUBLIC_BASE_URL": "http://cp.test",
        "RATELIMIT_STORAGE_URI": "memory://",
        "SERVER_NAME": None,
    }


@pytest.fixture(params=BACKENDS)
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    """The app on a fresh, migrated database (SQLite copy, or a PostgreSQL clone)."""
    backend = request.param
    if backend == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        (tmp_path / "instance").mkdir()
        shutil.copy(template, tmp_path / "instance" / "cunping.db")
        uri = "sqlite:///" + str(tmp_path / "instance" / "cunping.db")
    else:
        pg: PostgresServer = request.getfixturevalue("postgres")
        uri = pg.fresh_database()
    application = create_app(_config(tmp_path, uri))
    from server.extensions import limiter

    limiter.reset()
    with application.app_context():
        yield application
        db.session.remove()
        db.engine.dispose()
        database.dispose(application)  # /healthz's own pool


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class World:
    """A small county to test against: 县 → two towns → villages, and a user per role."""

    def __init__(self) -> None:
        r = region_service.create
        self.county = r(None, "C0", "清源县")
        self.town = r(None, "T1", "柳河镇", self.county)
        self.other_town = r(None, "T2", "石桥镇", self.county)
        self.village = r(None, "V11", "前王庄村", self.town)
        self.village2 = r(None, "V12", "后王庄村", self.town)
        self.other_village = r(None, "V21", "南岭村", self.other_town)
        self.admin = self.user("admin", Role.ADMIN, self.county)
        self.county_editor = self.user("ceditor", Role.EDITOR, self.county)
        self.county_reviewer = self.user("creviewer", Role.REVIEWER, self.county)
        self.town_editor = self.user("teditor", Role.EDITOR, self.town)
        self.town_reviewer = self.user("treviewer", Role.REVIEWER, self.town)
        self.village_editor = self.user("veditor", Role.EDITOR, self.village)
        self.village_reviewer = self.user("vreviewer", Role.REVIEWER, self.village)
        self.county_alert = self.user("calert", Role.ALERT, self.county)
        self.county_alert2 = self.user("calert2", Role.ALERT, self.county)
        self.town_alert = self.user("talert", Role.ALERT, self.town)
        self.nobody = user_service.create(None, "nobody", PASSWORD)

    @staticmethod
    def user(username: str, role: Role, region: Region) -> User:
        return user_service.create(
            None, username, PASSWORD, display_name=username, grants=[(role, region)]
        )


@pytest.fixture
def world(app: Flask) -> World:
    return World()


class AuthActions:
    """Log in and out of the admin through the real login form."""

    def __init__(self, client: FlaskClient) -> None:
        self._client = client

    def login(self, username: str, password: str = PASSWORD) -> Any:
        page = self._client.get("/admin/login")
        token = _csrf_from(page.get_data(as_text=True))
        return self._client.post(
            "/admin/login", data={"username": username, "password": password, "csrf_token": token}
        )

    def logout(self) -> Any:
        page = self._client.get("/admin/")
        return self._client.post(
            "/admin/logout", data={"csrf_token": _csrf_from(page.get_data(as_text=True))}
        )


def _csrf_from(html: str) -> str:
    import re

    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', html
    )
    return match.group(1) if match else ""


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)


def csrf_token(client: FlaskClient, url: str) -> str:
    """The CSRF token from the form at `url` (for posting like a browser)."""
    return _csrf_from(client.get(url).get_data(as_text=True))


@contextmanager
def counting() -> Iterator[list[str]]:
    """Every SQL statement sent to the app's database while inside."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
