"""The database's limits, and whether it is there at all.

A database that stops answering — a PostgreSQL frozen or gone, a SQLite file locked by another
process — must cost a request a few seconds and a clear 503, never the request's whole life, and
never the process (under gevent one blocked call holds every connection of the process).

PostgreSQL (all configurable, see server/config.py and docs/operations.md):

- DB_CONNECT_TIMEOUT: libpq's connect_timeout (whole seconds, at least 2: libpq's own rule).
- DB_STATEMENT_TIMEOUT: the server's statement_timeout; it cancels a statement running longer.
- A server that answers nothing at all (stopped, a dead host behind a live TCP stack) cannot
  cancel anything: the client stops waiting once the connection has been silent for the
  statement timeout plus ANSWER_GRACE, and closes it (`SilenceLimited`).
- A pooled connection is pinged when it is taken from the pool (pool_pre_ping) and must answer
  that ping within DB_CONNECT_TIMEOUT, not the statement timeout.
- DB_POOL_TIMEOUT: how long a request waits for a free connection of the pool.

SQLite: DB_BUSY_TIMEOUT bounds the wait for another process's lock, and a statement running
longer than DB_STATEMENT_TIMEOUT is interrupted (a progress handler; under gevent a runaway
SQLite statement would stop every connection of the process).

`unavailable_reason` tells an error of availability (connection refused, closed, timed out,
pool exhausted, statement cancelled, SQLite locked) from any other: requests answer the first
with a 503 (server/errors.py), background loops log it once per outage (server/loops.py).
`probe` is /healthz's check, on a small pool of its own with shorter limits.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from flask import Flask, current_app
from sqlalchemy import Engine, create_engine, event, exc, text

from server.extensions import db

ANSWER_GRACE = 2.0  # past the statement timeout, before a silent server counts as gone
PROBE_SECONDS = 1.0  # /healthz: the probe's statement and silence limit
PROBE_POOL_WAIT = 0.25  # /healthz: waiting for the probe pool's connection
# SQLSTATEs that say the server cannot serve now: query_canceled (statement_timeout),
# admin/crash shutdown, cannot_connect_now, too_many_connections; class 08 is checked apart.
_UNAVAILABLE_STATES = {"57014", "57P01", "57P02", "57P03", "53300"}
_EXTENSION = "cunping.database"


class SilenceLimited(psycopg.Connection):  # type: ignore[type-arg]
    """A psycopg connection that stops waiting when the server has sent nothing for
    `answer_seconds` (None: wait as long as it takes) and closes itself: its protocol state is
    unknown after that, and a closed connection is one SQLAlchemy drops from its pool.

    Silence, not total time: a long batch (executemany in one pipeline) keeps answering and is
    bounded by the server's statement_timeout per statement instead."""

    answer_seconds: float | None = None

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        limit = self.answer_seconds
        if limit is None:
            return super().wait(gen, interval, timeout)
        try:
            return super().wait(_until_silent(gen, limit), interval, timeout)
        except _Silent:
            self.pgconn.finish()
            raise psycopg.OperationalError(
                f"the database did not answer within {limit:g} s"
            ) from None


class _Silent(psycopg.OperationalError):
    pass


def _until_silent(gen: Generator[Any, Any, Any], limit: float) -> Generator[Any, Any, Any]:
    """`gen`, raising _Silent once no readiness has come for `limit` seconds (psycopg's wait
    functions send "nothing ready" every interval while they wait)."""
    last = time.monotonic()
    try:
        state = next(gen)
    except StopIteration as done:
        return done.value
    while True:
        ready = yield state
        now = time.monotonic()
        if ready:
            last = now
        elif now - last > limit:
            gen.close()
            raise _Silent()
        try:
            state = gen.send(ready)
        except StopIteration as done:
            return done.value


@dataclass
class Limits:
    """The database limits of one app, in seconds (from its config)."""

    connect: float
    statement: float
    pool: float
    busy: float

    @classmethod
    def of(cls, config: dict[str, Any]) -> Limits:
        return cls(connect=float(config["DB_CONNECT_TIMEOUT"]),
                   statement=float(config["DB_STATEMENT_TIMEOUT"]),
                   pool=float(config["DB_POOL_TIMEOUT"]),
                   busy=float(config["DB_BUSY_TIMEOUT"]))

    @property
    def answer(self) -> float | None:
        return self.statement + ANSWER_GRACE if self.statement > 0 else None


def engine_options(uri: str, config: dict[str, Any]) -> dict[str, Any]:
    """SQLAlchemy engine options carrying the limits (merged under the configured ones)."""
    limits = Limits.of(config)
    # Whole seconds: Flask-SQLAlchemy builds the engine with engine_from_config, which turns
    # pool_timeout into an int (0.3 would become 0, no wait at all).
    pool = math.ceil(limits.pool)
    if uri.startswith("postgresql"):
        return {"pool_timeout": pool,
                "connect_args": _pg_connect_args(limits.connect, limits.statement)}
    if uri.startswith("sqlite") and ":memory:" not in uri and uri not in ("sqlite://", "sqlite:"):
        return {"pool_timeout": pool, "connect_args": {"timeout": limits.busy}}
    return {}


def _pg_connect_args(connect: float, statement: float) -> dict[str, Any]:
    args: dict[str, Any] = {"connect_timeout": max(2, math.ceil(connect))}
    if statement > 0:
        args["options"] = f"-c statement_timeout={round(statement * 1000)}"
    return args


# --- wiring ---------------------------------------------------------------------------------


@dataclass
class _State:
    """Per app: /healthz's probe engine (made on first use)."""

    probe_engine: Engine | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def init_app(app: Flask) -> None:
    """`db.init_app(app)` with the limits: engine options first (the engine is made there),
    then the engine's events."""
    limits = Limits.of(app.config)
    app.extensions[_EXTENSION] = _State()
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    for key, value in engine_options(uri, app.config).items():
        if key == "connect_args":  # the configured ones win, key by key
            options[key] = {**value, **options.get(key, {})}
        else:
            options.setdefault(key, value)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    db.init_app(app)
    with app.app_context():
        engine = db.engine
    if engine.dialect.name == "postgresql":
        _limit_postgres(engine, limits.answer, ping=limits.connect)
    elif engine.dialect.name == "sqlite":
        _limit_sqlite(engine, busy=limits.busy, statement=limits.statement)


def _limit_postgres(engine: Engine, answer: float | None, ping: float) -> None:
    @event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        connection = SilenceLimited.connect(*cargs, **cparams)
        connection.answer_seconds = answer
        return connection

    # pool_pre_ping runs before the "checkout" event: a connection waits in the pool with the
    # short limit its ping gets, and leaves it with the statement's.
    @event.listens_for(engine, "checkin")
    def _idle(dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, SilenceLimited):
            dbapi_connection.answer_seconds = min(ping, answer or ping)

    @event.listens_for(engine, "checkout")
    def _busy(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if isinstance(dbapi_connection, SilenceLimited):
            dbapi_connection.answer_seconds = answer


def _limit_sqlite(engine: Engine, busy: float, statement: float) -> None:
    """WAL lets the screens' readers and the editors' writes overlap; a lock held by another
    process is waited for `busy` seconds; a statement is interrupted after `statement`."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={round(busy * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()
        if statement > 0:
            deadline = record.info["cunping_deadline"] = [math.inf]
            dbapi_conn.set_progress_handler(lambda: time.monotonic() > deadline[0], 20_000)

    if statement <= 0:
        return

    @event.listens_for(engine, "before_cursor_execute")
    def _start(conn: Any, _cursor: Any, _statement: Any, _params: Any, _context: Any,
               executemany: bool) -> None:
        deadline = conn.info.get("cunping_deadline")
        if deadline is not None and not executemany:  # a bulk load is one call: not bounded
            deadline[0] = time.monotonic() + statement

    def _done(conn: Any, *_args: Any) -> None:
        deadline = conn.info.get("cunping_deadline")
        if deadline is not None:
            deadline[0] = math.inf

    event.listen(engine, "after_cursor_execute", _done)

    @event.listens_for(engine, "handle_error")
    def _failed(context: Any) -> None:
        if context.connection is not None:
            _done(context.connection)


@contextmanager
def unlimited(connection: Any) -> Iterator[None]:
    """No statement limit on `connection` (a SQLAlchemy Connection, outside any transaction)
    while inside: migrations rewrite whole tables and take as long as that takes."""
    dbapi = connection.connection.dbapi_connection
    if connection.dialect.name == "postgresql":
        saved = getattr(dbapi, "answer_seconds", None)
        connection.exec_driver_sql("SET statement_timeout = 0")
        connection.commit()  # a session setting: kept, and the caller's transaction is its own
        if isinstance(dbapi, SilenceLimited):
            dbapi.answer_seconds = None
        try:
            yield
        finally:
            if isinstance(dbapi, SilenceLimited):
                dbapi.answer_seconds = saved
            if connection.in_transaction():  # failed inside: what it began is not ours
                connection.rollback()
            # The configured limit again (the connection's startup value), before the
            # connection goes back to the pool.
            connection.exec_driver_sql("RESET statement_timeout")
            connection.commit()
        return
    deadline = connection.info.get("cunping_deadline")
    if deadline is None:
        yield
        return
    # The progress handler reads the connection's own box; executes inside set this one.
    connection.info["cunping_deadline"] = [math.inf]
    try:
        yield
    finally:
        connection.info["cunping_deadline"] = deadline


# --- availability ---------------------------------------------------------------------------


def unavailable_reason(error: BaseException) -> str | None:
    """A short reason when `error` says the database cannot serve now (down, frozen, overloaded,
    locked); None for any other error (a bug, a constraint, bad SQL)."""
    if isinstance(error, exc.TimeoutError):  # the pool's: no connection free in time
        return "no free database connection in time (pool exhausted)"
    original: BaseException | None = error
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return _first_line(error.orig or error)
        original = error.orig
    if isinstance(original, psycopg.Error):
        state = original.sqlstate
        if isinstance(original, psycopg.OperationalError) and state is None:
            return _first_line(original)  # refused, closed, timed out, silent: client side
        if state is not None and (state in _UNAVAILABLE_STATES or state.startswith("08")):
            return _first_line(original)
        return None
    if isinstance(original, sqlite3.OperationalError):
        message = str(original)
        if "locked" in message or "busy" in message or message == "interrupted":
            return f"sqlite: {message}"
    return None


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__)[:200]


@dataclass
class Health:
    ok: bool
    dialect: str
    reason: str = ""
    ms: float = 0.0


def probe(app: Flask | None = None) -> Health:
    """Is the database answering? Within about PROBE_SECONDS (PostgreSQL: 2 s when a new
    connection is needed, libpq's shortest connect timeout), on a pool of its own: an
    exhausted main pool or a frozen server makes it say so, not wait."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    started = time.perf_counter()
    engine = _probe_engine(app)
    for attempt in (1, 2):
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except exc.SQLAlchemyError as error:
            # A pooled connection closed under it (the server restarted since the last probe)
            # fails at once: one more try, on a new connection.
            quick = time.perf_counter() - started < PROBE_SECONDS / 2
            if attempt == 1 and quick and getattr(error, "connection_invalidated", False):
                continue
            reason = unavailable_reason(error) or _first_line(error)
            return Health(False, engine.dialect.name, reason, _ms(started))
        break
    return Health(True, engine.dialect.name, "", _ms(started))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def dispose(app: Flask) -> None:
    """Close the connections of /healthz's probe pool (with `db.engine.dispose()`: tests)."""
    state: _State = app.extensions[_EXTENSION]
    with state.lock:
        if state.probe_engine is not None:
            state.probe_engine.dispose()
            state.probe_engine = None


def _probe_engine(app: Flask) -> Engine:
    state: _State = app.extensions[_EXTENSION]
    with app.app_context():
        main = db.engine
    if main.dialect.name != "postgresql":
        return main  # SQLite: no server to freeze; its locks are bounded by the busy timeout
    with state.lock:
        if state.probe_engine is None:
            state.probe_engine = create_engine(
                main.url, pool_size=1, max_overflow=2, pool_timeout=PROBE_POOL_WAIT,
                pool_pre_ping=False,  # the probe is a ping; a dead connection fails it once
                connect_args=_pg_connect_args(2, PROBE_SECONDS),
            )
            _limit_postgres(state.probe_engine, PROBE_SECONDS, ping=PROBE_SECONDS)
        return state.probe_engine
