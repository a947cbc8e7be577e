"""Who may hold the alert role (docs/alerts.md, "Who"): only an administrator of the county
(the root region) or a configured list gives or takes it; nobody gives it to themselves; every
grant and removal is audited and shown to the alert users."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from server.extensions import db
from server.models import AuditEvent, Role, User
from server.services import users
from server.services.errors import PermissionDenied
from tests.conftest import PASSWORD, AuthActions, World


def grants_of(user: User) -> set[tuple[Role, str]]:
    db.session.refresh(user)
    return {(g.role, g.region.code) for g in user.grants}


def test_a_town_administrator_cannot_make_alert_users(world: World) -> None:
    town_admin = World.user("tadmin", Role.ADMIN, world.town)
    with pytest.raises(PermissionDenied, match=r"administrator of the county|县级管理员"):
        users.create(town_admin, "helper1", PASSWORD, grants=[(Role.ALERT, world.village)])
    db.session.rollback()
    assert users.by_username("helper1") is None
    editor = users.create(town_admin, "helper2", PASSWORD, grants=[(Role.EDITOR, world.village)])
    with pytest.raises(PermissionDenied):
        users.update(town_admin, editor, display_name="", active=True,
                     grants=[(Role.EDITOR, world.village), (Role.ALERT, world.village)])
    db.session.rollback()
    assert grants_of(editor) == {(Role.EDITOR, "V11")}
    # … nor take it away from someone it manages.
    alerter = users.create(None, "townalert", PASSWORD, grants=[(Role.ALERT, world.town)])
    with pytest.raises(PermissionDenied):
        users.update(town_admin, alerter, display_name="", active=True, grants=[])
    db.session.rollback()
    assert grants_of(alerter) == {(Role.ALERT, "T1")}


def test_the_county_administrator_grants_it_but_not_to_themselves(world: World) -> None:
    made = users.create(world.admin, "newalert", PASSWORD, grants=[(Role.ALERT, world.town)])
    assert grants_of(made) == {(Role.ALERT, "T1")}
    with pytest.raises(PermissionDenied, match=r"themselves|自己"):
        users.update(world.admin, world.admin, display_name="admin", active=True,
                     grants=[(Role.ADMIN, world.county), (Role.ALERT, world.county)])
    db.session.rollback()
    assert grants_of(world.admin) == {(Role.ADMIN, "C0")}
    users.update(world.admin, made, display_name="", active=True, grants=[])
    assert grants_of(made) == set()


def test_a_listed_administrator_may_grant_it(app: Flask, world: World) -> None:
    town_admin = World.user("tadmin", Role.ADMIN, world.town)
    app.config["ALERT_GRANTORS"] = ("tadmin",)
    made = users.create(town_admin, "helper3", PASSWORD, grants=[(Role.ALERT, world.village)])
    assert grants_of(made) == {(Role.ALERT, "V11")}


def test_every_grant_and_removal_is_audited_and_shown_to_alert_users(
    world: World, client: FlaskClient, auth: AuthActions
) -> None:
    made = users.create(world.admin, "newalert", PASSWORD,
                        grants=[(Role.ALERT, world.town), (Role.EDITOR, world.town)])
    users.update(world.admin, made, display_name="", active=True,
                 grants=[(Role.EDITOR, world.town), (Role.ALERT, world.other_town)])
    events = [(e.action, e.detail["role"], e.detail["region"], e.user_id)
              for e in db.session.query(AuditEvent).filter_by(entity="user", entity_id=made.id)
              if e.action in ("grant", "remove_grant")]
    assert sorted(events) == sorted([
        ("grant", "alert", "T1", world.admin.id), ("grant", "editor", "T1", world.admin.id),
        ("grant", "alert", "T2", world.admin.id), ("remove_grant", "alert", "T1",
                                                   world.admin.id)])
    changes = users.alert_role_changes()
    assert [(e["action"], e["region"], e["actor"]) for e in changes][:3] == [
        ("remove_grant", "清源县 · 柳河镇", "admin"), ("grant", "清源县 · 石桥镇", "admin"),
        ("grant", "清源县 · 柳河镇", "admin")]
    auth.login("calert")
    page = client.get("/admin/alerts").get_data(as_text=True)
    assert 'id="alert-role-changes"' in page and "newalert" in page
