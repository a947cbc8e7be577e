"""Waiting for the database is bounded (server/database.py): a statement over the limit is
stopped, an exhausted pool answers 503 in DB_POOL_TIMEOUT while /healthz still answers from its
own pool, migrations run without the limit, and errors of availability are told from bugs.

A frozen or dead PostgreSQL, with real processes: tests/e2e/test_database_faults.py."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from sqlalchemy import exc, text

from server import create_app, database
from server.extensions import db
from tests.conftest import BACKENDS, _config
from tests.pg import PostgresServer

# SQLite: a statement that runs for minutes; PostgreSQL: one that sleeps 3 s.
SLOW = {
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
              "SELECT count(*) FROM c WHERE x < 2000000000",
    "postgresql": "SELECT pg_sleep(3)",
}
# ...and one that takes about 1.5 s on either.
WHILE = {
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 8000000)"
              " SELECT count(*) FROM c",
    "postgresql": "SELECT pg_sleep(1.5)",
}


@pytest.fixture(params=BACKENDS)
def limited(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    """The app with short limits: statements 0.5 s, a free connection 1 s, a pool of one."""
    if request.param == "sqlite":
        uri = "sqlite:///" + str(tmp_path / "instance" / "cunping.db")
    else:
        pg: PostgresServer = request.getfixturevalue("postgres")
        uri = pg.fresh_database()
    config: dict[str, Any] = {
        **_config(tmp_path, uri), "DB_STATEMENT_TIMEOUT": 0.5, "DB_POOL_TIMEOUT": 1,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True, "pool_size": 1, "max_overflow": 0},
    }
    app = create_app(config)

    @app.get("/_slow")
    def slow() -> str:
        db.session.execute(text(SLOW[db.engine.dialect.name])).all()
        return "done"

    @app.get("/_count")
    def count() -> str:
        return str(db.session.execute(text("SELECT 1")).scalar())

    yield app  # no app context held: each request has its own, as in production
    with app.app_context():
        db.engine.dispose()
    database.dispose(app)


def test_a_statement_over_the_limit_is_stopped_with_a_503(limited: Flask) -> None:
    started = time.monotonic()
    response = limited.test_client().get("/_slow", headers={"Accept": "application/json"})
    assert response.status_code == 503, response.get_data(as_text=True)
    assert time.monotonic() - started < 2.5
    assert response.get_json()["error"]["unavailable"] == "database"
    assert response.headers["Retry-After"]
    assert limited.test_client().get("/_count").get_data(as_text=True) == "1"  # still usable


def test_an_exhausted_pool_answers_503_quickly_and_healthz_still_answers(limited: Flask) -> None:
    with limited.app_context(), db.engine.connect() as held:  # the pool's only connection
        held.execute(text("SELECT 1"))
        started = time.monotonic()
        page = limited.test_client().get("/_count")
        took = time.monotonic() - started
        assert page.status_code == 503 and 0.9 < took < 2, (page.status_code, took)
        assert "数据库暂时不可用" in page.get_data(as_text=True)
        if held.dialect.name == "postgresql":  # its own pool: not waiting for this one
            health = limited.test_client().get("/healthz")
            assert health.status_code == 200, health.get_json()
    assert limited.test_client().get("/_count").status_code == 200


def test_a_lock_held_by_another_process_is_waited_for_the_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "instance" / "cunping.db"
    app = create_app({**_config(tmp_path, "sqlite:///" + str(path)), "DB_BUSY_TIMEOUT": 0.5})

    @app.get("/_write")  # (a GET: no CSRF token to fetch first)
    def write() -> str:
        db.session.execute(text("INSERT INTO t VALUES (1)"))
        db.session.commit()
        return "written"

    with app.app_context():  # the app's first connection makes the file WAL, as in use
        db.session.execute(text("CREATE TABLE t (x INTEGER)"))
        db.session.commit()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process writing, for longer than allowed
        started = time.monotonic()
        response = app.test_client().get("/_write")
        took = time.monotonic() - started
        assert response.status_code == 503 and 0.4 < took < 2, (response.status_code, took)
        other.execute("COMMIT")
        assert app.test_client().get("/_write").status_code == 200
    finally:
        other.close()
        with app.app_context():
            db.engine.dispose()


@pytest.mark.skipif("postgres" not in BACKENDS, reason="a PostgreSQL backend to freeze")
def test_a_connection_whose_server_went_silent_is_given_up_and_closed(
        postgres: PostgresServer) -> None:
    """One backend stopped (SIGSTOP; the shared server's others run on): what the frozen
    server of tests/e2e/test_database_faults.py does to every connection, here in threads."""
    connection = database.SilenceLimited.connect(postgres.url("postgres").replace("+psycopg", ""),
                                                 autocommit=True)
    connection.answer_seconds = 0.5
    backend = connection.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
    os.kill(backend, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError, match=r"did not answer within 0\.5 s"):
            connection.execute("SELECT 1")
        assert 0.4 < time.monotonic() - started < 2
        assert connection.closed  # SQLAlchemy drops a closed connection from its pool
    finally:
        os.kill(backend, signal.SIGCONT)
        connection.close()


def test_migrations_run_without_the_statement_limit(limited: Flask) -> None:
    with limited.app_context(), db.engine.connect() as connection:
        with database.unlimited(connection):
            connection.execute(text(WHILE[connection.dialect.name])).all()
        with pytest.raises(exc.OperationalError):
            connection.execute(text(WHILE[connection.dialect.name])).all()


def test_the_limits_reach_the_engine(limited: Flask) -> None:
    with limited.app_context():
        engine = db.engine
    assert engine.pool.timeout() == 1  # type: ignore[attr-defined]
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "500ms"
            assert isinstance(connection.connection.dbapi_connection, database.SilenceLimited)


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (exc.TimeoutError("QueuePool limit of size 1 overflow 0 reached"), True),
        (exc.OperationalError("SELECT 1", {}, psycopg.OperationalError(
            "connection failed: Connection refused\n\tIs the server running?")), True),
        (exc.OperationalError("SELECT 1", {}, psycopg.errors.QueryCanceled(
            "canceling statement due to statement timeout")), True),
        (exc.OperationalError("SELECT 1", {}, psycopg.errors.AdminShutdown(
            "terminating connection due to administrator command")), True),
        (exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked")),
         True),
        (exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError("interrupted")), True),
        (exc.IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("duplicate key")),
         False),
        (exc.ProgrammingError("SELEC", {}, psycopg.errors.SyntaxError("syntax error")), False),
        (exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError("no such table: x")),
         False),
        (ValueError("a bug"), False),
    ],
)
def test_errors_of_availability_are_told_from_the_others(error: Exception,
                                                         unavailable: bool) -> None:
    reason = database.unavailable_reason(error)
    assert (reason is not None) == unavailable, reason
    if reason is not None:
        assert "\n" not in reason and len(reason) <= 200
