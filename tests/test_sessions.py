"""Admin sessions that end (server/services/sessions.py): logout and a password change end
them for every cookie that named them (the session cookie and "keep me logged in"), on every
process (the database says so); a user sees and ends their other sessions; unused sessions
expire; the remember cookie is HttpOnly, SameSite=Lax and Secure where cookies are."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flask import Flask, g
from flask.testing import FlaskClient

from server import create_app
from server.extensions import db
from server.models import AuditEvent, UserSession
from server.services import users
from tests.conftest import PASSWORD, AuthActions, World, _config, _csrf_from
from tests.test_api_alerts import auth_for


def forget_cached_user() -> None:
    """The tests run inside one app context, where Flask-Login caches the user of the last
    request in `g` (and Flask-WTF its CSRF token): each browser here must be looked up anew."""
    g.pop("_login_user", None)
    g.pop("csrf_token", None)


def logged_in(client: FlaskClient) -> bool:
    forget_cached_user()
    return client.get("/admin/").status_code == 200


def login(app: Flask, username: str = "admin", *, remember: bool = False) -> FlaskClient:
    forget_cached_user()
    client = app.test_client()
    page = client.get("/admin/login").get_data(as_text=True)
    data = {"username": username, "password": PASSWORD, "csrf_token": _csrf_from(page)}
    if remember:
        data["remember"] = "y"
    assert client.post("/admin/login", data=data).status_code == 302
    forget_cached_user()
    return client


def post(client: FlaskClient, url: str, data: dict[str, str] | None = None) -> int:
    forget_cached_user()
    token = _csrf_from(client.get("/admin/account").get_data(as_text=True))
    forget_cached_user()
    return client.post(url, data={"csrf_token": token, **(data or {})}).status_code


def test_a_copied_cookie_is_worthless_after_logout(app: Flask, world: World) -> None:
    """Someone kept the session cookie (a shared computer, a stolen cookie): the logout ends
    the session itself, not just this browser's copy of it."""
    client = login(app)
    stolen = client.get_cookie("session")
    assert stolen is not None and logged_in(client)
    other = app.test_client()
    other.set_cookie("session", stolen.value)
    assert logged_in(other)
    forget_cached_user()
    AuthActions(client).logout()
    assert not logged_in(client)
    assert not logged_in(other)


def test_a_logout_on_one_process_ends_the_session_on_another(
    app: Flask, world: World, tmp_path: Path
) -> None:
    """Two server processes on one database (here: two apps, nothing shared but the database
    and the secret key): a logout through one ends the session, and its remember cookie, for
    the other at its next request."""
    other = create_app({**_config(tmp_path / "other", app.config["SQLALCHEMY_DATABASE_URI"]),
                        "SECRET_KEY": app.config["SECRET_KEY"]})
    try:
        client = login(app, remember=True)
        session, remember = client.get_cookie("session"), client.get_cookie("remember_token")
        assert session is not None and remember is not None
        there, there_remembered = other.test_client(), other.test_client()
        there.set_cookie("session", session.value)
        there_remembered.set_cookie("remember_token", remember.value)
        assert there.get("/admin/").status_code == 200
        assert there_remembered.get("/admin/").status_code == 200
        forget_cached_user()
        AuthActions(client).logout()
        assert there.get("/admin/").status_code == 302
        fresh = other.test_client()
        fresh.set_cookie("remember_token", remember.value)
        assert fresh.get("/admin/").status_code == 302
    finally:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()


def test_logging_in_and_ending_sessions_are_audited(app: Flask, world: World) -> None:
    mine, phone, office = login(app), login(app), login(app)
    first = db.session.query(UserSession).order_by(UserSession.id).first()
    assert first is not None
    phone_row = db.session.query(UserSession).order_by(UserSession.id).all()[1]
    assert post(mine, f"/admin/account/sessions/{phone_row.id}/end") == 302
    assert post(mine, "/admin/account/sessions/end-others") == 302
    forget_cached_user()
    AuthActions(mine).logout()
    events = db.session.query(AuditEvent).filter_by(entity="session").order_by(
        AuditEvent.id).all()
    assert [e.action for e in events] == ["login"] * 3 + ["end_session", "end_sessions",
                                                          "end_session"]
    assert all(e.user_id == world.admin.id for e in events)
    assert events[3].detail == {"session": phone_row.id, "reason": "ended"}
    assert events[4].detail["count"] == 1 and events[4].detail["reason"] == "ended"
    assert events[5].detail == {"session": first.id, "reason": "logout"}
    assert not logged_in(office) and not logged_in(phone)
    reader = login(app)  # the audit log names them as people read them
    html = reader.get("/admin/audit?entity=session&lang=en").get_data(as_text=True)
    for label in ("logged in", "session ended", "sessions ended"):
        assert f"<td>{label}</td>" in html


def test_api_tokens_outlive_logouts_and_password_changes(app: Flask, world: World) -> None:
    """A county platform's token is not a browser session: logging out or changing the
    password leaves it working (it is revoked on the account page, on its own)."""
    headers = auth_for(world.admin)
    client = login(app)
    assert post(client, "/admin/account/password", {
        "old_password": PASSWORD, "password": "a-new-password-9", "password2": "a-new-password-9",
    }) in (302, 200)
    forget_cached_user()
    AuthActions(client).logout()
    forget_cached_user()
    assert app.test_client().get("/api/v1/me", headers=headers).status_code == 200


def test_the_remember_cookie_dies_with_its_session(app: Flask, world: World) -> None:
    client = login(app, remember=True)
    remember = client.get_cookie("remember_token")
    assert remember is not None and remember.http_only and remember.same_site == "Lax"
    fresh = app.test_client()  # the browser restarted: the session cookie gone, remember kept
    fresh.set_cookie("remember_token", remember.value)
    assert logged_in(fresh)
    forget_cached_user()
    AuthActions(client).logout()
    again = app.test_client()
    again.set_cookie("remember_token", remember.value)
    assert not logged_in(again)


def test_a_password_change_ends_every_other_session(app: Flask, world: World) -> None:
    mine, elsewhere = login(app), login(app, remember=True)
    assert post(mine, "/admin/account/password", {
        "old_password": PASSWORD, "password": "a-new-password-9", "password2": "a-new-password-9",
    }) in (302, 200)
    assert logged_in(mine)  # this one goes on
    assert not logged_in(elsewhere)
    event = db.session.query(AuditEvent).filter_by(action="end_sessions").one()
    assert event.detail["reason"] == "password" and event.detail["count"] == 1


def test_an_administrator_setting_a_password_or_deactivating_ends_the_users_sessions(
    app: Flask, world: World
) -> None:
    client = login(app, "ceditor")
    users.update(world.admin, world.county_editor, display_name="", active=True,
                 grants=[(g.role, g.region) for g in world.county_editor.grants],
                 password="reset-by-admin-7")
    assert not logged_in(client)
    forget_cached_user()
    client = app.test_client()
    page = client.get("/admin/login").get_data(as_text=True)
    client.post("/admin/login", data={"username": "ceditor", "password": "reset-by-admin-7",
                                      "csrf_token": _csrf_from(page)})
    assert logged_in(client)
    users.update(world.admin, world.county_editor, display_name="", active=False,
                 grants=[(g.role, g.region) for g in world.county_editor.grants])
    assert not logged_in(client)


def test_a_user_sees_and_ends_their_other_sessions(app: Flask, world: World) -> None:
    mine = login(app)
    phone, office = login(app), login(app)
    page = mine.get("/admin/account").get_data(as_text=True)
    assert page.count("/admin/account/sessions/") >= 2 and 'id="session-list"' in page
    theirs = db.session.query(UserSession).order_by(UserSession.id).all()
    assert len(theirs) == 3
    assert post(mine, f"/admin/account/sessions/{theirs[1].id}/end") == 302
    assert not logged_in(phone) and logged_in(office) and logged_in(mine)
    assert post(mine, "/admin/account/sessions/end-others") == 302
    assert not logged_in(office) and logged_in(mine)
    # Not somebody else's.
    editor = login(app, "ceditor")
    own = db.session.query(UserSession).filter_by(user_id=world.county_editor.id).one()
    assert post(mine, f"/admin/account/sessions/{own.id}/end") == 403
    assert logged_in(editor)


def test_an_unused_session_expires(app: Flask, world: World) -> None:
    client = login(app)
    row = db.session.query(UserSession).one()
    row.last_seen_at -= timedelta(hours=13)
    db.session.commit()
    assert not logged_in(client)
    db.session.refresh(row)
    assert row.ended_at is not None and row.end_reason == "idle"


def test_the_remember_cookie_is_secure_where_cookies_are() -> None:
    import importlib
    import os

    from server import config

    os.environ["CUNPING_SECURE_COOKIES"] = "1"
    try:
        secure = importlib.reload(config)
        assert secure.Config.REMEMBER_COOKIE_SECURE and secure.Config.SESSION_COOKIE_SECURE
    finally:
        del os.environ["CUNPING_SECURE_COOKIES"]
        importlib.reload(config)


def test_sessions_are_named_by_browser_and_system() -> None:
    from admin.people import browser_label

    assert browser_label("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
                         "(KHTML, like Gecko) Chrome/120.0 Safari/537.36") == "Chrome · Windows"
    assert browser_label("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) "
                         "AppleWebKit/605.1.15 Mobile/15E148 MicroMessenger/8.0") == \
        "WeChat · iPhone"
    assert browser_label("curl/8.0") == "curl/8.0"
