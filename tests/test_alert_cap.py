"""CAP ↔ alerts (server/services/alert_cap.py): import as issue/update/cancel through the alert
service, export of every state, the round trip into a fresh database, and every hostile or
unacceptable message refused with a message naming the problem and nothing saved."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from server import create_app
from server.extensions import db
from server.models import Alert, AlertStatus, AuditEvent
from server.models.base import utcnow
from server.services import alert_cap, alerts
from server.services.alerts import AlertInput
from server.services.cap import NS, CapError, parse_cap
from server.services.errors import Conflict, PermissionDenied, ValidationError
from tests.conftest import World, _config

DATA = Path(__file__).parent / "data" / "cap"
CST = timezone(timedelta(hours=8))
SENDER = "qxt.qingyuan@weather.example.cn"


def when(hours: float) -> str:
    """A CAP time `hours` from now, in +08:00."""
    value = datetime.now(UTC) + timedelta(hours=hours)
    return value.astimezone(CST).replace(microsecond=0).isoformat()


def message(*, msg_type: str = "Alert", identifier: str = "QY-1", references: str = "",
            status: str = "Actual", scope: str = "Public", geocodes: tuple[str, ...] = ("T1",),
            value_name: str = "行政区划代码", info: str | None = None, extra: str = "",
            **fields: str) -> bytes:
    """A CAP message with an <info> in Chinese; `fields` replace <info> elements ("" drops)."""
    values = {
        "category": "Met",
        "event": "暴雨橙色预警",
        "urgency": "Immediate",
        "severity": "Severe",
        "certainty": "Observed",
        "effective": when(0),
        "expires": when(6),
        "senderName": "清源县气象台",
        "headline": "清源县气象台发布暴雨橙色预警信号",
        "description": "预计未来6小时柳河镇降雨量将达50毫米以上。",
        "instruction": "远离河道，低洼地带人员转移。",
    }
    values.update(fields)
    area = "".join(
        f"<geocode><valueName>{value_name}</valueName><value>{g}</value></geocode>"
        for g in geocodes
    )
    body = "".join(f"<{k}>{v}</{k}>" for k, v in values.items() if v)
    if geocodes:
        body += f"<area><areaDesc>清源县</areaDesc>{area}</area>"
    info_xml = info if info is not None else f"<info><language>zh-CN</language>{body}</info>"
    refs = f"<references>{references}</references>" if references else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><alert xmlns="{NS}">'
        f"<identifier>{identifier}</identifier><sender>{SENDER}</sender>"
        f"<sent>{when(0)}</sent><status>{status}</status><msgType>{msg_type}</msgType>"
        f"<scope>{scope}</scope>{refs}{extra}{info_xml}</alert>"
    ).encode()


def ref(identifier: str = "QY-1") -> str:
    return f"{SENDER},{identifier},{when(0)}"


def count() -> int:
    return db.session.query(Alert).count()


# --- import --------------------------------------------------------------------------------


def test_alert_is_issued_with_its_cap_details(app: Flask, world: World) -> None:
    alert = alert_cap.import_cap(world.county_alert, message())
    assert alert.status == AlertStatus.ACTIVE and alert.source == "cap"
    assert alert.level == 2 and alert.event == "暴雨"
    assert alert.title == "清源县气象台发布暴雨橙色预警信号"
    assert alert.text.startswith("预计未来6小时") and alert.instruction.startswith("远离河道")
    assert alert.sender_name == "清源县气象台"
    assert alert.identifier == "QY-1" and alert.sender == SENDER
    assert (alert.severity, alert.urgency, alert.certainty) == ("Severe", "Immediate", "Observed")
    assert [r.code for r in alert.targets] == ["T1"]
    assert alert.expires_at - alert.starts_at == timedelta(hours=6)
    assert alert.issued_by_id == world.county_alert.id
    event = db.session.query(AuditEvent).filter_by(entity="alert", action="issue").one()
    assert event.detail["source"] == "cap"


def test_real_sample_with_12_digit_codes_and_admin_code_names(app: Flask, world: World) -> None:
    xml = (DATA / "rainstorm_red.xml").read_text()
    xml = xml.replace("2024-06-19T06:45:00+08:00", when(24))
    xml = xml.replace("2024-06-18T06:45:00+08:00", when(0))
    xml = xml.replace("431222101", "T1").replace("431222205", "V21")
    alert = alert_cap.import_cap(world.county_alert, xml.encode())
    assert alert.level == 1 and alert.event == "暴雨"  # zh-CN info chosen, suffix dropped
    assert sorted(r.code for r in alert.targets) == ["T1", "V21"]
    # ADCODE (any case) is read too; codes padded to 12 digits find the region.
    from server.services import regions

    regions.create(None, "431222101", "官庄镇", world.county)
    again = alert_cap.import_cap(
        world.county_alert,
        message(identifier="QY-2", geocodes=("431222101000", "999999"), value_name="ADCODE"),
    )
    assert [r.code for r in again.targets] == ["431222101"]


def test_targets_given_by_the_form_win(app: Flask, world: World) -> None:
    alert = alert_cap.import_cap(world.county_alert, message(), targets=[world.village.id])
    assert alert.targets == [world.village]


def test_exercise_is_marked_and_defaults_apply(app: Flask, world: World) -> None:
    alert = alert_cap.import_cap(world.county_alert,
                                 message(status="Exercise", expires="", effective=""))
    assert alert.title.startswith("【演练】") and alert.cap_status == "Exercise"
    assert alert.expires_at - alert.starts_at == alerts.DEFAULT_DURATION


def test_update_and_cancel_follow_references(app: Flask, world: World) -> None:
    alert = alert_cap.import_cap(world.county_alert, message())
    updated = alert_cap.import_cap(
        world.county_alert2,
        message(msg_type="Update", identifier="QY-2", references=ref("QY-1"),
                severity="Extreme", event="暴雨红色预警", geocodes=()),
    )
    assert updated.id == alert.id and updated.version == 2 and updated.level == 1
    assert updated.identifier == "QY-2" and updated.references[0][1] == "QY-1"
    assert [r.code for r in updated.targets] == ["T1"]  # kept: the Update named no region
    # A Cancel may name the first message: earlier identifiers still find the alert.
    cancelled = alert_cap.import_cap(
        world.county_alert,
        message(msg_type="Cancel", identifier="QY-3", references=ref("QY-1"), info=""),
    )
    assert cancelled.id == alert.id and cancelled.status == AlertStatus.CANCELLED
    assert "QY-3" in cancelled.end_reason


def test_two_person_rule_applies_to_a_cap_upload(app: Flask, world: World) -> None:
    app.config["ALERT_TWO_PERSON"] = True
    alert = alert_cap.import_cap(world.county_alert, message())
    assert alert.status == AlertStatus.PENDING
    with pytest.raises(PermissionDenied):
        alerts.confirm(world.county_alert, alert, alert.version)
    assert alerts.confirm(world.county_alert2, alert, alert.version).status == AlertStatus.ACTIVE


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE alert [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol3;</identifier></alert>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE alert [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&xxe;</identifier></alert>"""
DOCTYPE = (b'<?xml version="1.0"?><!DOCTYPE alert SYSTEM "http://example.com/cap.dtd">'
           b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>x</identifier>'
           b'</alert>')

# (name, message, words the refusal must contain)
HOSTILE: list[tuple[str, Any, str]] = [
    ("broken", b"<alert><identifier>x</alert>", "broken XML"),
    ("not-xml", b"\x89PNG\r\n\x1a\n", "broken XML"),
    ("billion-laughs", BILLION_LAUGHS, "billion laughs"),
    ("external-entity", EXTERNAL, "file:///etc/passwd"),
    ("doctype", DOCTYPE, "DTD"),
    ("oversize", lambda: message(description="雨" * 90_000), "消息过大"),
    ("missing-severity", lambda: message(severity=""), "info/severity"),
    ("missing-identifier", lambda: message().replace(b"<identifier>QY-1</identifier>", b""),
     "identifier"),
    ("unknown-urgency", lambda: message(urgency="Now"), "'Now'"),
    ("unknown-level", lambda: message().replace(
        b"<senderName>",
        "<parameter><valueName>预警级别</valueName><value>紫色</value></parameter>"
        "<senderName>".encode()), "紫色"),
    ("test-status", lambda: message(status="Test"), "status Test"),
    ("draft-status", lambda: message(status="Draft"), "status Draft"),
    ("restricted", lambda: message(scope="Restricted", extra="<restriction>内部</restriction>"),
     "scope Restricted"),
    ("ack", lambda: message(msg_type="Ack", references=ref(), info=""), "msgType Ack"),
    ("error", lambda: message(msg_type="Error", references=ref(), info=""), "msgType Error"),
    ("unknown-reference", lambda: message(msg_type="Update", identifier="QY-9",
                                          references=ref("NOPE-7")), "NOPE-7"),
    ("cancel-unknown", lambda: message(msg_type="Cancel", identifier="QY-9",
                                       references=ref("NOPE-8"), info=""), "NOPE-8"),
    ("no-region", lambda: message(geocodes=()), "行政区划代码"),
    ("foreign-region", lambda: message(geocodes=("110101",)), "110101"),
    ("outside-user", lambda: message(geocodes=("T2",)), "石桥镇"),
    ("expired", lambda: message(effective=when(-10), expires=when(-1)), "info/expires"),
    ("too-long-headline", lambda: message(headline="雨" * 300), "info/headline"),
]


@pytest.mark.parametrize("case", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_and_unacceptable_messages_are_refused(
    app: Flask, world: World, case: tuple[str, Any, str]
) -> None:
    _name, data, words = case
    data = data() if callable(data) else data
    before = db.session.query(AuditEvent).count()
    actor = world.town_alert  # alerts only 柳河镇 (T1)
    with pytest.raises((CapError, ValidationError)) as info:
        alert_cap.import_cap(actor, data)
    exc = info.value
    text = exc.message + " " + " ".join(getattr(exc, "errors", {}).values())
    assert words in text, text
    db.session.rollback()
    assert count() == 0
    assert db.session.query(AuditEvent).count() == before


def test_refusals_of_the_service_pass_through(app: Flask, world: World) -> None:
    with pytest.raises(PermissionDenied):
        alert_cap.import_cap(world.admin, message())  # admin is not the alert role
    alert_cap.import_cap(world.county_alert, message())
    with pytest.raises(Conflict, match="QY-1"):
        alert_cap.import_cap(world.county_alert, message())  # the same message twice
    cancel = message(msg_type="Cancel", identifier="QY-3", references=ref("QY-1"), info="")
    alert_cap.import_cap(world.county_alert, cancel)
    with pytest.raises(Conflict):
        alert_cap.import_cap(world.county_alert,
                             message(msg_type="Cancel", identifier="QY-4",
                                     references=ref("QY-1"), info=""))
    other = message(msg_type="Update", identifier="QY-5",
                    references=f"someone@else.example,QY-1,{when(0)}")
    with pytest.raises(CapError, match=re.escape("someone@else.example")):
        alert_cap.import_cap(world.county_alert, other)
    assert count() == 1


# --- export and the round trip -------------------------------------------------------------


def issued(world: World, **overrides: Any) -> Alert:
    base: dict[str, Any] = dict(
        level=3, event="大风", title="清源县发布大风黄色预警", text="预计今天下午有8级大风。",
        instruction="加固搭建物，远离广告牌。", sender_name="清源县应急管理局",
        targets=["T1", "V21"],
    )
    base.update(overrides)
    return alerts.issue(world.county_alert, AlertInput(**base))


def test_export_versions(app: Flask, world: World) -> None:
    alert = issued(world)
    first = parse_cap(alert_cap.export_cap(alert))
    assert (first.msg_type, first.identifier, first.status) == ("Alert", alert.identifier,
                                                                  "Actual")
    assert first.level == 3 and first.event == "大风黄色预警" and first.category == ["Met"]
    assert first.geocodes == [("行政区划代码", "T1"), ("行政区划代码", "V21")]
    assert first.sent.utcoffset() == timedelta(hours=8)
    v1 = alert.identifier
    data = AlertInput(level=2, event="大风", title="升级为橙色", text="风力加大。", targets=["T1"])
    alerts.update(world.county_alert, alert, data)
    second = parse_cap(alert_cap.export_cap(alert))
    assert second.msg_type == "Update" and [r.identifier for r in second.references] == [v1]
    assert second.level == 2
    alerts.cancel(world.county_alert, alert, "风已减弱")
    third = parse_cap(alert_cap.export_cap(alert))
    assert third.msg_type == "Cancel" and third.note == "风已减弱"
    assert [r.identifier for r in third.references] == [v1, alert.identifier]


def test_pending_alert_exports_as_a_draft(app: Flask, world: World) -> None:
    app.config["ALERT_TWO_PERSON"] = True
    alert = issued(world)
    xml = alert_cap.export_cap(alert)
    assert parse_cap(xml).status == "Draft"
    with pytest.raises(CapError, match="status Draft"):
        alert_cap.import_cap(world.county_alert2, xml)


@pytest.fixture
def fresh_app(app: Flask, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Flask]:
    """A second app on its own empty database (same backend as `app`)."""
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite"):
        folder = tmp_path / "fresh"
        (folder / "instance").mkdir(parents=True)
        shutil.copy(request.getfixturevalue("sqlite_template"),
                    folder / "instance" / "cunping.db")
        uri = "sqlite:///" + str(folder / "instance" / "cunping.db")
    else:
        uri = request.getfixturevalue("postgres").fresh_database()
        folder = tmp_path / "fresh"
    other = create_app(_config(folder, uri))
    yield other
    with other.app_context():
        db.engine.dispose()


FIELDS = ("level", "event", "title", "text", "instruction", "sender_name", "identifier",
          "sender", "cap_status", "version")


def snapshot(alert: Alert) -> dict[str, Any]:
    out = {name: getattr(alert, name) for name in FIELDS}
    # An alert issued in the admin has no CAP terms of its own: the export writes the table's.
    terms = alert_cap.message_for(alert)
    out["terms"] = (terms.severity, terms.urgency, terms.certainty)
    out["targets"] = sorted(r.code for r in alert.targets)
    out["starts_at"] = alert.starts_at.replace(microsecond=0)
    out["expires_at"] = alert.expires_at.replace(microsecond=0)
    return out


def unsent(xml: bytes) -> bytes:
    return re.sub(rb"<sent>[^<]*</sent>", b"", xml)


@pytest.mark.parametrize("overrides", [
    {},
    {"level": 1, "event": "地震", "instruction": "", "sender_name": ""},
    {"level": 4, "event": "停水停电", "targets": ["V11"]},
], ids=["wind", "earthquake", "outage"])
def test_round_trip_into_a_fresh_database(
    app: Flask, world: World, fresh_app: Flask, overrides: dict[str, Any]
) -> None:
    alert = issued(world, **overrides)
    want = snapshot(alert)
    xml = alert_cap.export_cap(alert)
    with fresh_app.app_context():
        other = World()
        copy = alert_cap.import_cap(other.county_alert, xml)
        assert snapshot(copy) == want
        # The same message again, but for <sent>: when it came into force in this database.
        assert unsent(alert_cap.export_cap(copy)) == unsent(xml)
        db.session.remove()


def test_update_and_cancel_travel_to_a_fresh_database(
    app: Flask, world: World, fresh_app: Flask
) -> None:
    alert = issued(world)
    first = alert_cap.export_cap(alert)
    alerts.update(world.county_alert, alert,
                  AlertInput(level=2, event="大风", title="升级", text="风力加大。",
                             targets=["T1"], expires_at=utcnow() + timedelta(hours=3)))
    second = alert_cap.export_cap(alert)
    alerts.cancel(world.county_alert, alert, "解除")
    third = alert_cap.export_cap(alert)
    with fresh_app.app_context():
        other = World()
        copy = alert_cap.import_cap(other.county_alert, first)
        alert_cap.import_cap(other.county_alert, second)
        assert copy.version == 2 and copy.level == 2 and copy.title == "升级"
        alert_cap.import_cap(other.county_alert, third)
        assert copy.status == AlertStatus.CANCELLED and copy.end_reason == "解除"
        db.session.remove()
