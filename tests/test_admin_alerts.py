"""The alerts admin: who sees it, issuing through the confirm step, forms that keep what was
typed, refusals by the service (regions, role), the two-person rule, update, cancel with a
reason, the delivery table (unanswered screens first, never counted), CAP upload and download."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from server.extensions import db
from server.models import Alert, AlertStatus
from server.services import alerts
from server.services import screens as screen_service
from server.services.alerts import AlertInput
from server.services.cap import parse_cap
from tests.conftest import AuthActions, World, csrf_token
from tests.test_alert_cap import BILLION_LAUGHS, message


@pytest.fixture(autouse=True)
def _english(client: FlaskClient) -> None:
    """Assertions read the English messages (the UI defaults to Chinese)."""
    client.set_cookie("lang", "en")


def form(world: World, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "level": "2",
        "event": "暴雨",
        "title": "清源县发布暴雨橙色预警",
        "text": "预计未来6小时柳河镇降雨量将达50毫米以上。",
        "instruction": "远离河道。",
        "sender_name": "清源县应急管理局",
        "targets": [str(world.town.id)],
        "expires_at": "",
        "starts_at": "",
    }
    data.update(overrides)
    return data


def send(client: FlaskClient, url: str, data: dict[str, Any], action: str = "issue",
         page: str | None = None) -> Any:
    data = {**data, "csrf_token": csrf_token(client, page or url), "action": action}
    return client.post(url, data=data)


def count() -> int:
    return db.session.query(Alert).count()


def issue(world: World, user: Any = None, **overrides: Any) -> Alert:
    base: dict[str, Any] = dict(level=2, event="暴雨", title="暴雨橙色预警", text="有大雨。",
                                targets=["T1"])
    base.update(overrides)
    return alerts.issue(user or world.county_alert, AlertInput(**base))


# --- who sees the pages --------------------------------------------------------------------


@pytest.mark.parametrize("username, status, nav", [
    ("calert", 200, True), ("admin", 200, True), ("ceditor", 403, False), ("nobody", 403, False),
])
def test_who_sees_alerts(client: FlaskClient, auth: AuthActions, world: World, username: str,
                         status: int, nav: bool) -> None:
    auth.login(username)
    assert client.get("/admin/alerts").status_code == status
    home = client.get("/admin/").get_data(as_text=True)
    assert ('href="/admin/alerts"' in home) is nav


def test_admin_reads_but_cannot_issue(client: FlaskClient, auth: AuthActions,
                                      world: World) -> None:
    alert = issue(world)
    auth.login("admin")
    page = client.get(f"/admin/alerts/{alert.code}").get_data(as_text=True)
    assert alert.title in page and 'id="cancel"' not in page and 'id="update"' not in page
    assert "Issue an alert" not in client.get("/admin/alerts").get_data(as_text=True)
    assert client.get("/admin/alerts/new").status_code == 403
    # posting anyway: the service refuses, nothing changes
    r = client.post(f"/admin/alerts/{alert.code}/cancel", data={
        "cancel-reason": "x", "cancel-checked": "y",
        "csrf_token": csrf_token(client, f"/admin/alerts/{alert.code}")})
    assert r.status_code == 403
    assert alert.status == AlertStatus.ACTIVE


# --- issuing -------------------------------------------------------------------------------


def test_issue_goes_through_a_confirm_step(client: FlaskClient, auth: AuthActions,
                                           world: World) -> None:
    screen_service.provision(None, world.village, "前王庄村广场屏")
    screen_service.provision(None, world.other_village, "南岭村屏")
    auth.login("calert")
    page = client.get("/admin/alerts/new").get_data(as_text=True)
    for event in ("暴雨", "台风", "森林火险", "突发公共卫生事件", "停水停电"):
        assert f'<option value="{event}">' in page
    assert re.search(r'name="expires_at"[^>]*value="\d{4}-\d\d-\d\dT\d\d:\d\d"', page)
    review = send(client, "/admin/alerts/new", form(world), action="review")
    assert review.status_code == 200 and count() == 0
    html = review.get_data(as_text=True)
    # Neither screen is connected: none is taken over now, both show it when they come back.
    assert 'id="confirm-step"' in html and 'id="screen-count">0<' in html
    assert "1 more are offline now" in html
    # "back to edit" shows the form again with everything kept
    back = send(client, "/admin/alerts/new", form(world), action="edit")
    assert 'id="alert-form"' in back.get_data(as_text=True)
    assert "清源县发布暴雨橙色预警" in back.get_data(as_text=True) and count() == 0
    done = send(client, "/admin/alerts/new", form(world))
    assert done.status_code == 302 and count() == 1
    alert = db.session.query(Alert).one()
    assert alert.status == AlertStatus.ACTIVE and alert.source == "admin"
    assert alert.level == 2 and alert.targets == [world.town]
    assert alert.expires_at - alert.starts_at == alerts.DEFAULT_DURATION
    assert done.headers["Location"].endswith(f"/admin/alerts/{alert.code}")


def test_local_times_are_read_as_beijing_time(client: FlaskClient, auth: AuthActions,
                                              world: World) -> None:
    auth.login("calert")
    from server.models.base import utcnow
    local = utcnow() + timedelta(hours=8)  # Asia/Shanghai has no DST
    expires = (local + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    send(client, "/admin/alerts/new", form(world, expires_at=expires))
    alert = db.session.query(Alert).one()
    assert abs((alert.expires_at - utcnow()) - timedelta(hours=2)) < timedelta(minutes=2)


@pytest.mark.parametrize("overrides, field, words", [
    ({"level": ""}, "level", "Choose a level"),
    ({"title": ""}, "title", "required"),
    ({"targets": []}, "targets", "at least one region"),
    ({"expires_at": "2020-01-01T08:00"}, "expires_at", "expiry must be after"),
    ({"expires_at": "not a date"}, "expires_at", ""),
], ids=["level", "title", "targets", "past", "garbage-date"])
def test_form_keeps_input_on_error(client: FlaskClient, auth: AuthActions, world: World,
                                   overrides: dict[str, Any], field: str, words: str) -> None:
    auth.login("calert")
    r = send(client, "/admin/alerts/new", form(world, **overrides), action="review")
    assert r.status_code == 422 and count() == 0
    html = r.get_data(as_text=True)
    assert 'id="alert-form"' in html and 'id="confirm-step"' not in html
    assert words in html
    assert "预计未来6小时柳河镇降雨量将达50毫米以上。" in html  # what was typed stays
    assert 'value="清源县应急管理局"' in html
    if field != "targets":
        assert f'value="{world.town.id}" checked' in html


def test_region_outside_the_user_is_refused_by_the_service(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    auth.login("talert")  # alert role on 柳河镇 only
    page = client.get("/admin/alerts/new").get_data(as_text=True)
    # the picker offers only T1's subtree
    assert f'name="targets" value="{world.other_town.id}"' not in page
    # a crafted post with 石桥镇 anyway
    r = send(client, "/admin/alerts/new", form(world, targets=[str(world.other_town.id)]),
             page="/admin/alerts/new")
    assert r.status_code == 422 and count() == 0
    assert "Outside the regions you may alert: 石桥镇" in r.get_data(as_text=True)


# --- two persons, update, cancel -----------------------------------------------------------


def test_two_person_rule(app: Flask, client: FlaskClient, auth: AuthActions,
                         world: World) -> None:
    app.config["ALERT_TWO_PERSON"] = True
    auth.login("calert")
    send(client, "/admin/alerts/new", form(world))
    alert = db.session.query(Alert).one()
    assert alert.status == AlertStatus.PENDING
    page = client.get(f"/admin/alerts/{alert.code}").get_data(as_text=True)
    assert 'id="waiting"' in page and "NOT on the screens" in page
    assert 'id="confirm"' not in page  # never the issuer
    url = f"/admin/alerts/{alert.code}/confirm"
    r = client.post(url, data={"checked": "y", "version": "1",
                               "csrf_token": csrf_token(client, f"/admin/alerts/{alert.code}")})
    assert r.status_code == 403 and alert.status == AlertStatus.PENDING
    auth.logout()
    auth.login("calert2")
    token = csrf_token(client, f"/admin/alerts/{alert.code}")
    unticked = client.post(url, data={"csrf_token": token})
    assert unticked.status_code == 422 and alert.status == AlertStatus.PENDING
    assert "Tick the box" in unticked.get_data(as_text=True)
    assert client.post(url, data={"csrf_token": token}, headers={}).status_code == 422
    assert 'name="version" type="hidden" value="1"' in client.get(
        f"/admin/alerts/{alert.code}").get_data(as_text=True)
    r = client.post(url, data={"csrf_token": token, "checked": "y", "version": "1"})
    assert r.status_code == 302
    db.session.refresh(alert)
    assert alert.status == AlertStatus.ACTIVE and alert.confirmed_by_id == world.county_alert2.id


def test_reject_needs_a_reason(app: Flask, client: FlaskClient, auth: AuthActions,
                               world: World) -> None:
    app.config["ALERT_TWO_PERSON"] = True
    alert = issue(world)
    auth.login("calert2")
    url = f"/admin/alerts/{alert.code}/reject"
    token = csrf_token(client, f"/admin/alerts/{alert.code}")
    r = client.post(url, data={"csrf_token": token, "reject-checked": "y"})
    assert r.status_code == 422 and "Say why" in r.get_data(as_text=True)
    r = client.post(url, data={"csrf_token": token, "reject-checked": "y",
                               "reject-reason": "级别有误"})
    assert r.status_code == 302
    db.session.refresh(alert)
    assert alert.status == AlertStatus.REJECTED and alert.end_reason == "级别有误"


def test_update_prefills_and_makes_a_new_version(client: FlaskClient, auth: AuthActions,
                                                 world: World) -> None:
    alert = issue(world, instruction="远离河道。")
    auth.login("calert2")
    page = client.get(f"/admin/alerts/{alert.code}/edit").get_data(as_text=True)
    assert 'value="暴雨橙色预警"' in page and "远离河道。" in page
    assert 'name="level" value="2" checked' in page
    assert f'value="{world.town.id}" checked' in page
    url = f"/admin/alerts/{alert.code}/edit"
    data = form(world, level="1", title="升级为暴雨红色预警",
                expires_at=re.search(r'name="expires_at"[^>]*value="([^"]+)"', page).group(1))
    r = send(client, url, data)
    assert r.status_code == 302
    db.session.refresh(alert)
    assert alert.version == 2 and alert.level == 1 and alert.title == "升级为暴雨红色预警"


def test_cancel_needs_reason_and_tick(client: FlaskClient, auth: AuthActions,
                                      world: World) -> None:
    alert = issue(world)
    auth.login("calert")
    url = f"/admin/alerts/{alert.code}/cancel"
    page = f"/admin/alerts/{alert.code}"
    r = client.post(url, data={"csrf_token": csrf_token(client, page), "cancel-reason": "雨停了"})
    assert r.status_code == 422 and alert.status == AlertStatus.ACTIVE
    html = r.get_data(as_text=True)
    assert "Tick the box" in html and "雨停了" in html  # the reason stays
    assert client.post(url, data={"cancel-reason": "x", "cancel-checked": "y"}).status_code == 400
    assert alert.status == AlertStatus.ACTIVE  # no CSRF token, nothing done
    r = client.post(url, data={"csrf_token": csrf_token(client, page), "cancel-reason": "雨停了",
                               "cancel-checked": "y"})
    assert r.status_code == 302
    db.session.refresh(alert)
    assert alert.status == AlertStatus.CANCELLED and alert.end_reason == "雨停了"
    again = client.get(page).get_data(as_text=True)
    assert "雨停了" in again and 'id="cancel"' not in again


def test_get_never_changes_anything(client: FlaskClient, auth: AuthActions,
                                    world: World) -> None:
    alert = issue(world)
    auth.login("calert")
    for action in ("cancel", "confirm", "reject"):
        assert client.get(f"/admin/alerts/{alert.code}/{action}").status_code == 405
    assert alert.status == AlertStatus.ACTIVE


# --- delivery ------------------------------------------------------------------------------


def test_delivery_table_lists_the_unanswered_first(client: FlaskClient, auth: AuthActions,
                                                   world: World) -> None:
    acked, _t = screen_service.provision(None, world.village, "A 已确认屏")
    sent, _t = screen_service.provision(None, world.village, "B 未应答屏")
    screen_service.provision(None, world.village2, "C 离线屏")
    once, _t = screen_service.provision(None, world.village2, "D 刚发送屏")
    alert = issue(world)
    assert alert.issued_at is not None
    alerts.record_sends([(acked.id, [alert.id]), (sent.id, [alert.id]), (once.id, [alert.id])])
    alerts.record_sends([(sent.id, [alert.id])])
    alerts.record_acks([(acked.id, [f"{alert.code}:1"],
                         alert.issued_at + timedelta(milliseconds=800))])
    auth.login("calert")
    html = client.get(f"/admin/alerts/{alert.code}").get_data(as_text=True)
    assert 'id="ack-count">1 / 4<' in html and "3 not acknowledged" in html
    rows = re.findall(r'<tr data-screen="[^"]+" class="([^"]+)">\s*<td><a[^>]*>([^<]+)<', html)
    assert rows == [("not-acked", "B 未应答屏"), ("not-acked", "C 离线屏"),
                    ("not-acked", "D 刚发送屏"), ("acked", "A 已确认屏")]
    assert "0.8 s" in html and "never sent" in html
    # Sent once a moment ago: waiting, not "resending"; sent twice without an answer: says so.
    assert "waiting for the screen to answer" in html and "no answer yet; sent 2 times" in html
    # the list counts only acknowledgements
    assert "1 / 4" in client.get("/admin/alerts").get_data(as_text=True)
    # the poll answers the same table as JSON
    poll = client.get(f"/admin/alerts/{alert.code}/delivery").get_json()
    assert (poll["acknowledged"], poll["targeted"], poll["waiting"]) == (1, 4, 3)
    assert "B 未应答屏" in poll["html"] and poll["status"] == "active"
    assert 'data-refresh="' in html and "alerts.js" in html


def test_list_shows_in_force_first(client: FlaskClient, auth: AuthActions, world: World) -> None:
    old = issue(world, title="旧预警", level=1)
    alerts.cancel(world.county_alert, old, "解除")
    new = issue(world, title="新预警", level=3)
    auth.login("calert")
    html = client.get("/admin/alerts").get_data(as_text=True)
    assert html.index(new.code) < html.index(old.code)
    assert html.index('data-code="' + new.code + '" class="in-force"') > 0


# --- CAP -----------------------------------------------------------------------------------


def upload(client: FlaskClient, data: bytes, targets: list[str] | None = None) -> Any:
    fields: dict[str, Any] = {
        "csrf_token": csrf_token(client, "/admin/alerts/import"),
        "file": (io.BytesIO(data), "warning.xml"),
    }
    if targets:
        fields["targets"] = targets
    return client.post("/admin/alerts/import", data=fields, content_type="multipart/form-data")


def test_cap_upload_and_download(client: FlaskClient, auth: AuthActions, world: World) -> None:
    auth.login("calert")
    r = upload(client, message(geocodes=()), targets=[str(world.village.id)])
    assert r.status_code == 302, r.get_data(as_text=True)
    alert = db.session.query(Alert).one()
    assert alert.source == "cap" and alert.targets == [world.village]
    xml = client.get(f"/admin/alerts/{alert.code}/cap.xml")
    assert xml.mimetype == "application/cap+xml"
    assert "attachment" in xml.headers["Content-Disposition"]
    assert parse_cap(xml.data).identifier == "QY-1"


@pytest.mark.parametrize("data, words", [
    (b"<alert", "broken XML"),
    (BILLION_LAUGHS, "billion laughs"),
    (message(severity=""), "info/severity"),
    (message(status="Draft"), "status Draft"),
    (message(geocodes=()), "Choose the regions"),
    (message(geocodes=("T2",)), "石桥镇"),
    (message(description="雨" * 100_000), "too large"),
], ids=["broken", "billion-laughs", "missing", "draft", "no-region", "outside", "oversize"])
def test_cap_upload_refusals(client: FlaskClient, auth: AuthActions, world: World,
                             data: bytes, words: str) -> None:
    auth.login("talert")
    r = upload(client, data)
    assert r.status_code in (409, 413, 422), r.status_code
    html = r.get_data(as_text=True)
    assert words in html and 'id="cap-form"' in html
    assert count() == 0


def test_cap_upload_without_a_file(client: FlaskClient, auth: AuthActions, world: World) -> None:
    auth.login("calert")
    r = client.post("/admin/alerts/import",
                    data={"csrf_token": csrf_token(client, "/admin/alerts/import")})
    assert r.status_code == 422 and "Choose a CAP file" in r.get_data(as_text=True)


# --- the residents' page -------------------------------------------------------------------


def test_public_alert_page(app: Flask, client: FlaskClient, world: World) -> None:
    alert = issue(world, level=1, instruction="立即转移。", sender_name="清源县应急管理局")
    r = client.get(f"/a/{alert.code}?lang=zh")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "暴雨红色预警" in html and "立即转移。" in html
    assert "Ⅰ级（红色）" in html
    english = client.get(f"/a/{alert.code}?lang=en").get_data(as_text=True)
    assert "暴雨 red alert" in english and "Level I (red)" in english
    assert "#d32f2f" in html and "<script" not in html
    assert client.get(f"/a/{alert.code}/qr.png").mimetype == "image/png"
    alerts.cancel(world.county_alert, alert, "雨停了")
    html = client.get(f"/a/{alert.code}").get_data(as_text=True)
    assert 'id="ended"' in html and "lifted" in html
    assert client.get("/a/NOPE42").status_code == 404
    assert client.get("/a/<script>").status_code == 404


def test_public_page_hides_pending_and_says_expired(app: Flask, client: FlaskClient,
                                                    world: World) -> None:
    app.config["ALERT_TWO_PERSON"] = True
    pending = issue(world)
    assert client.get(f"/a/{pending.code}").status_code == 404
    app.config["ALERT_TWO_PERSON"] = False
    alert = issue(world)
    from server.models.base import utcnow
    alert.expires_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    html = client.get(f"/a/{alert.code}").get_data(as_text=True)
    assert 'id="ended"' in html and "expired" in html


def test_the_alert_role_can_be_granted(client: FlaskClient, auth: AuthActions,
                                       world: World) -> None:
    auth.login("admin")
    page = client.get("/admin/users/new").get_data(as_text=True)
    assert re.search(r'<option value="alert">Alert issuer</option>', page)


def test_a_change_waiting_on_an_alert_in_force_is_shown_and_confirmed_by_another(
    app: Flask, client: FlaskClient, auth: AuthActions, world: World
) -> None:
    from server.services import alerts as alert_service
    from tests.test_alerts import data

    app.config["ALERT_TWO_PERSON"] = True
    alert = alert_service.issue(world.county_alert, data(level=3))
    alert_service.confirm(world.county_alert2, alert, 1)
    alert_service.update(world.county_alert, alert, data(level=1, title="升级为红色预警"))
    auth.login("calert")
    page = client.get(f"/admin/alerts/{alert.code}").get_data(as_text=True)
    assert 'id="waiting-change"' in page and "升级为红色预警" in page
    assert 'id="confirm"' not in page  # the proposer's own change
    auth.logout()
    auth.login("calert2")
    page = client.get(f"/admin/alerts/{alert.code}").get_data(as_text=True)
    assert 'id="confirm"' in page and 'name="version" type="hidden" value="2"' in page
    token = csrf_token(client, f"/admin/alerts/{alert.code}")
    r = client.post(f"/admin/alerts/{alert.code}/confirm",
                    data={"csrf_token": token, "checked": "y", "version": "2"})
    assert r.status_code == 302
    db.session.refresh(alert)
    assert alert.level == 1 and alert.version == 2 and alert.proposal is None


def test_after_a_cancel_the_report_shows_who_took_it_down(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    took, _t = screen_service.provision(None, world.village, "A 已撤下屏")
    kept, _t = screen_service.provision(None, world.village, "B 未确认屏")
    alert = issue(world)
    assert alert.issued_at is not None
    alerts.record_sends([(took.id, [alert.id]), (kept.id, [alert.id])])
    alerts.record_acks([(took.id, [f"{alert.code}:1"], alert.issued_at),
                        (kept.id, [f"{alert.code}:1"], alert.issued_at)])
    alerts.cancel(world.county_alert, alert, "误报")
    assert alert.ended_at is not None
    # Only the first screen answers the set without the alert; an answer from before the
    # cancellation would not count.
    alerts.record_acks([(took.id, [], alert.ended_at + timedelta(seconds=1)),
                        (kept.id, [], alert.ended_at - timedelta(seconds=5))])
    auth.login("calert")
    html = client.get(f"/admin/alerts/{alert.code}").get_data(as_text=True)
    assert 'id="cleared-count">1 / 2<' in html
    assert "1 not confirmed yet" in html and "taking down not confirmed" in html
    assert "taken down" in html and "data-refresh" in html  # still updating by itself
