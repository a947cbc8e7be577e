"""CAP 1.2 ↔ alerts: import a CAP message as an alert change, export an alert as CAP.

The glue between `server.services.cap` (pure parsing and writing) and
`server.services.alerts` (the rules): nothing here bypasses the alert service, so the alert
role, the regions a user may alert, the two-person rule, the audit log and the push to the
screens apply to a CAP message exactly as to the admin's form. docs/cap.md ("Importing into
alerts") is the reference.

Import (`import_cap`):
- msgType Alert → `alerts.issue`; Update → `alerts.update` of the alert one of whose
  identifiers (current or earlier) is named in <references>; Cancel → `alerts.cancel`;
  Ack and Error are refused (they are not alerts).
- status Actual and Exercise are taken (an exercise's title says 【演练】 so that nobody takes it
  for a real warning); Test, Draft and System are refused. scope must be Public: a screen in
  the village square is as public as it gets.
- The two-person rule applies to a CAP Alert as to the form: the person who uploads it (or
  whose API token posts it) is its issuer, and with ALERT_TWO_PERSON it waits for a second
  person. Updates and cancels act at once, as in the admin.
- Targets: the regions the caller chose (form, API) win; else every <geocode> whose valueName
  is one of `GEOCODE_NAMES` and whose value is one of our region codes (a 12-digit code padded
  with zeros, 431222101000, also finds 431222101); codes of other counties are ignored. None
  found: refused, "choose the regions". An Update without either keeps the alert's targets.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select

from player import protocol
from server.extensions import db
from server.models import Alert, AlertStatus, Region, User
from server.services import alert_keys, alerts, cap
from server.services.alerts import AlertInput
from server.services.cap import AlertData, CapError, Reference
from server.services.errors import ValidationError

# <geocode><valueName> names whose values are Chinese administrative division codes
# (行政区划代码), compared without case, spaces, "_" or "-".
GEOCODE_NAMES = frozenset({"行政区划代码", "区划代码", "adcode", "admincode", "administrativecode"})
ACCEPTED_STATUSES = ("Actual", "Exercise")
EXERCISE_MARK = "【演练】"

# The alert's fields → where they came from in CAP (for messages that name the CAP field).
CAP_FIELDS = {
    "level": "info/severity",
    "event": "info/event",
    "title": "info/headline",
    "text": "info/description",
    "instruction": "info/instruction",
    "sender_name": "info/senderName",
    "starts_at": "info/effective",
    "expires_at": "info/expires",
    "targets": "targets",
}

# Event type → CAP <category> on export (anything else is Other).
CATEGORIES = {
    "暴雨": "Met", "台风": "Met", "大风": "Met", "暴雪": "Met", "寒潮": "Met", "高温": "Met",
    "雷电": "Met", "冰雹": "Met", "大雾": "Met", "道路结冰": "Met", "霜冻": "Met",
    "干旱": "Met", "沙尘暴": "Met", "霾": "Met",
    "地震": "Geo", "地质灾害": "Geo", "山洪": "Geo", "滑坡": "Geo", "泥石流": "Geo",
    "洪水": "Met", "森林火险": "Fire", "火灾": "Fire", "突发公共卫生事件": "Health",
    "停水停电": "Infra",
}

# "暴雨红色预警信号" → "暴雨": the screen writes the level's colour and 预警 itself.
_EVENT_SUFFIX = re.compile(r"(?:[红橙黄蓝]色)?预警(?:信号)?$")


# --- import --------------------------------------------------------------------------------


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None)


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name).lower()


def _region_for_code(code: str) -> Region | None:
    code = code.strip()
    while code:
        region = db.session.scalar(select(Region).where(Region.code == code))
        if region is not None:
            return region
        if len(code) > 6 and code.endswith("000"):
            code = code[:-3]  # 431222101000 → 431222101 (12-digit codes padded with zeros)
        else:
            return None
    return None


def geocode_targets(message: AlertData) -> list[Region]:
    """Our regions named by the message's <geocode>s (see the module docstring)."""
    found: list[Region] = []
    for name, value in message.geocodes:
        if _norm(name) not in GEOCODE_NAMES:
            continue
        region = _region_for_code(value)
        if region is not None and region not in found:
            found.append(region)
    return found


def event_name(event: str) -> str:
    """The event type without a trailing level colour and 预警 (暴雨红色预警 → 暴雨)."""
    stripped = _EVENT_SUFFIX.sub("", event.strip()).strip()
    return stripped or event.strip()


def _input(message: AlertData, targets: list[str | int]) -> AlertInput:
    title = message.headline or message.event
    if message.status == "Exercise" and "演练" not in title:
        title = EXERCISE_MARK + title
    return AlertInput(
        level=message.level,
        event=event_name(message.event),
        title=title,
        text=message.description or message.headline or message.event,
        instruction=message.instruction,
        sender_name=message.sender_name,
        targets=targets,
        starts_at=_utc(message.effective),
        expires_at=_utc(message.expires),
        identifier=message.identifier,
        sender=message.sender,
        cap_status=message.status,
        severity=message.severity,
        urgency=message.urgency,
        certainty=message.certainty,
    )


def _cap_errors(exc: ValidationError) -> ValidationError:
    """The service's field errors, named by the CAP field they came from."""
    return ValidationError({CAP_FIELDS.get(k, k): v for k, v in exc.errors.items()})


def _referenced(message: AlertData) -> Alert:
    """The alert an Update or Cancel refers to: the newest reference that names one of ours,
    from the same sender. Refused, naming the references, when there is none."""
    for ref in reversed(message.references):
        alert = alerts.by_identifier(ref.identifier)
        if alert is None:
            continue
        senders = {alert.sender, *(r[0] for r in alert.references or ())}
        if ref.sender not in senders:
            raise CapError(
                _("references: %(id)s was sent by %(ours)s, not by %(theirs)s.",
                  id=ref.identifier, ours=alert.sender, theirs=ref.sender),
                "references",
            )
        return alert
    names = ", ".join(r.identifier for r in message.references)
    raise CapError(
        _("references: no alert here has the identifier %(ids)s, so this %(type)s has "
          "nothing to change.", ids=names, type=message.msg_type),
        "references",
    )


def check_size(data: bytes) -> None:
    limit = int(current_app.config.get("MAX_CAP_BYTES") or cap.MAX_BYTES)
    if len(data) > limit:
        raise CapError(_("CAP message too large: %(n)s bytes, the limit is %(max)s (%(kb)s KB).",
                         n=len(data), max=limit, kb=limit // 1024))


def parse(data: bytes) -> AlertData:
    """Parse and check what we accept, before any database work (size, status, scope,
    msgType)."""
    check_size(data)
    message = cap.parse_cap(data)
    if message.status not in ACCEPTED_STATUSES:
        raise CapError(
            _("status %(status)s: only Actual and Exercise messages are shown on screens "
              "(Test, Draft and System are not for the public).", status=message.status),
            "status",
        )
    if message.scope != "Public":
        raise CapError(
            _("scope %(scope)s: only Public messages are shown on screens, which everyone "
              "can read.", scope=message.scope),
            "scope",
        )
    if message.msg_type in ("Ack", "Error"):
        raise CapError(
            _("msgType %(type)s is an acknowledgement or error report, not an alert: nothing "
              "to import.", type=message.msg_type),
            "msgType",
        )
    return message


def import_cap(actor: User, data: bytes, *, targets: list[str | int] | None = None,
               source: str = "cap") -> Alert:
    """Apply one CAP message as `actor`: issue, update or cancel an alert. Every refusal
    (`CapError`, `ValidationError` naming CAP fields, `PermissionDenied`, `Conflict`) leaves
    the database as it was."""
    message = parse(data)
    chosen = list(targets or [])
    if message.msg_type == "Cancel":
        alert = _referenced(message)
        reason = message.note or _("CAP Cancel %(id)s from %(sender)s",
                                   id=message.identifier, sender=message.sender)
        return alerts.cancel(actor, alert, reason)
    if not chosen:
        chosen = [r.id for r in geocode_targets(message)]
    if message.msg_type == "Update":
        alert = _referenced(message)
        if not chosen:
            chosen = [r.id for r in alert.targets]
        if alerts.by_identifier(message.identifier) is not None:
            raise CapError(_("identifier %(id)s: this message was imported already.",
                             id=message.identifier), "identifier")
        try:
            return alerts.update(actor, alert, _input(message, chosen))
        except ValidationError as exc:
            db.session.rollback()
            raise _cap_errors(exc) from None
    if not chosen:
        codes = [v for n, v in message.geocodes if _norm(n) in GEOCODE_NAMES]
        detail = (_("none of its region codes (%(codes)s) is one of ours", codes=", ".join(codes))
                  if codes else _("it names no region code (行政区划代码)"))
        raise ValidationError({"targets": _(
            "Choose the regions to alert: %(detail)s.", detail=detail)})
    try:
        return alerts.issue(actor, _input(message, chosen), source=source)
    except ValidationError as exc:
        db.session.rollback()
        raise _cap_errors(exc) from None


# --- export --------------------------------------------------------------------------------


def _zone() -> ZoneInfo:
    return ZoneInfo(current_app.config.get("BABEL_DEFAULT_TIMEZONE") or "Asia/Shanghai")


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC, microsecond=0).astimezone(_zone())


def _reference(item: Any) -> Reference:
    sender, identifier, sent = item[0], item[1], item[2]
    when = datetime.fromisoformat(str(sent).replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return Reference(sender, identifier, when.astimezone(_zone()).replace(microsecond=0))


def message_for(alert: Alert) -> AlertData:
    """The alert as a CAP message: Alert for version 1, Update (with <references>) for later
    versions, Cancel for a cancelled alert; a pending or rejected alert is a Draft."""
    severity, urgency = cap.cap_terms(alert.level)
    sent_at = alert.issued_at or alert.created_at
    identifier, msg_type = alert.identifier, "Alert"
    references = [_reference(r) for r in alert.references or ()]
    if alert.status == AlertStatus.CANCELLED:
        msg_type = "Cancel"
        references.append(Reference(alert.sender, alert.identifier, _aware(sent_at)))
        identifier = f"{alert.identifier}-cancel"
        sent_at = alert.ended_at or alert.updated_at
    elif alert.version > 1:
        msg_type = "Update"
    status = alert.cap_status or "Actual"
    if alert.status in (AlertStatus.PENDING, AlertStatus.REJECTED):
        status = "Draft"  # not in force: a draft nobody may act on
    return AlertData(
        identifier=identifier,
        sender=alert.sender,
        sent=_aware(sent_at),
        status=status,
        msg_type=msg_type,
        references=references,
        note=alert.end_reason if alert.status == AlertStatus.CANCELLED else "",
        language="zh-CN",
        category=[CATEGORIES.get(alert.event, "Other")],
        event=f"{alert.event}{protocol.LEVEL_NAMES[alert.level]}预警",
        urgency=alert.urgency or urgency,
        severity=alert.severity or severity,
        certainty=alert.certainty or "Likely",
        level=alert.level,
        sender_name=alert.sender_name or "",
        headline=alert.title,
        description=alert.text,
        instruction=alert.instruction or "",
        effective=_aware(alert.starts_at),
        expires=_aware(alert.expires_at),
        area_desc="; ".join(r.full_name for r in alert.targets),
        geocodes=[("行政区划代码", r.code) for r in alert.targets],
    )


def export_cap(alert: Alert) -> bytes:
    """The alert as CAP 1.2 XML (UTF-8), signed with the county alert key when there is one
    (an enveloped XML signature, alert_keys.sign_xml)."""
    xml = cap.to_cap(message_for(alert))
    signer = alert_keys.signer_for(current_app._get_current_object())  # type: ignore[attr-defined]
    return xml if signer is None else alert_keys.sign_xml(xml, signer)
