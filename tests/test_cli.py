"""The `cunping` command: create-admin, demo, tick, db migrations, production settings, and a
real server answering /healthz."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, inspect, select, text

from server import create_app
from server.extensions import db
from server.models import Category, Notice, NoticeStatus, Region, Role
from server.models.base import utcnow
from server.services import notices, users
from server.services.notices import NoticeInput
from tests.conftest import World

CUNPING = Path(sys.executable).parent / "cunping"


def run(app: Flask, *args: str, **env: str) -> tuple[int, str]:
    """Invoke a `cunping` command on `app`; the exit code and what a user sees (both streams)."""
    result = app.test_cli_runner().invoke(args=list(args), env=env or None)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


# --- create-admin -------------------------------------------------------------------------------


def test_create_admin_creates_the_county_and_its_administrator(app: Flask) -> None:
    code, out = run(
        app,
        "create-admin",
        "boss",
        "--county-code",
        "371312",
        "--county-name",
        "河东区",
        "--password",
        "a-long-password",
    )
    assert code == 0, out
    assert "boss" in out and "河东区" in out
    county = db.session.scalar(select(Region).where(Region.code == "371312"))
    assert county is not None and county.parent_id is None and county.name == "河东区"
    boss = users.authenticate("boss", "a-long-password")
    assert boss is not None
    assert [(g.role, g.region.code) for g in boss.grants] == [(Role.ADMIN, "371312")]


def test_create_admin_reads_the_password_from_the_environment(app: Flask) -> None:
    code, out = run(
        app,
        "create-admin",
        "boss",
        "--county-code",
        "C9",
        CUNPING_ADMIN_PASSWORD="from-the-environment",
    )
    assert code == 0, out
    assert users.authenticate("boss", "from-the-environment") is not None


def test_create_admin_on_the_existing_root(app: Flask) -> None:
    assert run(app, "create-admin", "first", "--county-code", "C9", "--password", "x" * 12)[0] == 0
    code, out = run(app, "create-admin", "second", "--password", "y" * 12)
    assert code == 0, out
    second = users.by_username("second")
    assert second is not None and second.grants[0].region.code == "C9"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["boss", "--county-code", "C9", "--password", "short"], "10"),
        (["bad name!", "--county-code", "C9", "--password", "x" * 12], "username"),
        (["boss", "--region", "NOPE", "--password", "x" * 12], "NOPE"),
    ],
    ids=["short-password", "bad-username", "unknown-region"],
)
def test_create_admin_refuses_bad_input(app: Flask, args: list[str], message: str) -> None:
    code, out = run(app, "create-admin", *args)
    assert code != 0
    assert message in out
    assert "Traceback" not in out


def test_create_admin_refuses_a_region_that_is_not_a_root(app: Flask, world: World) -> None:
    code, out = run(app, "create-admin", "boss", "--region", "T1", "--password", "x" * 12)
    assert code != 0 and "root" in out
    assert users.by_username("boss") is None


def test_create_admin_needs_a_region_when_there_are_several_roots(app: Flask, world: World) -> None:
    run(app, "create-admin", "other", "--county-code", "C9", "--password", "x" * 12)
    code, out = run(app, "create-admin", "boss", "--password", "x" * 12)
    assert code != 0 and "--region" in out
    assert users.by_username("boss") is None


# --- demo ---------------------------------------------------------------------------------------


def test_demo_loads_once_and_is_idempotent(app: Flask) -> None:
    code, out = run(app, "demo", "--port", "5123")
    assert code == 0, out
    assert "Demo county ready." in out
    assert "http://127.0.0.1:5123/admin/" in out
    assert "admin" in out and "cunping-demo" in out
    sizes = (count(Region), count(Notice))
    assert sizes[0] >= 5 and sizes[1] >= 6
    statuses = set(db.session.scalars(select(Notice.status)))
    assert NoticeStatus.PUBLISHED in statuses and NoticeStatus.DRAFT in statuses
    sample = next(line for line in out.splitlines() if "/n/" in line)
    code_ = sample.rsplit("/n/", 1)[1].strip()
    assert notices.get_by_code(code_) is not None

    code, again = run(app, "demo")
    assert code == 0, again
    assert "Demo data already present." in again
    assert (count(Region), count(Notice)) == sizes


# --- tick ---------------------------------------------------------------------------------------


def test_tick_publishes_a_due_notice_and_expires_an_old_one(app: Flask, world: World) -> None:
    def published(**times: object) -> Notice:
        n = notices.create(
            world.village_editor,
            NoticeInput(title="通知", body="正文", category="notice", targets=["V11"],
                        hold=True, **times),  # type: ignore[arg-type]
        )
        notices.submit(world.village_editor, n)
        notices.approve(world.village_reviewer, n)
        # Held at approval, released an hour ago: `due` was scheduled for a time that has
        # come since, `old` went live then and has expired since; nobody opened the admin.
        return notices.publish(world.village_editor, n, now=utcnow() - timedelta(hours=1))

    now = utcnow()
    due = published(publish_at=now - timedelta(minutes=1))
    old = published(publish_at=now - timedelta(hours=2), expire_at=now - timedelta(minutes=1))
    assert due.status == NoticeStatus.SCHEDULED and old.status == NoticeStatus.PUBLISHED

    code, out = run(app, "tick")
    assert code == 0, out
    assert "changed 2 notices" in out
    db.session.expire_all()
    assert due.status == NoticeStatus.PUBLISHED
    assert old.status == NoticeStatus.EXPIRED

    assert "changed 0 notices" in run(app, "tick")[1]


# --- migrations ---------------------------------------------------------------------------------


def test_db_upgrade_downgrade_base_and_upgrade_again(app: Flask) -> None:
    db.session.remove()
    tables = set(inspect(db.engine).get_table_names())
    head = version()
    assert {"notices", "revisions", "regions", "users", "alembic_version"} <= tables

    assert run(app, "db", "upgrade")[0] == 0
    code, out = run(app, "db", "downgrade", "base")
    assert code == 0, out
    db.engine.dispose()
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}

    code, out = run(app, "db", "upgrade")
    assert code == 0, out
    db.engine.dispose()
    assert set(inspect(db.engine).get_table_names()) == tables
    assert count(Category) == 6  # the standard categories come with the first migration
    assert version() == head


def version() -> str | None:
    with db.engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def test_models_and_migrations_agree(app: Flask) -> None:
    """`db check` autogenerates against the models: a model change needs a migration."""
    db.session.remove()
    code, out = run(app, "db", "check")
    assert code == 0, out


# --- configuration ------------------------------------------------------------------------------


def test_production_without_secret_key_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="SECRET_KEY is not set"):
        create_app({"ENV": "production", "SECRET_KEY": "", "INSTANCE_PATH": str(tmp_path)})
    assert not (tmp_path / "secret_key").exists()


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CUNPING_", "DATABASE_URL", "SECRET_KEY", "FLASK_"))
    }
    env.update({"CUNPING_INSTANCE": str(tmp_path / "instance"), **extra})
    return env


@pytest.mark.parametrize("command", ["serve", "tick", "demo"])
def test_production_command_without_secret_key_says_why(tmp_path: Path, command: str) -> None:
    result = subprocess.run(
        [str(CUNPING), command],
        env=_env(tmp_path, CUNPING_ENV="production"),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
    assert not (tmp_path / "instance" / "cunping.db").exists()


def test_development_generates_and_keeps_a_secret_key(tmp_path: Path) -> None:
    first = create_app({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": ""})
    key_file = tmp_path / "secret_key"
    assert key_file.exists() and oct(key_file.stat().st_mode & 0o777) == "0o600"
    second = create_app({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": ""})
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert len(first.config["SECRET_KEY"]) >= 32


def test_healthz_answers_json(app: Flask) -> None:
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.is_json
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["database"] == db.engine.dialect.name


# --- a real server ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read()


def test_demo_serve_answers_healthz(tmp_path: Path) -> None:
    """What scripts/demo runs: the demo county, then the gevent server on the embedded SQLite."""
    port = _free_port()
    proc = subprocess.Popen(
        [str(CUNPING), "demo", "--serve", "--port", str(port)],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        status, body = 0, b""
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                status, body = _get(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                time.sleep(0.2)
        assert status == 200, "the server did not answer within 60 s"
        assert json.loads(body) == {"status": "ok", "database": "sqlite"}
        status, page = _get(f"http://127.0.0.1:{port}/admin/login")
        assert status == 200 and b"csrf_token" in page
        with_wal = (tmp_path / "instance" / "cunping.db-wal").exists()
        assert with_wal, "the embedded database runs in WAL mode"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert "Demo county ready." in output
    assert f"http://127.0.0.1:{port}/admin/" in output
    # The demo county signs its alerts: a key for the service user alone, used at once.
    key = tmp_path / "instance" / "alert-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "alert sets signed with key" in output


def test_create_admin_on_a_fresh_instance(tmp_path: Path) -> None:
    """The first command of a new installation: it creates the database as well."""
    result = subprocess.run(
        [
            str(CUNPING),
            "create-admin",
            "boss",
            "--county-code",
            "371312",
            "--county-name",
            "河东区",
        ],
        env=_env(tmp_path, CUNPING_ADMIN_PASSWORD="a-long-password"),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert "Created administrator boss for 河东区 (371312)." in result.stdout
    assert (tmp_path / "instance" / "cunping.db").exists()
