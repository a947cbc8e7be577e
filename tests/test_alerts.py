"""The alert service (issue, two-person rule, update, cancel, expiry, permissions) and the
dispatcher that sends each connected screen its alert set until it acknowledges."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask_socketio import SocketIOTestClient

from player import protocol
from server import signals
from server.extensions import db, socketio
from server.models import AlertDelivery, AlertStatus, AuditEvent
from server.models.base import utcnow
from server.realtime.alert_dispatch import retry_after
from server.realtime.state import state
from server.services import alerts
from server.services import screens as screen_service
from server.services.alerts import AlertInput
from server.services.errors import Conflict, PermissionDenied, ValidationError
from tests.conftest import World

NS = protocol.NAMESPACE


def data(**overrides: Any) -> AlertInput:
    base: dict[str, Any] = {
        "level": 2,
        "event": "暴雨",
        "title": "清源县气象台发布暴雨橙色预警",
        "text": "预计未来6小时内柳河镇降雨量将达50毫米以上。",
        "instruction": "请远离河道，转移低洼地带人员。",
        "sender_name": "清源县应急管理局",
        "targets": ["T1"],
    }
    base.update(overrides)
    return AlertInput(**base)


@pytest.fixture
def changes() -> Any:
    seen: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        seen.append(kwargs)

    signals.alerts_changed.connect(receiver)
    yield seen
    signals.alerts_changed.disconnect(receiver)


# --- the service ---------------------------------------------------------------------------


def test_issue_puts_the_alert_in_force_and_announces_it(
    app: Flask, world: World, changes: list[dict[str, Any]]
) -> None:
    alert = alerts.issue(world.county_alert, data())
    assert alert.status == AlertStatus.ACTIVE and alert.version == 1
    assert alert.issued_at is not None and alert.expires_at > alert.starts_at
    assert [r.code for r in alert.targets] == ["T1"]
    assert alert.identifier == f"CUNPING-{alert.code}-1"
    assert changes == [{"alert_ids": [alert.id], "region_ids": [world.town.id],
                        "reason": "issue"}]
    payload = alerts.payload(alert)
    assert protocol.check_alert(payload) is payload
    assert payload["color"] == protocol.LEVEL_COLORS[2]
    assert payload["url"].endswith(f"/a/{alert.code}")
    assert db.session.query(AuditEvent).filter_by(entity="alert", action="issue").count() == 1


def test_only_the_alert_role_issues_and_an_admin_does_not_have_it(
    app: Flask, world: World
) -> None:
    for user in (world.admin, world.county_editor, world.nobody):
        with pytest.raises(PermissionDenied):
            alerts.issue(user, data())
    assert alerts.in_force() == []


def test_an_alert_outside_the_users_regions_is_refused(app: Flask, world: World) -> None:
    with pytest.raises(ValidationError) as err:
        alerts.issue(world.town_alert, data(targets=["T2"]))
    assert "石桥镇" in err.value.errors["targets"]
    with pytest.raises(ValidationError):
        alerts.issue(world.town_alert, data(targets=["C0"]))
    assert alerts.issue(world.town_alert, data(targets=["V11"])).status == AlertStatus.ACTIVE


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"level": 5}, "level"),
        ({"level": "purple"}, "level"),
        ({"title": "  "}, "title"),
        ({"text": ""}, "text"),
        ({"event": "x" * 81}, "event"),
        ({"targets": []}, "targets"),
        ({"targets": ["NOPE"]}, "targets"),
        ({"expires_at": utcnow() - timedelta(minutes=1)}, "expires_at"),
        ({"starts_at": utcnow(), "expires_at": utcnow() + timedelta(days=40)}, "expires_at"),
    ],
)
def test_bad_input_names_the_field(
    app: Flask, world: World, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as err:
        alerts.issue(world.county_alert, data(**overrides))
    assert field in err.value.errors
    assert alerts.in_force() == []


def test_levels_are_read_from_roman_numerals_and_colours(app: Flask, world: World) -> None:
    assert alerts.parse_level("II") == 2
    assert alerts.parse_level("红色") == 1
    assert alerts.parse_level(3) == 3
    assert alerts.parse_level("blue") == 4
    assert alerts.parse_level(0) == 0


def test_two_person_rule(app: Flask, world: World, changes: list[dict[str, Any]]) -> None:
    app.config["ALERT_TWO_PERSON"] = True
    alert = alerts.issue(world.county_alert, data())
    assert alert.status == AlertStatus.PENDING and alert.issued_at is None
    assert alerts.in_force() == [] and changes == []
    with pytest.raises(PermissionDenied):
        alerts.confirm(world.county_alert, alert, 1)  # not the issuer
    with pytest.raises(PermissionDenied):
        alerts.confirm(world.admin, alert, 1)  # not without the alert role
    alerts.confirm(world.county_alert2, alert, 1)
    assert alert.status == AlertStatus.ACTIVE and alert.confirmed_by == world.county_alert2
    assert alerts.in_force() == [alert]
    assert [c["reason"] for c in changes] == ["confirm"]
    with pytest.raises(Conflict):
        alerts.confirm(world.county_alert2, alert, 1)


def test_a_pending_alert_can_be_rejected(app: Flask, world: World) -> None:
    app.config["ALERT_TWO_PERSON"] = True
    alert = alerts.issue(world.county_alert, data())
    alerts.reject(world.county_alert2, alert, "级别有误")
    assert alert.status == AlertStatus.REJECTED and alert.end_reason == "级别有误"
    assert alerts.in_force() == []


def test_update_is_a_new_version_referencing_the_old_message(
    app: Flask, world: World, changes: list[dict[str, Any]]
) -> None:
    alert = alerts.issue(world.county_alert, data())
    first_identifier = alert.identifier
    alerts.update(world.county_alert, alert, data(level=1, title="暴雨红色预警",
                                                  targets=["C0"]))
    assert alert.version == 2 and alert.level == 1 and alert.title == "暴雨红色预警"
    assert alert.identifier == f"CUNPING-{alert.code}-2"
    assert alert.references[-1][1] == first_identifier
    assert alerts.by_identifier(first_identifier) is alert
    # Old and new targets are told: the town keeps it, the whole county now gets it.
    assert set(changes[-1]["region_ids"]) == {world.town.id, world.county.id}
    assert changes[-1]["reason"] == "update"


def test_cancel_ends_it_at_once(app: Flask, world: World,
                                changes: list[dict[str, Any]]) -> None:
    alert = alerts.issue(world.county_alert, data())
    with pytest.raises(PermissionDenied):
        alerts.cancel(world.county_editor, alert)
    alerts.cancel(world.county_alert2, alert, "雨势减弱")
    assert alert.status == AlertStatus.CANCELLED and alert.ended_by == world.county_alert2
    assert alerts.in_force() == []
    assert changes[-1]["reason"] == "cancel"
    with pytest.raises(Conflict):
        alerts.cancel(world.county_alert, alert)
    with pytest.raises(Conflict):
        alerts.update(world.county_alert, alert, data())


def test_expiry_by_the_scheduler(app: Flask, world: World,
                                 changes: list[dict[str, Any]]) -> None:
    from server import scheduler

    alert = alerts.issue(world.county_alert, data())
    alert.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert alerts.in_force() == []  # out of force at its time, before any pass
    scheduler.tick(app)
    db.session.refresh(alert)
    assert alert.status == AlertStatus.EXPIRED
    assert changes[-1]["reason"] == "expire"


def test_in_force_orders_by_level_and_selects_by_region_chain(
    app: Flask, world: World
) -> None:
    blue = alerts.issue(world.county_alert, data(level=4, targets=["C0"]))
    red = alerts.issue(world.county_alert, data(level=1, targets=["V21"]))
    orange = alerts.issue(world.county_alert, data(level=2, targets=["T1"]))
    assert alerts.in_force() == [red, orange, blue]
    screen, _token = screen_service.provision(None, world.village, "屏")
    assert alerts.for_screen(screen) == [orange, blue]
    other, _token = screen_service.provision(None, world.other_village, "屏")
    assert alerts.for_screen(other) == [red, blue]


def test_acknowledgements_count_only_the_current_version(app: Flask, world: World) -> None:
    alert = alerts.issue(world.county_alert, data())
    s1, _ = screen_service.provision(None, world.village, "一号屏")
    s2, _ = screen_service.provision(None, world.village2, "二号屏")
    screen_service.provision(None, world.other_village, "外镇屏")  # not targeted
    report = alerts.delivery_report(alert)
    assert (report.acknowledged, report.targeted) == (0, 2)
    alerts.record_sends([(s1.id, [alert.id]), (s2.id, [alert.id])])
    alerts.record_sends([(s2.id, [alert.id])])
    key = protocol.alert_key(alerts.payload(alert))
    assert alerts.record_acks([(s1.id, [key, "junk", 7], utcnow())]) == 1
    assert alerts.record_acks([(s1.id, [key], utcnow())]) == 0  # once
    report = alerts.delivery_report(alert)
    assert (report.acknowledged, report.targeted) == (1, 2)
    assert [r.screen.name for r in report.waiting] == ["二号屏"]
    assert report.waiting[0].delivery is not None and report.waiting[0].delivery.attempts == 2
    done = next(r for r in report.rows if r.acknowledged)
    assert done.delivery is not None and done.delivery.latency_ms is not None
    # An update needs a new acknowledgement; the old version's does not count.
    alerts.update(world.county_alert, alert, data(title="更新"))
    assert alerts.record_acks([(s1.id, [key], utcnow())]) == 0
    assert alerts.delivery_report(alert).acknowledged == 0
    assert alerts.record_acks([(s1.id, [f"{alert.code}:2"], utcnow())]) == 1


# --- the dispatcher over Socket.IO ---------------------------------------------------------


class Screen:
    def __init__(self, app: Flask, region: Any, name: str) -> None:
        self.screen, token = screen_service.provision(None, region, name)
        self.client: SocketIOTestClient = socketio.test_client(
            app, namespace=NS, auth={"token": token, "revision": 0, "digest": ""})
        assert self.client.is_connected(NS)

    def alert_sets(self) -> list[list[str]]:
        return [[protocol.alert_key(a) for a in e["args"][0]["alerts"]]
                for e in self.client.get_received(NS) if e["name"] == protocol.ALERTS]


def test_connect_sends_the_alerts_in_force_first(app: Flask, world: World) -> None:
    alert = alerts.issue(world.county_alert, data())
    screen = Screen(app, world.village, "屏")
    received = screen.client.get_received(NS)
    assert received[0]["name"] == protocol.ALERTS
    assert [a["code"] for a in received[0]["args"][0]["alerts"]] == [alert.code]
    assert received[1]["name"] == protocol.WELCOME


def test_a_connect_sends_the_alerts_and_leaves_their_record_to_the_loop(
    app: Flask, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a storm with an alert in force a connect makes no query: its send is recorded with
    the next acknowledgements (sends first), by the dispatcher's loop."""
    alert = alerts.issue(world.county_alert, data())
    dispatcher = state(app).dispatcher
    monkeypatch.setattr(dispatcher, "_running", True)  # as in a serving process
    screen = Screen(app, world.village, "屏")
    assert screen.alert_sets() == [[f"{alert.code}:1"]]
    assert db.session.query(AlertDelivery).filter_by(alert_id=alert.id).count() == 0
    assert dispatcher._sends == [(screen.screen.id, [alert.id])]
    dispatcher._flush()
    row = db.session.query(AlertDelivery).filter_by(alert_id=alert.id).one()
    assert row.screen_id == screen.screen.id and row.attempts == 1 and row.acked_at is None
    assert dispatcher._sends == []


def test_changes_reach_the_targeted_screens_only(app: Flask, world: World) -> None:
    inside = Screen(app, world.village, "柳河屏")
    outside = Screen(app, world.other_village, "石桥屏")
    inside.alert_sets(), outside.alert_sets()  # the empty sets of the connect
    alert = alerts.issue(world.county_alert, data())
    assert inside.alert_sets() == [[f"{alert.code}:1"]]
    assert outside.alert_sets() == []
    alerts.update(world.county_alert, alert, data(level=1))
    assert inside.alert_sets() == [[f"{alert.code}:2"]]
    alerts.cancel(world.county_alert, alert)
    assert inside.alert_sets() == [[]]
    assert outside.alert_sets() == []


def test_the_acknowledgement_is_recorded(app: Flask, world: World) -> None:
    screen = Screen(app, world.village, "屏")
    alert = alerts.issue(world.county_alert, data())
    ack = screen.client.emit(protocol.ALERTS_ACK, {"have": [f"{alert.code}:1"]}, namespace=NS,
                             callback=True)
    assert ack == {"status": "ok"}
    row = db.session.query(AlertDelivery).filter_by(alert_id=alert.id).one()
    assert row.acked_at is not None and row.attempts >= 1


def test_only_screens_that_did_not_acknowledge_are_sent_again(app: Flask, world: World) -> None:
    """Acknowledgements are events, gathered: a lost one means a resend to that screen only;
    a duplicate (or one for an old version) changes nothing."""
    dispatcher = state(app).dispatcher
    answering, silent = Screen(app, world.village, "答"), Screen(app, world.village, "默")
    answering.alert_sets(), silent.alert_sets()
    alert = alerts.issue(world.county_alert, data())
    key = f"{alert.code}:1"
    assert answering.alert_sets() == [[key]] and silent.alert_sets() == [[key]]
    for _ in range(2):  # the second is a duplicate
        assert answering.client.emit(protocol.ALERTS_ACK, {"have": [key]}, namespace=NS,
                                     callback=True) == {"status": "ok"}
    for bad in (None, {"have": "x"}, {"have": [1]}, {"have": ["x" * 41]}):
        ack = silent.client.emit(protocol.ALERTS_ACK, bad, namespace=NS, callback=True)
        assert ack == {"status": "ignored", "reason": "malformed acknowledgement"}
    # A pass now visits only the screen still waiting, not every connection.
    assert [dispatcher._peers[sid].screen_id for sid in dispatcher._waiting] == [silent.screen.id]
    for peer in dispatcher._peers.values():
        peer.sent_at -= retry_after(peer.attempts) + 0.1
    dispatcher.run_pass()
    assert answering.alert_sets() == []
    assert silent.alert_sets() == [[key]]
    rows = {r.screen_id: r for r in db.session.query(AlertDelivery).filter_by(alert_id=alert.id)}
    assert rows[answering.screen.id].acked_at is not None
    assert rows[answering.screen.id].attempts == 1
    assert rows[silent.screen.id].acked_at is None and rows[silent.screen.id].attempts == 2
    assert alerts.delivery_report(alert).acknowledged == 1


def test_an_alert_to_many_screens_is_encoded_once_per_set(
    app: Flask, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    screens = [Screen(app, world.village, f"屏{n}") for n in range(5)]
    other = Screen(app, world.town, "镇屏")
    for screen in [*screens, other]:
        screen.alert_sets()  # the empty sets of the connects
    sent: list[Any] = []
    deliver = socketio.server._send_eio_packet  # the test client's, which hands it over

    def recording(eio_sid: str, pkt: Any) -> None:
        if protocol.ALERTS in str(pkt.data)[:20]:
            sent.append(pkt)
        deliver(eio_sid, pkt)

    monkeypatch.setattr(socketio.server, "_send_eio_packet", recording)
    alerts.issue(world.county_alert, data())
    # Six screens with two chains, the same set: one encoded packet for all six.
    assert len(sent) == 6
    assert len({id(pkt) for pkt in sent}) == 1
    assert all(len(s.alert_sets()) == 1 for s in [*screens, other])


def test_unanswered_sends_are_retried_with_backoff(app: Flask, world: World) -> None:
    screen = Screen(app, world.village, "屏")
    screen.alert_sets()
    alert = alerts.issue(world.county_alert, data())
    assert screen.alert_sets() == [[f"{alert.code}:1"]]
    dispatcher = state(app).dispatcher
    dispatcher.run_pass()
    assert screen.alert_sets() == []  # not yet: the ack has ALERT_ACK_SECONDS
    for peer in dispatcher._peers.values():
        peer.sent_at -= retry_after(peer.attempts) + 0.1
    dispatcher.run_pass()
    assert screen.alert_sets() == [[f"{alert.code}:1"]]
    row = db.session.query(AlertDelivery).filter_by(alert_id=alert.id).one()
    assert row.attempts == 2 and row.acked_at is None
    assert [retry_after(n) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]


def test_a_failed_dispatch_pass_does_not_end_the_loop(app: Flask) -> None:
    """A pass that raises (say, a pool timeout) is logged and rolled back; the next one runs."""
    import threading

    from server.realtime.alert_dispatch import AlertDispatcher

    dispatcher = AlertDispatcher(app)  # its own: the loop thread outlives this test
    passes: list[bool] = []
    again = threading.Event()

    def run_pass(*, force: bool = False) -> None:
        passes.append(force)
        if len(passes) == 1:
            raise RuntimeError("QueuePool limit reached")
        again.set()
        dispatcher._running = False
        dispatcher.run_pass = lambda **_kw: None  # type: ignore[method-assign]

    dispatcher.run_pass = run_pass  # type: ignore[method-assign]
    dispatcher.start()
    dispatcher.wake()
    assert again.wait(10), passes
    assert len(passes) >= 2
