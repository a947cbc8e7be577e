"""OASIS CAP 1.2 (Common Alerting Protocol) import and export for emergency alerts.

Pure functions and dataclasses: no Flask, no database, no network. `parse_cap` turns CAP XML
into an `AlertData`, `to_cap` turns an `AlertData` back into CAP XML, and
``parse_cap(to_cap(a)) == a`` for every valid `AlertData` (times are kept to the second).

Safe parsing
    At most `MAX_BYTES` (256 KB); parsed with defusedxml; no DTD of any kind (a DOCTYPE is
    refused, which also rules out entity expansion, "billion laughs", and external entities);
    nothing is ever fetched. Every refusal is a `CapError` whose message names the problem.

Level mapping (CAP severity × urgency → 预警级别 I–IV; I red, II orange, III yellow, IV blue)

    ==========  =========  ========  ========  ========  ========
    severity    Immediate  Expected  Future    Past      Unknown
    ==========  =========  ========  ========  ========  ========
    Extreme     I          I         I         I         I
    Severe      II         II        II        II        II
    Moderate    III        III       III       III       III
    Minor       IV         IV        IV        IV        IV
    Unknown     III        IV        IV        IV        IV
    ==========  =========  ========  ========  ========  ========

    Chinese issuers put the colour in <severity> one to one (红 Extreme, 橙 Severe, 黄 Moderate,
    蓝 Minor), so urgency never moves a known severity: an official orange warning must not be
    shown as red. Urgency only decides for severity Unknown: an alert that needs action now is
    shown yellow rather than blue. Unknown is never refused: showing an alert at IV beats
    dropping it. An explicit level wins over the table: an <eventCode> or <parameter> whose
    valueName is 预警级别 or level, with a value such as II, Ⅱ级, 2, 橙色, orange.

Reverse mapping (alerts issued in the admin, see `cap_terms`)

    =====  ========  =========
    level  severity  urgency
    =====  ========  =========
    I      Extreme   Immediate
    II     Severe    Immediate
    III    Moderate  Expected
    IV     Minor     Expected
    =====  ========  =========

    `to_cap` writes the alert's own severity and urgency and always adds
    <parameter><valueName>预警级别</valueName><value>II</value></parameter>, so the level
    survives a round trip even where it differs from the table.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden
from defusedxml import ElementTree as SafeET

from server.services.errors import ServiceError

NS = "urn:oasis:names:tc:emergency:cap:1.2"
MAX_BYTES = 256 * 1024

STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPES = ("Alert", "Update", "Cancel", "Ack", "Error")
SCOPES = ("Public", "Restricted", "Private")
CATEGORIES = (
    "Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra",
    "CBRNE", "Other",
)
URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
CERTAINTIES = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")

LEVELS = (1, 2, 3, 4)
ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV"}
COLOURS = {1: "red", 2: "orange", 3: "yellow", 4: "blue"}
LEVEL_PARAM = "预警级别"
_LEVEL_NAMES = {LEVEL_PARAM, "level"}
_LEVEL_VALUES: dict[str, int] = {}
for _n, (_roman, _uni, _zh, _en) in {
    1: ("I", "Ⅰ", "红", "red"),
    2: ("II", "Ⅱ", "橙", "orange"),
    3: ("III", "Ⅲ", "黄", "yellow"),
    4: ("IV", "Ⅳ", "蓝", "blue"),
}.items():
    for _v in (_roman, _uni, _roman + "级", _uni + "级", str(_n), _zh, _zh + "色", _en):
        _LEVEL_VALUES[_v.lower()] = _n

# Severity → level; urgency only matters for severity Unknown (see the module docstring).
_SEVERITY_LEVEL = {"Extreme": 1, "Severe": 2, "Moderate": 3, "Minor": 4}
_REVERSE = {
    1: ("Extreme", "Immediate"),
    2: ("Severe", "Immediate"),
    3: ("Moderate", "Expected"),
    4: ("Minor", "Expected"),
}

# CAP dateTime: 2024-06-18T06:45:00+08:00. "Z" is tolerated on input, fractions are dropped.
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)$")
_BAD_ID_CHARS = re.compile(r"[\s,<&]")
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class CapError(ServiceError):
    """A CAP message we refuse; `message` names the problem (and `field` the CAP field, if any)."""

    status = 422

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Reference(NamedTuple):
    """One earlier message an Update or Cancel refers to."""

    sender: str
    identifier: str
    sent: datetime


@dataclass
class AlertData:
    """The parts of a CAP alert (and of the one <info> block we keep) that our alerts use."""

    identifier: str
    sender: str
    sent: datetime
    status: str = "Actual"
    msg_type: str = "Alert"
    scope: str = "Public"
    references: list[Reference] = field(default_factory=list)
    restriction: str = ""  # required when scope is Restricted
    addresses: str = ""  # required when scope is Private
    note: str = ""
    # <info>: absent only in a Cancel, Ack or Error that has no <info>.
    language: str = "zh-CN"
    category: list[str] = field(default_factory=list)
    event: str = ""
    urgency: str = "Unknown"
    severity: str = "Unknown"
    certainty: str = "Unknown"
    level: int = 0  # 1–4 (I–IV); 0 means "derive from severity and urgency"
    sender_name: str = ""
    headline: str = ""
    description: str = ""
    instruction: str = ""
    effective: datetime | None = None
    onset: datetime | None = None
    expires: datetime | None = None
    area_desc: str = ""
    geocodes: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.level:
            self.level = level_for(self.severity, self.urgency)

    @property
    def has_info(self) -> bool:
        return bool(self.event)

    @property
    def colour(self) -> str:
        return COLOURS.get(self.level, "blue")


def level_for(severity: str, urgency: str) -> int:
    """The level (1–4) for a CAP severity and urgency; the table is in the module docstring."""
    if severity in _SEVERITY_LEVEL:
        return _SEVERITY_LEVEL[severity]
    return 3 if urgency == "Immediate" else 4


def cap_terms(level: int) -> tuple[str, str]:
    """(severity, urgency) for an alert issued at `level` (1–4) in the admin."""
    if level not in _REVERSE:
        raise CapError(f"level: must be 1–4 (I–IV), not {level!r}", "level")
    return _REVERSE[level]


def parse_level(value: str) -> int:
    """An explicit level: I/II/III/IV, Ⅰ级…, 1–4, 红色/橙色/黄色/蓝色, red/orange/yellow/blue."""
    n = _LEVEL_VALUES.get(value.strip().lower())
    if n is None:
        raise CapError(f"{LEVEL_PARAM}: unknown value {value!r} (expected I–IV or a colour)",
                       LEVEL_PARAM)
    return n


# --- parsing -----------------------------------------------------------------------------


def _tag(name: str) -> str:
    return f"{{{NS}}}{name}"


def _texts(elem: ET.Element, name: str) -> list[str]:
    return [(child.text or "").strip() for child in elem.findall(_tag(name))]


def _one(elem: ET.Element, name: str, path: str, required: bool = False) -> str:
    values = _texts(elem, name)
    if len(values) > 1:
        raise CapError(f"{path} appears {len(values)} times; CAP allows it once", path)
    value = values[0] if values else ""
    if required and not value:
        raise CapError(f"missing required field {path}", path)
    return value


def parse_date(value: str, path: str) -> datetime:
    """A CAP dateTime with its time zone, to the second."""
    if not _DATE_RE.match(value):
        raise CapError(
            f"{path}: bad date {value!r} (expected like 2024-06-18T06:45:00+08:00, "
            "with a time zone)", path)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if not 1970 <= parsed.year <= 2200:  # year 1 or 9999 has no UTC in some zones
            raise ValueError("the year must be between 1970 and 2200")
        parsed.astimezone(UTC)
    except (ValueError, OverflowError) as e:
        raise CapError(f"{path}: bad date {value!r} ({e})", path) from None
    return parsed.replace(microsecond=0)


def _optional_date(elem: ET.Element, name: str, path: str) -> datetime | None:
    value = _one(elem, name, path)
    return parse_date(value, path) if value else None


def _parse_references(value: str) -> list[Reference]:
    refs = []
    for item in value.split():
        parts = item.split(",")
        if len(parts) != 3 or not all(parts):
            raise CapError(
                f"references: bad entry {item!r} (expected sender,identifier,sent)", "references")
        refs.append(Reference(parts[0], parts[1], parse_date(parts[2], "references")))
    return refs


def _parse_xml(data: bytes) -> ET.Element:
    try:
        return SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True,
                                 forbid_external=True)
    except ET.ParseError as e:
        raise CapError(f"broken XML: {e}") from None
    except DTDForbidden as dtd:
        # Say what the DTD was for: parse again allowing the DOCTYPE but no entities in it.
        try:
            SafeET.fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
        except EntitiesForbidden as ent:
            if ent.sysid or ent.pubid:
                raise CapError(
                    f"external entity {ent.name!r} ({ent.sysid or ent.pubid}) is not allowed: "
                    "CAP messages may not refer to files or addresses") from None
            raise CapError(
                f"entity declaration {ent.name!r} is not allowed: entity expansion "
                "(\"billion laughs\") is refused") from None
        except (ET.ParseError, DefusedXmlException):
            pass
        where = f" ({dtd.sysid})" if dtd.sysid else ""
        raise CapError(f"DTD (<!DOCTYPE {dtd.name}>){where} is not allowed in a CAP message") \
            from None
    except DefusedXmlException as e:
        raise CapError(f"refused XML: {e}") from None


def _choose_info(infos: list[ET.Element]) -> ET.Element:
    def lang(info: ET.Element) -> str:
        return (info.findtext(_tag("language")) or "en-US").strip().lower()

    for match in (lambda v: v == "zh-cn", lambda v: v.startswith("zh")):
        for info in infos:
            if match(lang(info)):
                return info
    return infos[0]


def _level_from_codes(info: ET.Element) -> int:
    for name in ("eventCode", "parameter"):
        for item in info.findall(_tag(name)):
            value_name = (item.findtext(_tag("valueName")) or "").strip()
            if value_name.lower() in _LEVEL_NAMES or value_name in _LEVEL_NAMES:
                return parse_level(item.findtext(_tag("value")) or "")
    return 0


def parse_cap(data: bytes | str) -> AlertData:
    """Parse a CAP 1.2 message; refuse anything unsafe or invalid with a `CapError`."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > MAX_BYTES:
        raise CapError(
            f"CAP message too large: {len(data)} bytes, the limit is {MAX_BYTES} (256 KB)")
    root = _parse_xml(data)
    if not root.tag.startswith("{"):
        raise CapError(f"wrong namespace: <{root.tag}> has none, expected {NS}")
    ns, _, local = root.tag[1:].partition("}")
    if ns != NS:
        raise CapError(f"wrong namespace {ns!r}, expected {NS} (CAP 1.2)")
    if local != "alert":
        raise CapError(f"root element is <{local}>, expected <alert>")

    values = {
        name: _one(root, name, name, required=True)
        for name in ("identifier", "sender", "sent", "status", "msgType", "scope")
    }
    refs_text = _one(root, "references", "references")
    alert = AlertData(
        identifier=values["identifier"],
        sender=values["sender"],
        sent=parse_date(values["sent"], "sent"),
        status=values["status"],
        msg_type=values["msgType"],
        scope=values["scope"],
        references=_parse_references(refs_text) if refs_text else [],
        restriction=_one(root, "restriction", "restriction"),
        addresses=_one(root, "addresses", "addresses"),
        note=_one(root, "note", "note"),
        level=4,  # replaced below
    )

    infos = root.findall(_tag("info"))
    if not infos:
        if alert.msg_type in ("Alert", "Update"):
            raise CapError("missing required field info", "info")
    else:
        _read_info(alert, _choose_info(infos))
    check(alert)
    return alert


def _read_info(alert: AlertData, info: ET.Element) -> None:
    categories = _texts(info, "category")
    if not any(categories):
        raise CapError("missing required field info/category", "info/category")
    alert.category = [c for c in categories if c]
    alert.language = _one(info, "language", "info/language") or "en-US"
    alert.event = _one(info, "event", "info/event", required=True)
    alert.urgency = _one(info, "urgency", "info/urgency", required=True)
    alert.severity = _one(info, "severity", "info/severity", required=True)
    certainty = _one(info, "certainty", "info/certainty", required=True)
    # CAP 1.2 §3.2.2: "Very Likely" (CAP 1.0) is to be treated as Likely.
    alert.certainty = "Likely" if certainty == "Very Likely" else certainty
    alert.sender_name = _one(info, "senderName", "info/senderName")
    alert.headline = _one(info, "headline", "info/headline")
    alert.description = _one(info, "description", "info/description")
    alert.instruction = _one(info, "instruction", "info/instruction")
    alert.effective = _optional_date(info, "effective", "info/effective")
    alert.onset = _optional_date(info, "onset", "info/onset")
    alert.expires = _optional_date(info, "expires", "info/expires")
    descs, geocodes = [], []
    for area in info.findall(_tag("area")):
        descs.append(_one(area, "areaDesc", "info/area/areaDesc", required=True))
        for geocode in area.findall(_tag("geocode")):
            name = (geocode.findtext(_tag("valueName")) or "").strip()
            value = (geocode.findtext(_tag("value")) or "").strip()
            if not name or not value:
                raise CapError("info/area/geocode needs a valueName and a value",
                               "info/area/geocode")
            geocodes.append((name, value))
    alert.area_desc = "; ".join(descs)
    alert.geocodes = geocodes
    if alert.urgency in URGENCIES and alert.severity in SEVERITIES:
        alert.level = _level_from_codes(info) or level_for(alert.severity, alert.urgency)


# --- checking and export -----------------------------------------------------------------


def _enum(value: str, allowed: tuple[str, ...], path: str) -> None:
    if value not in allowed:
        raise CapError(
            f"{path}: unknown value {value!r} (expected one of {', '.join(allowed)})", path)


def _aware(value: datetime | None, path: str) -> None:
    if value is not None and value.utcoffset() is None:
        raise CapError(f"{path}: date {value.isoformat()} has no time zone", path)


def check(alert: AlertData) -> None:
    """Refuse an `AlertData` that is not a valid CAP alert (used by both directions)."""
    for value, path in ((alert.identifier, "identifier"), (alert.sender, "sender")):
        if not value:
            raise CapError(f"missing required field {path}", path)
        if _BAD_ID_CHARS.search(value):
            raise CapError(f"{path}: {value!r} may not contain spaces, commas, '<' or '&'", path)
    _aware(alert.sent, "sent")
    _enum(alert.status, STATUSES, "status")
    _enum(alert.msg_type, MSG_TYPES, "msgType")
    _enum(alert.scope, SCOPES, "scope")
    if alert.scope == "Restricted" and not alert.restriction:
        raise CapError("missing required field restriction (scope is Restricted)", "restriction")
    if alert.scope == "Private" and not alert.addresses:
        raise CapError("missing required field addresses (scope is Private)", "addresses")
    if alert.msg_type in ("Update", "Cancel") and not alert.references:
        raise CapError(
            f"missing required field references: a {alert.msg_type} must name the message(s) "
            "it replaces", "references")
    for ref in alert.references:
        if not (ref.sender and ref.identifier) or _BAD_ID_CHARS.search(
                ref.sender + ref.identifier):
            raise CapError(f"references: bad entry {ref!r}", "references")
        _aware(ref.sent, "references")
    for name, value in vars(alert).items():
        if isinstance(value, str) and _NOT_XML.search(value):
            raise CapError(f"{name}: contains a control character XML cannot carry", name)
    if not alert.has_info:
        if alert.msg_type in ("Alert", "Update"):
            raise CapError("missing required field info/event", "info/event")
        return
    if not alert.category:
        raise CapError("missing required field info/category", "info/category")
    for category in alert.category:
        _enum(category, CATEGORIES, "info/category")
    _enum(alert.urgency, URGENCIES, "info/urgency")
    _enum(alert.severity, SEVERITIES, "info/severity")
    _enum(alert.certainty, CERTAINTIES, "info/certainty")
    if alert.level not in LEVELS:
        raise CapError(f"level: must be 1–4 (I–IV), not {alert.level!r}", "level")
    for when, path in ((alert.effective, "info/effective"), (alert.onset, "info/onset"),
                       (alert.expires, "info/expires")):
        _aware(when, path)
    if alert.geocodes and not alert.area_desc:
        raise CapError("missing required field info/area/areaDesc (there are geocodes)",
                       "info/area/areaDesc")


def format_date(value: datetime) -> str:
    """CAP dateTime, to the second; UTC is written -00:00 as CAP 1.2 requires."""
    text = value.replace(microsecond=0).isoformat()
    if value.utcoffset() == timedelta(0):
        text = text[:-6] + "-00:00"
    return text


def to_cap(alert: AlertData) -> bytes:
    """The alert as CAP 1.2 XML (UTF-8). Refuses an invalid alert with a `CapError`."""
    check(alert)
    root = ET.Element(_tag("alert"))

    def add(parent: ET.Element, name: str, text: str | None) -> ET.Element:
        child = ET.SubElement(parent, _tag(name))
        child.text = text
        return child

    def add_if(parent: ET.Element, name: str, text: str | datetime | None) -> None:
        if isinstance(text, datetime):
            text = format_date(text)
        if text:
            add(parent, name, text)

    add(root, "identifier", alert.identifier)
    add(root, "sender", alert.sender)
    add(root, "sent", format_date(alert.sent))
    add(root, "status", alert.status)
    add(root, "msgType", alert.msg_type)
    add(root, "scope", alert.scope)
    add_if(root, "restriction", alert.restriction)
    add_if(root, "addresses", alert.addresses)
    add_if(root, "note", alert.note)
    if alert.references:
        add(root, "references", " ".join(
            f"{r.sender},{r.identifier},{format_date(r.sent)}" for r in alert.references))
    if alert.has_info:
        info = ET.SubElement(root, _tag("info"))
        add(info, "language", alert.language or "en-US")
        for category in alert.category:
            add(info, "category", category)
        add(info, "event", alert.event)
        add(info, "urgency", alert.urgency)
        add(info, "severity", alert.severity)
        add(info, "certainty", alert.certainty)
        add_if(info, "effective", alert.effective)
        add_if(info, "onset", alert.onset)
        add_if(info, "expires", alert.expires)
        add_if(info, "senderName", alert.sender_name)
        add_if(info, "headline", alert.headline)
        add_if(info, "description", alert.description)
        add_if(info, "instruction", alert.instruction)
        parameter = ET.SubElement(info, _tag("parameter"))
        add(parameter, "valueName", LEVEL_PARAM)
        add(parameter, "value", ROMAN[alert.level])
        if alert.area_desc:
            area = ET.SubElement(info, _tag("area"))
            add(area, "areaDesc", alert.area_desc)
            for name, value in alert.geocodes:
                geocode = ET.SubElement(area, _tag("geocode"))
                add(geocode, "valueName", name)
                add(geocode, "value", value)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True, default_namespace=NS)


def now() -> datetime:
    """The current time to the second, as CAP keeps it."""
    return datetime.now(UTC).replace(microsecond=0)
