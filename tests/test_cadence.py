"""Disclosure cadence: rules (permissions, audit, validation), who is overdue (the counting
rule, lower-region overrides, local days), and the page with its form and CSV."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from server.extensions import db
from server.models import AuditEvent, CadenceRule, Category, Notice, Role
from server.models.base import utcnow
from server.services import cadence, notices
from server.services import regions as region_service
from server.services.errors import PermissionDenied, ValidationError
from tests.conftest import AuthActions, World, csrf_token
from tests.test_screens import publish

NOW = datetime(2026, 6, 30, 4, 0)  # noon in Shanghai


def category(key: str) -> Category:
    found = db.session.scalar(select(Category).where(Category.key == key))
    assert found is not None
    return found


def published(world: World, targets: list[str], key: str, local_days_ago: int,
              title: str = "财务收支公开", now: datetime = NOW) -> Notice:
    """A notice of category `key` that went live `local_days_ago` days before `now`."""
    notice = publish(world, targets, category=key, title=title)
    at = now - timedelta(days=local_days_ago)
    notice.published_at = notice.first_published_at = at
    db.session.commit()
    return notice


def rows(user: object, **kw: object) -> dict[tuple[str, str], int | None]:
    """(village code, category key) → days overdue, for the overdue rows."""
    return {(r.village.code, r.category.key): r.days_overdue
            for r in cadence.overdue(user, NOW, **kw)}  # type: ignore[arg-type]


def audit_actions() -> list[tuple[str, str]]:
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.entity == "cadence")
                                .order_by(AuditEvent.id))
    return [(e.action, e.detail.get("category", "")) for e in events]


# --- rules -------------------------------------------------------------------------------


def test_admins_set_rules_for_their_regions_and_each_change_is_audited(
    app: Flask, world: World
) -> None:
    rule = cadence.set_rule(world.admin, world.county, category("finance"), 31)
    assert (rule.region_id, rule.every_days) == (world.county.id, 31)
    again = cadence.set_rule(world.admin, world.county, category("finance"), 30)
    assert again.id == rule.id and again.every_days == 30  # one rule per region and category
    assert db.session.scalar(select(db.func.count()).select_from(CadenceRule)) == 1
    cadence.delete_rule(world.admin, again)
    assert db.session.scalar(select(db.func.count()).select_from(CadenceRule)) == 0
    assert audit_actions() == [("create", "finance"), ("edit", "finance"),
                               ("delete", "finance")]


def test_only_an_admin_of_the_region_may_set_its_rules(app: Flask, world: World) -> None:
    town_admin = World.user("tadmin", Role.ADMIN, world.town)
    for user in (world.county_editor, world.town_editor, world.county_reviewer,
                 world.county_alert, world.nobody):
        with pytest.raises(PermissionDenied):
            cadence.set_rule(user, world.village, category("finance"), 31)
    with pytest.raises(PermissionDenied):
        cadence.set_rule(town_admin, world.county, category("finance"), 31)
    with pytest.raises(PermissionDenied):
        cadence.set_rule(town_admin, world.other_village, category("finance"), 31)
    county_rule = cadence.set_rule(world.admin, world.county, category("finance"), 31)
    with pytest.raises(PermissionDenied):
        cadence.delete_rule(town_admin, county_rule)
    db.session.rollback()
    cadence.set_rule(town_admin, world.village, category("finance"), 15)
    assert audit_actions() == [("create", "finance"), ("create", "finance")]
    # The rules a town admin is shown: the county's (binding them too) and their own.
    assert [(r.region.code, r.every_days) for r in cadence.rules_for(town_admin)] == [
        ("C0", 31), ("V11", 15)]
    assert [r.region.code for r in cadence.rules_for(world.nobody)] == []


@pytest.mark.parametrize("days", [0, -1, 732, "31", 3.5, True, None])
def test_a_cadence_is_1_to_731_days(app: Flask, world: World, days: object) -> None:
    with pytest.raises(ValidationError) as err:
        cadence.set_rule(world.admin, world.county, category("finance"), days)  # type: ignore[arg-type]
    assert "every_days" in err.value.errors
    db.session.rollback()
    assert cadence.set_rule(world.admin, world.county, category("finance"), 731).every_days == 731


# --- who is overdue ----------------------------------------------------------------------


def test_overdue_villages_and_days(app: Flask, world: World) -> None:
    cadence.set_rule(world.admin, world.county, category("finance"), 31)
    published(world, ["V11"], "finance", 31)  # on time: exactly 31 days
    published(world, ["V21"], "finance", 40)  # 9 days late
    published(world, ["V21"], "finance", 50)  # an older one does not matter
    assert rows(world.admin) == {("V12", "finance"): None, ("V21", "finance"): 9}
    published(world, ["V11"], "finance", 32)  # older than the on-time one: still on time
    assert ("V11", "finance") not in rows(world.admin)
    late = {r.village.code: r for r in cadence.overdue(world.admin, NOW)}
    assert late["V21"].last_day == (NOW - timedelta(days=40)).date()
    assert late["V21"].days_since == 40 and late["V21"].last_notice_code
    assert late["V12"].last_at is None and late["V12"].town.code == "T1"


def test_the_day_count_uses_local_days(app: Flask, world: World) -> None:
    cadence.set_rule(world.admin, world.county, category("finance"), 31)
    # 32 calendar days in Shanghai, though only 31 days and 1 hour in hours: 1 day late.
    notice = publish(world, ["V11"], category="finance")
    notice.published_at = datetime(2026, 5, 29, 15, 30)  # 23:30 on 29 May, local
    db.session.commit()
    now = datetime(2026, 6, 29, 16, 30)  # 00:30 on 30 June, local
    assert {r.village.code: r.days_overdue for r in cadence.overdue(world.admin, now)}["V11"] == 1


def test_only_notices_aimed_at_the_village_or_below_count(app: Flask, world: World) -> None:
    cadence.set_rule(world.admin, world.county, category("finance"), 31)
    group = region_service.create(None, "V12G1", "后王庄一组", world.village2)
    published(world, ["T1"], "finance", 1)  # the town's: no village's own disclosure
    published(world, ["C0"], "finance", 1)  # the county's: neither
    published(world, ["V11"], "village", 1)  # another category
    assert set(rows(world.admin)) == {("V11", "finance"), ("V12", "finance"),
                                      ("V21", "finance")}
    published(world, ["V12G1"], "finance", 3)  # a group below the village counts for it
    assert set(rows(world.admin)) == {("V11", "finance"), ("V21", "finance")}
    # The group is not a village of its own.
    assert group.id not in {r.village.id for r in cadence.status(world.admin, NOW)}


def test_withdrawn_notices_do_not_count_and_expired_ones_do(app: Flask, world: World) -> None:
    cadence.set_rule(world.admin, world.county, category("finance"), 31)
    withdrawn = published(world, ["V11"], "finance", 2)
    notices.withdraw(world.county_editor, withdrawn, "数字有误")
    expired = published(world, ["V12"], "finance", 20)
    expired.status = "expired"
    db.session.commit()
    assert set(rows(world.admin)) == {("V11", "finance"), ("V21", "finance")}


def test_a_lower_rule_overrides_the_one_above(app: Flask, world: World) -> None:
    cadence.set_rule(world.admin, world.county, category("finance"), 31)
    cadence.set_rule(world.admin, world.county, category("village"), 92)
    published(world, ["V21"], "finance", 40)
    published(world, ["V11"], "finance", 40)
    for code in ("V11", "V12", "V21"):
        published(world, [code], "village", 100, title="村务公开")
    assert rows(world.admin) == {("V11", "finance"): 9, ("V12", "finance"): None,
                                 ("V21", "finance"): 9, ("V11", "village"): 8,
                                 ("V12", "village"): 8, ("V21", "village"): 8}
    cadence.set_rule(world.admin, world.other_town, category("finance"), 60)  # T2: 60 days
    cadence.set_rule(world.admin, world.village, category("village"), 120)  # V11: 120 days
    assert rows(world.admin) == {("V11", "finance"): 9, ("V12", "finance"): None,
                                 ("V12", "village"): 8, ("V21", "village"): 8}
    by_village = {(r.village.code, r.category.key): r.rule.region.code
                  for r in cadence.status(world.admin, NOW)}
    assert by_village[("V21", "finance")] == "T2" and by_village[("V11", "village")] == "V11"
    assert by_village[("V12", "village")] == "C0"


def test_a_town_without_villages_is_a_village(app: Flask, world: World) -> None:
    lone = region_service.create(None, "T3", "新区街道", world.county)
    cadence.set_rule(world.admin, world.county, category("finance"), 31)
    assert ("T3", "finance") in rows(world.admin)
    published(world, ["T3"], "finance", 5)
    assert ("T3", "finance") not in rows(world.admin)
    assert lone.id in {r.village.id for r in cadence.status(world.admin, NOW)}
    assert world.town.id not in {r.village.id for r in cadence.status(world.admin, NOW)}


def test_users_see_the_villages_in_their_regions(app: Flask, world: World) -> None:
    cadence.set_rule(world.admin, world.county, category("finance"), 31)
    assert set(rows(world.town_editor)) == {("V11", "finance"), ("V12", "finance")}
    assert set(rows(world.village_reviewer)) == {("V11", "finance")}
    assert rows(world.nobody) == {}


def test_sorting_by_town_or_by_days(app: Flask, world: World) -> None:
    cadence.set_rule(world.admin, world.county, category("finance"), 31)
    published(world, ["V11"], "finance", 35)  # 4 days
    published(world, ["V21"], "finance", 60)  # 29 days
    by_town = [(r.town.code, r.village.code) for r in cadence.overdue(world.admin, NOW)]
    assert by_town == [("T1", "V12"), ("T1", "V11"), ("T2", "V21")]  # never first in a town
    by_days = [r.village.code for r in cadence.overdue(world.admin, NOW, sort="days")]
    assert by_days == ["V12", "V21", "V11"]


# --- the page ----------------------------------------------------------------------------


def test_the_page_lists_overdue_villages_by_town(app: Flask, client: FlaskClient,
                                                 auth: AuthActions, world: World) -> None:
    cadence.set_rule(world.admin, world.county, category("finance"), 31)
    published(world, ["V21"], "finance", 60, now=utcnow())
    auth.login("admin")
    html = client.get("/admin/cadence?lang=en").get_data(as_text=True)
    assert "3 villages overdue" in html
    assert 'data-town="T1"' in html and 'data-town="T2"' in html
    assert html.index('data-town="T1"') < html.index('data-town="T2"')
    assert "never published" in html and "29 days" in html
    assert "notices aimed at a town or the whole county do not" in html  # the counting rule
    flat = client.get("/admin/cadence?sort=days&lang=en").get_data(as_text=True)
    assert flat.index('data-village="V11"') < flat.index('data-village="V21"')
    assert 'data-town=' not in flat
    only = client.get("/admin/cadence?category=village&lang=en").get_data(as_text=True)
    assert "data-village=" not in only and "No village in your regions is overdue." in only
    # The town editor: no form, the town's villages only.
    auth.logout()
    auth.login("teditor")
    html = client.get("/admin/cadence?lang=en").get_data(as_text=True)
    assert 'data-village="V21"' not in html and 'data-village="V11"' in html
    assert 'id="rule-form"' not in html and "Remove</button>" not in html


def test_the_csv_of_overdue_villages(app: Flask, client: FlaskClient, auth: AuthActions,
                                     world: World) -> None:
    cadence.set_rule(world.admin, world.county, category("finance"), 31)
    now = utcnow()
    late = published(world, ["V21"], "finance", 60, now=now)
    auth.login("admin")
    response = client.get("/admin/cadence/overdue.csv?sort=days&lang=en")
    assert response.status_code == 200 and response.data.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert table[0][:2] == ["Town", "Village"]
    assert [r[2] for r in table[1:]] == ["V11", "V12", "V21"]
    last = cadence.local_day(now - timedelta(days=60))
    assert table[3][6:] == [last.isoformat(), late.code, "60", "29"]
    assert table[1][6:8] == ["", ""]


def test_setting_and_removing_rules_through_the_form(app: Flask, client: FlaskClient,
                                                     auth: AuthActions, world: World) -> None:
    town_admin = World.user("tadmin", Role.ADMIN, world.town)
    auth.login(town_admin.username)
    token = csrf_token(client, "/admin/cadence")
    finance = category("finance")
    form = {"csrf_token": token, "region": str(world.village.id), "category": str(finance.id),
            "preset": "quarterly", "every_days": ""}
    response = client.post("/admin/cadence/rules", data=form)
    assert response.status_code == 302
    rule = db.session.scalar(select(CadenceRule))
    assert rule is not None and (rule.region_id, rule.every_days) == (world.village.id, 92)
    response = client.post("/admin/cadence/rules", data={**form, "preset": "custom",
                                                         "every_days": "45"})
    db.session.refresh(rule)
    assert response.status_code == 302 and rule.every_days == 45
    # Refusals keep what was typed and say why.
    response = client.post("/admin/cadence/rules?lang=en",
                           data={**form, "preset": "custom", "every_days": "0"})
    assert response.status_code == 422 and "from 1 to 731" in response.get_data(as_text=True)
    response = client.post("/admin/cadence/rules?lang=en",
                           data={**form, "preset": "custom", "every_days": ""})
    assert response.status_code == 422 and "Say how many days." in response.get_data(as_text=True)
    response = client.post("/admin/cadence/rules?lang=en",
                           data={**form, "region": str(world.county.id)})
    assert response.status_code == 403
    assert "outside your regions" in response.get_data(as_text=True)
    response = client.post("/admin/cadence/rules", data={**form, "csrf_token": "x"})
    assert response.status_code in (400, 422)
    # Remove it; a county rule cannot be removed by the town admin.
    county_rule = cadence.set_rule(world.admin, world.county, finance, 31)
    county_rule_id = county_rule.id
    response = client.post(f"/admin/cadence/rules/{county_rule_id}/delete",
                           data={"csrf_token": token})
    assert response.status_code == 403
    response = client.post(f"/admin/cadence/rules/{rule.id}/delete", data={"csrf_token": token})
    assert response.status_code == 302
    assert [r.id for r in db.session.scalars(select(CadenceRule))] == [county_rule_id]
    assert client.post("/admin/cadence/rules/99999/delete",
                       data={"csrf_token": token}).status_code == 404
    assert [a for a, _c in audit_actions()] == ["create", "edit", "create", "delete"]
