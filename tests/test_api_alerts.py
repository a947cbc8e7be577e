"""API /api/v1/alerts: issue by JSON or CAP body, read with the delivery report, confirm under
the two-person rule, update, cancel, CAP export; JSON errors with reasons, nothing saved on a
refusal."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from server.extensions import db
from server.models import Alert, AlertStatus, User
from server.models.base import utcnow
from server.services import alerts, users
from server.services import screens as screen_service
from server.services.cap import parse_cap
from tests.conftest import World
from tests.test_alert_cap import BILLION_LAUGHS, EXTERNAL, message, ref


def auth_for(user: User) -> dict[str, str]:
    return {"Authorization": "Bearer " + users.create_token(user, "warning system")[1]}


BODY: dict[str, Any] = {
    "level": 2,
    "event": "暴雨",
    "title": "清源县发布暴雨橙色预警",
    "text": "预计未来6小时柳河镇降雨量将达50毫米以上。",
    "instruction": "远离河道。",
    "sender_name": "清源县应急管理局",
    "targets": ["T1"],
}


def post(client: FlaskClient, user: User, url: str, body: Any = None, **kw: Any) -> Any:
    return client.post(f"/api/v1{url}", json=body, headers=auth_for(user), **kw)


def count() -> int:
    return db.session.query(Alert).count()


def test_issue_read_list_and_export(app: Flask, client: FlaskClient, world: World) -> None:
    screen_service.provision(None, world.village, "前王庄村广场屏")
    r = post(client, world.county_alert, "/alerts", BODY)
    assert r.status_code == 201, r.get_json()
    alert = r.get_json()
    code = alert["code"]
    assert r.headers["Location"].endswith(f"/api/v1/alerts/{code}")
    assert alert["status"] == "active" and alert["level"] == 2 and alert["level_name"] == "橙色"
    assert alert["targets"] == ["T1"] and alert["source"] == "api"
    assert alert["expires_at"].endswith("+08:00")
    assert alert["delivery"]["targeted"] == 1 and alert["delivery"]["acknowledged"] == 0
    row = alert["delivery"]["screens"][0]
    assert row["name"] == "前王庄村广场屏" and row["acknowledged"] is False
    assert row["latency_ms"] is None and row["online"] is False

    headers = auth_for(world.town_alert)
    listing = client.get("/api/v1/alerts", headers=headers).get_json()
    assert [a["code"] for a in listing["items"]] == [code]
    assert client.get("/api/v1/alerts?status=active", headers=headers).get_json()["items"]
    assert client.get("/api/v1/alerts?status=cancelled", headers=headers).get_json() == {
        "items": []}
    bad = client.get("/api/v1/alerts?status=nope", headers=headers)
    assert bad.status_code == 400 and "status" in bad.get_json()["error"]["fields"]

    one = client.get(f"/api/v1/alerts/{code}", headers=headers)
    assert one.status_code == 200 and one.get_json()["text"] == BODY["text"]
    xml = client.get(f"/api/v1/alerts/{code}.cap", headers=headers)
    assert xml.status_code == 200 and xml.mimetype == "application/cap+xml"
    assert parse_cap(xml.data).identifier == alert["identifier"]
    assert client.get("/api/v1/alerts/NOPE99", headers=headers).status_code == 404
    # a user who sees nothing of the county
    assert client.get(f"/api/v1/alerts/{code}",
                      headers=auth_for(world.nobody)).status_code == 403


def test_acknowledged_screens_show_latency(app: Flask, client: FlaskClient,
                                           world: World) -> None:
    screen, _token = screen_service.provision(None, world.village, "屏一")
    screen_service.provision(None, world.village2, "屏二")
    alert = alerts.issue(world.county_alert, alerts.AlertInput(**BODY))
    assert alert.issued_at is not None
    alerts.record_sends([(screen.id, [alert.id])])
    alerts.record_acks([(screen.id, [f"{alert.code}:1"],
                         alert.issued_at + timedelta(milliseconds=800))])
    got = client.get(f"/api/v1/alerts/{alert.code}",
                     headers=auth_for(world.county_alert)).get_json()["delivery"]
    assert (got["targeted"], got["acknowledged"], got["waiting"]) == (2, 1, 1)
    first, second = got["screens"]
    assert first["name"] == "屏二" and first["acknowledged"] is False  # waiting ones first
    assert second["latency_ms"] == 800 and second["attempts"] == 1
    assert got["screens_complete"] is True


def test_the_delivery_rows_are_bounded_the_counts_are_not(app: Flask, client: FlaskClient,
                                                          world: World) -> None:
    made = [screen_service.provision(None, world.village, f"屏{i:02d}")[0] for i in range(7)]
    alert = alerts.issue(world.county_alert, alerts.AlertInput(**BODY))
    assert alert.issued_at is not None
    alerts.record_sends([(s.id, [alert.id]) for s in made])
    alerts.record_acks([(s.id, [f"{alert.code}:1"], alert.issued_at) for s in made[:5]])
    headers = auth_for(world.county_alert)

    def get(query: str) -> Any:
        return client.get(f"/api/v1/alerts/{alert.code}{query}", headers=headers)

    some = get("?screens=3").get_json()["delivery"]
    assert (some["targeted"], some["acknowledged"], some["waiting"]) == (7, 5, 2)
    assert [s["name"] for s in some["screens"]] == ["屏05", "屏06", "屏00"]  # waiting first
    assert some["screens_complete"] is False
    none = get("?screens=0").get_json()["delivery"]
    assert none["screens"] == [] and none["acknowledged"] == 5
    every = get("?screens=all").get_json()["delivery"]
    assert len(every["screens"]) == 7 and every["screens_complete"] is True
    bad = get("?screens=lots")
    assert bad.status_code == 400 and "screens" in bad.get_json()["error"]["fields"]


def test_two_person_update_and_cancel(app: Flask, client: FlaskClient, world: World) -> None:
    app.config["ALERT_TWO_PERSON"] = True
    r = post(client, world.county_alert, "/alerts", BODY)
    code = r.get_json()["code"]
    assert r.get_json()["status"] == "pending" and r.get_json()["delivery"] is None
    waiting = r.get_json()["awaiting_confirmation"]
    assert waiting["version"] == 1 and [u["username"] for u in waiting["by"]] == ["calert"]
    own = post(client, world.county_alert, f"/alerts/{code}/confirm", {"version": 1})
    assert own.status_code == 403, own.get_json()
    unnamed = post(client, world.county_alert2, f"/alerts/{code}/confirm", {})
    assert unnamed.status_code == 422 and "version" in unnamed.get_json()["error"]["fields"]
    ok = post(client, world.county_alert2, f"/alerts/{code}/confirm", {"version": 1})
    assert ok.status_code == 200 and ok.get_json()["status"] == "active"
    assert ok.get_json()["confirmed_by"]["username"] == "calert2"
    again = post(client, world.county_alert2, f"/alerts/{code}/confirm", {"version": 1})
    assert again.status_code == 409

    upd = post(client, world.county_alert, f"/alerts/{code}/update",
               {"level": "I", "title": "升级为红色预警"})
    assert upd.status_code == 200, upd.get_json()
    body = upd.get_json()
    # Raising the level waits for a second person; the screens keep version 1 meanwhile.
    assert body["version"] == 1 and body["level"] != 1
    change = body["awaiting_confirmation"]
    assert change["version"] == 2 and change["change"]["level"] == 1
    assert change["change"]["title"] == "升级为红色预警"
    assert change["change"]["text"] == BODY["text"]  # fields not sent keep their values
    assert post(client, world.county_alert, f"/alerts/{code}/confirm",
                {"version": 2}).status_code == 403
    done = post(client, world.county_alert2, f"/alerts/{code}/confirm", {"version": 2})
    assert done.status_code == 200, done.get_json()
    body = done.get_json()
    assert body["version"] == 2 and body["level"] == 1 and body["title"] == "升级为红色预警"
    assert body["awaiting_confirmation"] is None
    wrong = post(client, world.county_alert, f"/alerts/{code}/update", {"colour": "red"})
    assert wrong.status_code == 400 and "colour" in wrong.get_json()["error"]["fields"]

    outsider = post(client, world.town_alert, f"/alerts/{code}/cancel", {"reason": "x"})
    assert outsider.status_code == 200  # the town's alert user covers the alert's town
    assert outsider.get_json()["status"] == "cancelled"
    assert post(client, world.county_alert, f"/alerts/{code}/cancel", {}).status_code == 409


def test_reject(app: Flask, client: FlaskClient, world: World) -> None:
    app.config["ALERT_TWO_PERSON"] = True
    code = post(client, world.county_alert, "/alerts", BODY).get_json()["code"]
    r = post(client, world.county_alert2, f"/alerts/{code}/reject", {"reason": "级别不对"})
    assert r.get_json()["status"] == "rejected" and r.get_json()["end_reason"] == "级别不对"


@pytest.mark.parametrize(
    "user_name, body, status, field",
    [
        ("town_alert", {**BODY, "targets": ["T2"]}, 422, "targets"),
        ("town_alert", {**BODY, "targets": ["NOPE"]}, 422, "targets"),
        ("county_alert", {**BODY, "level": 7}, 422, "level"),
        ("county_alert", {**BODY, "title": ""}, 422, "title"),
        ("county_alert", {**BODY, "expires_at": "2020-01-01T00:00:00"}, 422, "expires_at"),
        ("county_alert", {**BODY, "expires_at": "soon"}, 422, "expires_at"),
        ("county_alert", {**BODY, "unknown": 1}, 400, "unknown"),
        ("admin", BODY, 403, None),
        ("county_editor", BODY, 403, None),
    ],
    ids=["outside", "unknown-region", "level", "title", "past", "bad-time", "unknown-field",
         "admin", "editor"],
)
def test_json_refusals(app: Flask, client: FlaskClient, world: World, user_name: str,
                       body: dict[str, Any], status: int, field: str | None) -> None:
    r = post(client, getattr(world, user_name), "/alerts", body)
    assert r.status_code == status, r.get_json()
    error = r.get_json()["error"]
    assert error["message"]
    if field:
        assert field in error["fields"], error
    assert count() == 0


def cap_post(client: FlaskClient, user: User, data: bytes, query: str = "",
             mimetype: str = "application/cap+xml") -> Any:
    return client.post(f"/api/v1/alerts{query}", data=data, content_type=mimetype,
                       headers=auth_for(user))


def test_cap_alert_update_cancel(app: Flask, client: FlaskClient, world: World) -> None:
    r = cap_post(client, world.county_alert, message())
    assert r.status_code == 201, r.get_json()
    got = r.get_json()
    assert got["source"] == "api" and got["identifier"] == "QY-1" and got["targets"] == ["T1"]
    r = cap_post(client, world.county_alert, message(identifier="QY-2", geocodes=()),
                 query="?targets=V11", mimetype="application/xml")
    assert r.status_code == 201 and r.get_json()["targets"] == ["V11"]
    upd = cap_post(client, world.county_alert,
                   message(msg_type="Update", identifier="QY-3", references=ref("QY-1"),
                           severity="Extreme"))
    assert upd.status_code == 200 and upd.get_json()["level"] == 1
    assert upd.get_json()["version"] == 2
    cancel = cap_post(client, world.county_alert,
                      message(msg_type="Cancel", identifier="QY-4", references=ref("QY-3"),
                              info=""))
    assert cancel.status_code == 200 and cancel.get_json()["status"] == "cancelled"


@pytest.mark.parametrize(
    "data, status, words",
    [
        (b"<alert><oops></alert>", 422, "broken XML"),
        (BILLION_LAUGHS, 422, "billion laughs"),
        (EXTERNAL, 422, "file:///etc/passwd"),
        (message(severity=""), 422, "info/severity"),
        (message(urgency="Soon"), 422, "'Soon'"),
        (message(status="Test"), 422, "status Test"),
        (message(msg_type="Update", identifier="Q9", references=ref("GONE-1")), 422, "GONE-1"),
        (message(geocodes=("T2",)), 422, "石桥镇"),
        (message(description="雨" * 100_000), 413, "消息过大"),
        (b"", 400, "请将 CAP 消息"),
    ],
    ids=["broken", "billion-laughs", "external-entity", "missing", "unknown-value", "test",
         "unknown-reference", "outside-region", "oversize", "empty"],
)
def test_cap_refusals(app: Flask, client: FlaskClient, world: World, data: bytes, status: int,
                      words: str) -> None:
    r = cap_post(client, world.town_alert, data)
    assert r.status_code == status, r.get_json()
    error = r.get_json()["error"]
    text = error["message"] + " ".join((error.get("fields") or {}).values())
    assert words in text, error
    assert count() == 0


def test_unknown_region_in_the_query(app: Flask, client: FlaskClient, world: World) -> None:
    r = cap_post(client, world.county_alert, message(), query="?targets=ZZ9")
    assert r.status_code == 422 and "ZZ9" in r.get_json()["error"]["fields"]["targets"]
    assert count() == 0


def test_expired_alert_is_not_in_force(app: Flask, client: FlaskClient, world: World) -> None:
    alert = alerts.issue(world.county_alert, alerts.AlertInput(**BODY))
    alert.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    alerts.expire_due()
    r = client.get(f"/api/v1/alerts/{alert.code}", headers=auth_for(world.county_alert))
    assert r.get_json()["status"] == AlertStatus.EXPIRED.value


def test_plain_editors_and_reviewers_see_no_alerts_in_the_api(
    app: Flask, client: FlaskClient, world: World
) -> None:
    """Pending alerts and every targeted screen are for alert users and administrators."""
    code = post(client, world.county_alert, "/alerts", BODY).get_json()["code"]
    for user in (world.county_editor, world.county_reviewer, world.town_editor):
        for url in ("/alerts", f"/alerts/{code}", f"/alerts/{code}.cap", "/alerts/nope"):
            r = client.get(f"/api/v1{url}", headers=auth_for(user))
            assert r.status_code == 403, (user.username, url, r.status_code)
    assert client.get(f"/api/v1/alerts/{code}", headers=auth_for(world.admin)).status_code == 200
    assert client.get("/api/v1/alerts", headers=auth_for(world.town_alert)).status_code == 200
