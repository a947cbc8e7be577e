"""The admin's people pages: regions, users and grants, my account and API tokens, categories
and the audit log, through the Flask test client and the real login form."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask import Flask, g
from flask.testing import FlaskClient

from server.extensions import db
from server.models import AuditEvent, Role, User
from server.models.base import utcnow
from server.services import audit, categories, notices, regions, users
from server.services.notices import NoticeInput
from tests.conftest import PASSWORD, AuthActions, World, csrf_token


@pytest.fixture(autouse=True)
def _no_server_errors(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A 500 page hides its traceback; fail the test with it instead."""
    import traceback

    import server.errors

    seen: list[str] = []
    monkeypatch.setattr(
        server.errors.log, "exception", lambda *a, **k: seen.append(traceback.format_exc())
    )
    yield
    assert not seen, seen[0]


@pytest.fixture(autouse=True)
def _english_per_request(app: Flask, client: FlaskClient) -> None:
    """Messages are asserted in English (the source language), whatever catalogs exist.

    The `app` fixture keeps one app context open, and Flask-Babel caches the locale in `g`,
    which would then leak from one request to the next; forget it per request, as a real
    server does."""

    def forget_locale() -> None:
        g.pop("_flask_babel", None)

    app.before_request(forget_locale)
    client.set_cookie("lang", "en")


def _town_admin(world: World) -> User:
    return users.create(
        None, "townadmin", PASSWORD, display_name="镇管理员", grants=[(Role.ADMIN, world.town)]
    )


def _new_user_form(client: FlaskClient, **fields: str) -> dict[str, str]:
    data = {
        "csrf_token": csrf_token(client, "/admin/users/new"),
        "username": "liuhe2",
        "display_name": "柳河镇第二编辑",
        "password": "a-good-password",
    }
    data.update(fields)
    return data


def _notice(world: World, target: str, title: str = "村民代表会议通知") -> int:
    n = notices.create(
        world.village_editor if target == "V11" else world.county_editor,
        NoticeInput(title=title, body="周六上午九点。", category="village", targets=[target]),
    )
    return n.id


# --- users ---------------------------------------------------------------------------------


def test_admin_creates_user_with_grant_inside_subtree(
    client: FlaskClient, world: World, auth: AuthActions
) -> None:
    auth.login("admin")
    form = client.get("/admin/users/new").get_data(as_text=True)
    assert form.count('name="grants-3-role"') == 1  # four empty grant rows, no JS needed
    response = client.post(
        "/admin/users/new",
        data=_new_user_form(
            client,
            **{"grants-0-role": "editor", "grants-0-region": str(world.town.id),
               "grants-2-role": "reviewer", "grants-2-region": str(world.village.id)},
        ),
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    created = users.by_username("liuhe2")
    assert created is not None and created.display_name == "柳河镇第二编辑"
    assert {(g.role, g.region.code) for g in created.grants} == {
        (Role.EDITOR, "T1"),
        (Role.REVIEWER, "V11"),
    }
    assert users.authenticate("liuhe2", "a-good-password") is not None
    listing = client.get("/admin/users").get_data(as_text=True)
    assert "liuhe2" in listing and "Editor @ 柳河镇" in client.get(
        "/admin/users?lang=en"
    ).get_data(as_text=True)


def test_town_admin_cannot_grant_on_another_town(
    client: FlaskClient, world: World, auth: AuthActions
) -> None:
    _town_admin(world)
    auth.login("townadmin")
    page = client.get("/admin/users/new?lang=en").get_data(as_text=True)
    assert "前王庄村" in page and "石桥镇" not in page  # only their own subtree is offered
    response = client.post(
        "/admin/users/new",
        data=_new_user_form(
            client,
            **{"grants-0-role": "editor", "grants-0-region": str(world.other_town.id)},
        ),
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 403
    assert "outside your regions" in html
    assert 'value="liuhe2"' in html and 'value="柳河镇第二编辑"' in html  # what was typed stays
    assert "a-good-password" not in html
    db.session.expire_all()
    assert users.by_username("liuhe2") is None


def test_town_admin_lists_and_edits_only_their_users(
    client: FlaskClient, world: World, auth: AuthActions
) -> None:
    _town_admin(world)
    auth.login("townadmin")
    listing = client.get("/admin/users").get_data(as_text=True)
    assert "teditor" in listing and "veditor" in listing
    assert "ceditor" not in listing and ">admin<" not in listing
    assert client.get(f"/admin/users/{world.county_editor.id}/edit").status_code == 403
    url = f"/admin/users/{world.village_editor.id}/edit"
    edit = client.get(url).get_data(as_text=True)
    assert f'<option selected value="{world.village.id}">' in edit
    response = client.post(
        url,
        data={
            "csrf_token": csrf_token(client, url),
            "display_name": "前王庄村文书",
            "active": "y",
            "grants-0-role": "editor",
            "grants-0-region": str(world.village.id),
            "grants-1-role": "reviewer",
            "grants-1-region": str(world.village2.id),
            "password": "",
        },
    )
    assert response.status_code == 302
    db.session.expire_all()
    person = users.get(world.village_editor.id)
    assert person.display_name == "前王庄村文书"
    assert {(g.role, g.region.code) for g in person.grants} == {
        (Role.EDITOR, "V11"),
        (Role.REVIEWER, "V12"),
    }


def test_duplicate_username_keeps_what_was_typed(
    client: FlaskClient, world: World, auth: AuthActions
) -> None:
    auth.login("admin")
    response = client.post(
        "/admin/users/new",
        data=_new_user_form(
            client,
            username="teditor",
            **{"grants-1-role": "reviewer", "grants-1-region": str(world.village2.id)},
        ),
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "is taken" in html
    assert 'value="teditor"' in html and 'value="柳河镇第二编辑"' in html
    assert re.search(r'name="grants-1-role">.*?<option selected value="reviewer">', html, re.S)
    assert f'<option selected value="{world.village2.id}">' in html
    assert "a-good-password" not in html
    db.session.expire_all()
    assert users.by_username("teditor").display_name == "teditor"  # type: ignore[union-attr]


def test_short_password_is_shown_on_the_form(
    client: FlaskClient, world: World, auth: AuthActions
) -> None:
    auth.login("admin")
    response = client.post("/admin/users/new", data=_new_user_form(client, password="short"))
    assert response.status_code == 422
    assert "at least 10 characters" in response.get_data(as_text=True)
    assert users.by_username("liuhe2") is None


def test_every_problem_is_named_at_once(
    client: FlaskClient, world: World, auth: AuthActions
) -> None:
    auth.login("admin")
    response = client.post(
        "/admin/users/new",
        data=_new_user_form(
            client, username="veditor", password="short", **{"grants-0-role": "editor"}
        ),
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "is taken" in html and "at least 10 characters" in html
    assert "Choose a region for this role." in html


# --- regions -------------------------------------------------------------------------------


def test_region_tree_shows_levels_and_admin_actions(
    client: FlaskClient, world: World, auth: AuthActions
) -> None:
    regions.create(None, "G111", "一组", world.village)
    auth.login("admin")
    html = client.get("/admin/regions?lang=en").get_data(as_text=True)
    for text in ("清源县", "柳河镇", "前王庄村", "一组", "County", "Town", "Village", "Group"):
        assert text in html
    assert html.index("柳河镇") < html.index("前王庄村") < html.index("一组") < html.index("石桥镇")
    assert f"/admin/regions/{world.village.id}/edit" in html


def test_region_create_rename_and_move_with_subtree(
    client: FlaskClient, world: World, auth: AuthActions
) -> None:
    auth.login("admin")
    new_url = f"/admin/regions/new?parent={world.village.id}"
    assert f'<option selected value="{world.village.id}">' in client.get(new_url).get_data(
        as_text=True
    )
    response = client.post(
        "/admin/regions/new",
        data={"csrf_token": csrf_token(client, new_url), "code": "G111", "name": "一组",
              "parent": str(world.village.id)},
    )
    assert response.status_code == 302
    group = regions.get("G111")
    assert group.parent_id == world.village.id and group.depth == 3
    assert group.path == f"{world.village.path}{group.id}/"

    edit_url = f"/admin/regions/{world.village.id}/edit"
    response = client.post(
        edit_url,
        data={"csrf_token": csrf_token(client, edit_url), "code": "V11X", "name": "前王村",
              "parent": str(world.other_town.id)},
    )
    assert response.status_code == 302
    db.session.expire_all()
    village, group = regions.get(world.village.id), regions.get("G111")
    assert (village.code, village.name) == ("V11X", "前王村")
    assert village.parent_id == world.other_town.id
    assert village.path == f"{world.other_town.path}{village.id}/"
    assert group.path == f"{village.path}{group.id}/" and group.depth == 3
    assert not world.town.contains(group) and world.other_town.contains(group)


def test_region_cannot_move_inside_itself(
    client: FlaskClient, world: World, auth: AuthActions
) -> None:
    auth.login("admin")
    url = f"/admin/regions/{world.town.id}/edit"
    page = client.get(url).get_data(as_text=True)
    assert f'value="{world.village.id}"' not in page  # its own villages are not offered
    response = client.post(
        url,
        data={"csrf_token": csrf_token(client, url), "code": "T1-new", "name": "新柳河镇",
              "parent": str(world.village.id)},
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "cannot move inside itself" in html and 'value="新柳河镇"' in html
    db.session.expire_all()
    town = regions.get(world.town.id)
    assert (town.code, town.name, town.parent_id) == ("T1", "柳河镇", world.county.id)


def test_duplicate_region_code_is_a_field_error(
    client: FlaskClient, world: World, auth: AuthActions
) -> None:
    auth.login("admin")
    url = "/admin/regions/new"
    response = client.post(
        url,
        data={"csrf_token": csrf_token(client, url), "code": "V12", "name": "又一个村",
              "parent": str(world.town.id)},
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "already used by 后王庄村" in html and 'value="又一个村"' in html


def test_town_admin_adds_inside_their_town_only(
    client: FlaskClient, world: World, auth: AuthActions
) -> None:
    _town_admin(world)
    auth.login("townadmin")
    tree = client.get("/admin/regions").get_data(as_text=True)
    assert "前王庄村" in tree and "石桥镇" not in tree
    url = "/admin/regions/new"
    response = client.post(
        url,
        data={"csrf_token": csrf_token(client, url), "code": "V29", "name": "越界村",
              "parent": str(world.other_town.id)},
    )
    assert response.status_code == 403
    assert "outside your regions" in response.get_data(as_text=True)
    db.session.expire_all()
    with pytest.raises(Exception, match="No region"):
        regions.get("V29")
    assert client.get(f"/admin/regions/{world.other_village.id}/edit").status_code == 403


# --- permissions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["/admin/users", "/admin/users/new", "/admin/regions/new", "/admin/audit"]
)
def test_editor_gets_403(client: FlaskClient, world: World, auth: AuthActions, url: str) -> None:
    auth.login("teditor")
    response = client.get(url + "?lang=en")
    assert response.status_code == 403
    html = response.get_data(as_text=True)
    assert "403" in html and "administrators" in html  # the reason, on a clean page
    assert 'name="username"' not in html and "Traceback" not in html


def test_editor_sees_regions_read_only_and_cannot_write(
    client: FlaskClient, world: World, auth: AuthActions
) -> None:
    auth.login("teditor")
    tree = client.get("/admin/regions").get_data(as_text=True)
    assert "前王庄村" in tree and "/edit" not in tree and "石桥镇" not in tree
    assert client.get(f"/admin/regions/{world.village.id}/edit").status_code == 403
    token = csrf_token(client, "/admin/account")
    response = client.post(
        f"/admin/regions/{world.village.id}/edit",
        data={"csrf_token": token, "code": "X", "name": "X", "parent": ""},
    )
    assert response.status_code == 403
    response = client.post(
        f"/admin/users/{world.town_reviewer.id}/edit",
        data={"csrf_token": token, "display_name": "x", "active": "y"},
    )
    assert response.status_code == 403
    db.session.expire_all()
    assert regions.get(world.village.id).code == "V11"


def test_forms_need_a_csrf_token(client: FlaskClient, world: World, auth: AuthActions) -> None:
    auth.login("admin")
    response = client.post(
        "/admin/regions/new", data={"code": "V13", "name": "新村", "parent": str(world.town.id)}
    )
    assert response.status_code == 400
    response = client.post("/admin/account/tokens", data={"name": "cms"})
    assert response.status_code == 400
    assert users.tokens_of(world.admin) == []


# --- my account ----------------------------------------------------------------------------


def test_token_secret_shown_once_authenticates_until_revoked(
    client: FlaskClient, world: World, auth: AuthActions
) -> None:
    auth.login("teditor")
    response = client.post(
        "/admin/account/tokens",
        data={"csrf_token": csrf_token(client, "/admin/account"), "name": "县融媒体CMS"},
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 201
    match = re.search(r'value="(cp_[0-9a-f]{8}_[A-Za-z0-9_-]+)"', html)
    assert match, html
    secret = match.group(1)
    again = client.get("/admin/account").get_data(as_text=True)
    assert secret not in again
    assert "县融媒体CMS" in again and f"cp_{secret.split('_')[1]}_" in again
    assert users.user_for_token(secret) is not None
    assert users.user_for_token(secret).username == "teditor"  # type: ignore[union-attr]

    (token,) = users.tokens_of(world.town_editor)
    response = client.post(
        f"/admin/account/tokens/{token.id}/revoke",
        data={"csrf_token": csrf_token(client, "/admin/account")},
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert users.user_for_token(secret) is None
    assert f"/admin/account/tokens/{token.id}/revoke" not in client.get("/admin/account").get_data(
        as_text=True
    )


def test_cannot_revoke_someone_elses_token(
    client: FlaskClient, world: World, auth: AuthActions
) -> None:
    token, secret = users.create_token(world.county_editor, "cms")
    auth.login("teditor")
    response = client.post(
        f"/admin/account/tokens/{token.id}/revoke",
        data={"csrf_token": csrf_token(client, "/admin/account")},
    )
    assert response.status_code == 403
    db.session.expire_all()
    assert users.user_for_token(secret) is not None


def test_change_password(client: FlaskClient, world: World, auth: AuthActions) -> None:
    auth.login("teditor")
    token = csrf_token(client, "/admin/account")
    wrong = client.post(
        "/admin/account/password",
        data={"csrf_token": token, "old_password": "nope-nope", "password": "new-password-9",
              "password2": "new-password-9"},
    )
    assert wrong.status_code == 422 and "current password is wrong" in wrong.get_data(as_text=True)
    differ = client.post(
        "/admin/account/password",
        data={"csrf_token": token, "old_password": PASSWORD, "password": "new-password-9",
              "password2": "new-password-8"},
    )
    assert differ.status_code == 422 and "passwords differ" in differ.get_data(as_text=True)
    ok = client.post(
        "/admin/account/password",
        data={"csrf_token": token, "old_password": PASSWORD, "password": "new-password-9",
              "password2": "new-password-9"},
    )
    assert ok.status_code == 302
    assert users.authenticate("teditor", "new-password-9") is not None
    assert users.authenticate("teditor", PASSWORD) is None


def test_language_preference_switches_the_ui(
    client: FlaskClient, world: World, auth: AuthActions
) -> None:
    client.delete_cookie("lang")
    auth.login("teditor")
    assert '<html lang="zh-CN">' in client.get("/admin/account").get_data(as_text=True)
    response = client.post(
        "/admin/account/language",
        data={"csrf_token": csrf_token(client, "/admin/account"), "locale": "en"},
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert users.get(world.town_editor.id).locale == "en"
    client.delete_cookie("lang")  # the stored setting alone must do it
    assert '<html lang="en">' in client.get("/admin/account").get_data(as_text=True)


# --- categories ----------------------------------------------------------------------------


def test_system_admin_adds_and_deactivates_categories(
    client: FlaskClient, world: World, auth: AuthActions
) -> None:
    auth.login("admin")
    url = "/admin/categories"
    bad = client.post(
        url,
        data={"csrf_token": csrf_token(client, url), "key": "Land!", "name": "土地征收",
              "name_en": "Land", "color": "#335577"},
    )
    assert bad.status_code == 422 and 'value="土地征收"' in bad.get_data(as_text=True)
    response = client.post(
        url,
        data={"csrf_token": csrf_token(client, url), "key": "land", "name": "土地征收",
              "name_en": "Land", "color": "#335577"},
    )
    assert response.status_code == 302
    land = next(c for c in categories.all_() if c.key == "land")
    assert land.color == "#335577" and land.active
    assert "background: #335577" in client.get(url).get_data(as_text=True)
    response = client.post(
        f"{url}/{land.id}/active", data={"csrf_token": csrf_token(client, url), "active": "0"}
    )
    assert response.status_code == 302
    assert land not in categories.active()


def test_town_admin_and_editor_may_not_change_categories(
    client: FlaskClient, world: World, auth: AuthActions
) -> None:
    _town_admin(world)
    auth.login("townadmin")
    page = client.get("/admin/categories").get_data(as_text=True)
    assert "党务公开" in page and 'name="key"' not in page
    finance = next(c for c in categories.all_() if c.key == "finance")
    response = client.post(
        f"/admin/categories/{finance.id}/active",
        data={"csrf_token": csrf_token(client, "/admin/categories"), "active": "0"},
    )
    assert response.status_code == 403
    db.session.expire_all()
    assert categories.get(finance.id).active


# --- audit log -----------------------------------------------------------------------------


def test_audit_lists_notice_transitions(
    client: FlaskClient, world: World, auth: AuthActions
) -> None:
    notice_id = _notice(world, "V11")
    notices.submit(world.village_editor, notices.get_by_id(notice_id))
    auth.login("admin")
    html = client.get("/admin/audit?entity=notice&lang=en").get_data(as_text=True)
    assert f'href="/admin/notices/{notice_id}"' in html
    assert "<td>submitted for review</td>" in html and "Draft → Awaiting review" in html
    assert "veditor" in html
    only_submits = client.get("/admin/audit?action=submit").get_data(as_text=True)
    assert "<td>submitted for review</td>" in only_submits
    assert "<td>created</td>" not in only_submits
    nobody = client.get("/admin/audit?username=treviewer").get_data(as_text=True)
    assert "<td>submitted for review</td>" not in nobody


def test_audit_date_range_and_bad_filters(
    client: FlaskClient, world: World, auth: AuthActions
) -> None:
    old = audit.record(world.admin, "region", world.town.id, "update", detail={"name": "旧名"})
    old.at = utcnow() - timedelta(days=10)
    db.session.commit()
    auth.login("admin")
    today = (utcnow() + timedelta(hours=8)).date()
    recent = client.get(f"/admin/audit?since={today - timedelta(days=1)}").get_data(as_text=True)
    assert "旧名" not in recent and "柳河镇" in recent  # the world's region creations
    earlier = client.get(f"/admin/audit?until={today - timedelta(days=5)}").get_data(as_text=True)
    assert "旧名" in earlier and "前王庄村" not in earlier
    bad = client.get("/admin/audit?entity=nonsense&since=yesterday&lang=en")
    assert bad.status_code == 200 and "Not a valid" in bad.get_data(as_text=True)


def test_audit_is_scoped_for_a_town_admin(
    client: FlaskClient, world: World, auth: AuthActions
) -> None:
    inside = _notice(world, "V11", "本村通知")
    outside = _notice(world, "V21", "南岭村通知")
    _town_admin(world)
    auth.login("townadmin")
    html = client.get("/admin/audit?entity=notice").get_data(as_text=True)
    assert f"/admin/notices/{inside}" in html and f"/admin/notices/{outside}" not in html


def test_audit_pages(world: World) -> None:
    for i in range(7):
        audit.record(world.admin, "category", None, f"bulk{i}")
    db.session.commit()
    first = audit.search(world.admin, action=None, entity="category", per_page=5)
    second = audit.search(world.admin, entity="category", per_page=5, page=2)
    assert first.total == 7 and first.pages == 2
    assert [e.action for e in first.events] == [f"bulk{i}" for i in range(6, 1, -1)]
    assert [e.action for e in second.events] == ["bulk1", "bulk0"]
    assert isinstance(second.events[0], AuditEvent)


def test_only_admins_search_the_audit_log(world: World) -> None:
    from server.services.errors import PermissionDenied

    with pytest.raises(PermissionDenied):
        audit.search(world.county_reviewer)
    _town_admin(world)
    assert audit.search(users.by_username("townadmin")).total > 0  # type: ignore[arg-type]


def test_audit_shows_names_labels_and_local_times(
    client: FlaskClient, world: World, auth: AuthActions
) -> None:
    """No raw ids, region codes, English state keys or UTC: what the table shows is what its
    header and filters promise."""
    notice_id = _notice(world, "V11", "本村通知")
    notice = notices.get_by_id(notice_id)
    notices.submit(world.village_editor, notice)
    event = audit.record(world.admin, "alert", None, "cancel", from_state="active",
                         to_state="cancelled",
                         detail={"region": world.town.code, "publish_at": "2026-12-01T01:00:00"})
    db.session.commit()
    auth.login("admin")
    html = client.get("/admin/audit").get_data(as_text=True)  # the admin reads English
    assert "本村通知" in html and f">#{notice_id}<" not in html
    assert "Draft → Awaiting review" in html and "draft →" not in html
    assert "In force → Cancelled" in html and "active →" not in html
    assert f"Region: {world.town.name}" in html and f"Region: {world.town.code}" not in html
    assert "2026-12-01 09:00" in html and "2026-12-01T01:00" not in html  # Beijing time
    # The action filter offers the labels it shows, and filters by them.
    select = html.split('name="action"')[1].split("</select>")[0]
    assert '<option value="submit">submitted for review</option>' in select
    only = client.get("/admin/audit?action=cancel").get_data(as_text=True)
    assert "alert cancelled" in only and "本村通知" not in only
    assert event.id


def test_a_category_sets_how_long_its_notices_hold_a_screen(
    client: FlaskClient, world: World, auth: AuthActions
) -> None:
    category = categories.all_()[0]
    auth.login("admin")
    token = csrf_token(client, "/admin/categories")
    bad = client.post(f"/admin/categories/{category.id}/budget",
                      data={"csrf_token": token, "budget_s": "5"}, follow_redirects=True)
    assert "10 to 3600" in bad.get_data(as_text=True) and category.budget_s is None
    client.post(f"/admin/categories/{category.id}/budget",
                data={"csrf_token": token, "budget_s": "300"})
    assert categories.get(category.id).budget_s == 300
    notice_id = _notice(world, "V11")
    n = notices.get_by_id(notice_id)
    n.current.category = category
    assert notices.budget_of(n.current) == 300
