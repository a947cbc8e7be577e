"""The two-person rule (CUNPING_ALERT_TWO_PERSON=1), row by row as docs/alerts.md's table
states it: a confirmation names the exact version it confirms; its issuer and everyone who
edited that version may not give it; any change to a pending alert needs a new confirmation;
on an alert in force, raising the level or widening the targets waits for a second person
while the screens keep the alert as it was; cancelling stays one person, audited."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from server.extensions import db
from server.models import Alert, AlertStatus, AuditEvent
from server.services import alerts
from server.services.errors import Conflict, PermissionDenied, ValidationError
from tests.conftest import World
from tests.test_alerts import data


@pytest.fixture(autouse=True)
def _rule_on(app: Flask) -> None:
    app.config["ALERT_TWO_PERSON"] = True


def pending(world: World, **fields: Any) -> Alert:
    alert = alerts.issue(world.county_alert, data(**fields))
    assert alert.status == AlertStatus.PENDING
    return alert


def active(world: World, **fields: Any) -> Alert:
    alert = pending(world, **fields)
    return alerts.confirm(world.county_alert2, alert, alert.version)


def actions(alert: Alert) -> list[str]:
    return [e.action for e in db.session.query(AuditEvent).filter_by(
        entity="alert", entity_id=alert.id).order_by(AuditEvent.id)]


# -- a pending alert --------------------------------------------------------------------------


def test_row1_an_issued_alert_waits_and_names_its_version_and_issuer(world: World) -> None:
    alert = pending(world)
    assert alerts.awaiting(alert) == 1 and alert.authors == [world.county_alert.id]
    assert alerts.in_force() == []


def test_row2_the_issuer_cannot_confirm(world: World) -> None:
    alert = pending(world)
    with pytest.raises(PermissionDenied):
        alerts.confirm(world.county_alert, alert, 1)
    assert alert.status == AlertStatus.PENDING


def test_row3_another_alert_user_confirms_the_version_read(world: World) -> None:
    alert = pending(world)
    alerts.confirm(world.county_alert2, alert, 1)
    assert alert.status == AlertStatus.ACTIVE and alert.confirmed_by == world.county_alert2
    assert alerts.in_force() == [alert]


def test_row4_an_editor_of_the_pending_version_cannot_confirm_it(world: World) -> None:
    """The 'second person' rewrites the pending alert, then would confirm their own text."""
    alert = pending(world)
    alerts.update(world.county_alert2, alert, data(level=1, text="改过的内容"))
    assert alert.status == AlertStatus.PENDING and alert.version == 2
    assert alert.authors == [world.county_alert.id, world.county_alert2.id]
    for author in (world.county_alert, world.county_alert2):
        with pytest.raises(PermissionDenied):
            alerts.confirm(author, alert, 2)
    alerts.confirm(world.town_alert, alert, 2)  # a third person, covering the town
    assert alert.status == AlertStatus.ACTIVE and alert.level == 1


def test_row5_a_confirmation_of_a_version_changed_since_is_refused(world: World) -> None:
    """The issuer changes the alert after the reviewer opened it: the reviewer's
    confirmation names version 1 and does not put version 2 in force."""
    alert = pending(world)
    alerts.update(world.county_alert, alert, data(text="审核之后偷偷改的"))
    with pytest.raises(Conflict, match=r"version 1|第 1 版"):
        alerts.confirm(world.county_alert2, alert, 1)
    assert alert.status == AlertStatus.PENDING
    alerts.confirm(world.county_alert2, alert, 2)  # read again, confirmed
    assert alert.status == AlertStatus.ACTIVE and alert.text == "审核之后偷偷改的"


@pytest.mark.parametrize("version", [None, "1", 1.0, True])
def test_row6_a_confirmation_must_name_the_version(world: World, version: Any) -> None:
    alert = pending(world)
    with pytest.raises(ValidationError):
        alerts.confirm(world.county_alert2, alert, version)
    assert alert.status == AlertStatus.PENDING


def test_row7_nothing_waiting_nothing_to_confirm(world: World) -> None:
    alert = active(world)
    with pytest.raises(Conflict):
        alerts.confirm(world.town_alert, alert, alert.version)
    with pytest.raises(Conflict):
        alerts.reject(world.town_alert, alert, "?")


def test_row8_only_alert_users_covering_the_targets_confirm(world: World) -> None:
    alert = pending(world, targets=["C0"])
    for user in (world.admin, world.town_alert):
        with pytest.raises(PermissionDenied):
            alerts.confirm(user, alert, 1)
    assert alert.status == AlertStatus.PENDING


# -- an alert in force --------------------------------------------------------------------------


def test_row9_lowering_narrowing_or_rewording_acts_at_once(world: World) -> None:
    alert = active(world, level=2, targets=["T1"])
    alerts.update(world.county_alert, alert, data(level=3, targets=["V11"], text="雨势减弱"))
    assert alert.version == 2 and alert.level == 3 and alert.proposal is None
    assert [r.code for r in alert.targets] == ["V11"] and alert.text == "雨势减弱"


@pytest.mark.parametrize("change", [{"level": 1}, {"targets": ["T1", "T2"]}, {"targets": ["C0"]}])
def test_row10_raising_the_level_or_widening_waits_for_a_second_person(
    world: World, change: dict[str, Any]
) -> None:
    alert = active(world, level=2, targets=["T1"])
    alerts.update(world.county_alert, alert, data(**change))
    assert alert.version == 1 and alert.level == 2 and [r.code for r in alert.targets] == ["T1"]
    assert alert.proposal is not None and alerts.awaiting(alert) == 2
    assert alerts.in_force()[0].version == 1  # the screens keep version 1
    assert actions(alert)[-1] == "propose"


def test_row11_the_proposer_cannot_confirm_the_change_another_person_does(
    world: World
) -> None:
    alert = active(world, level=2, targets=["T1"])
    alerts.update(world.county_alert, alert, data(level=1, targets=["C0"]))
    with pytest.raises(PermissionDenied):
        alerts.confirm(world.county_alert, alert, 2)
    alerts.confirm(world.county_alert2, alert, 2)
    assert alert.version == 2 and alert.level == 1 and [r.code for r in alert.targets] == ["C0"]
    assert alert.proposal is None and alert.confirmed_by == world.county_alert2


def test_row12_a_replaced_change_cannot_be_confirmed(world: World) -> None:
    """A reviewed change is swapped for another before the confirmation: the confirmation of
    the first does not make the second."""
    alert = active(world, level=3, targets=["T1"])
    alerts.update(world.county_alert, alert, data(level=2))
    alerts.update(world.town_alert, alert, data(level=1))
    assert alerts.awaiting(alert) == 3
    with pytest.raises(Conflict):
        alerts.confirm(world.county_alert2, alert, 2)
    for author in (world.county_alert, world.town_alert):  # both wrote it
        with pytest.raises(PermissionDenied):
            alerts.confirm(author, alert, 3)
    alerts.confirm(world.county_alert2, alert, 3)
    assert alert.level == 1 and alert.version == 3


def test_row13_a_change_can_be_rejected_and_the_alert_stays(world: World) -> None:
    alert = active(world, level=2)
    alerts.update(world.county_alert, alert, data(level=1))
    alerts.reject(world.county_alert2, alert, "不需要升级")
    assert alert.status == AlertStatus.ACTIVE and alert.level == 2 and alert.proposal is None
    assert actions(alert)[-1] == "reject"


def test_row14_an_immediate_change_drops_a_waiting_one(world: World) -> None:
    alert = active(world, level=2)
    alerts.update(world.county_alert, alert, data(level=1))
    alerts.update(world.county_alert2, alert, data(level=2, text="更正文字"))
    assert alert.proposal is None and alert.version == 3 and alert.level == 2
    with pytest.raises(Conflict):
        alerts.confirm(world.town_alert, alert, 2)


def test_row15_cancelling_is_one_person_and_audited(world: World) -> None:
    alert = active(world)
    alerts.update(world.county_alert, alert, data(level=1))
    alerts.cancel(world.county_alert, alert, "解除")
    assert alert.status == AlertStatus.CANCELLED and alert.proposal is None
    assert actions(alert)[-1] == "cancel"
    event = db.session.query(AuditEvent).filter_by(entity="alert", entity_id=alert.id,
                                                   action="cancel").one()
    assert event.user_id == world.county_alert.id and event.reason == "解除"


def test_row16_without_the_rule_everything_acts_at_once(app: Flask, world: World) -> None:
    app.config["ALERT_TWO_PERSON"] = False
    alert = alerts.issue(world.county_alert, data(level=3))
    assert alert.status == AlertStatus.ACTIVE
    alerts.update(world.county_alert, alert, data(level=1, targets=["C0"]))
    assert alert.level == 1 and alert.proposal is None
